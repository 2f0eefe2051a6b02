//! Compact JWS (RFC 7515 §7.1) with exactly the two algorithms tickets use: `HS256`
//! (HMAC-SHA-256, RFC 7518 §3.2) and `EdDSA` with Ed25519 (RFC 8037). No JWT semantics here:
//! [`KeySet::verify`] returns the signed payload bytes, `crate::ticket` reads the claims.
//!
//! What is accepted, in the order it is checked (each step before any later one is looked at):
//!
//! 1. at most [`MAX_TOKEN_LEN`] bytes, exactly three parts separated by `.`;
//! 2. the protected header: at most [`MAX_HEADER_LEN`] characters of base64url without
//!    padding (the canonical encoding only: no `=`, no `+` or `/`, no stray low bits), a JSON
//!    object whose members are exactly `alg` (required), `typ` and `kid` (optional), each a
//!    string, none repeated. `crit` or any other member is refused
//!    ([`JwsError::UnsupportedHeader`]; no extension is understood, and `jku`, `jwk`, `x5u`,
//!    `x5c` never name a key), so is a `typ` other than `JWT` (ASCII case-insensitive);
//! 3. the key: the configured key whose `kid` equals the header's, or, when the header has no
//!    `kid`, the one key configured without one ([`JwsError::UnknownKey`] otherwise);
//! 4. the algorithm: `alg` must be the one algorithm of that key, spelt exactly `HS256` or
//!    `EdDSA` ([`JwsError::AlgorithmNotAllowed`]: `none`, `HS512`, `hs256`, or `HS256`
//!    presented for an Ed25519 key). A key never verifies under another algorithm, so the
//!    Ed25519 public key can never be used as an HMAC secret;
//! 5. the signature: exactly 43 (HS256) or 86 (EdDSA) base64url characters, verified over the
//!    ASCII of `header "." payload` as received: HMAC in constant time, Ed25519 by `ring`;
//! 6. only then is the payload decoded (base64url as above) and handed to the caller.
//!
//! Signing ([`Signer`]) writes the header `{"alg":…,"typ":"JWT"}` plus `"kid"` when the key
//! has one; `docs/tickets.md` has test vectors.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Longest token accepted, in bytes (checked before anything is decoded).
pub const MAX_TOKEN_LEN: usize = 2048;
/// Longest protected header accepted, in base64url characters.
pub const MAX_HEADER_LEN: usize = 256;
/// Longest `kid` a key may be configured with (visible ASCII).
pub const MAX_KID_LEN: usize = 64;
/// Length of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// A signature algorithm a key is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret.
    Hs256,
    /// Ed25519 (`EdDSA` in JOSE): the proxy holds only the public key.
    EdDsa,
}

impl Algorithm {
    /// The JOSE `alg` value, exactly as it must be written.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "HS256" => Some(Algorithm::Hs256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    /// Length of the base64url signature part.
    fn signature_chars(self) -> usize {
        match self {
            Algorithm::Hs256 => 43, // 32 bytes
            Algorithm::EdDsa => 86, // 64 bytes
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a compact JWS was refused (before any claim is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than [`MAX_TOKEN_LEN`] (or a header longer than [`MAX_HEADER_LEN`]).
    #[error("ticket too large")]
    TooLarge,
    /// Not three base64url parts, a header that is not the JSON object described above, a
    /// signature of the wrong length, or a payload that does not decode.
    #[error("malformed ticket")]
    Malformed,
    /// `crit`, a header member other than `alg`, `typ`, `kid`, or a `typ` other than `JWT`.
    #[error("unsupported ticket header")]
    UnsupportedHeader,
    /// No configured key has the header's `kid` (or none lacks a `kid`, for a header without).
    #[error("unknown ticket key")]
    UnknownKey,
    /// `alg` is not the algorithm of the selected key (`none` included).
    #[error("ticket algorithm not allowed for its key")]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("ticket signature invalid")]
    BadSignature,
}

impl JwsError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            JwsError::TooLarge => "too_large",
            JwsError::Malformed => "malformed",
            JwsError::UnsupportedHeader => "unsupported_header",
            JwsError::UnknownKey => "unknown_key",
            JwsError::AlgorithmNotAllowed => "alg_not_allowed",
            JwsError::BadSignature => "bad_signature",
        }
    }
}

/// The protected header as read: every member, whether known or not, is seen once.
#[derive(Debug, Default)]
struct Header {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    /// `crit` or any member other than the three above was present.
    unsupported: bool,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Header, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut h = Header::default();
                // The header is at most MAX_HEADER_LEN characters, so this stays small.
                let mut seen: Vec<String> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if seen.contains(&name) {
                        return Err(de::Error::custom("duplicate header member"));
                    }
                    match name.as_str() {
                        "alg" => h.alg = Some(map.next_value()?),
                        "typ" => h.typ = Some(map.next_value()?),
                        "kid" => h.kid = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            h.unsupported = true;
                        }
                    }
                    seen.push(name);
                }
                Ok(h)
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// The header [`Signer`] writes, in this member order.
#[derive(Serialize)]
struct SignedHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

/// What verifies signatures under one configured key.
#[derive(Clone)]
enum Verifier {
    Hs256(hmac::Key),
    EdDsa([u8; ED25519_PUBLIC_KEY_LEN]),
}

/// One configured verification key: its algorithm is the only one it accepts.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    verifier: Verifier,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An HS256 key: the shared secret (callers require at least 32 bytes).
    pub fn hs256(kid: Option<String>, secret: &[u8]) -> VerifyingKey {
        VerifyingKey {
            kid,
            verifier: Verifier::Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)),
        }
    }

    /// An EdDSA key: the 32-byte Ed25519 public key.
    pub fn ed25519(kid: Option<String>, public_key: [u8; ED25519_PUBLIC_KEY_LEN]) -> VerifyingKey {
        VerifyingKey {
            kid,
            verifier: Verifier::EdDsa(public_key),
        }
    }

    /// The `kid` it is selected by (`None`: tokens without a `kid`).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm it accepts.
    pub fn algorithm(&self) -> Algorithm {
        match self.verifier {
            Verifier::Hs256(_) => Algorithm::Hs256,
            Verifier::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// The Ed25519 public key, for an EdDSA key.
    pub fn ed25519_public_key(&self) -> Option<&[u8; ED25519_PUBLIC_KEY_LEN]> {
        match &self.verifier {
            Verifier::EdDsa(pk) => Some(pk),
            Verifier::Hs256(_) => None,
        }
    }

    /// A signer with the same secret, for an HS256 key (`prl-proxy ticket`).
    pub fn hs256_signer(&self) -> Option<Signer> {
        match &self.verifier {
            Verifier::Hs256(k) => Some(Signer {
                kid: self.kid.clone(),
                key: SigningKey::Hs256(k.clone()),
            }),
            Verifier::EdDsa(_) => None,
        }
    }

    fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            // ring compares the tags in constant time.
            Verifier::Hs256(k) => hmac::verify(k, signing_input, signature).is_ok(),
            Verifier::EdDsa(pk) => UnparsedPublicKey::new(&ED25519, pk)
                .verify(signing_input, signature)
                .is_ok(),
        }
    }
}

/// Why a set of keys cannot be used together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// No key at all.
    #[error("at least one key is needed")]
    Empty,
    /// Two keys with the same `kid`.
    #[error("kid {0:?} is used by more than one key")]
    DuplicateKid(String),
    /// More than one key without a `kid`: a token without one could not name its key.
    #[error("at most one key may be without a kid")]
    SeveralWithoutKid,
    /// A `kid` that is empty, too long or not visible ASCII.
    #[error("a kid must be 1 to {MAX_KID_LEN} visible ASCII characters")]
    BadKid,
}

/// The verification keys in force, selected by `kid`.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// Whether `kid` is a valid key id: 1 to [`MAX_KID_LEN`] visible ASCII characters.
pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_LEN && kid.bytes().all(|b| b.is_ascii_graphic())
}

impl KeySet {
    /// Keys with distinct `kid`s, at most one without.
    pub fn new(keys: Vec<VerifyingKey>) -> Result<KeySet, KeySetError> {
        if keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        for (i, k) in keys.iter().enumerate() {
            match &k.kid {
                Some(kid) if !valid_kid(kid) => return Err(KeySetError::BadKid),
                Some(kid) if keys[..i].iter().any(|o| o.kid.as_ref() == Some(kid)) => {
                    return Err(KeySetError::DuplicateKid(kid.clone()))
                }
                None if keys[..i].iter().any(|o| o.kid.is_none()) => {
                    return Err(KeySetError::SeveralWithoutKid)
                }
                _ => {}
            }
        }
        Ok(KeySet { keys })
    }

    /// The keys, in configuration order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Check `token` as the module documentation says and return its payload bytes.
    pub fn verify(&self, token: &str) -> Result<Vec<u8>, JwsError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwsError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        if header_b64.len() > MAX_HEADER_LEN {
            return Err(JwsError::TooLarge);
        }
        let header_json = decode(header_b64)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| JwsError::Malformed)?;
        let alg = header.alg.as_deref().ok_or(JwsError::Malformed)?;
        if header.unsupported
            || header
                .typ
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(JwsError::UnsupportedHeader);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == header.kid.as_deref())
            .ok_or(JwsError::UnknownKey)?;
        if Algorithm::from_name(alg) != Some(key.algorithm()) {
            return Err(JwsError::AlgorithmNotAllowed);
        }
        if signature_b64.len() != key.algorithm().signature_chars() {
            return Err(JwsError::Malformed);
        }
        let signature = decode(signature_b64)?;
        // The signing input is the first two parts exactly as received.
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify(signing_input, &signature) {
            return Err(JwsError::BadSignature);
        }
        decode(payload_b64)
    }
}

/// Canonical base64url without padding (the `base64` engine refuses `=`, the standard
/// alphabet's `+` and `/`, and a last character with stray low bits).
fn decode(part: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed)
}

enum SigningKey {
    Hs256(hmac::Key),
    EdDsa(Ed25519KeyPair),
}

/// A key that signs tokens (`prl-proxy ticket`, tests): an HS256 secret or an Ed25519
/// private key.
pub struct Signer {
    kid: Option<String>,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// An HS256 signer.
    pub fn hs256(kid: Option<String>, secret: &[u8]) -> Signer {
        Signer {
            kid,
            key: SigningKey::Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret)),
        }
    }

    /// An EdDSA signer.
    pub fn ed25519(kid: Option<String>, key: Ed25519KeyPair) -> Signer {
        Signer {
            kid,
            key: SigningKey::EdDsa(key),
        }
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.key {
            SigningKey::Hs256(_) => Algorithm::Hs256,
            SigningKey::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// Its `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The Ed25519 public key, for an EdDSA signer.
    pub fn ed25519_public_key(&self) -> Option<[u8; ED25519_PUBLIC_KEY_LEN]> {
        match &self.key {
            SigningKey::EdDsa(k) => k.public_key().as_ref().try_into().ok(),
            SigningKey::Hs256(_) => None,
        }
    }

    /// The header this signer writes: `{"alg":…,"typ":"JWT"}`, with `"kid"` last if any.
    pub fn header_json(&self) -> Vec<u8> {
        let header = SignedHeader {
            alg: self.algorithm().name(),
            typ: "JWT",
            kid: self.kid.as_deref(),
        };
        serde_json::to_vec(&header).unwrap_or_default()
    }

    /// A compact JWS of `payload` under [`Signer::header_json`].
    pub fn sign(&self, payload: &[u8]) -> String {
        self.sign_parts(&self.header_json(), payload)
    }

    /// A compact JWS of exactly these header and payload bytes (test vectors).
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature: Vec<u8> = match &self.key {
            SigningKey::Hs256(k) => hmac::sign(k, token.as_bytes()).as_ref().to_vec(),
            SigningKey::EdDsa(k) => k.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7u8; 32];
    /// RFC 8032 §7.1 TEST 1.
    const SEED: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];

    fn ed_signer(kid: Option<&str>) -> Signer {
        Signer::ed25519(
            kid.map(String::from),
            Ed25519KeyPair::from_seed_unchecked(&SEED).unwrap(),
        )
    }

    fn keys() -> KeySet {
        let ed = ed_signer(None).ed25519_public_key().unwrap();
        KeySet::new(vec![
            VerifyingKey::hs256(Some("hs".into()), &SECRET),
            VerifyingKey::ed25519(Some("ed".into()), ed),
            VerifyingKey::hs256(None, &[9u8; 32]),
        ])
        .unwrap()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn both_algorithms_round_trip_and_select_their_key() {
        let ks = keys();
        let hs = Signer::hs256(Some("hs".into()), &SECRET).sign(b"{\"a\":1}");
        assert_eq!(ks.verify(&hs).unwrap(), b"{\"a\":1}");
        let ed = ed_signer(Some("ed")).sign(b"{}");
        assert_eq!(ks.verify(&ed).unwrap(), b"{}");
        let default = Signer::hs256(None, &[9u8; 32]).sign(b"x");
        assert_eq!(ks.verify(&default).unwrap(), b"x");
        // The header the signer writes.
        assert_eq!(
            ed_signer(Some("ed")).header_json(),
            br#"{"alg":"EdDSA","typ":"JWT","kid":"ed"}"#
        );
        // An RFC 8032 public key.
        assert_eq!(
            hex(&ed_signer(None).ed25519_public_key().unwrap()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn unknown_kid_and_missing_default_key() {
        let ks = keys();
        let t = Signer::hs256(Some("other".into()), &SECRET).sign(b"{}");
        assert_eq!(ks.verify(&t), Err(JwsError::UnknownKey));
        let only_kids = KeySet::new(vec![VerifyingKey::hs256(Some("hs".into()), &SECRET)]).unwrap();
        let t = Signer::hs256(None, &SECRET).sign(b"{}");
        assert_eq!(only_kids.verify(&t), Err(JwsError::UnknownKey));
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let ks = keys();
        let public = ed_signer(None).ed25519_public_key().unwrap();
        // HS256 under the Ed25519 key's kid, with the public key bytes as the HMAC secret.
        let t = Signer::hs256(Some("ed".into()), &public).sign(b"{}");
        assert_eq!(ks.verify(&t), Err(JwsError::AlgorithmNotAllowed));
        // The same with the public key's encodings a careless verifier might use as secret.
        for secret in [
            URL_SAFE_NO_PAD.encode(public).into_bytes(),
            hex(&public).into_bytes(),
        ] {
            let t = Signer::hs256(Some("ed".into()), &secret).sign(b"{}");
            assert_eq!(ks.verify(&t), Err(JwsError::AlgorithmNotAllowed));
        }
        // EdDSA presented under an HS256 key's kid.
        let t = ed_signer(Some("hs")).sign(b"{}");
        assert_eq!(ks.verify(&t), Err(JwsError::AlgorithmNotAllowed));
        // `none`, other HMACs, and case variants.
        for alg in [
            "none", "None", "NONE", "HS512", "hs256", "HS256 ", "RS256", "ES256", "",
        ] {
            let header = format!(r#"{{"alg":"{alg}","kid":"hs"}}"#);
            let t = Signer::hs256(None, &SECRET).sign_parts(header.as_bytes(), b"{}");
            assert_eq!(ks.verify(&t), Err(JwsError::AlgorithmNotAllowed), "{alg}");
            // Unsigned, as `none` would be sent.
            let t = format!("{}.{}.", b64(&header), b64("{}"));
            assert_eq!(ks.verify(&t), Err(JwsError::AlgorithmNotAllowed), "{alg}");
        }
    }

    #[test]
    fn the_header_is_strict() {
        let ks = keys();
        let signer = Signer::hs256(Some("hs".into()), &SECRET);
        let cases: [(&str, JwsError); 14] = [
            (
                r#"{"alg":"HS256","kid":"hs","crit":["exp"]}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","crit":[]}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","b64":false}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","jwk":{}}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","typ":"JOSE"}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","typ":"at+jwt"}"#,
                JwsError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","alg":"HS256"}"#,
                JwsError::Malformed,
            ),
            (
                r#"{"alg":"HS256","kid":"hs","kid":"hs"}"#,
                JwsError::Malformed,
            ),
            (r#"{"alg":"HS256","kid":7}"#, JwsError::Malformed),
            (r#"{"alg":["HS256"],"kid":"hs"}"#, JwsError::Malformed),
            (r#"{"kid":"hs"}"#, JwsError::Malformed),
            (r#"["HS256"]"#, JwsError::Malformed),
            (r#"{"alg":"HS256","kid":"hs"} x"#, JwsError::Malformed),
            (r#"{"alg":null,"kid":"hs"}"#, JwsError::Malformed),
        ];
        for (header, want) in cases {
            let t = signer.sign_parts(header.as_bytes(), b"{}");
            assert_eq!(ks.verify(&t), Err(want), "{header}");
        }
        for typ in ["JWT", "jwt", "Jwt"] {
            let header = format!(r#"{{"typ":"{typ}","kid":"hs","alg":"HS256"}}"#);
            let t = signer.sign_parts(header.as_bytes(), b"{}");
            assert_eq!(ks.verify(&t).unwrap(), b"{}", "{typ}");
        }
        let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(200));
        let t = signer.sign_parts(long.as_bytes(), b"{}");
        assert_eq!(ks.verify(&t), Err(JwsError::TooLarge));
    }

    #[test]
    fn tampering_any_part_is_detected() {
        let ks = keys();
        for signer in [
            Signer::hs256(Some("hs".into()), &SECRET),
            ed_signer(Some("ed")),
        ] {
            let t = signer.sign(br#"{"sub":"u"}"#);
            let (h, rest) = t.split_once('.').unwrap();
            let (p, s) = rest.split_once('.').unwrap();
            // Another payload under the same header and signature.
            let forged = format!("{h}.{}.{s}", b64(r#"{"sub":"v"}"#));
            assert_eq!(ks.verify(&forged), Err(JwsError::BadSignature));
            // Another header (same key) under the same payload and signature.
            let header2 = format!(
                r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
                signer.algorithm(),
                signer.kid().unwrap()
            );
            let forged = format!("{}.{p}.{s}", b64(&header2));
            assert_eq!(ks.verify(&forged), Err(JwsError::BadSignature));
            // Every single character of the signature changed.
            for i in 0..s.len() {
                let mut bytes = s.as_bytes().to_vec();
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                let forged = format!("{h}.{p}.{}", String::from_utf8(bytes).unwrap());
                let e = ks.verify(&forged).unwrap_err();
                assert!(
                    matches!(e, JwsError::BadSignature | JwsError::Malformed),
                    "{i}: {e:?}"
                );
            }
            // Every single character of the payload changed.
            for i in 0..p.len() {
                let mut bytes = p.as_bytes().to_vec();
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                let forged = format!("{h}.{}.{s}", String::from_utf8(bytes).unwrap());
                assert_eq!(ks.verify(&forged), Err(JwsError::BadSignature), "{i}");
            }
            // Truncated, extended, or with the signature of another token.
            let other = signer.sign(br#"{"sub":"v"}"#);
            let other_sig = other.rsplit_once('.').unwrap().1;
            assert_eq!(
                ks.verify(&format!("{h}.{p}.{other_sig}")),
                Err(JwsError::BadSignature)
            );
            assert_eq!(ks.verify(&format!("{t}.")), Err(JwsError::Malformed));
            assert_eq!(ks.verify(&t[..t.len() - 1]), Err(JwsError::Malformed));
            assert_eq!(ks.verify(&format!("{t}A")), Err(JwsError::Malformed));
        }
    }

    #[test]
    fn only_canonical_base64url_is_read() {
        let ks = keys();
        let signer = Signer::hs256(Some("hs".into()), &SECRET);
        let t = signer.sign(b"{}");
        let (h, rest) = t.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        // Padding, the standard alphabet, whitespace.
        for bad in [
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}==.{s}"),
            format!("{h}.{p}.{s}="),
            format!(" {t}"),
            format!("{t}\n"),
            format!("{h}.{p} .{s}"),
        ] {
            let e = ks.verify(&bad).unwrap_err();
            assert!(
                matches!(e, JwsError::Malformed | JwsError::BadSignature),
                "{bad}: {e:?}"
            );
        }
        // The decoder itself: the standard alphabet and padding are not base64url.
        for bad in ["ab+c", "ab/c", "YQ==", "YQ=", "Y Q", "YR"] {
            assert_eq!(decode(bad), Err(JwsError::Malformed), "{bad}");
        }
        assert_eq!(decode("YQ").unwrap(), b"a");
        // A signature whose last character carries stray low bits decodes to the same bytes
        // in lenient decoders; here it is refused before any MAC is computed.
        let last = s.as_bytes()[s.len() - 1];
        let sibling = (b'A'..=b'z')
            .chain(b'0'..=b'9')
            .find(|&c| {
                c != last
                    && c.is_ascii_alphanumeric()
                    && URL_SAFE_NO_PAD
                        .decode(format!("{}{}", &s[..s.len() - 1], c as char))
                        .is_err()
            })
            .unwrap();
        let lenient = format!("{h}.{p}.{}{}", &s[..s.len() - 1], sibling as char);
        assert_eq!(ks.verify(&lenient), Err(JwsError::Malformed));
        // A payload that is not base64url at all, under a valid MAC over those characters.
        let bad_payload = format!("{h}.a");
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &SECRET),
            bad_payload.as_bytes(),
        );
        let t = format!("{bad_payload}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert_eq!(ks.verify(&t), Err(JwsError::Malformed));
    }

    #[test]
    fn size_limits_come_first() {
        let ks = keys();
        let huge = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(ks.verify(&huge), Err(JwsError::TooLarge));
        let signer = Signer::hs256(Some("hs".into()), &SECRET);
        let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(1600));
        assert_eq!(
            ks.verify(&signer.sign(big.as_bytes())),
            Err(JwsError::TooLarge)
        );
        let fits = format!(r#"{{"x":"{}"}}"#, "y".repeat(1400));
        assert!(ks.verify(&signer.sign(fits.as_bytes())).is_ok());
        for bad in ["", ".", "..", "...", "a.b", "a.b.c.d", "e30.e30.e30"] {
            assert_eq!(ks.verify(bad), Err(JwsError::Malformed), "{bad}");
        }
    }

    #[test]
    fn key_sets_name_their_keys_uniquely() {
        let k = |kid: Option<&str>| VerifyingKey::hs256(kid.map(String::from), &SECRET);
        assert_eq!(KeySet::new(vec![]).unwrap_err(), KeySetError::Empty);
        assert_eq!(
            KeySet::new(vec![k(Some("a")), k(Some("a"))]).unwrap_err(),
            KeySetError::DuplicateKid("a".into())
        );
        assert_eq!(
            KeySet::new(vec![k(None), k(Some("a")), k(None)]).unwrap_err(),
            KeySetError::SeveralWithoutKid
        );
        for bad in ["", "a b", "é", &"k".repeat(MAX_KID_LEN + 1)] {
            assert_eq!(
                KeySet::new(vec![k(Some(bad))]).unwrap_err(),
                KeySetError::BadKid
            );
        }
        assert_eq!(
            format!("{:?}", k(Some("a"))),
            "VerifyingKey { kid: Some(\"a\"), alg: Hs256, .. }"
        );
    }
}
