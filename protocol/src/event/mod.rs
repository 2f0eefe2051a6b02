//! `CVmEvent`: the document every dispatcher command, reply and event carries, and its two
//! serialisations.
//!
//! Mirrors libprlcommon `Libraries/Messaging/CVmEvent*.cpp`, `CVmEventParameter*.cpp`,
//! `CVmBinaryEventParameter.cpp`, `Libraries/PrlDataSerializer/*` and the XML writer
//! `CBaseNode::toString()` (= `QDomDocument::save(stream, 1)` without an `<?xml?>` prolog).
//!
//! * XML ([`Event::to_xml`], [`Event::from_xml`]): buffer 0 of command packages (2039, 2042, ...),
//!   `DspWsResponse` (5001) and `DspVmEvent` (3003). Details in the `xml` submodule docs below.
//! * Binary ([`Event::to_binary`], [`Event::decode_binary`]): big-endian `QDataStream` body of
//!   `DspWsBinaryResponse` (5003, two events back to back), 3008 and 3009.
//!
//! # Model
//!
//! A real `CVmEventParameter` holds a value string, a list, a `QByteArray` ("data"/"cdata") and,
//! for the binary subclass, raw bytes. In practice exactly one of them is used per parameter, which
//! is what [`ParamValue`] expresses:
//!
//! | [`ParamValue`] | real class | XML | binary (`class`, `value`, `cdata`, tail) |
//! |---|---|---|---|
//! | `Plain(s)` | `CVmEventParameter` | `<Value>s</Value>` | `0`, `s`, `""` |
//! | `List(v)` | `CVmEventParameterList` | `<IsList>1</IsList>` + `<Value dyn_lists="ListItem"><ListItem>..` | `1`, `""`, `""`, `i32 n` + n strings |
//! | `CData(b)` | `CVmEventParameter(PVE::CData, ..)` | `<Value></Value>` + `<Data>base64(b)</Data>` | `0`, `""`, `b` |
//! | `Binary(b)` | `CVmBinaryEventParameter` | `<Value></Value>` only: **the bytes are dropped** | `2`, `""`, `""`, `i32 len` + bytes |
//!
//! Like the real writer, XML carries `<Data>` only for the types `CData` (3) and
//! `VmConfiguration` (7): a `CData` value under another type is written without its bytes, and a
//! `Plain` value under type 3/7 gets an empty `<Data></Data>`. `CVmBinaryEventParameter` has no XML
//! form of its own (it inherits the base writer), so a `Binary` parameter is written to XML as a
//! plain parameter with an empty value; binary parameters only survive the binary serialisation.
//!
//! Reading maps back as follows. XML: `IsList` non-zero gives `List`; else type 3/7 gives `CData`
//! (unless `<Data>` is empty and `<Value>` is not, then `Plain`); else `Plain`. Binary: class 1 is
//! `List`, class 2 is `Binary`; class 0 is `CData` when the cdata string is non-empty (and the value
//! empty or the type 3/7) or when both are empty and the type is 3/7, else `Plain`. So `Plain("")`
//! under type 3/7 reads back as `CData(vec![])`; every other value round-trips.
//!
//! The real `CVmEvent` constructor fills `EventIssuerId` and `EventInitialRequestId` with fresh
//! random `{uuid}`s. This crate has no random source: [`Event::default`] leaves them empty (the
//! accepted 5001 capture has them empty too); use [`Event::with_ids`] to set them like the SDK.

mod binary;
pub(crate) mod xml;

use std::fmt;

use uuid::Uuid;

/// `PET_VM_INF_UNINITIALIZED_EVENT_CODE`: the `EventType` of a default-constructed `CVmEvent`,
/// used by every command and reply payload.
pub const UNINITIALIZED_EVENT_TYPE: u32 = 100_000;

/// `PVE::ParamFieldDataType`, the `<Type>` of a parameter. Unknown values are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ParamType(pub u32);

impl ParamType {
    /// `PVE::UnsignedInt`
    pub const UNSIGNED_INT: Self = Self(0);
    /// `PVE::String`
    pub const STRING: Self = Self(1);
    /// `PVE::Integer`
    pub const INTEGER: Self = Self(2);
    /// `PVE::CData`: the payload travels in `<Data>` (base64) / the binary `cdata` string.
    pub const CDATA: Self = Self(3);
    /// `PVE::Text`
    pub const TEXT: Self = Self(4);
    /// `PVE::MessageShowNextTime`
    pub const MESSAGE_SHOW_NEXT_TIME: Self = Self(5);
    /// `PVE::Boolean` ("0"/"1")
    pub const BOOLEAN: Self = Self(6);
    /// `PVE::VmConfiguration`: like `CDATA`, written with a `<Data>` element.
    pub const VM_CONFIGURATION: Self = Self(7);
    /// `PVE::VmLicense`
    pub const VM_LICENSE: Self = Self(8);
    /// `PVE::Uuid`
    pub const UUID: Self = Self(9);
    /// `PVE::VmReturnCode`
    pub const VM_RETURN_CODE: Self = Self(10);
    /// `PVE::VmRuntimeState`
    pub const VM_RUNTIME_STATE: Self = Self(11);
    /// `PVE::VmSmartKernelState`
    pub const VM_SMART_KERNEL_STATE: Self = Self(12);
    /// `PVE::VmGuestToolActiveState`
    pub const VM_GUEST_TOOL_ACTIVE_STATE: Self = Self(13);
    /// `PVE::UserResponseOnQuestion`
    pub const USER_RESPONSE_ON_QUESTION: Self = Self(14);
    /// `PVE::VmDeviceStateData`
    pub const VM_DEVICE_STATE_DATA: Self = Self(15);
    /// `PVE::Int64`
    pub const INT64: Self = Self(16);
    /// `PVE::UInt64`
    pub const UINT64: Self = Self(17);
    /// `PVE::DateTime`
    pub const DATE_TIME: Self = Self(18);
    /// `PVE::Date`
    pub const DATE: Self = Self(19);
    /// `PVE::Time`
    pub const TIME: Self = Self(20);

    /// The `PVE::` name of a known type.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 21] = [
            "UnsignedInt",
            "String",
            "Integer",
            "CData",
            "Text",
            "MessageShowNextTime",
            "Boolean",
            "VmConfiguration",
            "VmLicense",
            "Uuid",
            "VmReturnCode",
            "VmRuntimeState",
            "VmSmartKernelState",
            "VmGuestToolActiveState",
            "UserResponseOnQuestion",
            "VmDeviceStateData",
            "Int64",
            "UInt64",
            "DateTime",
            "Date",
            "Time",
        ];
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
    }

    /// Whether the XML writer emits a `<Data>` element for this type (`CData`, `VmConfiguration`).
    pub fn carries_data(self) -> bool {
        self == Self::CDATA || self == Self::VM_CONFIGURATION
    }
}

impl fmt::Debug for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "ParamType({})", self.0),
        }
    }
}

impl From<u32> for ParamType {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

impl From<ParamType> for u32 {
    fn from(t: ParamType) -> u32 {
        t.0
    }
}

/// What a parameter carries. See the module docs for how each maps to XML and binary.
#[derive(Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A plain value string (`<Value>` / the binary `value` string).
    Plain(String),
    /// A list of strings (`CVmEventParameterList`).
    List(Vec<String>),
    /// Bytes of a `CData` parameter (base64 `<Data>` in XML, the `cdata` string in binary).
    /// The binary writer sends them as a C string: up to the first NUL, invalid UTF-8 replaced.
    CData(Vec<u8>),
    /// Raw bytes of a `CVmBinaryEventParameter`; binary serialisation only.
    Binary(Vec<u8>),
}

/// Prints sizes only: a bare value does not know whether it is a secret.
impl fmt::Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(s) => write!(f, "Plain(<{} bytes>)", s.len()),
            Self::List(v) => write!(f, "List(<{} items>)", v.len()),
            Self::CData(b) => write!(f, "CData(<{} bytes>)", b.len()),
            Self::Binary(b) => write!(f, "Binary(<{} bytes>)", b.len()),
        }
    }
}

impl Default for ParamValue {
    fn default() -> Self {
        Self::Plain(String::new())
    }
}

/// One `<EventParameter>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EventParam {
    /// `<Name>`.
    pub name: String,
    /// `<Type>`.
    pub param_type: ParamType,
    /// The payload.
    pub value: ParamValue,
}

impl EventParam {
    /// A parameter with a plain value string.
    pub fn plain(name: impl Into<String>, param_type: ParamType, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            param_type,
            value: ParamValue::Plain(value.into()),
        }
    }

    /// A `CData` parameter (type 3), as `CVmEventParameter(PVE::CData, data, name)` builds it.
    pub fn cdata(name: impl Into<String>, data: impl AsRef<[u8]>) -> Self {
        Self {
            name: name.into(),
            param_type: ParamType::CDATA,
            value: ParamValue::CData(data.as_ref().to_vec()),
        }
    }

    /// A list parameter (`CVmEventParameterList`).
    pub fn list<I, S>(name: impl Into<String>, param_type: ParamType, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            param_type,
            value: ParamValue::List(items.into_iter().map(Into::into).collect()),
        }
    }

    /// A binary parameter: `CVmBinaryEventParameter(name)` has type `UnsignedInt`.
    pub fn binary(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            param_type: ParamType::UNSIGNED_INT,
            value: ParamValue::Binary(bytes.into()),
        }
    }

    /// The textual payload: a plain value, or `CData` bytes that are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            ParamValue::Plain(s) => Some(s),
            ParamValue::CData(b) => std::str::from_utf8(b).ok(),
            ParamValue::List(_) | ParamValue::Binary(_) => None,
        }
    }

    /// Whether the parameter's name marks a secret (password, session id, ticket, token, key),
    /// whose value `Debug` never prints.
    pub fn is_secret(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        [
            "password",
            "session_uuid",
            "ticket",
            "token",
            "secret",
            "private_key",
        ]
        .iter()
        .any(|s| name.contains(s))
    }
}

impl fmt::Debug for EventParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        let mut d = f.debug_struct("EventParam");
        d.field("name", &self.name)
            .field("param_type", &self.param_type);
        if self.is_secret() {
            d.field("value", &Redacted);
        } else {
            match &self.value {
                ParamValue::Plain(s) => d.field("value", s),
                ParamValue::List(v) => d.field("value", v),
                ParamValue::CData(_) | ParamValue::Binary(_) => d.field("value", &self.value),
            };
        }
        d.finish()
    }
}

/// Order of the two attributes (`dyn_lists`, `id`) on `<ParallelsEvent>` and `<EventParameter>`.
///
/// QDom stores attributes in a `QHash` whose seed is random per process, so a real writer emits
/// either order (consistently within one document). The real SDK client in the captures wrote
/// `dyn_lists` first; [`Event::from_xml`] records the order it saw so that re-serialising a parsed
/// document reproduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AttrOrder {
    /// `<ParallelsEvent dyn_lists="" id="-1">` (the real client's captured output).
    #[default]
    DynListsFirst,
    /// `<ParallelsEvent id="-1" dyn_lists="">`.
    IdFirst,
}

/// A `CVmEvent`.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// `EventType` (`PRL_EVENT_TYPE`); XML prints it as a signed 32-bit number.
    pub event_type: u32,
    /// `EventLevel` (`PVE::VmEventLevel`).
    pub level: u32,
    /// `EventCode`: the `PRL_RESULT` bits (e.g. `0x80000330`); XML prints it signed (`-2147482832`).
    pub code: u32,
    /// `EventNeedResponse` (`PVE::VmEventRespOption`).
    pub need_response: u32,
    /// `EventIssuerType` (`PRL_EVENT_ISSUER_TYPE`: 0 = VM, 1 = dispatcher).
    pub issuer_type: u32,
    /// `EventIssuerId`.
    pub issuer_id: String,
    /// `EventSource`.
    pub source: String,
    /// `EventInitialRequestId`.
    pub initial_request_id: String,
    /// `EventParameters`, in order; names may repeat.
    pub params: Vec<EventParam>,
    /// XML only: the root element's `id` attribute (the item id; -1 for a new event).
    pub item_id: i32,
    /// XML only: `<EventId>` (the binary form does not carry it; a 3008 event's id is the
    /// package's `numericId`).
    pub event_id: u64,
    /// XML only: attribute order of the writer (see [`AttrOrder`]).
    pub attr_order: AttrOrder,
}

impl Default for Event {
    /// The fields of a fresh `CVmEvent`, except that the two ids are left empty (see module docs).
    fn default() -> Self {
        Self {
            event_type: UNINITIALIZED_EVENT_TYPE,
            level: 0,
            code: 0,
            need_response: 0,
            issuer_type: 0,
            issuer_id: String::new(),
            source: String::new(),
            initial_request_id: String::new(),
            params: Vec::new(),
            item_id: -1,
            event_id: 0,
            attr_order: AttrOrder::DynListsFirst,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_type", &self.event_type)
            .field("level", &self.level)
            .field("code", &format_args!("{:#x}", self.code))
            .field("need_response", &self.need_response)
            .field("issuer_type", &self.issuer_type)
            .field("issuer_id", &self.issuer_id)
            .field("source", &self.source)
            .field("initial_request_id", &self.initial_request_id)
            .field("params", &self.params)
            .field("item_id", &self.item_id)
            .field("event_id", &self.event_id)
            .field("attr_order", &self.attr_order)
            .finish()
    }
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, the way `Uuid::toString()` prints ids in events.
pub fn braced_uuid(uuid: &Uuid) -> String {
    crate::uuid_string(uuid)
}

impl Event {
    /// A default event of the given type.
    pub fn new(event_type: u32) -> Self {
        Self {
            event_type,
            ..Self::default()
        }
    }

    /// Sets `EventIssuerId` and `EventInitialRequestId` to `{uuid}` strings, as the real
    /// constructor does with fresh random UUIDs.
    pub fn with_ids(mut self, issuer_id: Uuid, initial_request_id: Uuid) -> Self {
        self.issuer_id = braced_uuid(&issuer_id);
        self.initial_request_id = braced_uuid(&initial_request_id);
        self
    }

    /// Appends a parameter.
    pub fn add_param(&mut self, param: EventParam) -> &mut Self {
        self.params.push(param);
        self
    }

    /// Appends a `String` (type 1) parameter.
    pub fn add_string(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.add_param(EventParam::plain(name, ParamType::STRING, value))
    }

    /// Appends an `UnsignedInt` (type 0) parameter, printed in decimal.
    pub fn add_uint(&mut self, name: impl Into<String>, value: u32) -> &mut Self {
        self.add_param(EventParam::plain(
            name,
            ParamType::UNSIGNED_INT,
            value.to_string(),
        ))
    }

    /// Appends an `Integer` (type 2) parameter.
    pub fn add_int(&mut self, name: impl Into<String>, value: i32) -> &mut Self {
        self.add_param(EventParam::plain(
            name,
            ParamType::INTEGER,
            value.to_string(),
        ))
    }

    /// Appends an `Int64` (type 16) parameter.
    pub fn add_i64(&mut self, name: impl Into<String>, value: i64) -> &mut Self {
        self.add_param(EventParam::plain(name, ParamType::INT64, value.to_string()))
    }

    /// Appends a `UInt64` (type 17) parameter.
    pub fn add_u64(&mut self, name: impl Into<String>, value: u64) -> &mut Self {
        self.add_param(EventParam::plain(
            name,
            ParamType::UINT64,
            value.to_string(),
        ))
    }

    /// Appends a `Boolean` (type 6) parameter: "1" or "0", as `QString("%1").arg(bool)` prints.
    pub fn add_bool(&mut self, name: impl Into<String>, value: bool) -> &mut Self {
        let v = if value { "1" } else { "0" };
        self.add_param(EventParam::plain(name, ParamType::BOOLEAN, v))
    }

    /// Appends a `Uuid` (type 9) parameter as a `{uuid}` string.
    pub fn add_uuid(&mut self, name: impl Into<String>, value: &Uuid) -> &mut Self {
        self.add_param(EventParam::plain(name, ParamType::UUID, braced_uuid(value)))
    }

    /// Appends a `CData` (type 3) parameter.
    pub fn add_cdata(&mut self, name: impl Into<String>, data: impl AsRef<[u8]>) -> &mut Self {
        self.add_param(EventParam::cdata(name, data))
    }

    /// Appends a list parameter.
    pub fn add_list<I, S>(
        &mut self,
        name: impl Into<String>,
        param_type: ParamType,
        items: I,
    ) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.add_param(EventParam::list(name, param_type, items))
    }

    /// Appends a binary parameter (binary serialisation only; see module docs).
    pub fn add_binary(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.add_param(EventParam::binary(name, bytes))
    }

    /// The XML text `CBaseNode::toString()` produces (no prolog, indent 1, final newline).
    pub fn to_xml(&self) -> String {
        xml::write(self, 0)
    }

    /// The XML of this event as an element at `depth` of a larger document, the way QDom
    /// indents it there (one space per level): each line indented by `depth` more spaces, with
    /// the final newline. A VM configuration nests its `InternalVmInfo` event this way.
    pub fn to_xml_nested(&self, depth: usize) -> String {
        xml::write(self, depth)
    }

    /// Overwrite every parameter value with zeros, then empty it: for events that carried a
    /// secret (the login's password) once they are serialised.
    pub fn wipe(&mut self) {
        use zeroize::Zeroize as _;
        for p in &mut self.params {
            match &mut p.value {
                ParamValue::Plain(s) => s.zeroize(),
                ParamValue::List(v) => v.iter_mut().for_each(|s| s.zeroize()),
                ParamValue::CData(b) | ParamValue::Binary(b) => b.zeroize(),
            }
        }
    }

    /// Buffer 0 of a dispatcher package: the XML as UTF-8 plus a trailing NUL.
    pub fn to_xml_buffer(&self) -> Vec<u8> {
        let mut v = self.to_xml().into_bytes();
        v.push(0);
        v
    }

    /// Parses an event document (root `<ParallelsEvent>` or `<VirtuozzoEvent>`).
    pub fn from_xml(text: &str) -> Result<Self, EventError> {
        xml::read(text)
    }

    /// Parses buffer 0 of a dispatcher package the way the receiver reads it, as a C string:
    /// up to the first NUL (or the end), which must be valid UTF-8.
    pub fn from_xml_buffer(buf: &[u8]) -> Result<Self, EventError> {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let text = std::str::from_utf8(buf.get(..end).unwrap_or_default())
            .map_err(|_| EventError::InvalidUtf8 { field: "xml text" })?;
        Self::from_xml(text)
    }

    /// The big-endian `QDataStream` form (`CVmEvent::Serialize`).
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(binary::encoded_len(self));
        binary::encode_into(self, &mut out);
        out
    }

    /// Appends the binary form to `out` (a 5003 body is two events back to back).
    pub fn encode_binary_into(&self, out: &mut Vec<u8>) {
        out.reserve(binary::encoded_len(self));
        binary::encode_into(self, out);
    }

    /// Decodes one binary event from the start of `buf`; returns it and the bytes it used.
    pub fn decode_binary(buf: &[u8]) -> Result<(Self, usize), EventError> {
        binary::decode(buf)
    }

    /// Decodes events back to back until `buf` is used up (a 5003 body holds two).
    pub fn decode_binary_all(buf: &[u8]) -> Result<Vec<Self>, EventError> {
        let mut events = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let (event, used) = Self::decode_binary(rest)?;
            events.push(event);
            rest = rest.get(used..).unwrap_or_default();
        }
        Ok(events)
    }

    /// The first parameter with this name (`CVmEvent::getEventParameter(name)`).
    pub fn param(&self, name: &str) -> Option<&EventParam> {
        self.params.iter().find(|p| p.name == name)
    }

    /// All parameters with this name, in order.
    pub fn params_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a EventParam> + 'a {
        self.params.iter().filter(move |p| p.name == name)
    }

    /// The text of the first parameter with this name (see [`EventParam::as_str`]).
    pub fn string(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(EventParam::as_str)
    }

    /// The texts of all parameters with this name that have one, e.g. the repeated CData
    /// `response_login_cmd_task_info`.
    pub fn strings(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|p| p.name == name)
            .filter_map(EventParam::as_str)
            .collect()
    }

    /// The first parameter with this name parsed as an unsigned 32-bit number, the way
    /// `QString::toUInt()` reads it (surrounding whitespace allowed, decimal).
    pub fn uint(&self, name: &str) -> Option<u32> {
        let v = qt_parse_u64(self.string(name)?)?;
        u32::try_from(v).ok()
    }

    /// The items of the first parameter with this name, if it is a list.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        match &self.param(name)?.value {
            ParamValue::List(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of the first parameter with this name, if it is `CData`.
    pub fn cdata(&self, name: &str) -> Option<&[u8]> {
        match &self.param(name)?.value {
            ParamValue::CData(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes of the first parameter with this name, if it is binary.
    pub fn binary(&self, name: &str) -> Option<&[u8]> {
        match &self.param(name)?.value {
            ParamValue::Binary(b) => Some(b),
            _ => None,
        }
    }
}

/// Errors of the event decoders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text is not well-formed XML.
    #[error("event xml syntax error at byte {position}: {message}")]
    XmlSyntax {
        /// Byte offset where the problem was found.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// The root element is neither `<ParallelsEvent>` nor `<VirtuozzoEvent>`.
    #[error("unexpected event xml root element <{found}>, expected <ParallelsEvent>")]
    UnexpectedRoot {
        /// The root element's name (cut to 64 characters).
        found: String,
    },
    /// A `minOccurs = 1` element is missing.
    #[error("event xml is missing the required <{element}> element of <{parent}>")]
    MissingElement {
        /// The element that holds it.
        parent: &'static str,
        /// The missing element.
        element: &'static str,
    },
    /// A numeric field does not hold a number in range.
    #[error("bad number in event field {field}: {text:?}")]
    BadNumber {
        /// The element or attribute.
        field: &'static str,
        /// The offending text (cut to 32 characters).
        text: String,
    },
    /// A `<Data>` element is not base64.
    #[error("bad base64 in <Data> of event parameter #{index}")]
    BadBase64 {
        /// Position of the parameter in `<EventParameters>`.
        index: usize,
    },
    /// The binary event ends early.
    #[error("truncated binary event: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A binary parameter's class is not 0 (base), 1 (list) or 2 (binary).
    #[error("bad binary event parameter class {class}, expected 0, 1 or 2")]
    BadParamClass {
        /// The class read.
        class: u32,
    },
    /// A string is not valid UTF-8.
    #[error("invalid utf-8 in event {field}")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A signed count or length in the binary form is negative.
    #[error("negative {field} in binary event: {value}")]
    NegativeLength {
        /// The count or length.
        field: &'static str,
        /// Its value.
        value: i32,
    },
}

impl EventError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::XmlSyntax { .. } => "xml_syntax",
            Self::UnexpectedRoot { .. } => "unexpected_root",
            Self::MissingElement { .. } => "missing_element",
            Self::BadNumber { .. } => "bad_number",
            Self::BadBase64 { .. } => "bad_base64",
            Self::Truncated { .. } => "truncated",
            Self::BadParamClass { .. } => "bad_param_class",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::NegativeLength { .. } => "negative_length",
        }
    }
}

/// The first `max` characters of `s` (for error messages).
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Sign and digits of a number the way `QString::toLongLong()` / `toULongLong()` accept it:
/// surrounding whitespace (`QChar::isSpace`, i.e. `char::is_whitespace`), an optional sign, then
/// ASCII decimal digits only. Returns `(negative, magnitude)`.
fn qt_number(s: &str) -> Option<(bool, u128)> {
    let t = s.trim_matches(char::is_whitespace);
    let (neg, digits) = if let Some(d) = t.strip_prefix('-') {
        (true, d)
    } else if let Some(d) = t.strip_prefix('+') {
        (false, d)
    } else {
        (false, t)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u128 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        if v > u128::from(u64::MAX) {
            return None;
        }
    }
    Some((neg, v))
}

/// `QString::toLongLong()`.
pub(crate) fn qt_parse_i64(s: &str) -> Option<i64> {
    let (neg, v) = qt_number(s)?;
    let v = i128::try_from(v).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// `QString::toULongLong()`: no minus sign.
pub(crate) fn qt_parse_u64(s: &str) -> Option<u64> {
    match qt_number(s)? {
        (false, v) => u64::try_from(v).ok(),
        (true, 0) => Some(0),
        (true, _) => None,
    }
}

/// `QString::toInt()`.
pub(crate) fn qt_parse_i32(s: &str) -> Option<i32> {
    i32::try_from(qt_parse_i64(s)?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn qt_numbers() {
        assert_eq!(qt_parse_i64(" -2147482832\n"), Some(-2_147_482_832));
        assert_eq!(qt_parse_i64("+7"), Some(7));
        assert_eq!(qt_parse_i64("007"), Some(7));
        assert_eq!(qt_parse_i64("9223372036854775807"), Some(i64::MAX));
        assert_eq!(qt_parse_i64("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(qt_parse_i64("9223372036854775808"), None);
        assert_eq!(qt_parse_i64(""), None);
        assert_eq!(qt_parse_i64("-"), None);
        assert_eq!(qt_parse_i64("1 2"), None);
        assert_eq!(qt_parse_i64("0x10"), None);
        assert_eq!(qt_parse_i64("١"), None);
        assert_eq!(qt_parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(qt_parse_u64("-1"), None);
        assert_eq!(qt_parse_i32("2147483648"), None);
        assert_eq!(qt_parse_i32("-1"), Some(-1));
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut e = Event::default();
        e.add_string("login_cmd_password", "hunter2")
            .add_string("response_login_cmd_session_uuid", "{abc}")
            .add_string("login_cmd_username", "alice");
        let d = format!("{e:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(!d.contains("{abc}"), "{d}");
        assert!(d.contains("alice"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn param_type_names() {
        assert_eq!(ParamType::STRING.name(), Some("String"));
        assert_eq!(ParamType(99).name(), None);
        assert_eq!(format!("{:?}", ParamType(3)), "CData(3)");
        assert_eq!(format!("{:?}", ParamType(99)), "ParamType(99)");
    }
}
