//! Replies (5001 `DspWsResponse`, 5003 `DspWsBinaryResponse`): built by the service side,
//! read by the client as a [`Reply`].

use uuid::Uuid;

use super::request::{command_event, fresh_event, optional_uint, package_event};
use super::{param, CommandError, LoginResponse};
use crate::codes::{cmd, ErrorCode};
use crate::event::Event;
use crate::package::{text_buffer, Package};

/// The reply event of `CProtoCommandDspWsResponse(opcode, code)`.
pub fn ws_response_event(opcode: u32, code: ErrorCode, ids: &mut dyn FnMut() -> Uuid) -> Event {
    let mut event = command_event(0, ids);
    event.add_uint(param::REQUEST_OP_CODE, opcode);
    event.code = code.0;
    event
}

/// A direct 5001 reply to `request` with `code` and optional standard string params
/// (`sendSimpleResponse` / `CreateDspWsResponseCommand`).
pub fn simple_response(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    code: ErrorCode,
    standard_params: &[&str],
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = ws_response_event(request.header.package_type, code, ids);
    for value in standard_params {
        event.add_string(param::WS_RESPONSE_STANDARD_PARAM, *value);
    }
    response_package(request, sender, reply_uuid, &event)
}

/// A direct 5001 error reply carrying an error event (`sendResponseError`).
pub fn error_response(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    error: &Event,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = ws_response_event(request.header.package_type, ErrorCode(error.code), ids);
    event.add_string(param::WS_RESPONSE_ERROR, error.to_xml());
    response_package(request, sender, reply_uuid, &event)
}

/// The error event of `Error::Simple(code, details)` (libprlcommon `ErrorSimple.h`,
/// `convertToEvent`): a fresh `CVmEvent` with the code and one String parameter `Details`
/// (which may be empty). The VM manager sends its failures with it.
pub fn details_error(code: ErrorCode, details: &str, ids: &mut dyn FnMut() -> Uuid) -> Event {
    let mut event = fresh_event(ids);
    event.code = code.0;
    event.add_string(param::DETAILS, details);
    event
}

/// A direct 5001 error reply whose error event is [`details_error`] (`sendResponseError` of an
/// `Error::Simple`).
pub fn error_with_details(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    code: ErrorCode,
    details: &str,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let error = details_error(code, details, ids);
    error_response(request, sender, reply_uuid, &error, ids)
}

/// The two replies of a forked VM operation that fails synchronously
/// (`CDspVmManager.cpp`, `Slip::react` then `Fork::Gear` and `Body::run`): first the real error
/// with its `Details`, then a second reply to the same request with `PRL_ERR_FAILURE` and empty
/// `Details`. The SDK keeps the first and ignores the second (its job is gone); so must every
/// client.
pub fn forked_failure_replies(
    request: &Package,
    sender: Uuid,
    reply_uuids: [Uuid; 2],
    code: ErrorCode,
    details: &str,
    ids: &mut dyn FnMut() -> Uuid,
) -> [Package; 2] {
    [
        error_with_details(request, sender, reply_uuids[0], code, details, ids),
        error_with_details(request, sender, reply_uuids[1], ErrorCode::FAILURE, "", ids),
    ]
}

pub(super) fn response_package(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    event: &Event,
) -> Package {
    Package::direct_response(
        request,
        cmd::WS_RESPONSE,
        reply_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    )
}

/// A reply (5001 or 5003) as the client sees it (`CProtoCommandDspWsResponse::FillResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `proto_request_op_code`: the type of the request answered.
    pub opcode: u32,
    /// `EventCode`: the result.
    pub code: ErrorCode,
    /// The reply event.
    pub response: Event,
    /// The login event: the second event of a 5003, or `ws_response_cmd_login_event` of a 5001.
    pub login: Option<Event>,
}

impl Reply {
    /// Parse a 5001 or 5003 package.
    pub fn parse(package: &Package) -> Result<Reply, CommandError> {
        let t = package.header.package_type;
        let bad = |source| CommandError::Event {
            package_type: t,
            source,
        };
        let (response, login) = match t {
            cmd::WS_RESPONSE => {
                let response = package_event(package)?;
                let login = match response.string(param::WS_RESPONSE_LOGIN_EVENT) {
                    Some(xml) if !xml.is_empty() => Some(Event::from_xml(xml).map_err(bad)?),
                    _ => None,
                };
                (response, login)
            }
            cmd::WS_BINARY_RESPONSE => {
                let body = package
                    .buffers
                    .first()
                    .map(|b| b.data.as_slice())
                    .ok_or(CommandError::MissingEvent(0))?;
                let (response, used) = Event::decode_binary(body).map_err(bad)?;
                let rest = body.get(used..).unwrap_or_default();
                if rest.is_empty() {
                    return Err(CommandError::MissingEvent(1));
                }
                let (login, _) = Event::decode_binary(rest).map_err(bad)?;
                (response, Some(login))
            }
            other => return Err(CommandError::NotAReply(other)),
        };
        Ok(Reply {
            opcode: optional_uint(&response, t, param::REQUEST_OP_CODE)?.unwrap_or(0),
            code: ErrorCode(response.code),
            response,
            login,
        })
    }

    /// The standard string params of the reply, in order.
    pub fn standard_params(&self) -> Vec<&str> {
        self.response.strings(param::WS_RESPONSE_STANDARD_PARAM)
    }

    /// The error event of an error reply, if it carries one.
    pub fn error_event(&self) -> Option<Event> {
        self.response
            .string(param::WS_RESPONSE_ERROR)
            .and_then(|xml| Event::from_xml(xml).ok())
    }

    /// The `Details` message of the reply's error event, if it carries one.
    pub fn error_details(&self) -> Option<String> {
        self.error_event()
            .and_then(|e| e.string(param::DETAILS).map(str::to_owned))
    }

    /// The first parameter of this name as text (e.g. `ws_response_cmd_vm_event`).
    pub fn string_param(&self, name: &str) -> Option<&str> {
        self.response.string(name)
    }

    /// The login response of a successful login reply.
    pub fn login_response(&self) -> Result<LoginResponse, CommandError> {
        let event = self.login.as_ref().ok_or(CommandError::NoSessionUuid)?;
        LoginResponse::from_event(event)
    }
}
