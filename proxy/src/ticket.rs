//! Signed connection tickets: short-lived, bound to a target, a connection mode and an
//! origin, single use. A ticket is a compact JWS (a JWT, RFC 7519) signed with HS256 or
//! EdDSA (`crate::jws`); its claims and their canonical forms are specified in
//! `docs/tickets.md`. A JWS is base64url parts joined by `.`, so a ticket is a valid HTTP
//! token and can ride in `Sec-WebSocket-Protocol: prl-ticket.<ticket>`.
//!
//! [`check_ticket`] is the one check: signature (and header), claims, audience, lifetime and
//! origin ([`Tickets::verify`]), then the caller's binding (target and mode), then single use.
//! A ticket is accepted once: its id (`jti`) and expiry go to the shared state's replay cache
//! ([`crate::shared_state::SharedState::consume_ticket`]: in memory, or in Redis for a
//! cluster) until it expires. A full cache refuses new tickets instead of forgetting used
//! ones; a shared state that cannot be reached refuses them too.

use std::net::Ipv6Addr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use prl_protocol::relay::ConnectMode;
use prl_protocol::scope::CommandScope;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{TicketAlg, TicketsConfig};
use crate::jws::{JwsError, KeySet, Signer, VerifyingKey};
use crate::shared_state::{SharedState, TicketUseError};
use crate::ticket_keys;

/// Longest ticket accepted, in bytes.
pub const MAX_TICKET_LEN: usize = crate::jws::MAX_TOKEN_LEN;
/// Clock skew tolerated for `iat` and `nbf`, in seconds.
pub const SKEW_SECS: u64 = 30;
/// Longest `jti`, in bytes.
pub const MAX_JTI_LEN: usize = 128;
/// Longest `sub`, `iss` or audience entry, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Most entries of an `aud` array.
pub const MAX_AUDIENCES: usize = 16;

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Tickets are required and none was presented.
    #[error("ticket required")]
    Missing,
    /// The compact JWS itself: size, form, header, key, algorithm or signature.
    #[error(transparent)]
    Token(#[from] JwsError),
    /// Signed, but the claims are not what `docs/tickets.md` specifies: not a JSON object, a
    /// claim missing, unknown, repeated, of the wrong type or not in its canonical form.
    #[error("ticket claims invalid")]
    InvalidClaims,
    /// `aud` does not name this proxy's `tickets.audience`.
    #[error("ticket issued for another audience")]
    WrongAudience,
    /// `exp` is not in the future.
    #[error("ticket expired")]
    Expired,
    /// `iat` or `nbf` is in the future (beyond the clock skew).
    #[error("ticket not yet valid")]
    NotYetValid,
    /// Lifetime longer than the configured maximum.
    #[error("ticket lifetime exceeds the maximum")]
    TooLong,
    /// Issued for another origin.
    #[error("ticket issued for another origin")]
    OriginMismatch,
    /// Issued for another target.
    #[error("ticket issued for another target")]
    TargetMismatch,
    /// Issued for the other connection mode (`mode` claim `remote` presented for a local
    /// open, or `local` for a remote one).
    #[error("ticket issued for another connection mode")]
    ModeMismatch,
    /// Already used.
    #[error("ticket already used")]
    Replayed,
    /// The replay cache is full of unexpired tickets.
    #[error("ticket replay cache full")]
    CacheFull,
    /// Two tickets presented (header and message).
    #[error("conflicting tickets")]
    Conflict,
    /// Issued before this proxy process started: its replay cache began empty, so it cannot
    /// tell whether the ticket was used before a restart.
    #[error("ticket issued before the proxy started")]
    BeforeStart,
    /// The replay cache (a cluster's shared state) cannot be reached: the ticket cannot be
    /// proven unused, so it is refused.
    #[error("ticket replay cache unavailable")]
    Unavailable,
}

impl TicketError {
    /// Stable snake_case name (the `reason` of `prl_proxy_ticket_rejections_total`, and the
    /// start of the relay error's message).
    pub fn kind(&self) -> &'static str {
        match self {
            TicketError::Missing => "missing",
            TicketError::Token(e) => e.kind(),
            TicketError::InvalidClaims => "invalid_claims",
            TicketError::WrongAudience => "wrong_audience",
            TicketError::Expired => "expired",
            TicketError::NotYetValid => "not_yet_valid",
            TicketError::TooLong => "lifetime_too_long",
            TicketError::OriginMismatch => "origin_mismatch",
            TicketError::TargetMismatch => "target_mismatch",
            TicketError::ModeMismatch => "mode_mismatch",
            TicketError::Replayed => "replayed",
            TicketError::CacheFull => "replay_cache_full",
            TicketError::Conflict => "conflict",
            TicketError::BeforeStart => "issued_before_start",
            TicketError::Unavailable => "state_unavailable",
        }
    }

    /// Every kind, for documentation and tests.
    pub const KINDS: [&'static str; 20] = [
        "missing",
        "too_large",
        "malformed",
        "unsupported_header",
        "unknown_key",
        "alg_not_allowed",
        "bad_signature",
        "invalid_claims",
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "lifetime_too_long",
        "origin_mismatch",
        "target_mismatch",
        "mode_mismatch",
        "replayed",
        "replay_cache_full",
        "conflict",
        "issued_before_start",
        "state_unavailable",
    ];
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud":"prl-proxy"`
    One(String),
    /// `"aud":["prl-proxy","other"]`
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is (among) it.
    pub fn names(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// What a ticket grants: its claims, in the member order tickets are written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Optional issuer; not checked (the key says who signed).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub iss: Option<String>,
    /// Optional subject (e.g. the application's user); sessions created under a subject may
    /// only be restored by tickets of the same subject.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub sub: Option<String>,
    /// The proxy's `tickets.audience`.
    pub aud: Audience,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Optional: not before, unix seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub nbf: Option<u64>,
    /// Expires at, unix seconds.
    pub exp: u64,
    /// Unique id (replay cache key).
    pub jti: String,
    /// `remote` (login 2039 to `target`) or `local` (login_local 2186; no `target`).
    pub mode: ConnectMode,
    /// For `mode` `remote`: the target as [`target_key`] writes it (`host:port`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub target: Option<String>,
    /// The page origin, serialised (`scheme://host[:port]`, as [`crate::origin`] normalises).
    pub origin: String,
    /// Optional command scope (`read`, `operate`, `all`): the connection may send no command
    /// outside it. The narrower of this and `[policy] scope` applies.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub scope: Option<CommandScope>,
}

/// An optional claim that, when present, has its type (`null` is not a value).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The optional claims of a ticket to issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketOptions {
    /// `sub`: sessions created under a subject may only be restored by tickets of the same
    /// subject.
    pub sub: Option<String>,
    /// `scope`: what the connection may do at most.
    pub scope: Option<CommandScope>,
}

/// How `prl-proxy ticket --target` names a local-mode open (`"mode":"local"`, no `target`
/// claim). No host name can be it: a remote target always ends in `:PORT`.
pub const LOCAL_TARGET: &str = "@local";

/// The canonical `host:port` a remote-mode ticket binds (`docs/tickets.md`):
/// - the port in decimal, always written: the open's port 0 (or none) is 64000;
/// - an IPv6 literal (bracketed or not in the open) in brackets, in RFC 5952 text (lower
///   case, zeros compressed, as Rust's `Ipv6Addr` prints it);
/// - any other host (a configured target name, a DNS name, an IPv4 literal) trimmed of
///   surrounding whitespace and ASCII-lower-cased, otherwise exactly as the open names it:
///   `lab.` is not `lab`, `0x7f.1` is not `127.0.0.1` (a ticket for one never authorises
///   another spelling).
pub fn target_key(host: &str, port: u16) -> String {
    let port = if port == 0 { 64000 } else { port };
    let h = host.trim();
    let inner = h
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(h);
    if inner.contains(':') {
        if let Ok(ip) = inner.parse::<Ipv6Addr>() {
            return format!("[{ip}]:{port}");
        }
    }
    format!("{}:{port}", h.to_ascii_lowercase())
}

/// Whether `target` is a `target` claim in canonical form: what [`target_key`] writes for
/// some host (visible ASCII, non-empty) and port 1..=65535 (no leading zero).
pub fn is_canonical_target(target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':') else {
        return false;
    };
    let Ok(p) = port.parse::<u16>() else {
        return false;
    };
    // Brackets and colons only as an IPv6 literal's.
    let ip_literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok());
    p != 0
        && port == p.to_string()
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_graphic())
        && (ip_literal || !host.contains(['[', ']', ':']))
        && target_key(host, p) == target
}

fn visible_ascii(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

fn text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

impl Claims {
    /// Claims for a remote-mode open of `host:port` from `origin`, valid `ttl_secs` from `now`,
    /// with a fresh random `jti`.
    pub fn remote(
        host: &str,
        port: u16,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        audience: &str,
        options: TicketOptions,
    ) -> Claims {
        let mut c = Claims::local(origin, now, ttl_secs, audience, options);
        c.mode = ConnectMode::Remote;
        c.target = Some(target_key(host, port));
        c
    }

    /// Claims for a local-mode open from `origin`, valid `ttl_secs` from `now`.
    pub fn local(
        origin: &str,
        now: u64,
        ttl_secs: u64,
        audience: &str,
        options: TicketOptions,
    ) -> Claims {
        let mut jti = [0u8; 16];
        crate::util::fill_random(&mut jti);
        Claims {
            iss: None,
            sub: options.sub,
            aud: Audience::One(audience.to_string()),
            iat: now,
            nbf: None,
            exp: now.saturating_add(ttl_secs),
            jti: URL_SAFE_NO_PAD.encode(jti),
            mode: ConnectMode::Local,
            target: None,
            origin: crate::origin::normalize_origin(origin).unwrap_or_else(|| origin.to_string()),
            scope: options.scope,
        }
    }

    /// The shape `docs/tickets.md` gives the claims beyond their JSON types.
    fn check_form(&self) -> Result<(), TicketError> {
        let bad = TicketError::InvalidClaims;
        let names = |a: &Audience| match a {
            Audience::One(a) => text(a, MAX_NAME_LEN),
            Audience::Many(l) => {
                !l.is_empty() && l.len() <= MAX_AUDIENCES && l.iter().all(|a| text(a, MAX_NAME_LEN))
            }
        };
        let target_ok = match (self.mode, &self.target) {
            (ConnectMode::Remote, Some(t)) => is_canonical_target(t),
            (ConnectMode::Local, None) => true,
            _ => false,
        };
        let ok = visible_ascii(&self.jti, MAX_JTI_LEN)
            && self.sub.as_deref().is_none_or(|s| text(s, MAX_NAME_LEN))
            && self.iss.as_deref().is_none_or(|s| text(s, MAX_NAME_LEN))
            && names(&self.aud)
            && self.exp > self.iat
            && target_ok
            && crate::origin::normalize_origin(&self.origin).as_deref() == Some(&*self.origin);
        if ok {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// Whether the ticket was issued for this open: a local open needs `mode` `local` (the
    /// open's target is not used in local mode, so it is not compared); a remote open needs
    /// `mode` `remote` and `target` = [`target_key`] of the open's host and port.
    pub fn check_open(&self, mode: ConnectMode, host: &str, port: u16) -> Result<(), TicketError> {
        match (mode, self.mode) {
            (ConnectMode::Local, ConnectMode::Local) => Ok(()),
            (ConnectMode::Local, ConnectMode::Remote)
            | (ConnectMode::Remote, ConnectMode::Local) => Err(TicketError::ModeMismatch),
            (ConnectMode::Remote, ConnectMode::Remote) => {
                if self.target.as_deref() == Some(target_key(host, port).as_str()) {
                    Ok(())
                } else {
                    Err(TicketError::TargetMismatch)
                }
            }
        }
    }
}

/// A `[tickets]` key that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config key `{key}`: {reason}")]
pub struct TicketKeyError {
    /// The config key, e.g. `tickets.keys[1].file`.
    pub key: String,
    /// What is wrong (never key material).
    pub reason: String,
}

/// Ticket settings in force.
#[derive(Debug)]
pub struct Tickets {
    /// The verification keys.
    pub keys: KeySet,
    /// The `aud` tickets must name.
    pub audience: String,
    /// Tickets are mandatory.
    pub required: bool,
    /// Longest lifetime accepted.
    pub max_ttl_secs: u64,
}

impl Tickets {
    /// Load the keys of a (validated) `[tickets]` section.
    pub fn load(config: &TicketsConfig) -> Result<Tickets, TicketKeyError> {
        let mut keys = Vec::new();
        if let Some(path) = &config.key_file {
            let secret = ticket_keys::load_secret(path).map_err(|reason| TicketKeyError {
                key: "tickets.key_file".into(),
                reason,
            })?;
            keys.push(VerifyingKey::hs256(None, &secret));
        }
        for (i, k) in config.keys.iter().enumerate() {
            let err = |reason| TicketKeyError {
                key: format!("tickets.keys[{i}].file"),
                reason,
            };
            keys.push(match k.alg {
                TicketAlg::Hs256 => VerifyingKey::hs256(
                    k.kid.clone(),
                    &ticket_keys::load_secret(&k.file).map_err(err)?,
                ),
                TicketAlg::EdDsa => VerifyingKey::ed25519(
                    k.kid.clone(),
                    ticket_keys::load_ed25519_public(&k.file).map_err(err)?,
                ),
            });
        }
        let keys = KeySet::new(keys).map_err(|e| TicketKeyError {
            key: "tickets.keys".into(),
            reason: e.to_string(),
        })?;
        Ok(Tickets {
            keys,
            audience: config.audience.clone(),
            required: config.required,
            max_ttl_secs: config.max_ttl_secs,
        })
    }

    /// Verify the token, then read its claims and check their form, the audience, the
    /// lifetime and the origin (not the target or mode, not the replay cache).
    pub fn verify(&self, ticket: &str, origin: &str, now: u64) -> Result<Claims, TicketError> {
        let payload = self.keys.verify(ticket)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| TicketError::InvalidClaims)?;
        claims.check_form()?;
        if !claims.aud.names(&self.audience) {
            return Err(TicketError::WrongAudience);
        }
        if claims.exp <= now {
            return Err(TicketError::Expired);
        }
        let horizon = now.saturating_add(SKEW_SECS);
        if claims.iat > horizon || claims.nbf.is_some_and(|nbf| nbf > horizon) {
            return Err(TicketError::NotYetValid);
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_ttl_secs
            || claims.exp.saturating_sub(now) > self.max_ttl_secs
        {
            return Err(TicketError::TooLong);
        }
        if crate::origin::normalize_origin(origin).as_deref() != Some(claims.origin.as_str()) {
            return Err(TicketError::OriginMismatch);
        }
        Ok(claims)
    }

    /// The issuer `prl-proxy ticket` signs with: with `private_key`, EdDSA under the
    /// configured EdDSA key holding its public half (and `kid`, if given); without, HS256 under
    /// the HS256 key `kid` names, or else the only HS256 key, or else the one without a kid.
    pub fn issuer(
        &self,
        kid: Option<&str>,
        private_key: Option<Ed25519KeyPair>,
    ) -> Result<TicketIssuer, String> {
        let by_kid = |k: &&VerifyingKey| kid.is_none() || k.kid() == kid;
        let signer = match private_key {
            Some(pair) => {
                let public = pair.public_key().as_ref().to_vec();
                let mut matching = self.keys.keys().iter().filter(by_kid).filter(|k| {
                    k.ed25519_public_key()
                        .is_some_and(|pk| pk.as_slice() == public.as_slice())
                });
                let key = matching.next().ok_or(
                    "no EdDSA key in [tickets] (with that --kid) has this private key's public key",
                )?;
                if matching.next().is_some() {
                    return Err(
                        "several EdDSA keys hold this public key: choose one with --kid".into(),
                    );
                }
                Signer::ed25519(key.kid().map(String::from), pair)
            }
            None => {
                let hs: Vec<&VerifyingKey> = self
                    .keys
                    .keys()
                    .iter()
                    .filter(by_kid)
                    .filter(|k| k.algorithm() == crate::jws::Algorithm::Hs256)
                    .collect();
                let key = match hs.as_slice() {
                    [one] => *one,
                    [] if kid.is_some() => {
                        return Err(
                            "no HS256 key with that --kid (an EdDSA key signs with --private-key)"
                                .into(),
                        )
                    }
                    [] => return Err("no HS256 key in [tickets]: sign with --private-key".into()),
                    several => several
                        .iter()
                        .copied()
                        .find(|k| k.kid().is_none())
                        .ok_or("several HS256 keys in [tickets]: choose one with --kid")?,
                };
                key.hs256_signer().ok_or("not an HS256 key")?
            }
        };
        Ok(TicketIssuer::new(signer, &self.audience))
    }
}

/// Signs tickets (`prl-proxy ticket`, tests; a backend does the same with any JWT library).
#[derive(Debug)]
pub struct TicketIssuer {
    signer: Signer,
    audience: String,
}

impl TicketIssuer {
    /// Tickets for `audience`, signed by `signer`.
    pub fn new(signer: Signer, audience: &str) -> TicketIssuer {
        TicketIssuer {
            signer,
            audience: audience.to_string(),
        }
    }

    /// HS256 with this secret.
    pub fn hs256(secret: &[u8], kid: Option<&str>, audience: &str) -> TicketIssuer {
        TicketIssuer::new(Signer::hs256(kid.map(String::from), secret), audience)
    }

    /// HS256 with the secret in this file (the format `tickets.key_file` reads).
    pub fn hs256_file(
        path: &Path,
        kid: Option<&str>,
        audience: &str,
    ) -> Result<TicketIssuer, String> {
        Ok(TicketIssuer::hs256(
            &ticket_keys::load_secret(path)?,
            kid,
            audience,
        ))
    }

    /// The signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Sign these claims.
    pub fn sign(&self, claims: &Claims) -> String {
        self.signer
            .sign(&serde_json::to_vec(claims).unwrap_or_default())
    }

    /// A ticket for a remote-mode open of `host:port` from `origin`.
    pub fn remote(
        &self,
        host: &str,
        port: u16,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        options: TicketOptions,
    ) -> String {
        self.sign(&Claims::remote(
            host,
            port,
            origin,
            now,
            ttl_secs,
            &self.audience,
            options,
        ))
    }

    /// A ticket for a local-mode open from `origin`.
    pub fn local(&self, origin: &str, now: u64, ttl_secs: u64, options: TicketOptions) -> String {
        self.sign(&Claims::local(
            origin,
            now,
            ttl_secs,
            &self.audience,
            options,
        ))
    }
}

/// The one check of a presented ticket: signature, claims, lifetime and origin (the token is
/// verified here and nowhere else), then what the caller binds it to (`bind`: the open's
/// target and mode, or nothing yet for a header ticket checked before the upgrade), then
/// single use (the shared replay cache, keyed on the ticket id and expiry). A ticket refused
/// by `bind` is not consumed.
pub(crate) async fn check_ticket(
    tickets: &Tickets,
    shared: &dyn SharedState,
    ticket: &str,
    origin: &str,
    now: u64,
    bind: impl FnOnce(&Claims) -> Result<(), TicketError>,
) -> Result<Claims, TicketError> {
    let claims = tickets.verify(ticket, origin, now)?;
    bind(&claims)?;
    shared
        .consume_ticket(&claims.jti, claims.iat, claims.exp, now)
        .await
        .map_err(|e| match e {
            TicketUseError::Replayed => TicketError::Replayed,
            TicketUseError::BeforeStart => TicketError::BeforeStart,
            TicketUseError::CacheFull => TicketError::CacheFull,
            TicketUseError::Unavailable(_) => TicketError::Unavailable,
        })?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: &str = "https://console.example.com";
    const AUD: &str = "prl-proxy";
    const SECRET: [u8; 32] = [7u8; 32];

    fn issuer() -> TicketIssuer {
        TicketIssuer::hs256(&SECRET, None, AUD)
    }

    fn tickets(max_ttl_secs: u64) -> Tickets {
        Tickets {
            keys: KeySet::new(vec![VerifyingKey::hs256(None, &SECRET)]).unwrap(),
            audience: AUD.into(),
            required: true,
            max_ttl_secs,
        }
    }

    fn opts(sub: Option<&str>, scope: Option<CommandScope>) -> TicketOptions {
        TicketOptions {
            sub: sub.map(String::from),
            scope,
        }
    }

    /// Sign these exact claims bytes.
    fn signed(json: &str) -> String {
        issuer().signer().sign(json.as_bytes())
    }

    #[test]
    fn claims_are_written_in_their_documented_order() {
        let mut c = Claims::remote(
            "Lab",
            0,
            "HTTPS://Console.Example.com:443",
            1000,
            60,
            AUD,
            opts(Some("u1"), Some(CommandScope::Read)),
        );
        c.jti = "j1".into();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"sub":"u1","aud":"prl-proxy","iat":1000,"exp":1060,"jti":"j1","mode":"remote","target":"lab:64000","origin":"https://console.example.com","scope":"read"}"#
        );
        let mut l = Claims::local(ORIGIN, 1000, 60, AUD, TicketOptions::default());
        l.jti = "j2".into();
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"aud":"prl-proxy","iat":1000,"exp":1060,"jti":"j2","mode":"local","origin":"https://console.example.com"}"#
        );
        // Fresh ids: 16 random bytes, base64url.
        let a = Claims::local(ORIGIN, 1, 1, AUD, TicketOptions::default()).jti;
        let b = Claims::local(ORIGIN, 1, 1, AUD, TicketOptions::default()).jti;
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }

    #[test]
    fn the_scope_and_subject_claims_are_optional_and_signed() {
        let t = tickets(120);
        let plain = t.verify(
            &issuer().remote("lab", 0, ORIGIN, 1000, 60, opts(None, None)),
            ORIGIN,
            1001,
        );
        let plain = plain.unwrap();
        assert_eq!((plain.scope, plain.sub), (None, None));
        for scope in CommandScope::ALL {
            let r = issuer().remote("lab", 0, ORIGIN, 1000, 60, opts(Some("u1"), Some(scope)));
            let c = t.verify(&r, ORIGIN, 1001).unwrap();
            assert_eq!((c.scope, c.sub.as_deref()), (Some(scope), Some("u1")));
            let l = issuer().local(ORIGIN, 1000, 60, opts(None, Some(scope)));
            assert_eq!(t.verify(&l, ORIGIN, 1001).unwrap().scope, Some(scope));
        }
        let base = r#""aud":"prl-proxy","iat":1000,"exp":1060,"jti":"j","mode":"local","origin":"https://console.example.com""#;
        let c = t.verify(
            &signed(&format!(r#"{{{base},"scope":"operate"}}"#)),
            ORIGIN,
            1001,
        );
        assert_eq!(c.unwrap().scope, Some(CommandScope::Operate));
        for bad in [
            r#""scope":"root""#,
            r#""scope":"READ""#,
            r#""scope":null"#,
            r#""scope":["read"]"#,
        ] {
            assert_eq!(
                t.verify(&signed(&format!("{{{base},{bad}}}")), ORIGIN, 1001),
                Err(TicketError::InvalidClaims),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_of_the_wrong_type_or_form_are_refused() {
        let t = tickets(120);
        let good = [
            ("aud", r#""prl-proxy""#),
            ("iat", "1000"),
            ("exp", "1060"),
            ("jti", r#""j-1""#),
            ("mode", r#""remote""#),
            ("target", r#""lab:64000""#),
            ("origin", r#""https://console.example.com""#),
        ];
        let render = |members: &[(&str, &str)]| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!(r#""{k}":{v}"#))
                .collect();
            format!("{{{}}}", body.join(","))
        };
        assert!(t.verify(&signed(&render(&good)), ORIGIN, 1001).is_ok());
        // Each required claim missing.
        for i in 0..good.len() {
            let mut m = good.to_vec();
            m.remove(i);
            assert_eq!(
                t.verify(&signed(&render(&m)), ORIGIN, 1001),
                Err(TicketError::InvalidClaims),
                "without {}",
                good[i].0
            );
        }
        // Each claim with a value of the wrong type or form.
        let long_jti = format!("\"{}\"", "x".repeat(MAX_JTI_LEN + 1));
        let wrong: [(&str, &str); 28] = [
            ("aud", "7"),
            ("aud", "[]"),
            ("aud", r#""""#),
            ("aud", "null"),
            ("iat", r#""1000""#),
            ("iat", "1000.5"),
            ("iat", "-1"),
            ("iat", "1e3"),
            ("exp", "1060.0"),
            ("exp", "1000"),
            ("exp", "18446744073709551616"),
            ("jti", "1"),
            ("jti", r#""""#),
            ("jti", r#""has space""#),
            ("jti", long_jti.as_str()),
            ("mode", r#""Remote""#),
            ("mode", r#""both""#),
            ("target", r#""Lab:64000""#),
            ("target", r#""lab""#),
            ("target", r#""lab:0""#),
            ("target", r#""lab:064000""#),
            ("target", r#""::1:64000""#),
            ("target", r#""[0:0::1]:64000""#),
            ("target", "null"),
            ("origin", r#""https://console.example.com/""#),
            ("origin", r#""HTTPS://console.example.com""#),
            ("origin", r#""https://console.example.com:443""#),
            ("origin", "null"),
        ];
        for (name, value) in wrong {
            let m: Vec<(&str, &str)> = good
                .iter()
                .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
                .collect();
            assert_eq!(
                t.verify(&signed(&render(&m)), ORIGIN, 1001),
                Err(TicketError::InvalidClaims),
                "{name}: {value}"
            );
        }
        // Optional claims of the wrong type, unknown or repeated claims, a local ticket
        // with a target, a payload that is not an object.
        for extra in [
            r#""sub":null"#,
            r#""sub":7"#,
            r#""sub":"""#,
            r#""nbf":"1000""#,
            r#""iss":{}"#,
            r#""scopes":"read""#,
            r#""tgt":"lab:64000""#,
            r#""jti":"again""#,
            r#""exp":1050"#,
        ] {
            let mut m = good.to_vec();
            let (k, v) = extra.split_once(':').unwrap();
            let k = k.trim_matches('"');
            m.push((k, v));
            assert_eq!(
                t.verify(&signed(&render(&m)), ORIGIN, 1001),
                Err(TicketError::InvalidClaims),
                "{extra}"
            );
        }
        let mut local = good.to_vec();
        local[4] = ("mode", r#""local""#);
        assert_eq!(
            t.verify(&signed(&render(&local)), ORIGIN, 1001),
            Err(TicketError::InvalidClaims)
        );
        local.remove(5);
        assert!(t.verify(&signed(&render(&local)), ORIGIN, 1001).is_ok());
        for not_object in ["[]", "null", "\"x\"", "", "{"] {
            assert_eq!(
                t.verify(&signed(not_object), ORIGIN, 1001),
                Err(TicketError::InvalidClaims),
                "{not_object}"
            );
        }
        // Optional registered claims that are understood: iss (not checked), nbf.
        let mut m = good.to_vec();
        m.push(("iss", r#""https://backend.example""#));
        m.push(("nbf", "1000"));
        assert!(t.verify(&signed(&render(&m)), ORIGIN, 1001).is_ok());
    }

    #[test]
    fn the_audience_must_name_this_proxy() {
        let t = tickets(120);
        let claims = |aud: &str| {
            format!(
                r#"{{"aud":{aud},"iat":1000,"exp":1060,"jti":"j","mode":"local","origin":"{ORIGIN}"}}"#
            )
        };
        assert!(t
            .verify(&signed(&claims(r#""prl-proxy""#)), ORIGIN, 1001)
            .is_ok());
        assert!(t
            .verify(&signed(&claims(r#"["other","prl-proxy"]"#)), ORIGIN, 1001)
            .is_ok());
        for aud in [
            r#""other""#,
            r#"["other"]"#,
            r#""PRL-PROXY""#,
            r#""prl-proxy ""#,
        ] {
            assert_eq!(
                t.verify(&signed(&claims(aud)), ORIGIN, 1001),
                Err(TicketError::WrongAudience),
                "{aud}"
            );
        }
        let many = format!("[{}]", vec![r#""a""#; MAX_AUDIENCES + 1].join(","));
        assert_eq!(
            t.verify(&signed(&claims(&many)), ORIGIN, 1001),
            Err(TicketError::InvalidClaims)
        );
        let other = Tickets {
            audience: "https://proxy.example.com".into(),
            ..tickets(120)
        };
        let r = issuer().local(ORIGIN, 1000, 60, TicketOptions::default());
        assert_eq!(
            other.verify(&r, ORIGIN, 1001),
            Err(TicketError::WrongAudience)
        );
    }

    #[test]
    fn time_rules() {
        let t = tickets(120);
        let r = issuer().remote("lab", 0, ORIGIN, 1000, 60, opts(None, None));
        assert!(t.verify(&r, ORIGIN, 1000).is_ok());
        assert!(t.verify(&r, ORIGIN, 1059).is_ok());
        assert_eq!(t.verify(&r, ORIGIN, 1060), Err(TicketError::Expired));
        // iat up to SKEW_SECS ahead of the proxy's clock.
        assert!(t.verify(&r, ORIGIN, 1000 - SKEW_SECS).is_ok());
        assert_eq!(
            t.verify(&r, ORIGIN, 1000 - SKEW_SECS - 1),
            Err(TicketError::NotYetValid)
        );
        // nbf the same way.
        let nbf = |n: u64| {
            signed(&format!(
                r#"{{"aud":"prl-proxy","iat":1000,"nbf":{n},"exp":1100,"jti":"j","mode":"local","origin":"{ORIGIN}"}}"#
            ))
        };
        assert!(t.verify(&nbf(1030), ORIGIN, 1000).is_ok());
        assert_eq!(
            t.verify(&nbf(1031), ORIGIN, 1000),
            Err(TicketError::NotYetValid)
        );
        // Lifetime: exp - iat, and exp - now, at most max_ttl_secs.
        assert_eq!(
            tickets(30).verify(&r, ORIGIN, 1001),
            Err(TicketError::TooLong)
        );
        let far = signed(&format!(
            r#"{{"aud":"prl-proxy","iat":1000,"exp":18446744073709551615,"jti":"j","mode":"local","origin":"{ORIGIN}"}}"#
        ));
        assert_eq!(t.verify(&far, ORIGIN, 1001), Err(TicketError::TooLong));
        // iat far in the past with a short exp - now passes the second rule, not the first.
        let old = signed(&format!(
            r#"{{"aud":"prl-proxy","iat":10,"exp":1010,"jti":"j","mode":"local","origin":"{ORIGIN}"}}"#
        ));
        assert_eq!(t.verify(&old, ORIGIN, 1001), Err(TicketError::TooLong));
    }

    #[test]
    fn round_trip_and_bindings() {
        let t = tickets(120);
        let r = issuer().remote("Lab", 0, ORIGIN, 1000, 60, opts(None, None));
        assert!(r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        let c = t.verify(&r, ORIGIN, 1001).unwrap();
        assert_eq!(c.target.as_deref(), Some("lab:64000"));
        c.check_open(ConnectMode::Remote, "lab", 64000).unwrap();
        c.check_open(ConnectMode::Remote, " LAB ", 0).unwrap();
        for (host, port) in [("lab", 1), ("other", 0), ("lab.", 0)] {
            assert_eq!(
                c.check_open(ConnectMode::Remote, host, port),
                Err(TicketError::TargetMismatch),
                "{host}:{port}"
            );
        }
        // A remote ticket never authorises a local open, whatever target the open names.
        assert_eq!(
            c.check_open(ConnectMode::Local, "lab", 64000),
            Err(TicketError::ModeMismatch)
        );
        assert_eq!(
            t.verify(&r, "https://evil.example", 1001),
            Err(TicketError::OriginMismatch)
        );
        // The request's origin is normalised before the exact comparison.
        assert!(t
            .verify(&r, "HTTPS://console.example.com:443", 1001)
            .is_ok());
    }

    #[test]
    fn local_tickets_bind_the_local_mode_only() {
        let t = tickets(120);
        let c = t
            .verify(
                &issuer().local(ORIGIN, 1000, 60, opts(None, None)),
                ORIGIN,
                1001,
            )
            .unwrap();
        assert_eq!((c.mode, c.target.as_deref()), (ConnectMode::Local, None));
        // The open's target is not used in local mode, so any value passes.
        c.check_open(ConnectMode::Local, "anything", 0).unwrap();
        // A local ticket never authorises a remote open, not even one naming `@local`.
        for (host, port) in [("@local", 0), ("@LOCAL", 64000), ("lab", 0)] {
            assert_eq!(
                c.check_open(ConnectMode::Remote, host, port),
                Err(TicketError::ModeMismatch),
                "{host}:{port}"
            );
        }
        // And no host name spells the CLI's local marker.
        for host in ["@local", "@LOCAL", " @local ", ""] {
            for port in [0, 1, 64000] {
                assert_ne!(target_key(host, port), LOCAL_TARGET);
            }
        }
    }

    #[test]
    fn target_keys_are_canonical() {
        let cases = [
            (("Lab", 0), "lab:64000"),
            (("lab", 64000), "lab:64000"),
            ((" lab.example.COM ", 8443), "lab.example.com:8443"),
            (("lab.", 64000), "lab.:64000"),
            (("10.0.0.5", 0), "10.0.0.5:64000"),
            (("0x0A.0.0.5", 0), "0x0a.0.0.5:64000"),
            (("::1", 0), "[::1]:64000"),
            (("[::1]", 0), "[::1]:64000"),
            (("2001:DB8:0:0:0:0:0:1", 1), "[2001:db8::1]:1"),
            (("[2001:0db8::0001]", 65535), "[2001:db8::1]:65535"),
            (("::FFFF:10.0.0.5", 0), "[::ffff:10.0.0.5]:64000"),
        ];
        for ((host, port), want) in cases {
            assert_eq!(target_key(host, port), want, "{host}:{port}");
            assert!(is_canonical_target(want), "{want}");
        }
        assert_ne!(target_key("lab", 64000), target_key("lab.", 64000));
        assert_ne!(target_key("lab", 64000), target_key("lab..", 64000));
        for bad in [
            "lab",
            "lab:",
            ":64000",
            "Lab:64000",
            "lab:0",
            "lab:+1",
            "lab:65536",
            "lab:064000",
            "::1:64000",
            "[::1]",
            "[0::1]:64000",
            "[::1]:64000 ",
            "la b:1",
            "[zz]:1",
            "fe80::1%eth0:1",
            "[fe80::1%eth0]:1",
            "[lab]:1",
            "la]b:1",
        ] {
            assert!(!is_canonical_target(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn check_ticket_consumes_only_what_it_binds() {
        use crate::shared_state::MemoryState;
        let t = tickets(60);
        let state = MemoryState::new(&crate::config::LimitsConfig::default(), 10, 1000);
        let r = issuer().remote("lab", 0, ORIGIN, 1000, 30, opts(None, None));
        let bind = |c: &Claims| c.check_open(ConnectMode::Remote, "lab", 0);
        // Refused by the binding: not consumed.
        assert_eq!(
            check_ticket(&t, &state, &r, ORIGIN, 1001, |c| c.check_open(
                ConnectMode::Remote,
                "other",
                0
            ))
            .await,
            Err(TicketError::TargetMismatch)
        );
        assert_eq!(
            check_ticket(&t, &state, &r, ORIGIN, 1001, |c| c.check_open(
                ConnectMode::Local,
                "",
                0
            ))
            .await,
            Err(TicketError::ModeMismatch)
        );
        let c = check_ticket(&t, &state, &r, ORIGIN, 1001, bind)
            .await
            .unwrap();
        assert_eq!(c.target.as_deref(), Some("lab:64000"));
        assert_eq!(
            check_ticket(&t, &state, &r, ORIGIN, 1002, bind).await,
            Err(TicketError::Replayed)
        );
        // A bad signature never reaches the binding or the cache.
        let forged = TicketIssuer::hs256(&[1; 32], None, AUD).remote(
            "lab",
            0,
            ORIGIN,
            1000,
            30,
            opts(None, None),
        );
        assert_eq!(
            check_ticket(&t, &state, &forged, ORIGIN, 1001, |_| {
                panic!("bound before the signature was checked")
            })
            .await,
            Err(TicketError::Token(JwsError::BadSignature))
        );
        // Issued before the cache began (a restart): refused.
        let old = issuer().remote("lab", 0, ORIGIN, 999, 30, opts(None, None));
        assert_eq!(
            check_ticket(&t, &state, &old, ORIGIN, 1001, bind).await,
            Err(TicketError::BeforeStart)
        );
        assert_eq!(TicketError::BeforeStart.kind(), "issued_before_start");
    }

    #[test]
    fn every_kind_is_listed_once() {
        let errors = [
            TicketError::Missing,
            TicketError::Token(JwsError::TooLarge),
            TicketError::Token(JwsError::Malformed),
            TicketError::Token(JwsError::UnsupportedHeader),
            TicketError::Token(JwsError::UnknownKey),
            TicketError::Token(JwsError::AlgorithmNotAllowed),
            TicketError::Token(JwsError::BadSignature),
            TicketError::InvalidClaims,
            TicketError::WrongAudience,
            TicketError::Expired,
            TicketError::NotYetValid,
            TicketError::TooLong,
            TicketError::OriginMismatch,
            TicketError::TargetMismatch,
            TicketError::ModeMismatch,
            TicketError::Replayed,
            TicketError::CacheFull,
            TicketError::Conflict,
            TicketError::BeforeStart,
            TicketError::Unavailable,
        ];
        let kinds: Vec<&str> = errors.iter().map(TicketError::kind).collect();
        assert_eq!(kinds, TicketError::KINDS);
        for e in errors {
            assert!(e.to_string().contains("ticket"), "{e}");
        }
    }

    fn ed_pair(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    fn ed_public(seed: u8) -> [u8; 32] {
        ed_pair(seed).public_key().as_ref().try_into().unwrap()
    }

    #[test]
    fn the_ticket_command_picks_its_key() {
        let set = |keys| Tickets {
            keys: KeySet::new(keys).unwrap(),
            ..tickets(60)
        };
        let hs = |kid: Option<&str>, b: u8| VerifyingKey::hs256(kid.map(String::from), &[b; 32]);
        let ed =
            |kid: Option<&str>, s: u8| VerifyingKey::ed25519(kid.map(String::from), ed_public(s));
        let t = set(vec![hs(Some("a"), 1), ed(Some("e"), 2)]);
        // The only HS256 key, or the one named.
        let i = t.issuer(None, None).unwrap();
        assert_eq!(i.signer().kid(), Some("a"));
        let token = i.local(ORIGIN, unix(), 30, TicketOptions::default());
        assert!(t.verify(&token, ORIGIN, unix()).is_ok());
        assert!(t.issuer(Some("e"), None).is_err());
        assert!(t.issuer(Some("zz"), None).is_err());
        // EdDSA: the configured key holding the private key's public half.
        let i = t.issuer(None, Some(ed_pair(2))).unwrap();
        assert_eq!(i.signer().kid(), Some("e"));
        let token = i.local(ORIGIN, unix(), 30, TicketOptions::default());
        assert!(t.verify(&token, ORIGIN, unix()).is_ok());
        assert!(t.issuer(None, Some(ed_pair(3))).is_err());
        assert!(t.issuer(Some("a"), Some(ed_pair(2))).is_err());
        // Several HS256 keys: the one without a kid, or --kid.
        let t = set(vec![hs(Some("a"), 1), hs(None, 2), hs(Some("b"), 3)]);
        assert_eq!(t.issuer(None, None).unwrap().signer().kid(), None);
        assert_eq!(t.issuer(Some("b"), None).unwrap().signer().kid(), Some("b"));
        let t = set(vec![hs(Some("a"), 1), hs(Some("b"), 3)]);
        assert!(t.issuer(None, None).is_err());
        let t = set(vec![ed(None, 2)]);
        assert!(t.issuer(None, None).is_err());
        assert_eq!(
            t.issuer(None, Some(ed_pair(2))).unwrap().signer().kid(),
            None
        );
    }

    fn unix() -> u64 {
        crate::util::unix_now()
    }

    #[test]
    fn keys_load_from_the_config_with_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hs.key");
        std::fs::write(&secret, URL_SAFE_NO_PAD.encode([5u8; 32])).unwrap();
        let public = dir.path().join("ed.pub.pem");
        std::fs::write(&public, ticket_keys::ed25519_public_pem(&ed_public(4))).unwrap();
        let private = dir.path().join("ed.pem");
        std::fs::write(
            &private,
            ticket_keys::ed25519_private_pem(&[4u8; 32]).as_str(),
        )
        .unwrap();
        let toml = |keys: &str| format!("[tickets]\naudience = \"aud-1\"\n{keys}");
        let load = |text: &str| {
            let c = crate::Config::from_toml_str(text).map_err(|e| e.to_string())?;
            Tickets::load(c.tickets.as_ref().unwrap()).map_err(|e| e.to_string())
        };
        let keys = format!(
            "key_file = {secret:?}\n[[tickets.keys]]\nkid = \"ed-1\"\nalg = \"EdDSA\"\nfile = {public:?}\n[[tickets.keys]]\nkid = \"hs-2\"\nalg = \"HS256\"\nfile = {secret:?}\n"
        );
        let t = load(&toml(&keys)).unwrap();
        assert_eq!(t.audience, "aud-1");
        let kids: Vec<Option<&str>> = t.keys.keys().iter().map(VerifyingKey::kid).collect();
        assert_eq!(kids, [None, Some("ed-1"), Some("hs-2")]);
        let now = unix();
        let ed = TicketIssuer::new(Signer::ed25519(Some("ed-1".into()), ed_pair(4)), "aud-1");
        assert!(t
            .verify(
                &ed.local(ORIGIN, now, 30, TicketOptions::default()),
                ORIGIN,
                now
            )
            .is_ok());
        let hs = TicketIssuer::hs256(&[5u8; 32], Some("hs-2"), "aud-1");
        assert!(t
            .verify(
                &hs.local(ORIGIN, now, 30, TicketOptions::default()),
                ORIGIN,
                now
            )
            .is_ok());
        // A private key where the public key belongs, a missing file, a short secret.
        let cases = [
            (format!("[[tickets.keys]]\nkid = \"e\"\nalg = \"EdDSA\"\nfile = {private:?}\n"), "tickets.keys[0].file"),
            (format!("[[tickets.keys]]\nalg = \"EdDSA\"\nfile = {:?}\n", dir.path().join("none")), "tickets.keys[0].file"),
            (format!("[[tickets.keys]]\nkid = \"e\"\nalg = \"HS256\"\nfile = {public:?}\n[[tickets.keys]]\nkid = \"s\"\nalg = \"EdDSA\"\nfile = {secret:?}\n"), "tickets.keys[1].file"),
        ];
        for (keys, key) in cases {
            let e = load(&toml(&keys)).unwrap_err();
            assert!(e.contains(&format!("`{key}`")), "{e}");
        }
        // The shape of the list is the config's own validation.
        for (keys, key) in [
            (String::new(), "tickets.keys"),
            (format!("key_file = {secret:?}\n[[tickets.keys]]\nalg = \"HS256\"\nfile = {secret:?}\n"), "tickets.keys[0].kid"),
            (format!("[[tickets.keys]]\nkid = \"a\"\nalg = \"HS256\"\nfile = {secret:?}\n[[tickets.keys]]\nkid = \"a\"\nalg = \"EdDSA\"\nfile = {public:?}\n"), "tickets.keys[1].kid"),
            (format!("[[tickets.keys]]\nkid = \"a b\"\nalg = \"HS256\"\nfile = {secret:?}\n"), "tickets.keys[0].kid"),
        ] {
            let e = load(&toml(&keys)).unwrap_err();
            assert!(e.contains(&format!("`{key}`")), "{keys}: {e}");
        }
        for alg in ["none", "HS512", "hs256", "RS256"] {
            let e = load(&toml(&format!(
                "[[tickets.keys]]\nalg = \"{alg}\"\nfile = {secret:?}\n"
            )))
            .unwrap_err();
            assert!(e.contains("alg"), "{alg}: {e}");
        }
        let e = load("[tickets]\naudience = \"\"\nkey_file = \"x\"\n").unwrap_err();
        assert!(e.contains("`tickets.audience`"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Arbitrary input never panics and never verifies.
        #[test]
        fn arbitrary_input_never_verifies(input in ".{0,600}") {
            let t = tickets(120);
            prop_assert!(t.verify(&input, ORIGIN, 1001).is_err());
        }

        /// Arbitrary dotted base64url-ish input likewise.
        #[test]
        fn arbitrary_tokens_never_verify(
            parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,120}", 0..5)
        ) {
            let t = tickets(120);
            prop_assert!(t.verify(&parts.join("."), ORIGIN, 1001).is_err());
        }

        /// Any change to a valid ticket makes it fail.
        #[test]
        fn any_edit_of_a_valid_ticket_fails(pos in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
            let t = tickets(120);
            let good = issuer().remote("lab", 0, ORIGIN, 1000, 60, opts(Some("u"), None));
            let i = pos.index(good.len());
            prop_assume!(good.as_bytes()[i] != byte);
            let mut bytes = good.clone().into_bytes();
            bytes[i] = byte;
            let edited = String::from_utf8(bytes).unwrap();
            prop_assert!(t.verify(&edited, ORIGIN, 1001).is_err());
            let mut inserted = good.clone();
            inserted.insert(i, byte as char);
            prop_assert!(t.verify(&inserted, ORIGIN, 1001).is_err());
            let mut removed = good.clone();
            removed.remove(i);
            prop_assert!(t.verify(&removed, ORIGIN, 1001).is_err());
        }

        /// Signed JSON of arbitrary shape never panics the claims reader.
        #[test]
        fn arbitrary_signed_payloads_never_panic(json in "[ -~]{0,300}") {
            let t = tickets(120);
            let _ = t.verify(&signed(&json), ORIGIN, 1001);
        }
    }
}
