//! `struct ProtocolVersion` and `struct HandshakeHeader`: the first two parts each side sends.

use std::fmt;

use uuid::Uuid;

use super::{HandshakeError, CURRENT_MAJOR, CURRENT_MINOR, HANDSHAKE_HEADER_LEN, MAGIC};
use super::{PROTOCOL_VERSION_LEN, SDK_VERSION_TEXT, VERSION_TEXT_LEN};
use crate::reader::Reader;

/// `struct ProtocolVersion` (72 bytes): `"PRLT"`, u16 major, u16 minor, 64-byte text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    /// `majorNumber`: must be equal on both sides.
    pub major: u16,
    /// `minorNumber`: selects features, never rejected.
    pub minor: u16,
    /// `whatWeAre`: free build text, at most 64 bytes without NUL.
    pub text: String,
}

impl ProtocolVersion {
    /// 6.10 with the text of the real SDK client ([`SDK_VERSION_TEXT`]).
    pub fn current() -> Self {
        Self::new(CURRENT_MAJOR, CURRENT_MINOR, SDK_VERSION_TEXT)
    }

    /// A version with the given numbers and text (validated when encoded).
    pub fn new(major: u16, minor: u16, text: impl Into<String>) -> Self {
        Self {
            major,
            minor,
            text: text.into(),
        }
    }

    fn at_least(&self, minor: u16) -> bool {
        self.major > 6 || (self.major == 6 && self.minor >= minor)
    }

    /// `IOPROTOCOL_HEART_BEAT_SUPPORT` (>= 6.1).
    pub fn supports_heartbeat(&self) -> bool {
        self.at_least(1)
    }

    /// `IOPROTOCOL_BINARY_RESPONSE_SUPPORT` (>= 6.2): login reply is `DspWsBinaryResponse`.
    pub fn supports_binary_response(&self) -> bool {
        self.at_least(2)
    }

    /// `IOPROTOCOL_EVENT_NUMERIC_ID_SUPPORT` (>= 6.8): `numericId` in the package header.
    pub fn supports_numeric_id(&self) -> bool {
        self.at_least(8)
    }

    /// `IOPROTOCOL_NEW_LOGIN_SUPPORT` (>= 6.9): the login password is base64 encoded.
    pub fn supports_base64_password(&self) -> bool {
        self.at_least(9)
    }

    /// `IOPROTOCOL_NEW_PRODUCT_NAME_SUPPORT` (>= 6.10): not a "legacy product client".
    pub fn supports_new_product_name(&self) -> bool {
        self.at_least(10)
    }

    /// Checks the text fits the field. As in the source (a C array initialised from a string
    /// literal), up to 64 bytes are allowed; exactly 64 leaves no NUL terminator.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        if self.text.len() > VERSION_TEXT_LEN {
            return Err(HandshakeError::VersionTextTooLong {
                len: self.text.len(),
            });
        }
        if self.text.as_bytes().contains(&0) {
            return Err(HandshakeError::VersionTextContainsNul);
        }
        Ok(())
    }

    /// The 72 wire bytes.
    pub fn to_bytes(&self) -> Result<[u8; PROTOCOL_VERSION_LEN], HandshakeError> {
        self.validate()?;
        let mut b = [0u8; PROTOCOL_VERSION_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.major.to_le_bytes());
        b[6..8].copy_from_slice(&self.minor.to_le_bytes());
        b[8..8 + self.text.len()].copy_from_slice(self.text.as_bytes());
        Ok(b)
    }

    /// Parses the 72 wire bytes (exactly: fewer is [`HandshakeError::Truncated`], more is
    /// [`HandshakeError::TrailingBytes`]), checking only the magic (the major is checked against
    /// the local version by the state machines). The text is read up to its first NUL; invalid
    /// UTF-8 is replaced (the source never interprets it).
    pub fn from_bytes(b: &[u8]) -> Result<Self, HandshakeError> {
        let mut r = Reader::new(b);
        let found = r.array("protocol version magic")?;
        if found != MAGIC {
            return Err(HandshakeError::BadMagic { found });
        }
        let major = r.u16_le("protocol major version")?;
        let minor = r.u16_le("protocol minor version")?;
        let text = r.take(VERSION_TEXT_LEN, "protocol version text")?;
        r.finish("protocol version")?;
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        Ok(Self {
            major,
            minor,
            text: String::from_utf8_lossy(text.get(..end).unwrap_or_default()).into_owned(),
        })
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} ({:?})", self.major, self.minor, self.text)
    }
}

/// `IOSender::Type`, kept as the raw `u32` so unknown values survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderType(pub u32);

impl SenderType {
    /// `UnknownType` (invalid in a handshake).
    pub const UNKNOWN: Self = Self(0);
    /// `Vm`.
    pub const VM: Self = Self(1);
    /// `Dispatcher`: what `prl_disp_service` listens as.
    pub const DISPATCHER: Self = Self(2);
    /// `Client`: what the SDK connects as.
    pub const CLIENT: Self = Self(3);
    /// `IOClient`.
    pub const IO_CLIENT: Self = Self(4);
    /// `FileTransfer`.
    pub const FILE_TRANSFER: Self = Self(5);
    /// `PTAgent`.
    pub const PT_AGENT: Self = Self(6);
    /// `PTClient`.
    pub const PT_CLIENT: Self = Self(7);
    /// `ProxyManager`.
    pub const PROXY_MANAGER: Self = Self(8);
    /// `IOCtClient`.
    pub const IO_CT_CLIENT: Self = Self(9);
    /// `VmConverter`.
    pub const VM_CONVERTER: Self = Self(10);
    /// `EndTypeBound`: first invalid value.
    pub const END_TYPE_BOUND: u32 = 11;

    /// What the handshake accepts: not `UnknownType` and below `EndTypeBound`.
    pub fn is_valid(self) -> bool {
        self.0 != 0 && self.0 < Self::END_TYPE_BOUND
    }

    /// The source's name for a known value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "UnknownType",
            1 => "Vm",
            2 => "Dispatcher",
            3 => "Client",
            4 => "IOClient",
            5 => "FileTransfer",
            6 => "PTAgent",
            7 => "PTClient",
            8 => "ProxyManager",
            9 => "IOCtClient",
            10 => "VmConverter",
            _ => return None,
        })
    }
}

impl fmt::Debug for SenderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "SenderType::{n}({})", self.0),
            None => write!(f, "SenderType({})", self.0),
        }
    }
}

/// `struct HandshakeHeader` (20 bytes): u32 sender type, 16-byte connection UUID.
///
/// A client's connection UUID is its session id, so `Debug` redacts it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeHeader {
    /// `senderType`.
    pub sender_type: SenderType,
    /// `connectionUuid` (RFC-4122 byte order).
    pub connection_uuid: Uuid,
}

impl fmt::Debug for HandshakeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeHeader")
            .field("sender_type", &self.sender_type)
            .field("connection_uuid", &"<redacted>")
            .finish()
    }
}

impl HandshakeHeader {
    /// The 20 wire bytes.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_HEADER_LEN] {
        let mut b = [0u8; HANDSHAKE_HEADER_LEN];
        b[..4].copy_from_slice(&self.sender_type.0.to_le_bytes());
        b[4..].copy_from_slice(self.connection_uuid.as_bytes());
        b
    }

    /// Parses the 20 wire bytes (exactly) without checking their values (see
    /// [`HandshakeHeader::check`]).
    pub fn from_bytes(b: &[u8]) -> Result<Self, HandshakeError> {
        let mut r = Reader::new(b);
        let header = Self {
            sender_type: SenderType(r.u32_le("handshake header sender type")?),
            connection_uuid: r.uuid("handshake header connection uuid")?,
        };
        r.finish("handshake header")?;
        Ok(header)
    }

    /// The checks of `cli_parseHandshake`/`srv_parseHandshake`, in source order: non-nil UUID,
    /// then a valid sender type.
    pub fn check(&self) -> Result<(), HandshakeError> {
        if self.connection_uuid.is_nil() {
            return Err(HandshakeError::NilConnectionUuid);
        }
        if !self.sender_type.is_valid() {
            return Err(HandshakeError::InvalidSenderType {
                value: self.sender_type.0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_gates_follow_the_macros() {
        let v = |maj, min| ProtocolVersion::new(maj, min, "");
        assert!(!v(6, 0).supports_heartbeat());
        assert!(v(6, 1).supports_heartbeat());
        assert!(!v(6, 1).supports_binary_response());
        assert!(v(6, 2).supports_binary_response());
        assert!(!v(6, 7).supports_numeric_id());
        assert!(v(6, 8).supports_numeric_id());
        assert!(!v(6, 8).supports_base64_password());
        assert!(v(6, 9).supports_base64_password());
        assert!(!v(6, 9).supports_new_product_name());
        assert!(v(6, 10).supports_new_product_name());
        assert!(v(7, 0).supports_new_product_name());
        assert!(!v(5, 99).supports_heartbeat());
        let c = ProtocolVersion::current();
        assert_eq!((c.major, c.minor), (6, 10));
    }

    #[test]
    fn version_text_limits() {
        let ok = ProtocolVersion::new(6, 10, "x".repeat(64));
        let b = ok.to_bytes().expect("64 bytes fit");
        assert_eq!(ProtocolVersion::from_bytes(&b).expect("parses"), ok);
        let long = ProtocolVersion::new(6, 10, "x".repeat(65));
        assert_eq!(
            long.to_bytes().map_err(|e| e.kind()),
            Err("version_text_too_long")
        );
        let nul = ProtocolVersion::new(6, 10, "a\0b");
        assert_eq!(
            nul.to_bytes().map_err(|e| e.kind()),
            Err("version_text_contains_nul")
        );
    }

    #[test]
    fn fixed_parts_must_be_exact() {
        let v = ProtocolVersion::current().to_bytes().expect("encodes");
        assert_eq!(
            ProtocolVersion::from_bytes(&v[..71]),
            Err(HandshakeError::Truncated {
                what: "protocol version text",
                needed: 64,
                available: 63
            })
        );
        assert_eq!(
            ProtocolVersion::from_bytes(&v[..3]).map_err(|e| e.kind()),
            Err("truncated")
        );
        let mut long = v.to_vec();
        long.push(0);
        assert_eq!(
            ProtocolVersion::from_bytes(&long),
            Err(HandshakeError::TrailingBytes {
                after: "protocol version",
                count: 1
            })
        );
        let h = HandshakeHeader {
            sender_type: SenderType::CLIENT,
            connection_uuid: Uuid::from_bytes([1; 16]),
        }
        .to_bytes();
        assert_eq!(
            HandshakeHeader::from_bytes(&h[..19]).map_err(|e| e.kind()),
            Err("truncated")
        );
        assert_eq!(
            HandshakeHeader::from_bytes(&[&h[..], &[0]].concat()).map_err(|e| e.kind()),
            Err("trailing_bytes")
        );
        let back = HandshakeHeader::from_bytes(&h).expect("20 bytes");
        assert_eq!(back.to_bytes(), h);
        assert!(back.check().is_ok());
    }
}
