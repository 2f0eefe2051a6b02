//! The relay control messages (`prl_protocol::relay`) as JSON text, through the browser's own
//! JSON engine.
//!
//! The core's serde types are the one definition of the relay messages. The proxy moves them
//! through serde_json (the core's default `json` feature); the browser client turns that
//! feature off (serde_json would cost about a quarter of the package's size budget): it writes
//! the same types' JSON text with a small serde serializer of its own ([`crate::json_text`],
//! serde_json's text exactly) and reads text through the browser's `JSON.parse` (its values
//! read by [`crate::js_de`]), then applies the core's own checks (`check_control_len`,
//! `validate`). Browser tests compare both with serde_json on the same values, so the wire
//! format cannot drift from `docs/relay-protocol.md`.
//!
//! Secrets: the texts carry tickets and resume tokens. The Rust copies are zeroized on drop
//! (`Zeroizing`); the JavaScript engine's own copies (the string handed to `WebSocket.send`,
//! `JSON.parse`'s objects) are garbage-collected strings that no Rust code can wipe.

use js_sys::{Array, Object, Reflect, JSON};
use prl_protocol::relay::{
    check_control_len, ClientMessage, ProxyMessage, RelayMessageError, MAX_CONTROL_LEN,
};
use wasm_bindgen::{JsCast, JsValue};
use zeroize::Zeroizing;

use crate::js_de::from_json_value;
use crate::json_text::Text;

/// Why a control message could not be encoded or decoded. Messages never echo values (they
/// may be secrets).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Too long, or another protocol version (the core's checks).
    #[error(transparent)]
    Relay(#[from] RelayMessageError),
    /// `JSON.parse` refused the text.
    #[error("malformed control message: not json")]
    Syntax,
    /// Valid JSON, but not a relay message of a known type and shape.
    #[error("malformed control message: not a known relay message of this version")]
    Shape,
    /// A value outside the shapes JSON text is written for: a count at or above 2^53 (a
    /// JavaScript number would round it).
    #[error("cannot encode the control message")]
    Encode,
}

impl CodecError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::Relay(e) => e.kind(),
            CodecError::Syntax | CodecError::Shape => "malformed",
            CodecError::Encode => "encode",
        }
    }
}

/// The JSON text of a browser message (the core's serde form, field for field). Zeroized on
/// drop: it may carry a ticket or a resume token.
pub fn encode(message: &ClientMessage) -> Result<Zeroizing<String>, CodecError> {
    message.validate()?;
    let (text, len) = Text::write(message, MAX_CONTROL_LEN).map_err(|_| CodecError::Encode)?;
    check_control_len(len)?;
    Ok(text)
}

/// The `type` tag of each proxy message: the core's `#[serde(tag = "type", rename_all =
/// "snake_case")]` names, checked against its serde_json form by the browser tests.
pub fn proxy_tag(message: &ProxyMessage) -> &'static str {
    match message {
        ProxyMessage::Opened(_) => OPENED,
        ProxyMessage::Resumed(_) => RESUMED,
        ProxyMessage::Error(_) => ERROR,
    }
}

const OPENED: &str = "opened";
const RESUMED: &str = "resumed";
const ERROR: &str = "error";

/// Parses a text message from the proxy as strictly as the core does (unknown fields,
/// unknown kinds and out-of-range numbers are refused; then the core's `validate`).
///
/// The tag is read first and each variant's struct is deserialized on its own: serde's
/// generic path for internally tagged enums buffers the whole object first and costs 5 KB of
/// the gzipped package.
pub fn decode(text: &str) -> Result<ProxyMessage, CodecError> {
    check_control_len(text.len())?;
    let value = JSON::parse(text).map_err(|_| CodecError::Syntax)?;
    let object = value
        .dyn_ref::<Object>()
        .filter(|_| !Array::is_array(&value))
        .ok_or(CodecError::Shape)?;
    let key = JsValue::from_str("type");
    let tag = Reflect::get(object, &key)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or(CodecError::Shape)?;
    Reflect::delete_property(object, &key).map_err(|_| CodecError::Shape)?;
    let shape = |_| CodecError::Shape;
    let message = match tag.as_str() {
        OPENED => ProxyMessage::Opened(from_json_value(value).map_err(shape)?),
        RESUMED => ProxyMessage::Resumed(from_json_value(value).map_err(shape)?),
        ERROR => ProxyMessage::Error(from_json_value(value).map_err(shape)?),
        _ => return Err(CodecError::Shape),
    };
    message.validate()?;
    Ok(message)
}
