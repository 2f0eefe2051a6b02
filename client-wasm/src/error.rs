//! Client failures: one enum, a stable `kind`, and the `PRL_ERR_*` code the SDK would report.
//!
//! Pure Rust (no JS types), so the mapping is unit-tested natively; `js.rs` turns a
//! [`ClientError`] into the JavaScript `ParallelsError`.

use prl_protocol::ErrorCode;

/// Which operation failed; prefixes the message ("login failed: ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening or resuming the relay connection.
    Connect,
    /// `login` (2039).
    Login,
    /// `loginLocal` (2186).
    LoginLocal,
    /// `logoff` (2042).
    Logoff,
    /// `attachToLostTask` (2090).
    AttachToLostTask,
    /// `getHostInfo` (2051).
    GetHostInfo,
    /// `getVmList` (2029).
    GetVmList,
    /// `getVmState` (2062).
    GetVmState,
    /// `startVm` (1001, 1036).
    StartVm,
    /// `stopVm` (1002).
    StopVm,
    /// `pauseVm` (1007).
    PauseVm,
    /// `resumeVm` (1001, as `PrlVm_Resume` sends it).
    ResumeVm,
    /// `suspendVm` (1008).
    SuspendVm,
    /// `resetVm` (1006).
    ResetVm,
    /// `restartVm` (1039).
    RestartVm,
    /// `request` (any described command).
    Request,
}

impl Op {
    /// Lower-case name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Login => "login",
            Op::LoginLocal => "local login",
            Op::Logoff => "logoff",
            Op::AttachToLostTask => "attach to lost task",
            Op::GetHostInfo => "get host info",
            Op::GetVmList => "get vm list",
            Op::GetVmState => "get vm state",
            Op::StartVm => "start vm",
            Op::StopVm => "stop vm",
            Op::PauseVm => "pause vm",
            Op::ResumeVm => "resume vm",
            Op::SuspendVm => "suspend vm",
            Op::ResetVm => "reset vm",
            Op::RestartVm => "restart vm",
            Op::Request => "request",
        }
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The service answered the request with a failure code.
    #[error("{} failed: service returned {code}{}", op.as_str(), quoted(details))]
    Service {
        /// The request.
        op: Op,
        /// The `PRL_RESULT` of the reply.
        code: ErrorCode,
        /// The `Details` text of the error event the reply carried (`ws_response_cmd_error`),
        /// when it has one that is not empty.
        details: Option<String>,
    },
    /// The proxy reported a typed failure (its message is lower-case and secret-free).
    #[error("{} failed: {kind}: {message}", op.as_str())]
    Relay {
        /// The operation.
        op: Op,
        /// The relay's error kind.
        kind: prl_protocol::relay::RelayErrorKind,
        /// The SDK code the proxy attached, if any.
        code: Option<u32>,
        /// The proxy's message.
        message: String,
    },
    /// The caller's `AbortSignal` fired, or the service canceled the operation.
    #[error("{} failed: operation was canceled{}", op.as_str(), cancel_note(*confirmed, cancel_code))]
    Canceled {
        /// The operation.
        op: Op,
        /// The service confirmed the cancel: it answered the SDK's cancel (2053) with success,
        /// or ended the operation with `PRL_ERR_OPERATION_WAS_CANCELED` itself. When false the
        /// operation may still run to its end on the service (VM power operations always do:
        /// the service answers their cancel with `PRL_ERR_TASK_NOT_FOUND`).
        confirmed: bool,
        /// The code the service answered the cancel (2053) with, when it answered.
        cancel_code: Option<ErrorCode>,
    },
    /// The connect budget expired before the proxy answered (client-side backstop; the proxy
    /// normally reports its own `timeout` first).
    #[error("{} failed: connect budget of {ms} ms expired", op.as_str())]
    Timeout {
        /// The operation.
        op: Op,
        /// The budget.
        ms: u32,
    },
    /// The WebSocket to the proxy could not be opened (unreachable, refused, rejected at the
    /// upgrade, e.g. by the proxy's Origin check, or blocked by the page's
    /// Content-Security-Policy `connect-src`: browsers do not tell these apart).
    #[error("{} failed: cannot reach the proxy at {url}", op.as_str())]
    ProxyUnreachable {
        /// The operation.
        op: Op,
        /// The proxy URL (never carries secrets: tickets go in the subprotocol).
        url: String,
    },
    /// The connection closed while the operation was in flight.
    #[error("{} failed: connection closed: {reason}", op.as_str())]
    Closed {
        /// The operation.
        op: Op,
        /// Why, lower-case.
        reason: String,
    },
    /// The proxy or the service broke the protocol (bad package, unexpected message).
    #[error("{} failed: protocol violation: {detail}", op.as_str())]
    Protocol {
        /// The operation.
        op: Op,
        /// What was wrong, lower-case, no payload echo.
        detail: String,
    },
    /// A bad argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The call does not fit the current state (e.g. login while logged in).
    #[error("{} failed: {detail}", op.as_str())]
    InvalidState {
        /// The operation.
        op: Op,
        /// Why, lower-case.
        detail: &'static str,
        /// The SDK's code for this situation.
        code: ErrorCode,
    },
}

/// `: "text"` for a service's message that is there and not empty.
fn quoted(details: &Option<String>) -> String {
    match details.as_deref() {
        Some(d) if !d.is_empty() => format!(": \"{d}\""),
        _ => String::new(),
    }
}

/// What the service made of a cancel, for the message.
fn cancel_note(confirmed: bool, cancel_code: &Option<ErrorCode>) -> String {
    match (confirmed, cancel_code) {
        (true, _) => " (the service canceled it)".to_owned(),
        (false, Some(code)) => format!(
            " (the service refused the cancel with {code}: the operation may still complete)"
        ),
        (false, None) => String::new(),
    }
}

/// Every `kind` value a `ParallelsError` can carry (the TypeScript `ErrorKind` union).
pub const ERROR_KINDS: &[&str] = &[
    "authentication",
    "service",
    "policy_denied",
    "origin_denied",
    "ticket_invalid",
    "dns_failed",
    "connection_refused",
    "timeout",
    "handshake_failed",
    "wrong_protocol_version",
    "tls_failed",
    "protocol_violation",
    "limit_reached",
    "restore_refused",
    "resume_failed",
    "internal",
    "state_unavailable",
    "resume_elsewhere",
    "closed",
    "canceled",
    "command_refused",
    "proxy_unreachable",
    "invalid_argument",
    "invalid_state",
];

impl ClientError {
    /// Stable snake_case name of the failure (the `kind` of the JavaScript error).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Service { code, .. } => {
                if *code == ErrorCode::AUTHENTICATION_FAILED
                    || *code == ErrorCode::LOCAL_AUTHENTICATION_FAILED
                    || *code == ErrorCode::PUBLIC_KEY_NOT_AUTHORIZED
                {
                    "authentication"
                } else {
                    "service"
                }
            }
            ClientError::Relay { kind, .. } => kind.as_str(),
            ClientError::Canceled { .. } => "canceled",
            ClientError::Timeout { .. } => "timeout",
            ClientError::ProxyUnreachable { .. } => "proxy_unreachable",
            ClientError::Closed { .. } => "closed",
            ClientError::Protocol { .. } => "protocol_violation",
            ClientError::InvalidArgument(_) => "invalid_argument",
            ClientError::InvalidState { .. } => "invalid_state",
        }
    }

    /// The `PRL_ERR_*` code the SDK reports for this failure, if it has one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Service { code, .. } => Some(*code),
            ClientError::Relay { kind, code, .. } => {
                code.map(ErrorCode).or_else(|| kind.prl_code())
            }
            ClientError::Canceled { .. } => Some(ErrorCode::OPERATION_WAS_CANCELED),
            ClientError::Timeout { .. } | ClientError::ProxyUnreachable { .. } => {
                Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER)
            }
            ClientError::Closed { .. } => Some(ErrorCode::WS_DISP_CONNECTION_CLOSED),
            ClientError::InvalidArgument(_) => Some(ErrorCode::INVALID_ARG),
            ClientError::InvalidState { code, .. } => Some(*code),
            ClientError::Protocol { .. } => None,
        }
    }

    /// The numeric code for JavaScript: the `PRL_RESULT`, or 0 when there is none.
    pub fn code_value(&self) -> u32 {
        self.code().map_or(0, |c| c.0)
    }

    /// The SDK's name of the code (`PRL_ERR_...`), or "" when unknown or absent.
    pub fn code_name(&self) -> &'static str {
        self.code().and_then(ErrorCode::name).unwrap_or("")
    }

    /// A canceled error for `op` that the service did not confirm (nothing was sent, or its
    /// answer to the cancel did not come).
    pub fn canceled(op: Op) -> Self {
        ClientError::Canceled {
            op,
            confirmed: false,
            cancel_code: None,
        }
    }

    /// A failure reply of the service to `op`, with the `Details` of its error event.
    pub fn service(op: Op, code: ErrorCode, details: Option<String>) -> Self {
        ClientError::Service {
            op,
            code,
            details: details.filter(|d| !d.is_empty()),
        }
    }

    /// The service's `Details` text, for a service failure that carried one.
    pub fn details(&self) -> Option<&str> {
        match self {
            ClientError::Service { details, .. } => details.as_deref(),
            _ => None,
        }
    }

    /// A closed error for `op`.
    pub fn closed(op: Op, reason: impl Into<String>) -> Self {
        ClientError::Closed {
            op,
            reason: reason.into(),
        }
    }

    /// A protocol error for `op`.
    pub fn protocol(op: Op, detail: impl Into<String>) -> Self {
        ClientError::Protocol {
            op,
            detail: detail.into(),
        }
    }

    /// The same failure, attributed to another operation (a connect failure seen by login).
    pub fn with_op(self, new: Op) -> Self {
        match self {
            ClientError::Service { code, details, .. } => ClientError::Service {
                op: new,
                code,
                details,
            },
            ClientError::Relay {
                kind,
                code,
                message,
                ..
            } => ClientError::Relay {
                op: new,
                kind,
                code,
                message,
            },
            ClientError::Canceled {
                confirmed,
                cancel_code,
                ..
            } => ClientError::Canceled {
                op: new,
                confirmed,
                cancel_code,
            },
            ClientError::Timeout { ms, .. } => ClientError::Timeout { op: new, ms },
            ClientError::ProxyUnreachable { url, .. } => {
                ClientError::ProxyUnreachable { op: new, url }
            }
            ClientError::Closed { reason, .. } => ClientError::Closed { op: new, reason },
            ClientError::Protocol { detail, .. } => ClientError::Protocol { op: new, detail },
            ClientError::InvalidArgument(d) => ClientError::InvalidArgument(d),
            ClientError::InvalidState { detail, code, .. } => ClientError::InvalidState {
                op: new,
                detail,
                code,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::relay::{RelayError, RelayErrorKind};

    fn relay(kind: RelayErrorKind) -> ClientError {
        let e = RelayError::new(kind, "x");
        ClientError::Relay {
            op: Op::Login,
            kind: e.kind,
            code: e.code,
            message: e.message,
        }
    }

    #[test]
    fn wrong_password_is_authentication_with_the_sdk_code() {
        let e = ClientError::service(Op::Login, ErrorCode::AUTHENTICATION_FAILED, None);
        assert_eq!(e.kind(), "authentication");
        assert_eq!(e.code_value(), 0x8000_0330);
        assert_eq!(e.code_name(), "PRL_ERR_AUTHENTICATION_FAILED");
        assert_eq!(
            e.to_string(),
            "login failed: service returned PRL_ERR_AUTHENTICATION_FAILED (0x80000330)"
        );
    }

    #[test]
    fn other_service_codes_are_service_and_keep_unknown_values() {
        let e = ClientError::service(Op::Logoff, ErrorCode(0x8000_0999), None);
        assert_eq!(e.kind(), "service");
        assert_eq!(e.code_value(), 0x8000_0999);
        assert_eq!(e.code_name(), "");
    }

    #[test]
    fn relay_kinds_map_one_to_one_and_carry_the_sdk_code() {
        for kind in RelayErrorKind::ALL {
            let e = relay(kind);
            assert_eq!(e.kind(), kind.as_str());
            assert!(ERROR_KINDS.contains(&e.kind()), "{kind}");
            assert_eq!(e.code(), kind.prl_code(), "{kind}");
        }
        assert_eq!(relay(RelayErrorKind::Timeout).code_value(), 0x8000_0249);
        assert_eq!(
            relay(RelayErrorKind::HandshakeFailed).code_value(),
            0x8000_0412
        );
        assert_eq!(relay(RelayErrorKind::PolicyDenied).code_value(), 0);
        assert_eq!(relay(RelayErrorKind::PolicyDenied).code_name(), "");
    }

    #[test]
    fn client_side_failures_have_stable_kinds_and_sdk_codes() {
        let cases: Vec<(ClientError, &str, u32)> = vec![
            (ClientError::canceled(Op::Login), "canceled", 0x8000_0275),
            (
                ClientError::Timeout {
                    op: Op::Login,
                    ms: 5,
                },
                "timeout",
                0x8000_0249,
            ),
            (
                ClientError::ProxyUnreachable {
                    op: Op::Connect,
                    url: "ws://h/ws".into(),
                },
                "proxy_unreachable",
                0x8000_0249,
            ),
            (
                ClientError::closed(Op::Logoff, "eof"),
                "closed",
                0x8000_0246,
            ),
            (
                ClientError::protocol(Op::Login, "bad"),
                "protocol_violation",
                0,
            ),
            (
                ClientError::InvalidArgument("x".into()),
                "invalid_argument",
                0x8000_0003,
            ),
            (
                ClientError::InvalidState {
                    op: Op::Login,
                    detail: "already logged in",
                    code: ErrorCode::ALREADY_CONNECTED_TO_DISPATCHER,
                },
                "invalid_state",
                0x8000_0252,
            ),
        ];
        for (e, kind, code) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.code_value(), code, "{e}");
            assert!(ERROR_KINDS.contains(&kind));
            let moved = e.clone().with_op(Op::AttachToLostTask);
            assert_eq!(moved.kind(), kind);
            assert_eq!(moved.code_value(), code);
        }
    }

    #[test]
    fn a_service_failure_carries_the_services_details() {
        let e = ClientError::service(
            Op::StartVm,
            ErrorCode::FAILURE,
            Some("VM is already running".into()),
        );
        assert_eq!(e.kind(), "service");
        assert_eq!(e.code_value(), 0x8000_0009);
        assert_eq!(e.details(), Some("VM is already running"));
        assert_eq!(
            e.to_string(),
            "start vm failed: service returned PRL_ERR_FAILURE (0x80000009): \"VM is already running\""
        );
        // Empty details are none (the service's duplicate reply has them empty).
        let e = ClientError::service(Op::StopVm, ErrorCode::FAILURE, Some(String::new()));
        assert_eq!(e.details(), None);
        assert_eq!(
            e.to_string(),
            "stop vm failed: service returned PRL_ERR_FAILURE (0x80000009)"
        );
        assert_eq!(e.with_op(Op::Request).details(), None);
        let kept = ClientError::service(Op::PauseVm, ErrorCode::FAILURE, Some("x".into()));
        assert_eq!(kept.with_op(Op::Request).details(), Some("x"));
    }

    #[test]
    fn a_cancel_says_what_the_service_made_of_it() {
        let unconfirmed = ClientError::Canceled {
            op: Op::StartVm,
            confirmed: false,
            cancel_code: Some(ErrorCode::TASK_NOT_FOUND),
        };
        assert_eq!(unconfirmed.kind(), "canceled");
        assert_eq!(unconfirmed.code_value(), 0x8000_0275);
        assert_eq!(
            unconfirmed.to_string(),
            "start vm failed: operation was canceled (the service refused the cancel with \
             PRL_ERR_TASK_NOT_FOUND (0x80000092): the operation may still complete)"
        );
        let confirmed = ClientError::Canceled {
            op: Op::AttachToLostTask,
            confirmed: true,
            cancel_code: Some(ErrorCode::SUCCESS),
        };
        assert_eq!(
            confirmed.to_string(),
            "attach to lost task failed: operation was canceled (the service canceled it)"
        );
        assert_eq!(
            ClientError::canceled(Op::Login).to_string(),
            "login failed: operation was canceled"
        );
        assert!(matches!(
            confirmed.with_op(Op::Request),
            ClientError::Canceled {
                op: Op::Request,
                confirmed: true,
                cancel_code: Some(ErrorCode::SUCCESS),
            }
        ));
    }

    #[test]
    fn a_refused_command_is_its_own_kind_with_access_denied() {
        let e = relay(RelayErrorKind::CommandRefused);
        assert_eq!(e.kind(), "command_refused");
        assert_eq!(e.code_name(), "PRL_ERR_ACCESS_DENIED");
    }

    #[test]
    fn messages_are_lower_case_and_name_the_operation() {
        let e = ClientError::canceled(Op::LoginLocal);
        assert_eq!(e.to_string(), "local login failed: operation was canceled");
        let e = relay(RelayErrorKind::PolicyDenied).with_op(Op::Connect);
        assert_eq!(e.to_string(), "connect failed: policy_denied: x");
    }
}
