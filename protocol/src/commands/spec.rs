//! Requests described as data: the package type, the flags and the command's own typed
//! parameters ([`RequestSpec`]), built into the request package exactly as the SDK's
//! `CProtoCommand` classes build theirs (the two common parameters `proto_force_questions_sign`
//! = 0 and `proto_command_flags` first, then the command's own, in order), and the generic view
//! of a reply ([`ReplyView`]).
//!
//! Every typed builder of this crate (host info, VM list, VM info, the VM power operations)
//! produces its package through a [`RequestSpec`], and the browser client's escape hatch
//! (`server.request(packageType, params, opts)`) sends any other command the same way, so there
//! is one request builder.
//!
//! A description can name any command of the client → service ranges (1000..=1999 VM
//! commands, 2000..=2999 dispatcher commands) except the ones that change the session itself
//! (login 2039, easy local login 2186, the legacy local logins 2040 / 2041, logoff 2042): a
//! session drives those through its own calls. Limits keep a description small: at most
//! [`MAX_SPEC_PARAMS`] parameters, names of at most [`MAX_SPEC_NAME_BYTES`] bytes, and
//! [`MAX_SPEC_BYTES`] of names and values in all.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::request::{command_event, request_package};
use super::{param, Reply};
use crate::codes::{cmd, ErrorCode};
use crate::event::{Event, EventParam, ParamType, ParamValue};
use crate::package::Package;

/// Most parameters a description may carry (besides the two common ones).
pub const MAX_SPEC_PARAMS: usize = 64;
/// Longest parameter name, in bytes.
pub const MAX_SPEC_NAME_BYTES: usize = 128;
/// Most bytes of parameter names and values (list items included) a description may carry.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// A typed parameter value, written as the real `CVmEventParameter` of that type prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum SpecValue {
    /// `PVE::String`.
    String(String),
    /// `PVE::UnsignedInt`, decimal.
    UnsignedInt(u32),
    /// `PVE::Integer`, signed decimal.
    Integer(i32),
    /// `PVE::Boolean`, "0" / "1" (`QString("%1").arg(bool)`).
    Boolean(bool),
    /// `PVE::Int64`.
    Int64(i64),
    /// `PVE::UInt64`.
    UInt64(u64),
    /// A `CVmEventParameterList` of `PVE::String` items.
    StringList(Vec<String>),
}

/// One parameter of a described request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpecParam {
    /// The parameter name (`EVT_PARAM_*` of libprlcommon's `VirtuozzoDomModel.h`).
    pub name: String,
    /// Its typed value.
    #[serde(flatten)]
    pub value: SpecValue,
}

impl SpecParam {
    /// A parameter.
    pub fn new(name: impl Into<String>, value: SpecValue) -> SpecParam {
        SpecParam {
            name: name.into(),
            value,
        }
    }

    fn to_event_param(&self) -> EventParam {
        let plain = |t: ParamType, v: String| EventParam::plain(self.name.clone(), t, v);
        match &self.value {
            SpecValue::String(s) => plain(ParamType::STRING, s.clone()),
            SpecValue::UnsignedInt(v) => plain(ParamType::UNSIGNED_INT, v.to_string()),
            SpecValue::Integer(v) => plain(ParamType::INTEGER, v.to_string()),
            SpecValue::Boolean(b) => plain(ParamType::BOOLEAN, u8::from(*b).to_string()),
            SpecValue::Int64(v) => plain(ParamType::INT64, v.to_string()),
            SpecValue::UInt64(v) => plain(ParamType::UINT64, v.to_string()),
            SpecValue::StringList(items) => {
                EventParam::list(self.name.clone(), ParamType::STRING, items.iter().cloned())
            }
        }
    }

    fn byte_len(&self) -> usize {
        let value = match &self.value {
            SpecValue::String(s) => s.len(),
            SpecValue::StringList(items) => items.iter().map(String::len).sum(),
            _ => 20,
        };
        self.name.len().saturating_add(value)
    }
}

/// A request described as data: what `server.request(packageType, params, opts)` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestSpec {
    /// The command (`PVE::IDispatcherCommands`), e.g. 1001 for a VM start.
    pub package_type: u32,
    /// `proto_command_flags` (the SDK passes the caller's flags through unchanged).
    #[serde(default)]
    pub flags: u32,
    /// The command's own parameters, after the two common ones, in wire order.
    #[serde(default)]
    pub params: Vec<SpecParam>,
}

/// Why a [`RequestSpec`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The package type is outside the client → service command ranges.
    #[error("package type {0} is not a command (1000..=1999 or 2000..=2999)")]
    NotACommand(u32),
    /// The package type is a command the session itself drives (login, logoff).
    #[error("package type {0} is a session command: use the session's own call")]
    SessionCommand(u32),
    /// Too many parameters.
    #[error("{0} parameters, the limit is {MAX_SPEC_PARAMS}")]
    TooManyParams(usize),
    /// A parameter name is empty, too long or holds characters an XML element text cannot.
    #[error("parameter #{0} has an empty, over-long or unprintable name")]
    BadName(usize),
    /// A parameter repeats one of the two common parameters every command gets.
    #[error("parameter #{0} repeats a common parameter (proto_force_questions_sign or proto_command_flags)")]
    CommonParam(usize),
    /// Names and values are too large together.
    #[error("parameters of {0} bytes, the limit is {MAX_SPEC_BYTES}")]
    TooLarge(usize),
}

impl SpecError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotACommand(_) => "not_a_command",
            Self::SessionCommand(_) => "session_command",
            Self::TooManyParams(_) => "too_many_params",
            Self::BadName(_) => "bad_name",
            Self::CommonParam(_) => "common_param",
            Self::TooLarge(_) => "too_large",
        }
    }
}

impl RequestSpec {
    /// A request of `package_type` with `flags` and no parameters of its own.
    pub fn new(package_type: u32, flags: u32) -> RequestSpec {
        RequestSpec {
            package_type,
            flags,
            params: Vec::new(),
        }
    }

    /// Appends a parameter.
    pub fn with(mut self, name: &str, value: SpecValue) -> RequestSpec {
        self.params.push(SpecParam::new(name, value));
        self
    }

    /// Checks the description (see the module docs).
    pub fn validate(&self) -> Result<(), SpecError> {
        let t = self.package_type;
        if !cmd::is_vm_command(t) && !cmd::is_dispatcher_command(t) {
            return Err(SpecError::NotACommand(t));
        }
        if matches!(
            t,
            cmd::USER_LOGIN
                | cmd::USER_LOGIN_LOCAL
                | cmd::USER_LOGIN_LOCAL_STAGE2
                | cmd::USER_LOGOFF
                | cmd::USER_EASY_LOGIN_LOCAL
        ) {
            return Err(SpecError::SessionCommand(t));
        }
        if self.params.len() > MAX_SPEC_PARAMS {
            return Err(SpecError::TooManyParams(self.params.len()));
        }
        let mut total = 0usize;
        for (i, p) in self.params.iter().enumerate() {
            let printable = p.name.chars().all(|c| !c.is_control());
            if p.name.is_empty() || p.name.len() > MAX_SPEC_NAME_BYTES || !printable {
                return Err(SpecError::BadName(i));
            }
            if p.name == param::FORCE_QUESTIONS_SIGN || p.name == param::COMMAND_FLAGS {
                return Err(SpecError::CommonParam(i));
            }
            total = total.saturating_add(p.byte_len());
        }
        if total > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge(total));
        }
        Ok(())
    }

    /// The command event: a fresh `CVmEvent` with the two common parameters, then ours.
    pub fn to_event(&self, ids: &mut dyn FnMut() -> Uuid) -> Event {
        let mut event = command_event(self.flags, ids);
        for p in &self.params {
            event.add_param(p.to_event_param());
        }
        event
    }

    /// The request package (validated): its uuid `job_uuid` is the job the reply will name
    /// as parent; `sender` is the client's connection uuid.
    pub fn to_package(
        &self,
        job_uuid: Uuid,
        sender: Uuid,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Package, SpecError> {
        self.validate()?;
        Ok(request_package(
            self.package_type,
            &self.to_event(ids),
            job_uuid,
            sender,
        ))
    }
}

/// One parameter of a reply event, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyParam {
    /// Its name.
    pub name: String,
    /// Its `PVE::ParamFieldDataType`.
    pub param_type: u32,
    /// Its text (a list's items joined by nothing are not text: see `items`).
    pub value: String,
    /// A list parameter's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<String>>,
}

/// The error a failed reply carries (`ws_response_cmd_error`), if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyErrorView {
    /// The error event's code.
    pub code: u32,
    /// Its `Details` message (may be empty).
    pub details: Option<String>,
    /// The error event's XML.
    pub xml: String,
}

/// A reply as the escape hatch resolves with it (`CProtoCommandDspWsResponse::FillResult`):
/// the result code, the request type it answers, the standard parameters in order (what
/// `PrlResult_GetParamByIndex` reads), every parameter, the error and the reply event's XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyView {
    /// `EventCode`: the `PRL_RESULT`.
    pub code: u32,
    /// `proto_request_op_code`.
    pub opcode: u32,
    /// Every `ws_response_cmd_standard_param`, in document order.
    pub standard_params: Vec<String>,
    /// Every parameter of the reply event, in order (the standard ones too).
    pub params: Vec<ReplyParam>,
    /// `ws_response_cmd_error`, read.
    pub error: Option<ReplyErrorView>,
    /// The reply event's XML (as this crate writes the parsed event).
    pub xml: String,
}

impl ReplyView {
    /// The view of a parsed reply.
    pub fn from_reply(reply: &Reply) -> ReplyView {
        let params = reply
            .response
            .params
            .iter()
            .map(|p| ReplyParam {
                name: p.name.clone(),
                param_type: p.param_type.0,
                value: p.as_str().unwrap_or_default().to_owned(),
                items: match &p.value {
                    ParamValue::List(items) => Some(items.clone()),
                    _ => None,
                },
            })
            .collect();
        let error = reply.error_event().map(|e| ReplyErrorView {
            code: e.code,
            details: e.string(param::DETAILS).map(str::to_owned),
            xml: e.to_xml(),
        });
        ReplyView {
            code: reply.code.0,
            opcode: reply.opcode,
            standard_params: reply
                .standard_params()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            params,
            error,
            xml: reply.response.to_xml(),
        }
    }

    /// The result as an [`ErrorCode`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{package_event, simple_response};

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    #[test]
    fn a_description_builds_the_sdks_parameter_list() {
        let spec = RequestSpec::new(1002, 2048)
            .with(param::BASIC_VM_CMD_VM_UUID, SpecValue::String("{v}".into()))
            .with(param::VM_CMD_STOP_MODE, SpecValue::UnsignedInt(1))
            .with(param::VM_CMD_WITH_ACPI_SIGN, SpecValue::Boolean(true))
            .with("i", SpecValue::Integer(-5))
            .with("l", SpecValue::StringList(vec!["a".into(), "<b>".into()]));
        let p = spec
            .to_package(Uuid::from_u128(7), Uuid::from_u128(8), &mut ids())
            .unwrap();
        assert_eq!(p.header.package_type, 1002);
        assert_eq!(p.header.uuid, Uuid::from_u128(7));
        assert_eq!(p.header.sender_uuid, Uuid::from_u128(8));
        let e = package_event(&p).unwrap();
        let got: Vec<(&str, u32, Option<&str>)> = e
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.param_type.0, p.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("proto_force_questions_sign", 0, Some("0")),
                ("proto_command_flags", 0, Some("2048")),
                ("basic_vm_cmd_vm_uuid", 1, Some("{v}")),
                ("vm_cmd_vm_stop_mode", 0, Some("1")),
                ("vm_cmd_with_acpi_sign_is_use_acpi", 6, Some("1")),
                ("i", 2, Some("-5")),
                ("l", 1, None),
            ]
        );
        assert_eq!(e.list("l"), Some(&["a".to_owned(), "<b>".to_owned()][..]));
    }

    #[test]
    fn descriptions_are_validated() {
        let kind = |s: RequestSpec| s.validate().unwrap_err().kind();
        assert_eq!(kind(RequestSpec::new(5001, 0)), "not_a_command");
        assert_eq!(kind(RequestSpec::new(999, 0)), "not_a_command");
        assert_eq!(kind(RequestSpec::new(9001, 0)), "not_a_command");
        for t in [2039, 2040, 2041, 2042, 2186] {
            assert_eq!(kind(RequestSpec::new(t, 0)), "session_command");
        }
        let s = |name: &str| RequestSpec::new(2062, 0).with(name, SpecValue::UnsignedInt(1));
        assert_eq!(kind(s("")), "bad_name");
        assert_eq!(kind(s(&"n".repeat(MAX_SPEC_NAME_BYTES + 1))), "bad_name");
        assert_eq!(kind(s("a\u{0}b")), "bad_name");
        assert_eq!(kind(s("proto_command_flags")), "common_param");
        let mut many = RequestSpec::new(2029, 0);
        many.params = vec![SpecParam::new("p", SpecValue::Boolean(false)); MAX_SPEC_PARAMS + 1];
        assert_eq!(kind(many), "too_many_params");
        let big =
            RequestSpec::new(2029, 0).with("a", SpecValue::String("x".repeat(MAX_SPEC_BYTES)));
        assert_eq!(kind(big.clone()), "too_large");
        assert!(big
            .to_package(Uuid::nil(), Uuid::nil(), &mut ids())
            .is_err());
        assert!(RequestSpec::new(1001, 0).validate().is_ok());
        assert!(RequestSpec::new(2999, 0).validate().is_ok());
    }

    #[cfg(feature = "json")]
    #[test]
    fn descriptions_read_from_json_as_the_client_sends_them() {
        let json = r#"{"packageType":1007,"params":[
            {"name":"basic_vm_cmd_vm_uuid","type":"string","value":"{v}"},
            {"name":"vm_cmd_with_acpi_sign_is_use_acpi","type":"boolean","value":false}]}"#;
        let spec: RequestSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.flags, 0);
        assert_eq!(spec.params[1].value, SpecValue::Boolean(false));
        let back: RequestSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert!(serde_json::from_str::<RequestSpec>(r#"{"packageType":1,"x":2}"#).is_err());
    }

    #[test]
    fn the_reply_view_has_code_standard_params_error_and_xml() {
        let request = RequestSpec::new(2029, 0)
            .to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids())
            .unwrap();
        let reply = simple_response(
            &request,
            Uuid::from_u128(3),
            Uuid::from_u128(4),
            ErrorCode::SUCCESS,
            &["<a/>", "b"],
            &mut ids(),
        );
        let view = ReplyView::from_reply(&Reply::parse(&reply).unwrap());
        assert_eq!(view.code(), ErrorCode::SUCCESS);
        assert_eq!(view.opcode, 2029);
        assert_eq!(view.standard_params, ["<a/>", "b"]);
        assert_eq!(view.params.len(), 5);
        assert_eq!(view.error, None);
        assert!(view.xml.contains("&lt;a/>"), "{}", view.xml);
    }
}
