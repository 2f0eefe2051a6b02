//! Ticket key files: HS256 shared secrets, Ed25519 public keys (what the proxy holds for
//! EdDSA) and Ed25519 private keys (what `prl-proxy ticket --private-key` and backends sign
//! with), and writing a fresh Ed25519 pair (`prl-proxy keygen`).
//!
//! Formats (`docs/tickets.md`):
//! - secret: if the file's text, without surrounding whitespace, is base64url or base64
//!   (padding optional) of at least [`MIN_SECRET_LEN`] bytes, the secret is those decoded
//!   bytes; otherwise the file's raw bytes, at least [`MIN_SECRET_LEN`] of them;
//! - Ed25519 public key: PEM `PUBLIC KEY` (SubjectPublicKeyInfo, OID 1.3.101.112, what
//!   `openssl pkey -pubout` writes) or a JWK `{"kty":"OKP","crv":"Ed25519","x":…}`; a file
//!   holding a private key is refused (the proxy needs, and should hold, the public half only);
//! - Ed25519 private key: PEM `PRIVATE KEY` (PKCS#8 v1 or v2, what `openssl genpkey -algorithm
//!   ed25519` writes) or a JWK with `d`.
//!
//! Messages never quote key material.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls::pki_types::pem::{PemObject as _, SectionKind};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::jws::ED25519_PUBLIC_KEY_LEN;

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Largest key file read.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// DER of an Ed25519 SubjectPublicKeyInfo, up to the 32 key bytes (RFC 8410 §4).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER of a PKCS#8 v1 Ed25519 private key, up to the 32 seed bytes (RFC 8410 §7).
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > MAX_KEY_FILE {
        return Err(format!(
            "{} is larger than a key file can be ({MAX_KEY_FILE} bytes)",
            path.display()
        ));
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Read an HS256 secret file.
pub fn load_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    parse_secret(&read(path)?)
}

/// An HS256 secret from a file's bytes (module documentation).
pub fn parse_secret(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Ok(text) = std::str::from_utf8(raw) {
        let t = text.trim();
        let decoded = URL_SAFE_NO_PAD
            .decode(t.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(t))
            .or_else(|_| STANDARD_NO_PAD.decode(t));
        if let Ok(k) = decoded {
            let k = Zeroizing::new(k);
            if k.len() >= MIN_SECRET_LEN {
                return Ok(k);
            }
        }
    }
    if raw.len() >= MIN_SECRET_LEN {
        return Ok(Zeroizing::new(raw.to_vec()));
    }
    Err(format!(
        "an HS256 secret must be at least {MIN_SECRET_LEN} bytes"
    ))
}

/// A JWK of an octet key pair (RFC 8037 §2); other members are ignored.
#[derive(Deserialize)]
struct OkpJwk {
    kty: String,
    crv: String,
    x: Option<String>,
    d: Option<String>,
    alg: Option<String>,
}

impl OkpJwk {
    fn parse(raw: &[u8]) -> Result<OkpJwk, String> {
        let jwk: OkpJwk =
            serde_json::from_slice(raw).map_err(|_| "not a JSON Web Key".to_string())?;
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err("the JWK is not an Ed25519 key (kty OKP, crv Ed25519)".into());
        }
        if jwk.alg.as_deref().is_some_and(|a| a != "EdDSA") {
            return Err("the JWK's alg is not EdDSA".into());
        }
        Ok(jwk)
    }
}

fn b64_32(field: &str, value: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| format!("the JWK's {field} is not base64url"))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(format!("the JWK's {field} is not 32 bytes"));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn looks_like_json(raw: &[u8]) -> bool {
    raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The one PEM section of a key file.
fn pem_section(raw: &[u8]) -> Result<(SectionKind, Zeroizing<Vec<u8>>), String> {
    let mut sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(raw);
    let first = match sections.next() {
        Some(Ok((kind, der))) => (kind, Zeroizing::new(der)),
        Some(Err(_)) => return Err("not a valid PEM file".into()),
        None => return Err("neither PEM nor a JWK".into()),
    };
    if sections.next().is_some() {
        return Err("more than one PEM section".into());
    }
    Ok(first)
}

const PRIVATE_NOT_PUBLIC: &str =
    "holds a private key: give the proxy the public key only (openssl pkey -pubout)";

/// Read an Ed25519 public key file.
pub fn load_ed25519_public(path: &Path) -> Result<[u8; ED25519_PUBLIC_KEY_LEN], String> {
    parse_ed25519_public(&read(path)?)
}

/// An Ed25519 public key from a file's bytes (module documentation).
pub fn parse_ed25519_public(raw: &[u8]) -> Result<[u8; ED25519_PUBLIC_KEY_LEN], String> {
    if looks_like_json(raw) {
        let jwk = OkpJwk::parse(raw)?;
        if jwk.d.is_some() {
            return Err(PRIVATE_NOT_PUBLIC.into());
        }
        let x = jwk.x.ok_or("the JWK has no x")?;
        return Ok(*b64_32("x", &x)?);
    }
    let (kind, der) = pem_section(raw)?;
    match kind {
        SectionKind::PublicKey => {}
        SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => {
            return Err(PRIVATE_NOT_PUBLIC.into())
        }
        _ => return Err("not a PEM public key (BEGIN PUBLIC KEY)".into()),
    }
    match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == ED25519_PUBLIC_KEY_LEN => {
            let mut out = [0u8; ED25519_PUBLIC_KEY_LEN];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err("not an Ed25519 public key".into()),
    }
}

/// Read an Ed25519 private key file.
pub fn load_ed25519_private(path: &Path) -> Result<Ed25519KeyPair, String> {
    parse_ed25519_private(&read(path)?)
}

/// An Ed25519 private key from a file's bytes (module documentation).
pub fn parse_ed25519_private(raw: &[u8]) -> Result<Ed25519KeyPair, String> {
    if looks_like_json(raw) {
        let jwk = OkpJwk::parse(raw)?;
        let d = jwk
            .d
            .as_deref()
            .ok_or("the JWK has no d (not a private key)")?;
        let seed = b64_32("d", d)?;
        return match jwk.x.as_deref() {
            Some(x) => Ed25519KeyPair::from_seed_and_public_key(&seed[..], &b64_32("x", x)?[..])
                .map_err(|_| "the JWK's x is not the public key of its d".to_string()),
            None => Ed25519KeyPair::from_seed_unchecked(&seed[..])
                .map_err(|_| "not an Ed25519 private key".to_string()),
        };
    }
    let (kind, der) = pem_section(raw)?;
    if kind != SectionKind::PrivateKey {
        return Err("not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)".into());
    }
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|_| "not an Ed25519 private key".to_string())
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A PKCS#8 v1 PEM of the Ed25519 private key with this seed (as `openssl genpkey` writes).
pub fn ed25519_private_pem(seed: &[u8; 32]) -> Zeroizing<String> {
    let mut der = Zeroizing::new(PKCS8_V1_PREFIX.to_vec());
    der.extend_from_slice(seed);
    pem("PRIVATE KEY", &der)
}

/// The SubjectPublicKeyInfo PEM of an Ed25519 public key (as `openssl pkey -pubout` writes).
pub fn ed25519_public_pem(public_key: &[u8; ED25519_PUBLIC_KEY_LEN]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public_key);
    pem("PUBLIC KEY", &der).to_string()
}

/// The public JWK of an Ed25519 public key.
pub fn ed25519_public_jwk(public_key: &[u8; ED25519_PUBLIC_KEY_LEN]) -> String {
    format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    )
}

/// The public key of an Ed25519 seed.
pub fn ed25519_public_of(seed: &[u8; 32]) -> Option<[u8; ED25519_PUBLIC_KEY_LEN]> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .ok()?
        .public_key()
        .as_ref()
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1 TEST 1, in the forms OpenSSL writes (checked with openssl 3).
    const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
        -----END PUBLIC KEY-----\n";

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn seed() -> [u8; 32] {
        unhex(SEED_HEX).try_into().unwrap()
    }

    fn public() -> [u8; 32] {
        unhex(PUBLIC_HEX).try_into().unwrap()
    }

    #[test]
    fn pem_forms_round_trip() {
        assert_eq!(ed25519_private_pem(&seed()).as_str(), PRIVATE_PEM);
        assert_eq!(ed25519_public_pem(&public()), PUBLIC_PEM);
        assert_eq!(ed25519_public_of(&seed()), Some(public()));
        assert_eq!(
            parse_ed25519_public(PUBLIC_PEM.as_bytes()).unwrap(),
            public()
        );
        let pair = parse_ed25519_private(PRIVATE_PEM.as_bytes()).unwrap();
        assert_eq!(pair.public_key().as_ref(), public());
    }

    #[test]
    fn jwk_forms() {
        let x = URL_SAFE_NO_PAD.encode(public());
        let d = URL_SAFE_NO_PAD.encode(seed());
        assert_eq!(
            ed25519_public_jwk(&public()),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#)
        );
        let public_jwk = format!(
            r#" {{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k","use":"sig","alg":"EdDSA"}}"#
        );
        assert_eq!(
            parse_ed25519_public(public_jwk.as_bytes()).unwrap(),
            public()
        );
        let private_jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{d}"}}"#);
        let pair = parse_ed25519_private(private_jwk.as_bytes()).unwrap();
        assert_eq!(pair.public_key().as_ref(), public());
        // d alone is enough; a wrong x is refused.
        let d_only = format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{d}"}}"#);
        assert!(parse_ed25519_private(d_only.as_bytes()).is_ok());
        let wrong_x = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{d}","d":"{d}"}}"#);
        assert!(parse_ed25519_private(wrong_x.as_bytes()).is_err());
        for bad in [
            format!(r#"{{"kty":"OKP","crv":"X25519","x":"{x}"}}"#),
            format!(r#"{{"kty":"EC","crv":"Ed25519","x":"{x}"}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","alg":"HS256"}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}A"}}"#),
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, &x[..40]),
            r#"{"kty":"OKP","crv":"Ed25519"}"#.to_string(),
            "{".to_string(),
        ] {
            assert!(parse_ed25519_public(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_proxy_refuses_a_private_key_where_a_public_one_belongs() {
        let e = parse_ed25519_public(PRIVATE_PEM.as_bytes()).unwrap_err();
        assert!(e.contains("public key only"), "{e}");
        let d = URL_SAFE_NO_PAD.encode(seed());
        let x = URL_SAFE_NO_PAD.encode(public());
        let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{d}"}}"#);
        let e = parse_ed25519_public(jwk.as_bytes()).unwrap_err();
        assert!(e.contains("public key only"), "{e}");
        // And the other way round.
        assert!(parse_ed25519_private(PUBLIC_PEM.as_bytes()).is_err());
    }

    #[test]
    fn other_pem_is_refused_without_quoting_it() {
        // A P-256 public key (another OID).
        let p256 = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n\
            q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n\
            -----END PUBLIC KEY-----\n";
        assert_eq!(
            parse_ed25519_public(p256.as_bytes()).unwrap_err(),
            "not an Ed25519 public key"
        );
        let two = format!("{PUBLIC_PEM}{PUBLIC_PEM}");
        assert!(parse_ed25519_public(two.as_bytes()).is_err());
        assert!(parse_ed25519_public(b"hello").is_err());
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_ed25519_public(cert.as_bytes()).is_err());
    }

    #[test]
    fn secrets_are_decoded_text_or_raw_bytes() {
        let key = [0xa5u8; 32];
        for text in [
            URL_SAFE_NO_PAD.encode(key),
            format!("{}\n", STANDARD.encode(key)),
            format!("  {}  ", STANDARD_NO_PAD.encode(key)),
        ] {
            assert_eq!(
                parse_secret(text.as_bytes()).unwrap().as_slice(),
                key,
                "{text}"
            );
        }
        // Raw bytes (not base64 text of 32 bytes).
        assert_eq!(parse_secret(&[7u8; 32]).unwrap().as_slice(), [7u8; 32]);
        let phrase = b"correct horse battery staple, and then some more";
        assert_eq!(parse_secret(phrase).unwrap().as_slice(), phrase);
        // Too short either way: base64 of 16 bytes (24 characters) is refused.
        assert!(parse_secret(STANDARD.encode([1u8; 16]).as_bytes()).is_err());
        assert!(parse_secret(&[7u8; 31]).is_err());
    }
}
