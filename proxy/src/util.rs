//! Small helpers: randomness, wall clock, secret tokens.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Fill `buf` from the OS CSPRNG. Aborting is the only safe answer if the OS has none.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        // Without randomness no token or UUID is safe to hand out.
        panic!("operating system random source failed: {e}");
    }
}

/// Seconds since the unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 256-bit bearer token (base64url), with a redacting `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A fresh random token.
    pub fn generate() -> Token {
        let mut b = [0u8; 32];
        fill_random(&mut b);
        Token(URL_SAFE_NO_PAD.encode(b))
    }

    /// From a string received from a peer.
    pub fn from_string(s: String) -> Token {
        Token(s)
    }

    /// The value (to send to its owner only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A fresh random (v4) UUID.
pub fn random_uuid() -> uuid::Uuid {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid()
}
