//! What identifiers look like in Redis: HMAC-SHA256 under the cluster secret, truncated to
//! 128 bits, hex. Why keyed and not a plain SHA-256: user names and addresses have little
//! entropy, so a plain digest could be reversed by guessing; ticket ids come from the issuer
//! (whatever their entropy); one keyed function for all of them keeps a reader of Redis
//! (a backup, a replica, a monitoring tool) from confirming any guess without the secret.
//! Resume tokens are 256 random bits, so a plain digest would do for them; they go through the
//! same function anyway, under their own domain.
//!
//! A restore proof's session UUID is a secret too (it lets a login take a live session over):
//! it is stored XORed with a pad derived from the raw resume token ([`Keyring::seal_session`]),
//! which only the browser that holds the token and the instance that issued it know. Another
//! instance recovers it from the token the browser presents; a reader of Redis cannot.

use std::fmt;
use std::path::Path;

use ring::hmac;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Shortest cluster secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// The cluster secret and the key functions built on it.
pub struct Keyring {
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

/// What a key stands for (domain separation: the same bytes give different keys).
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    /// A ticket id.
    Ticket,
    /// A client address key.
    Ip,
    /// A user name key.
    User,
    /// A resume token (restore proof and parked-link location).
    Token,
    /// A ticket subject (compared, never read back).
    Subject,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Ticket => b"prl-ticket",
            Domain::Ip => b"prl-ip",
            Domain::User => b"prl-user",
            Domain::Token => b"prl-token",
            Domain::Subject => b"prl-subject",
        }
    }
}

impl Keyring {
    /// From the secret's bytes (at least [`MIN_SECRET_LEN`]).
    pub fn new(secret: Vec<u8>) -> Result<Keyring, String> {
        let secret = Zeroizing::new(secret);
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret is {} bytes, at least {MIN_SECRET_LEN} are needed",
                secret.len()
            ));
        }
        Ok(Keyring { secret })
    }

    /// Read the secret file (trailing whitespace ignored).
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let mut bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
            bytes.pop();
        }
        Keyring::new(bytes.to_vec())
    }

    /// The key of `data` in `domain`: 32 hex digits (HMAC-SHA256 through ring, the proxy's one
    /// HMAC implementation, truncated to 128 bits).
    pub fn id(&self, domain: Domain, data: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let mut mac = hmac::Context::with_key(&key);
        mac.update(domain.tag());
        mac.update(&[0]);
        mac.update(data);
        hex(&mac.sign().as_ref()[..16])
    }

    /// The key of a resume token.
    pub fn token(&self, token: &str) -> String {
        self.id(Domain::Token, token.as_bytes())
    }

    /// The stored form of a ticket subject ("" for none).
    pub fn subject(&self, subject: Option<&str>) -> String {
        subject.map_or_else(String::new, |s| self.id(Domain::Subject, s.as_bytes()))
    }

    /// `session` sealed under `token`: 32 hex digits.
    pub fn seal_session(token: &str, session: Uuid) -> String {
        let pad = session_pad(token);
        let mut b = *session.as_bytes();
        for (x, p) in b.iter_mut().zip(pad.iter()) {
            *x ^= p;
        }
        hex(&b)
    }

    /// The session sealed under `token` (`None`: not 32 hex digits).
    pub fn open_session(token: &str, sealed: &str) -> Option<Uuid> {
        let mut b = unhex16(sealed)?;
        for (x, p) in b.iter_mut().zip(session_pad(token).iter()) {
            *x ^= p;
        }
        Some(Uuid::from_bytes(b))
    }
}

fn session_pad(token: &str) -> Zeroizing<[u8; 16]> {
    let d = Sha256::new()
        .chain_update(b"prl-proof-session\0")
        .chain_update(token.as_bytes())
        .finalize();
    let mut pad = Zeroizing::new([0u8; 16]);
    pad.copy_from_slice(&d[..16]);
    pad
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

fn unhex16(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(s[2 * i])? << 4) | digit(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(b: u8) -> Keyring {
        Keyring::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn ids_are_keyed_domain_separated_and_fixed_size() {
        let (a, b) = (ring(1), ring(2));
        let id = a.id(Domain::User, b"alice");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, a.id(Domain::User, b"alice"));
        assert_ne!(
            id,
            b.id(Domain::User, b"alice"),
            "another secret, another key"
        );
        assert_ne!(
            id,
            a.id(Domain::Ip, b"alice"),
            "another domain, another key"
        );
        assert_ne!(id, a.id(Domain::User, b"alicf"));
        assert!(!id.contains("616c696365"), "the name's bytes do not show");
        assert_eq!(a.subject(None), "");
        assert_ne!(a.subject(Some("bob")), a.subject(Some("bob2")));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Keyring::new(vec![0; 31]).is_err());
        assert!(Keyring::new(vec![0; 32]).is_ok());
        assert_eq!(format!("{:?}", ring(7)), "Keyring(<redacted>)");
    }

    #[test]
    fn a_sealed_session_opens_only_with_its_token() {
        let s = Uuid::new_v4();
        let sealed = Keyring::seal_session("token-a", s);
        assert_eq!(sealed.len(), 32);
        assert!(!sealed.contains(&s.simple().to_string()));
        assert_eq!(Keyring::open_session("token-a", &sealed), Some(s));
        assert_ne!(Keyring::open_session("token-b", &sealed), Some(s));
        assert_eq!(Keyring::open_session("token-a", "xyz"), None);
        assert_eq!(Keyring::open_session("token-a", &"g".repeat(32)), None);
    }
}
