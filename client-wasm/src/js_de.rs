//! A serde `Deserializer` over the values `JSON.parse` returns, with an error that carries no
//! message (also the error of [`crate::json_text`]'s serializer).
//!
//! Why not `serde_wasm_bindgen::from_value`: its errors describe the offending value
//! ("invalid type: floating point `1.5`, expected u32"), which links Rust's float formatting
//! and serde's `Unexpected` printing into the bundle: 16 KB of the gzipped package (119.4 KB
//! -> 103.1 KB when measured), for messages the relay client must not show anyway (they can
//! echo secrets). Serialisation is [`crate::json_text`]'s.
//!
//! The accepted shapes are exactly those of JSON text: null, booleans, numbers, strings, arrays
//! (refused here: no relay message has one) and plain objects. Numbers are integers when they
//! are safe integers (|n| < 2^53), else floats, so `1.5` or `2^60` never pass as a `u32`/`u64`.

use std::fmt;

use js_sys::{Array, Number, Object};
use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use wasm_bindgen::{JsCast, JsValue};

/// "Not the expected shape": deliberately without detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeError;

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value does not have the expected shape")
    }
}

impl std::error::Error for ShapeError {}

impl serde::ser::Error for ShapeError {
    // As for deserializing: the message is dropped unformatted.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        ShapeError
    }
}

impl de::Error for ShapeError {
    // The message is dropped unformatted: no formatting code is linked for it.
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        ShapeError
    }
}

/// Deserializes a `T` from a value `JSON.parse` returned.
pub fn from_json_value<T: de::DeserializeOwned>(value: JsValue) -> Result<T, ShapeError> {
    T::deserialize(JsonValue(value))
}

/// One parsed JSON value.
struct JsonValue(JsValue);

/// The entries of a plain object, in `Object.entries` order (insertion order).
struct Entries {
    entries: std::vec::IntoIter<JsValue>,
    value: Option<JsValue>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = ShapeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ShapeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let pair: Array = entry.unchecked_into();
        self.value = Some(pair.get(1));
        seed.deserialize(JsonValue(pair.get(0))).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ShapeError> {
        let value = self.value.take().ok_or(ShapeError)?;
        seed.deserialize(JsonValue(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl JsonValue {
    /// The value as a non-negative safe integer (what an unsigned field accepts).
    fn unsigned(&self) -> Result<u64, ShapeError> {
        match self.0.as_f64() {
            Some(n) if n >= 0.0 && Number::is_safe_integer(&self.0) => Ok(n as u64),
            _ => Err(ShapeError),
        }
    }

    /// The entries of a plain object.
    fn entries(&self) -> Result<Entries, ShapeError> {
        if self.0.is_object() && !Array::is_array(&self.0) {
            Ok(Entries {
                entries: Object::entries(self.0.unchecked_ref()).to_vec().into_iter(),
                value: None,
            })
        } else {
            Err(ShapeError)
        }
    }
}

/// The typed entry points read only the JSON type the field's type accepts: each visitor then
/// carries just that branch (the generic `deserialize_any` per visitor type cost 2 KB of the
/// gzipped package). The result is the same as through `deserialize_any`: a value of another
/// JSON type is refused.
impl<'de> de::Deserializer<'de> for JsonValue {
    type Error = ShapeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        let v = &self.0;
        if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if let Some(n) = v.as_f64() {
            if !Number::is_safe_integer(v) {
                visitor.visit_f64(n)
            } else if n >= 0.0 {
                visitor.visit_u64(n as u64)
            } else {
                visitor.visit_i64(n as i64)
            }
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else if v.is_null() {
            visitor.visit_unit()
        } else {
            visitor.visit_map(self.entries()?)
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_bool(self.0.as_bool().ok_or(ShapeError)?)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_u64(self.unsigned()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_u64(self.unsigned()?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_u64(self.unsigned()?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_u64(self.unsigned()?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_string(self.0.as_string().ok_or(ShapeError)?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        visitor.visit_map(self.entries()?)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        if self.0.is_null_or_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    /// Unit variants only (the relay's enums are strings).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        let name = self.0.as_string().ok_or(ShapeError)?;
        visitor.visit_enum(IntoDeserializer::<ShapeError>::into_deserializer(name))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct ignored_any
    }
}
