//! The login password: the SDK's wire encoding and the service's lenient decoding.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::{param, CommandError};
use crate::codes::cmd;
use crate::event::{Event, ParamType, ParamValue};

/// `MAX_PASSWORD_LENGTH`: the SDK pads passwords to this many UTF-16 units.
pub const MAX_PASSWORD_LENGTH: usize = 1024;
/// `MAX_ENCODED_PASSWORD_LENGTH`: longer (decoded) passwords are refused with INVALID_ARG.
pub const MAX_ENCODED_PASSWORD_LENGTH: usize = 4 * MAX_PASSWORD_LENGTH.div_ceil(3);

/// A password held in memory only as long as needed; zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wrap a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The wire form: for protocol >= 6.9 `base64(utf8(password.leftJustified(1024, NUL)))`
    /// (`PrlHandleLoginHelperJob::EncodePassword`), else the password itself.
    pub fn encode(&self, base64_password: bool) -> Zeroizing<String> {
        if !base64_password {
            return self.0.clone();
        }
        let units = self.0.encode_utf16().count();
        let mut padded = Zeroizing::new(Vec::with_capacity(self.0.len() + MAX_PASSWORD_LENGTH));
        padded.extend_from_slice(self.0.as_bytes());
        padded.resize(self.0.len() + MAX_PASSWORD_LENGTH.saturating_sub(units), 0);
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*padded))
    }

    /// Decode a wire password exactly as the service does (`CDspUserHelper::decodePassword`,
    /// then the length check of `processLogin`), for protocol >= 6.9:
    /// 1. Qt's lenient `QByteArray::fromBase64` (Qt 5): every byte outside `A-Z a-z 0-9 + /`
    ///    is skipped (padding, line breaks, stray characters, non-ASCII), the remaining 6-bit
    ///    groups are concatenated and every full 8 bits is a byte; leftover bits are dropped.
    ///    So unpadded, wrapped or dirty text decodes, and nothing is ever an error.
    /// 2. `QString(QByteArray)`: cut at the first NUL, then Qt's UTF-8 decoder: a leading
    ///    UTF-8 BOM is skipped and every byte that is not part of a valid sequence becomes one
    ///    U+FFFD.
    /// 3. A result longer than `MAX_ENCODED_PASSWORD_LENGTH` UTF-16 units is refused with
    ///    `INVALID_ARG`. (The check is on the decoded password, not on the encoded text: a
    ///    non-ASCII password legitimately encodes to more than 1368 characters.)
    ///
    /// Below protocol 6.9 the wire text is the password itself.
    pub fn decode(wire: &str, base64_password: bool) -> Result<Password, CommandError> {
        let password = if base64_password {
            let bytes = qt_from_base64(wire.as_bytes());
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            Password(qt_from_utf8(bytes.get(..end).unwrap_or_default()))
        } else {
            Password::new(wire)
        };
        let units = password.0.encode_utf16().count();
        if units > MAX_ENCODED_PASSWORD_LENGTH {
            return Err(CommandError::PasswordTooLong { len: units });
        }
        Ok(password)
    }
}

/// Qt 5's `QByteArray::fromBase64(text)` (default options): bytes outside the standard
/// alphabet are skipped wherever they are (`=` included), the rest is one stream of 6-bit
/// groups; each full 8 bits is a byte and the leftover bits at the end are dropped.
///
/// Done with the base64 crate: the alphabet bytes, without the last one when it alone is left
/// over (6 bits make no byte), decoded with any trailing bits allowed and no padding.
fn qt_from_base64(text: &[u8]) -> Zeroizing<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const QT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let mut symbols: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            .collect(),
    );
    if symbols.len() % 4 == 1 {
        symbols.pop();
    }
    // Sized once (no reallocation leaves copies behind): at most 3 bytes per 4 symbols.
    let mut out = Zeroizing::new(vec![0u8; symbols.len().div_ceil(4) * 3]);
    // Only alphabet symbols remain, in a length the decoder accepts: this cannot fail.
    let written = QT.decode_slice(&*symbols, &mut out).unwrap_or(0);
    out.truncate(written);
    out
}

/// Qt 5's UTF-8 to `QString` conversion (`QUtf8::convertToUnicode`): a leading BOM is
/// skipped; valid sequences decode as in Rust (the validity rules are RFC 3629's in both, and
/// non-characters are allowed); after an invalid lead Qt consumes only that byte, so every
/// byte of an invalid sequence becomes its own U+FFFD (Rust's lossy decoding would replace a
/// truncated sequence with a single one).
fn qt_from_utf8(bytes: &[u8]) -> Zeroizing<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut text = Zeroizing::new(String::with_capacity(bytes.len()));
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for _ in chunk.invalid() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    text
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A login password as it came over the wire (for protocol >= 6.9 the base64 of the
/// NUL-padded password, else the password itself), moved out of its request so that the
/// request can be zeroed: zeroized on drop, redacted in `Debug`. It is decoded only where the
/// service checks it ([`WirePassword::decode`]); a login that takes over a live session never
/// does.
#[derive(Default, PartialEq, Eq)]
pub struct WirePassword(Zeroizing<String>);

impl WirePassword {
    /// Moves `login_cmd_password` (the first parameter of that name; a String, as `IsValid`
    /// requires, plain or CData holding UTF-8) out of a login event into zeroizing memory; the
    /// event keeps an empty value.
    pub fn take(event: &mut Event) -> Result<WirePassword, CommandError> {
        let missing = || CommandError::MissingParam {
            package_type: cmd::USER_LOGIN,
            name: param::LOGIN_PASSWORD,
            expected: ParamType::STRING,
        };
        let value = event
            .params
            .iter_mut()
            .find(|p| p.name == param::LOGIN_PASSWORD)
            .filter(|p| p.param_type == ParamType::STRING)
            .map(|p| &mut p.value)
            .ok_or_else(missing)?;
        match value {
            ParamValue::Plain(text) => Ok(WirePassword(Zeroizing::new(std::mem::take(text)))),
            ParamValue::CData(bytes) => match String::from_utf8(std::mem::take(bytes)) {
                Ok(text) => Ok(WirePassword(Zeroizing::new(text))),
                Err(e) => {
                    drop(Zeroizing::new(e.into_bytes()));
                    Err(missing())
                }
            },
            ParamValue::List(_) | ParamValue::Binary(_) => Err(missing()),
        }
    }

    /// The password as sent.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Decoded as the service decodes it ([`Password::decode`]): only the length check can
    /// fail, with [`CommandError::PasswordTooLong`] (`PRL_ERR_INVALID_ARG`).
    pub fn decode(&self, base64_password: bool) -> Result<Password, CommandError> {
        Password::decode(&self.0, base64_password)
    }
}

impl fmt::Debug for WirePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WirePassword(<redacted>)")
    }
}
