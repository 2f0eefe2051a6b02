//! Signed connection tickets: short-lived, bound to a target and an origin, single use.
//!
//! Form: `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, no padding, so a
//! ticket is a valid HTTP token and can ride in `Sec-WebSocket-Protocol: prl-ticket.<ticket>`.
//! A ticket is accepted once: its id and expiry go to the shared state's replay cache
//! ([`crate::shared_state::SharedState::consume_ticket`]: in memory, or in Redis for a cluster)
//! until it expires. A full cache refuses new tickets instead of forgetting used ones; a shared
//! state that cannot be reached refuses them too.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use prl_protocol::relay::ConnectMode;
use prl_protocol::scope::CommandScope;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::shared_state::{SharedState, TicketUseError};

type HmacSha256 = Hmac<Sha256>;

/// Longest ticket accepted, in bytes.
pub const MAX_TICKET_LEN: usize = 2048;
/// Clock skew tolerated for `iat`, in seconds.
const SKEW_SECS: u64 = 30;

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Tickets are required and none was presented.
    #[error("ticket required")]
    Missing,
    /// Not `payload.mac`, bad base64, bad JSON or too long.
    #[error("malformed ticket")]
    Malformed,
    /// The MAC does not verify.
    #[error("ticket signature invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("ticket expired")]
    Expired,
    /// `iat` is in the future.
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
    /// Issued for the other connection mode: a remote-target ticket presented for a local
    /// open, or a local ticket ([`LOCAL_TARGET`]) for a remote one.
    #[error("ticket issued for another connection mode")]
    ModeMismatch,
    /// Already used.
    #[error("ticket already used")]
    Replayed,
    /// The replay cache is full of unexpired tickets.
    #[error("ticket replay cache full")]
    CacheFull,
    /// Two tickets presented (header and message) that differ.
    #[error("conflicting tickets")]
    Conflict,
    /// Issued before this proxy process started: its replay cache began empty, so it cannot
    /// tell whether the ticket was used before a restart.
    #[error("ticket issued before the proxy started")]
    BeforeStart,
    /// The replay cache (the cluster's shared state) cannot be reached: the ticket cannot be
    /// proven unused, so it is refused.
    #[error("ticket replay cache unavailable")]
    Unavailable,
}

impl TicketError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            TicketError::Missing => "missing",
            TicketError::Malformed => "malformed",
            TicketError::BadSignature => "bad_signature",
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
}

/// What a ticket grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Target as the browser will name it, `host:port` with port 0 written as 64000.
    pub tgt: String,
    /// Page origin (normalised).
    pub org: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Expires at, unix seconds.
    pub exp: u64,
    /// Unique id (replay cache key).
    pub jti: String,
    /// Optional subject (e.g. the application's user or browser session); sessions created
    /// under a subject may only be restored by tickets of the same subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Optional command scope (`read`, `operate`, `all`): the connection may send no command
    /// outside it. The narrower of this and `[policy] scope` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CommandScope>,
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

/// The `tgt` of a ticket for a local-mode open (`"mode":"local"`: login_local to the
/// co-located service as the proxy's OS user). A remote key always ends in `:PORT`; this one
/// has no colon, so no host name can produce it, and the two modes never share a ticket.
pub const LOCAL_TARGET: &str = "@local";

/// The canonical `host:port` a ticket binds. The host is compared as the policy compares
/// configured target names: case-blind, otherwise exact (a ticket for `lab` does not
/// authorise `lab.`, which the policy reads as the DNS name `lab`, not the target).
pub fn target_key(host: &str, port: u16) -> String {
    let port = if port == 0 { 64000 } else { port };
    format!("{}:{port}", host.trim().to_ascii_lowercase())
}

/// The HMAC key.
#[derive(Clone)]
pub struct TicketKey(Vec<u8>);

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(<redacted>)")
    }
}

impl TicketKey {
    /// A key from bytes (at least 32).
    pub fn new(bytes: Vec<u8>) -> Option<TicketKey> {
        (bytes.len() >= 32).then_some(TicketKey(bytes))
    }

    /// Read a key file: base64 / base64url text of at least 32 bytes, or raw bytes.
    pub fn load(path: &Path) -> Result<TicketKey, String> {
        let raw =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&raw);
        let trimmed = text.trim();
        let decoded = URL_SAFE_NO_PAD
            .decode(trimmed.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(trimmed));
        if let Ok(k) = decoded {
            if let Some(key) = TicketKey::new(k) {
                return Ok(key);
            }
        }
        TicketKey::new(raw).ok_or_else(|| "ticket key must be at least 32 bytes".to_string())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac())
    }

    /// Sign claims into a ticket string.
    pub fn issue(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// A ticket for a remote-mode open of `host:port` from `origin`, valid `ttl_secs` from
    /// `now`. It never authorises a local-mode open (see [`TicketKey::issue_local`]).
    pub fn issue_for(
        &self,
        host: &str,
        port: u16,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        sub: Option<String>,
    ) -> String {
        let options = TicketOptions { sub, scope: None };
        self.issue_tgt(target_key(host, port), origin, now, ttl_secs, options)
    }

    /// [`TicketKey::issue_for`] with every optional claim (subject, scope).
    pub fn issue_for_with(
        &self,
        host: &str,
        port: u16,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        options: TicketOptions,
    ) -> String {
        self.issue_tgt(target_key(host, port), origin, now, ttl_secs, options)
    }

    /// A ticket for a local-mode open (`tgt` = [`LOCAL_TARGET`]) from `origin`, valid
    /// `ttl_secs` from `now`. It never authorises a remote-mode open.
    pub fn issue_local(
        &self,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        sub: Option<String>,
    ) -> String {
        let options = TicketOptions { sub, scope: None };
        self.issue_tgt(LOCAL_TARGET.to_string(), origin, now, ttl_secs, options)
    }

    /// [`TicketKey::issue_local`] with every optional claim (subject, scope).
    pub fn issue_local_with(
        &self,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        options: TicketOptions,
    ) -> String {
        self.issue_tgt(LOCAL_TARGET.to_string(), origin, now, ttl_secs, options)
    }

    fn issue_tgt(
        &self,
        tgt: String,
        origin: &str,
        now: u64,
        ttl_secs: u64,
        options: TicketOptions,
    ) -> String {
        let mut jti = [0u8; 16];
        crate::util::fill_random(&mut jti);
        self.issue(&Claims {
            tgt,
            org: crate::origin::normalize_origin(origin).unwrap_or_else(|| origin.to_string()),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            jti: URL_SAFE_NO_PAD.encode(jti),
            sub: options.sub,
            scope: options.scope,
        })
    }

    /// Verify signature, time and origin (not the target, not the replay cache).
    pub fn verify(
        &self,
        ticket: &str,
        origin: &str,
        now: u64,
        max_ttl_secs: u64,
    ) -> Result<Claims, TicketError> {
        if ticket.len() > MAX_TICKET_LEN {
            return Err(TicketError::Malformed);
        }
        let (payload, tag) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TicketError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TicketError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TicketError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
        if claims.exp <= now {
            return Err(TicketError::Expired);
        }
        if claims.iat > now.saturating_add(SKEW_SECS) {
            return Err(TicketError::NotYetValid);
        }
        if claims.exp.saturating_sub(claims.iat) > max_ttl_secs
            || claims.exp.saturating_sub(now) > max_ttl_secs
        {
            return Err(TicketError::TooLong);
        }
        if crate::origin::normalize_origin(origin).as_deref() != Some(claims.org.as_str()) {
            return Err(TicketError::OriginMismatch);
        }
        Ok(claims)
    }
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // Hmac::new_from_slice never fails for HMAC; keep a total function anyway.
    <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable_hmac())
}

impl Claims {
    /// Whether the ticket was issued for this open: for a local-mode open its target must
    /// be [`LOCAL_TARGET`] (the open's `target` is not used in local mode, so it is not
    /// compared); for a remote-mode open, `host:port` as [`target_key`] writes it.
    pub fn check_open(&self, mode: ConnectMode, host: &str, port: u16) -> Result<(), TicketError> {
        let local_ticket = self.tgt == LOCAL_TARGET;
        match mode {
            ConnectMode::Local if local_ticket => Ok(()),
            ConnectMode::Remote if local_ticket => Err(TicketError::ModeMismatch),
            ConnectMode::Local => Err(TicketError::ModeMismatch),
            ConnectMode::Remote if self.tgt == target_key(host, port) => Ok(()),
            ConnectMode::Remote => Err(TicketError::TargetMismatch),
        }
    }
}

/// Ticket settings in force.
#[derive(Debug)]
pub struct Tickets {
    /// The HMAC key.
    pub key: TicketKey,
    /// Tickets are mandatory.
    pub required: bool,
    /// Longest lifetime accepted.
    pub max_ttl_secs: u64,
}

/// The one check of a presented ticket: signature, lifetime and origin (the HMAC is verified
/// here and nowhere else), then what the caller binds it to (`bind`: the open's target and
/// mode, or nothing yet for a header ticket checked before the upgrade), then single use
/// (the shared replay cache, keyed on the ticket id and expiry). A ticket refused by `bind`
/// is not consumed.
pub(crate) async fn check_ticket(
    tickets: &Tickets,
    shared: &dyn SharedState,
    ticket: &str,
    origin: &str,
    now: u64,
    bind: impl FnOnce(&Claims) -> Result<(), TicketError>,
) -> Result<Claims, TicketError> {
    let claims = tickets
        .key
        .verify(ticket, origin, now, tickets.max_ttl_secs)?;
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

    fn key() -> TicketKey {
        TicketKey::new(vec![7u8; 32]).unwrap()
    }

    const ORIGIN: &str = "https://console.example.com";

    #[test]
    fn the_scope_claim_is_optional_and_signed() {
        let k = key();
        let plain = k.verify(
            &k.issue_for("lab", 0, ORIGIN, 1000, 60, None),
            ORIGIN,
            1001,
            120,
        );
        assert_eq!(plain.unwrap().scope, None);
        for scope in CommandScope::ALL {
            let options = TicketOptions {
                sub: Some("u1".into()),
                scope: Some(scope),
            };
            let t = k.issue_for_with("lab", 0, ORIGIN, 1000, 60, options.clone());
            let c = k.verify(&t, ORIGIN, 1001, 120).unwrap();
            assert_eq!((c.scope, c.sub.as_deref()), (Some(scope), Some("u1")));
            let local = k.issue_local_with(ORIGIN, 1000, 60, options);
            assert_eq!(
                k.verify(&local, ORIGIN, 1001, 120).unwrap().scope,
                Some(scope)
            );
        }
        // The claim is in the signed payload: as JSON, `"scope":"read"`; an unknown scope is
        // a malformed ticket.
        let claims = Claims {
            tgt: "lab:64000".into(),
            org: ORIGIN.into(),
            iat: 1000,
            exp: 1060,
            jti: "j".into(),
            sub: None,
            scope: Some(CommandScope::Read),
        };
        let json = serde_json::to_string(&claims).unwrap();
        assert!(json.ends_with(r#""scope":"read"}"#), "{json}");
        let signed = k.issue(&claims);
        assert_eq!(k.verify(&signed, ORIGIN, 1001, 120).unwrap(), claims);
        let forged = serde_json::from_str::<Claims>(&json.replace("read", "root"));
        assert!(forged.is_err());
    }

    #[test]
    fn round_trip_and_bindings() {
        let k = key();
        let t = k.issue_for("Lab", 0, ORIGIN, 1000, 60, None);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        let c = k.verify(&t, ORIGIN, 1001, 120).unwrap();
        assert_eq!(c.tgt, "lab:64000");
        c.check_open(ConnectMode::Remote, "lab", 64000).unwrap();
        assert_eq!(
            c.check_open(ConnectMode::Remote, "lab", 1),
            Err(TicketError::TargetMismatch)
        );
        assert_eq!(
            c.check_open(ConnectMode::Remote, "other", 0),
            Err(TicketError::TargetMismatch)
        );
        // A remote ticket never authorises a local open, whatever target the open names.
        assert_eq!(
            c.check_open(ConnectMode::Local, "lab", 64000),
            Err(TicketError::ModeMismatch)
        );
        assert_eq!(
            k.verify(&t, "https://evil.example", 1001, 120),
            Err(TicketError::OriginMismatch)
        );
        assert_eq!(k.verify(&t, ORIGIN, 1060, 120), Err(TicketError::Expired));
        assert_eq!(
            k.verify(&t, ORIGIN, 900, 120),
            Err(TicketError::NotYetValid)
        );
        assert_eq!(k.verify(&t, ORIGIN, 1001, 30), Err(TicketError::TooLong));
    }

    #[test]
    fn local_tickets_bind_the_local_mode_only() {
        let k = key();
        let t = k.issue_local(ORIGIN, 1000, 60, None);
        let c = k.verify(&t, ORIGIN, 1001, 120).unwrap();
        assert_eq!(c.tgt, LOCAL_TARGET);
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
        // And no host name can mint the local key through the remote spelling.
        for host in ["@local", "@LOCAL", " @local ", ""] {
            for port in [0, 1, 64000] {
                assert_ne!(target_key(host, port), LOCAL_TARGET);
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let k = key();
        let t = k.issue_for("lab", 0, ORIGIN, 1000, 60, None);
        let other = TicketKey::new(vec![8u8; 32]).unwrap();
        assert_eq!(
            other.verify(&t, ORIGIN, 1001, 120),
            Err(TicketError::BadSignature)
        );
        let (p, m) = t.split_once('.').unwrap();
        let forged = k.issue_for("evil", 0, ORIGIN, 1000, 60, None);
        let (fp, _) = forged.split_once('.').unwrap();
        assert_eq!(
            k.verify(&format!("{fp}.{m}"), ORIGIN, 1001, 120),
            Err(TicketError::BadSignature)
        );
        for bad in ["", "abc", "a.b.c", &format!("{p}."), &"x".repeat(5000)] {
            let e = k.verify(bad, ORIGIN, 1001, 120).unwrap_err();
            assert!(
                matches!(e, TicketError::Malformed | TicketError::BadSignature),
                "{bad}: {e:?}"
            );
        }
    }

    #[tokio::test]
    async fn check_ticket_consumes_only_what_it_binds() {
        use crate::shared_state::MemoryState;
        let tickets = Tickets {
            key: key(),
            required: true,
            max_ttl_secs: 60,
        };
        let state = MemoryState::new(&crate::config::LimitsConfig::default(), 10, 1000);
        let t = tickets.key.issue_for("lab", 0, ORIGIN, 1000, 30, None);
        let bind = |c: &Claims| c.check_open(ConnectMode::Remote, "lab", 0);
        // Refused by the binding: not consumed.
        assert_eq!(
            check_ticket(&tickets, &state, &t, ORIGIN, 1001, |c| c.check_open(
                ConnectMode::Remote,
                "other",
                0
            ))
            .await,
            Err(TicketError::TargetMismatch)
        );
        let c = check_ticket(&tickets, &state, &t, ORIGIN, 1001, bind)
            .await
            .unwrap();
        assert_eq!(c.tgt, "lab:64000");
        assert_eq!(
            check_ticket(&tickets, &state, &t, ORIGIN, 1002, bind).await,
            Err(TicketError::Replayed)
        );
        // A bad signature never reaches the binding or the cache.
        let forged = TicketKey::new(vec![1; 32])
            .unwrap()
            .issue_for("lab", 0, ORIGIN, 1000, 30, None);
        assert_eq!(
            check_ticket(&tickets, &state, &forged, ORIGIN, 1001, |_| {
                panic!("bound before the signature was checked")
            })
            .await,
            Err(TicketError::BadSignature)
        );
        // Issued before the cache began (a restart): refused.
        let old = tickets.key.issue_for("lab", 0, ORIGIN, 999, 30, None);
        assert_eq!(
            check_ticket(&tickets, &state, &old, ORIGIN, 1001, bind).await,
            Err(TicketError::BeforeStart)
        );
        assert_eq!(TicketError::BeforeStart.kind(), "issued_before_start");
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", key()), "TicketKey(<redacted>)");
    }

    #[test]
    fn target_binding_matches_the_policy_spelling() {
        assert_eq!(target_key("Lab", 0), "lab:64000");
        assert_ne!(target_key("lab", 64000), target_key("lab.", 64000));
        assert_ne!(target_key("lab", 64000), target_key("lab..", 64000));
    }
}
