//! The relay control messages (`prl_protocol::relay`) as JSON text, without serde_json.
//!
//! The core's `ClientMessage::to_json` / `ProxyMessage::from_json` (serde_json) cost about
//! 25 KB of gzipped WASM, a quarter of the package budget. The browser has a JSON parser
//! already, so here the client writes its two small messages by hand and reads the proxy's
//! with `JSON.parse`, into the very same core types. Tests check both directions against the
//! core's serde forms, so the wire format cannot drift from `docs/relay-protocol.md`.

use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, ResumeRequest, MAX_CONTROL_LEN, RELAY_VERSION,
};
use zeroize::Zeroizing;

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                let v = u32::from(c);
                for shift in [4u32, 0] {
                    let digit = (v >> shift) & 0xF;
                    out.push(char::from_digit(digit, 16).unwrap_or('0'));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The relay name of a security level.
pub fn level_name(level: SecurityLevel) -> &'static str {
    match level {
        SecurityLevel::Low => "low",
        SecurityLevel::Normal => "normal",
        SecurityLevel::High => "high",
    }
}

fn mode_name(mode: ConnectMode) -> &'static str {
    match mode {
        ConnectMode::Remote => "remote",
        ConnectMode::Local => "local",
    }
}

/// The JSON text of a browser message (field order as the core's serde form). Zeroized on
/// drop: it may carry a ticket or a resume token.
pub fn encode(message: &ClientMessage) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(192));
    match message {
        ClientMessage::Open(OpenRequest {
            version,
            target,
            security_level,
            timeout_ms,
            mode,
            ticket,
            restore,
        }) => {
            out.push_str("{\"type\":\"open\",\"version\":");
            out.push_str(&version.to_string());
            out.push_str(",\"target\":{\"host\":");
            push_str(&mut out, &target.host);
            out.push_str(",\"port\":");
            out.push_str(&target.port.to_string());
            out.push_str("},\"securityLevel\":");
            push_str(&mut out, level_name(*security_level));
            out.push_str(",\"timeoutMs\":");
            out.push_str(&timeout_ms.to_string());
            out.push_str(",\"mode\":");
            push_str(&mut out, mode_name(*mode));
            if let Some(ticket) = ticket {
                out.push_str(",\"ticket\":");
                push_str(&mut out, ticket.expose());
            }
            if let Some(restore) = restore {
                out.push_str(",\"restore\":");
                push_str(&mut out, restore.expose());
            }
            out.push('}');
        }
        ClientMessage::Resume(ResumeRequest {
            version,
            token,
            received,
        }) => {
            out.push_str("{\"type\":\"resume\",\"version\":");
            out.push_str(&version.to_string());
            out.push_str(",\"token\":");
            push_str(&mut out, token.expose());
            out.push_str(",\"received\":");
            out.push_str(&received.to_string());
            out.push('}');
        }
    }
    out
}

/// Why a proxy message was refused (lower-case, never echoes values: they may be secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than `MAX_CONTROL_LEN`.
    #[error("control message too long: {0} bytes, limit {MAX_CONTROL_LEN}")]
    TooLong(usize),
    /// Not JSON, or not an object of a known message.
    #[error("malformed control message: {0}")]
    Malformed(String),
    /// Another relay protocol version.
    #[error("unsupported relay protocol version {0}, expected {RELAY_VERSION}")]
    UnsupportedVersion(u32),
}

#[cfg(target_arch = "wasm32")]
mod decode {
    use js_sys::{Object, Reflect, JSON};
    use prl_protocol::relay::{
        Opened, ProxyMessage, RelayError, RelayErrorKind, Resumed, Secret, MAX_CONTROL_LEN,
        RELAY_VERSION,
    };
    use wasm_bindgen::{JsCast, JsValue};

    use super::{DecodeError, SecurityLevel};

    fn malformed(what: impl Into<String>) -> DecodeError {
        DecodeError::Malformed(what.into())
    }

    struct Fields {
        obj: JsValue,
        keys: Vec<String>,
        seen: Vec<&'static str>,
    }

    impl Fields {
        fn new(obj: JsValue) -> Result<Self, DecodeError> {
            if !obj.is_object() || js_sys::Array::is_array(&obj) {
                return Err(malformed("not a json object"));
            }
            let keys = Object::keys(obj.unchecked_ref::<Object>())
                .iter()
                .filter_map(|k| k.as_string())
                .collect();
            Ok(Fields {
                obj,
                keys,
                seen: vec!["type"],
            })
        }

        fn raw(&mut self, key: &'static str) -> JsValue {
            self.seen.push(key);
            Reflect::get(&self.obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
        }

        fn string(&mut self, key: &'static str) -> Result<String, DecodeError> {
            self.raw(key)
                .as_string()
                .ok_or_else(|| malformed(format!("field `{key}` must be a string")))
        }

        fn uint(&mut self, key: &'static str, max: f64) -> Result<f64, DecodeError> {
            match self.raw(key).as_f64() {
                Some(n) if n.fract() == 0.0 && (0.0..=max).contains(&n) => Ok(n),
                _ => Err(malformed(format!(
                    "field `{key}` must be an unsigned integer"
                ))),
            }
        }

        fn version(&mut self) -> Result<(), DecodeError> {
            let v = self.uint("version", f64::from(u32::MAX))? as u32;
            if v == RELAY_VERSION {
                Ok(())
            } else {
                Err(DecodeError::UnsupportedVersion(v))
            }
        }

        fn finish(self) -> Result<(), DecodeError> {
            match self.keys.iter().find(|k| !self.seen.contains(&k.as_str())) {
                // The key name is ours to show only if it is short and plain.
                Some(k) if k.len() <= 32 && k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                    Err(malformed(format!("unknown field `{k}`")))
                }
                Some(_) => Err(malformed("unknown field")),
                None => Ok(()),
            }
        }
    }

    fn level(name: &str) -> Result<SecurityLevel, DecodeError> {
        match name {
            "low" => Ok(SecurityLevel::Low),
            "normal" => Ok(SecurityLevel::Normal),
            "high" => Ok(SecurityLevel::High),
            _ => Err(malformed("unknown security level")),
        }
    }

    /// Parses a text message from the proxy (`JSON.parse`), as strictly as the core does.
    pub fn decode(text: &str) -> Result<ProxyMessage, DecodeError> {
        if text.len() > MAX_CONTROL_LEN {
            return Err(DecodeError::TooLong(text.len()));
        }
        let value = JSON::parse(text).map_err(|_| malformed("not json"))?;
        let mut f = Fields::new(value)?;
        let kind = f.string("type")?;
        let message = match kind.as_str() {
            "opened" => {
                f.version()?;
                ProxyMessage::Opened(Opened {
                    version: RELAY_VERSION,
                    connection_uuid: f.string("connectionUuid")?,
                    service_protocol: f.string("serviceProtocol")?,
                    service_build: f.string("serviceBuild")?,
                    security_level: level(&f.string("securityLevel")?)?,
                    cipher: f.string("cipher")?,
                    tls_version: f.string("tlsVersion")?,
                    resume_token: Secret(f.string("resumeToken")?),
                    resume_window_ms: f.uint("resumeWindowMs", f64::from(u32::MAX))? as u32,
                })
            }
            "resumed" => {
                f.version()?;
                ProxyMessage::Resumed(Resumed {
                    version: RELAY_VERSION,
                    resume_token: Secret(f.string("resumeToken")?),
                    replayed: f.uint("replayed", 9_007_199_254_740_991.0)? as u64,
                })
            }
            "error" => {
                let name = f.string("kind")?;
                let kind = RelayErrorKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == name)
                    .ok_or_else(|| malformed("unknown error kind"))?;
                let code = if f.raw("code").is_undefined() {
                    None
                } else {
                    Some(f.uint("code", f64::from(u32::MAX))? as u32)
                };
                ProxyMessage::Error(RelayError {
                    kind,
                    code,
                    message: f.string("message")?,
                })
            }
            _ => return Err(malformed("unknown message type")),
        };
        f.finish()?;
        Ok(message)
    }
}

#[cfg(target_arch = "wasm32")]
pub use decode::decode;

/// Native builds (host-side unit tests only) use the core's serde decoder.
#[cfg(not(target_arch = "wasm32"))]
pub fn decode(text: &str) -> Result<prl_protocol::relay::ProxyMessage, DecodeError> {
    prl_protocol::relay::ProxyMessage::from_json(text).map_err(|e| match e {
        prl_protocol::relay::RelayMessageError::TooLong { len } => DecodeError::TooLong(len),
        prl_protocol::relay::RelayMessageError::UnsupportedVersion(v) => {
            DecodeError::UnsupportedVersion(v)
        }
        other => DecodeError::Malformed(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::relay::{Secret, Target};

    fn open(host: &str, ticket: Option<&str>) -> ClientMessage {
        ClientMessage::Open(OpenRequest {
            version: RELAY_VERSION,
            target: Target {
                host: host.into(),
                port: 64001,
            },
            security_level: SecurityLevel::High,
            timeout_ms: u32::MAX,
            mode: ConnectMode::Local,
            ticket: ticket.map(|t| Secret(t.into())),
            restore: ticket.map(|t| Secret(format!("r{t}"))),
        })
    }

    #[test]
    fn open_matches_the_core_form_byte_for_byte() {
        for m in [
            open("127.0.0.1", Some("t0k.en")),
            open("host", None),
            open("", None),
        ] {
            assert_eq!(*encode(&m), m.to_json());
        }
    }

    #[test]
    fn resume_matches_the_core_form_byte_for_byte() {
        let m = ClientMessage::Resume(ResumeRequest {
            version: RELAY_VERSION,
            token: Secret("abc_-".into()),
            received: u64::MAX,
        });
        assert_eq!(*encode(&m), m.to_json());
    }

    #[test]
    fn every_string_round_trips_through_the_core_decoder() {
        let hostile = [
            "quote\"back\\slash",
            "ctl\u{1}\u{1f}\n\r\t",
            "unicode é ✓ 𝄞",
            "</script>",
            "\u{7f}\u{2028}",
        ];
        for host in hostile {
            let m = open(host, Some(host));
            let text = encode(&m);
            assert_eq!(ClientMessage::from_json(&text).ok(), Some(m), "{host:?}");
        }
        for c in (0u32..0x80).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            let m = open(&s, None);
            assert_eq!(ClientMessage::from_json(&encode(&m)).ok(), Some(m), "{c:?}");
        }
    }

    #[test]
    fn every_level_and_mode_has_its_relay_name() {
        for (level, name) in [
            (SecurityLevel::Low, "low"),
            (SecurityLevel::Normal, "normal"),
            (SecurityLevel::High, "high"),
        ] {
            assert_eq!(level_name(level), name);
            let mut m = open("h", None);
            if let ClientMessage::Open(o) = &mut m {
                o.security_level = level;
                o.mode = ConnectMode::Remote;
            }
            assert_eq!(*encode(&m), m.to_json());
        }
    }
}
