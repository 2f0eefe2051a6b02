//! A serde `Serializer` that writes the JSON text of the relay's browser messages, character
//! for character as serde_json writes it (compact; `"`, `\`, and control characters escaped,
//! `\b \t \n \f \r` in short form and the rest as lower-case `\u00XX`; nothing else escaped).
//!
//! Why not serde-wasm-bindgen and `JSON.stringify`: building a JavaScript object only to turn
//! it into text costs 3 KB of the gzipped package, and the messages are a few flat shapes. The
//! accepted shapes are those of the relay messages: structs, strings, booleans, unsigned
//! integers a JavaScript number holds exactly (below 2^53, as the proxy's JSON reader in a
//! browser would need them), unit variants (as strings) and options. Anything else is refused
//! with [`ShapeError`].
//!
//! Secrets: the text is written into one buffer of the relay's size limit, never grown, so no
//! copy of a ticket or token is left behind in a freed allocation; the caller zeroizes it.

use serde::ser::{self, Impossible, Serialize};
use zeroize::Zeroizing;

use crate::js_de::ShapeError;

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// JSON text being written: at most `out`'s capacity is kept, `len` counts it all.
#[derive(Debug)]
pub struct Text {
    out: Zeroizing<String>,
    len: usize,
}

impl Text {
    /// Writes `value` into a buffer of `capacity` bytes. Returns the text and the full length:
    /// when that exceeds `capacity`, the text is cut short (and the caller refuses it).
    pub fn write<T: Serialize + ?Sized>(
        value: &T,
        capacity: usize,
    ) -> Result<(Zeroizing<String>, usize), ShapeError> {
        let mut text = Text {
            out: Zeroizing::new(String::with_capacity(capacity)),
            len: 0,
        };
        value.serialize(&mut text)?;
        Ok((text.out, text.len))
    }

    fn push(&mut self, s: &str) {
        self.len += s.len();
        if self.len <= self.out.capacity() {
            self.out.push_str(s);
        }
    }

    fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push("\"");
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.push(&s[start..i]);
            if short.is_empty() {
                let code = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ];
                self.push(std::str::from_utf8(&code).unwrap_or_default());
            } else {
                self.push(short);
            }
            start = i + 1;
        }
        self.push(&s[start..]);
        self.push("\"");
    }

    fn uint(&mut self, n: u64) -> Result<(), ShapeError> {
        if n > MAX_SAFE_INTEGER {
            return Err(ShapeError);
        }
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            // A digit: `rest % 10` is below 10.
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        Ok(())
    }
}

/// The fields of a struct being written.
#[derive(Debug)]
pub struct Fields<'a> {
    text: &'a mut Text,
    first: bool,
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = ShapeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ShapeError> {
        if !self.first {
            self.text.push(",");
        }
        self.first = false;
        self.text.string(key);
        self.text.push(":");
        value.serialize(&mut *self.text)
    }

    fn end(self) -> Result<(), ShapeError> {
        self.text.push("}");
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Text {
    type Ok = ();
    type Error = ShapeError;
    type SerializeSeq = Impossible<(), ShapeError>;
    type SerializeTuple = Impossible<(), ShapeError>;
    type SerializeTupleStruct = Impossible<(), ShapeError>;
    type SerializeTupleVariant = Impossible<(), ShapeError>;
    type SerializeMap = Impossible<(), ShapeError>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), ShapeError>;

    fn serialize_bool(self, v: bool) -> Result<(), ShapeError> {
        self.push(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, _: i8) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_i16(self, _: i16) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_i32(self, _: i32) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_i64(self, _: i64) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_u8(self, v: u8) -> Result<(), ShapeError> {
        self.uint(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), ShapeError> {
        self.uint(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), ShapeError> {
        self.uint(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), ShapeError> {
        self.uint(v)
    }

    fn serialize_f32(self, _: f32) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_f64(self, _: f64) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_char(self, v: char) -> Result<(), ShapeError> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), ShapeError> {
        self.string(v);
        Ok(())
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_none(self) -> Result<(), ShapeError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), ShapeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), ShapeError> {
        self.push("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), ShapeError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), ShapeError> {
        self.string(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), ShapeError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), ShapeError> {
        Err(ShapeError)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ShapeError> {
        Err(ShapeError)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ShapeError> {
        Err(ShapeError)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, ShapeError> {
        Err(ShapeError)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ShapeError> {
        Err(ShapeError)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ShapeError> {
        Err(ShapeError)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, ShapeError> {
        self.push("{");
        Ok(Fields {
            text: self,
            first: true,
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ShapeError> {
        Err(ShapeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<T: Serialize>(value: &T) -> Result<String, ShapeError> {
        Text::write(value, 1024).map(|(t, _)| t.to_string())
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample<'a> {
        name: &'a str,
        count: u64,
        flag: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        absent: Option<u32>,
        present: Option<u8>,
    }

    #[test]
    fn structs_are_compact_and_strings_escaped_as_serde_json_does() {
        let s = Sample {
            name: "q\"b\\s\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é\u{2028}",
            count: MAX_SAFE_INTEGER,
            flag: true,
            absent: None,
            present: Some(7),
        };
        assert_eq!(
            text(&s).as_deref(),
            Ok(
                "{\"name\":\"q\\\"b\\\\s\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f} é\u{2028}\",\
                \"count\":9007199254740991,\"flag\":true,\"present\":7}"
            )
        );
        assert_eq!(text(&0u32).as_deref(), Ok("0"));
    }

    #[test]
    fn integers_javascript_cannot_hold_and_other_shapes_are_refused() {
        assert_eq!(text(&(MAX_SAFE_INTEGER + 1)), Err(ShapeError));
        assert_eq!(text(&-1i32), Err(ShapeError));
        assert_eq!(text(&1.5f64), Err(ShapeError));
        assert_eq!(text(&vec![1u8]), Err(ShapeError));
    }

    #[test]
    fn text_past_the_capacity_is_counted_not_kept() {
        let (kept, len) = Text::write("0123456789", 4).unwrap_or_default();
        assert_eq!(len, 12);
        assert!(kept.len() <= 4, "{}", kept.as_str());
    }
}
