//! Binary form of a `CVmEvent`: `CVmEvent::Serialize` into a `QDataStream` (Qt_4_0, big-endian).
//!
//! ```text
//! event := u32 EventType, u32 IssuerType, str IssuerId, u32 Level, u32 Code, u32 NeedResponse,
//!          str Source, str InitialRequestId, i32 nParams, param * nParams
//! param := u32 class (0 base, 1 list, 2 binary), u32 Type, str value, str name, str cdata,
//!          [class 1: i32 n, str * n] [class 2: i32 len, len raw bytes]
//! str   := u32 byte length, that many UTF-8 bytes (CPrlStringDataSerializer: QString::toUtf8(),
//!          no terminator, no 0xFFFFFFFF null marker; an empty or null QString is length 0)
//! ```
//! There is no stream header and no `EventId` (the item id, attribute order and `EventId` of
//! [`Event`] are XML-only).
//!
//! Reading mirrors the real deserialiser where it is well defined: a string is read up to its
//! first NUL (`QString::fromUtf8(QByteArray)` in Qt 5 stops there), and so is the `cdata` string
//! (`getCdata()` reads the data as a C string). Where the real reader logs and carries on with a
//! desynchronised stream we return typed errors instead: an unknown parameter class
//! ([`EventError::BadParamClass`]), input that ends early ([`EventError::Truncated`]), a negative
//! count or length ([`EventError::NegativeLength`]; Qt would treat it as 0) and invalid UTF-8
//! ([`EventError::InvalidUtf8`]; Qt would substitute U+FFFD). Lengths are checked against the
//! bytes actually present before anything is allocated.

use super::{Event, EventError, EventParam, ParamType, ParamValue};
use crate::reader::{Reader, Truncated};

const CLASS_BASE: u32 = 0;
const CLASS_LIST: u32 = 1;
const CLASS_BINARY: u32 = 2;

// ------------------------------------------------------------------------------------------------
// Writer

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A container size: C++ `int` written as `qint32`. (Nothing near 2 GiB fits in a package,
/// whose limit is 1 GiB.)
fn put_count(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

/// What `getCdata()` hands the serialiser: the data as a C string, decoded as UTF-8 (invalid
/// sequences replaced), re-encoded as UTF-8.
fn cdata_wire(data: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(data.get(..end).unwrap_or_default())
}

pub(super) fn encode_into(e: &Event, out: &mut Vec<u8>) {
    put_u32(out, e.event_type);
    put_u32(out, e.issuer_type);
    put_str(out, e.issuer_id.as_bytes());
    put_u32(out, e.level);
    put_u32(out, e.code);
    put_u32(out, e.need_response);
    put_str(out, e.source.as_bytes());
    put_str(out, e.initial_request_id.as_bytes());
    put_count(out, e.params.len());
    for p in &e.params {
        let class = match p.value {
            ParamValue::Plain(_) | ParamValue::CData(_) => CLASS_BASE,
            ParamValue::List(_) => CLASS_LIST,
            ParamValue::Binary(_) => CLASS_BINARY,
        };
        put_u32(out, class);
        put_u32(out, p.param_type.0);
        match &p.value {
            ParamValue::Plain(s) => put_str(out, s.as_bytes()),
            _ => put_str(out, b""),
        }
        put_str(out, p.name.as_bytes());
        match &p.value {
            ParamValue::CData(b) => put_str(out, cdata_wire(b).as_bytes()),
            _ => put_str(out, b""),
        }
        match &p.value {
            ParamValue::List(items) => {
                put_count(out, items.len());
                for item in items {
                    put_str(out, item.as_bytes());
                }
            }
            ParamValue::Binary(bytes) => {
                put_count(out, bytes.len());
                out.extend_from_slice(bytes);
            }
            ParamValue::Plain(_) | ParamValue::CData(_) => {}
        }
    }
}

/// Bytes `encode_into` will append.
pub(super) fn encoded_len(e: &Event) -> usize {
    let params: usize = e
        .params
        .iter()
        .map(|p| {
            20 + p.name.len()
                + match &p.value {
                    ParamValue::Plain(s) => s.len(),
                    ParamValue::CData(b) => b.len(),
                    ParamValue::List(v) => 4 + v.iter().map(|s| 4 + s.len()).sum::<usize>(),
                    ParamValue::Binary(b) => 4 + b.len(),
                }
        })
        .sum();
    36 + e.issuer_id.len() + e.source.len() + e.initial_request_id.len() + params
}

// ------------------------------------------------------------------------------------------------
// Reader

impl From<Truncated> for EventError {
    fn from(e: Truncated) -> Self {
        EventError::Truncated {
            what: e.what,
            needed: e.needed,
            available: e.available,
        }
    }
}

/// A `qint32` count or length; negative is an error.
fn count(r: &mut Reader<'_>, what: &'static str) -> Result<usize, EventError> {
    let v = r.i32_be(what)?;
    usize::try_from(v).map_err(|_| EventError::NegativeLength {
        field: what,
        value: v,
    })
}

/// `CPrlStringDataSerializer::Deserialize` + `QString::fromUtf8(QByteArray)` (stops at NUL).
fn string<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, EventError> {
    let len = usize::try_from(r.u32_be(what)?).unwrap_or(usize::MAX);
    let bytes = r.take(len, what)?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = bytes.get(..end).unwrap_or_default();
    std::str::from_utf8(bytes).map_err(|_| EventError::InvalidUtf8 { field: what })
}

pub(super) fn decode(buf: &[u8]) -> Result<(Event, usize), EventError> {
    let mut r = Reader::new(buf);
    let mut e = Event {
        event_type: r.u32_be("event type")?,
        issuer_type: r.u32_be("issuer type")?,
        issuer_id: string(&mut r, "issuer id")?.to_owned(),
        level: r.u32_be("event level")?,
        code: r.u32_be("event code")?,
        need_response: r.u32_be("need response")?,
        source: string(&mut r, "event source")?.to_owned(),
        initial_request_id: string(&mut r, "initial request id")?.to_owned(),
        ..Event::default()
    };
    let n = count(&mut r, "parameter count")?;
    for _ in 0..n {
        let class = r.u32_be("parameter class")?;
        if class > CLASS_BINARY {
            return Err(EventError::BadParamClass { class });
        }
        let param_type = ParamType(r.u32_be("parameter type")?);
        let value = string(&mut r, "parameter value")?;
        let name = string(&mut r, "parameter name")?.to_owned();
        let cdata = string(&mut r, "parameter cdata")?;
        let value = match class {
            CLASS_LIST => {
                let n = count(&mut r, "list item count")?;
                // Each item takes at least 4 bytes: never reserve more than the input can hold.
                let mut items = Vec::with_capacity(n.min(r.remaining() / 4));
                for _ in 0..n {
                    items.push(string(&mut r, "list item")?.to_owned());
                }
                ParamValue::List(items)
            }
            CLASS_BINARY => {
                let len = count(&mut r, "binary parameter length")?;
                ParamValue::Binary(r.take(len, "binary parameter data")?.to_vec())
            }
            _ => {
                let use_cdata = if cdata.is_empty() {
                    value.is_empty() && param_type.carries_data()
                } else {
                    value.is_empty() || param_type.carries_data()
                };
                if use_cdata {
                    ParamValue::CData(cdata.as_bytes().to_vec())
                } else {
                    ParamValue::Plain(value.to_owned())
                }
            }
        };
        e.params.push(EventParam {
            name,
            param_type,
            value,
        });
    }
    Ok((e, r.position()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn str_bytes(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    /// An event whose issuer id is the given raw string and that has one base parameter.
    fn raw_event(issuer: &[u8], param_type: u32, value: &[u8], cdata: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&100_000u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend(str_bytes(issuer));
        v.extend_from_slice(&[0; 12]);
        v.extend(str_bytes(b""));
        v.extend(str_bytes(b""));
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&CLASS_BASE.to_be_bytes());
        v.extend_from_slice(&param_type.to_be_bytes());
        v.extend(str_bytes(value));
        v.extend(str_bytes(b"n"));
        v.extend(str_bytes(cdata));
        v
    }

    #[test]
    fn strings_stop_at_nul_like_qstring_from_utf8() {
        let bin = raw_event(b"ab\0cd", 1, b"v\0w", b"");
        let (e, used) = decode(&bin).unwrap();
        assert_eq!(used, bin.len());
        assert_eq!(e.issuer_id, "ab");
        assert_eq!(e.issuer_type, 1);
        assert_eq!(e.string("n"), Some("v"));
    }

    #[test]
    fn base_param_value_or_cdata() {
        let cases: [(u32, &[u8], &[u8], ParamValue); 6] = [
            (1, b"v", b"", ParamValue::Plain("v".into())),
            (1, b"", b"", ParamValue::Plain(String::new())),
            (3, b"", b"", ParamValue::CData(vec![])),
            (3, b"", b"c", ParamValue::CData(b"c".to_vec())),
            (1, b"", b"c", ParamValue::CData(b"c".to_vec())),
            (3, b"v", b"", ParamValue::Plain("v".into())),
        ];
        for (t, value, cdata, expected) in cases {
            let (e, _) = decode(&raw_event(b"", t, value, cdata)).unwrap();
            assert_eq!(e.params[0].value, expected, "{t} {value:?} {cdata:?}");
            // And each of them is written back to the same bytes.
            assert_eq!(e.to_binary(), raw_event(b"", t, value, cdata));
        }
        // Both set: the type decides.
        let (e, _) = decode(&raw_event(b"", 3, b"v", b"c")).unwrap();
        assert_eq!(e.params[0].value, ParamValue::CData(b"c".to_vec()));
        let (e, _) = decode(&raw_event(b"", 1, b"v", b"c")).unwrap();
        assert_eq!(e.params[0].value, ParamValue::Plain("v".into()));
    }

    #[test]
    fn cdata_is_sent_as_a_c_string() {
        let mut e = Event::default();
        e.add_cdata("c", b"ab\xffc\0tail");
        let (back, _) = decode(&e.to_binary()).unwrap();
        assert_eq!(back.cdata("c"), Some("ab\u{fffd}c".as_bytes()));
    }

    #[test]
    fn negative_list_and_binary_lengths() {
        for (class, field) in [
            (CLASS_LIST, "list item count"),
            (CLASS_BINARY, "binary parameter length"),
        ] {
            let mut bin = raw_event(b"", 1, b"", b"");
            let class_at = 4 + 4 + 4 + 12 + 4 + 4 + 4;
            bin[class_at..class_at + 4].copy_from_slice(&class.to_be_bytes());
            bin.extend_from_slice(&(-5i32).to_be_bytes());
            assert_eq!(
                decode(&bin).unwrap_err(),
                EventError::NegativeLength { field, value: -5 }
            );
        }
    }

    #[test]
    fn encoded_len_is_exact() {
        let mut e = Event {
            issuer_id: "abc".into(),
            ..Event::default()
        };
        e.add_string("s", "v")
            .add_list("l", ParamType::STRING, ["x", "yz"])
            .add_cdata("c", "data")
            .add_binary("b", vec![0; 7]);
        assert_eq!(encoded_len(&e), e.to_binary().len());
    }
}
