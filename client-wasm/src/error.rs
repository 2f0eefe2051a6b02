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
        }
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The service answered the request with a failure code.
    #[error("{} failed: service returned {code}", op.as_str())]
    Service {
        /// The request.
        op: Op,
        /// The `PRL_RESULT` of the reply.
        code: ErrorCode,
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
    /// The caller's `AbortSignal` fired.
    #[error("{} failed: operation was canceled", op.as_str())]
    Canceled {
        /// The operation.
        op: Op,
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

    /// A canceled error for `op`.
    pub fn canceled(op: Op) -> Self {
        ClientError::Canceled { op }
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
            ClientError::Service { code, .. } => ClientError::Service { op: new, code },
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
            ClientError::Canceled { .. } => ClientError::Canceled { op: new },
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
        let e = ClientError::Service {
            op: Op::Login,
            code: ErrorCode::AUTHENTICATION_FAILED,
        };
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
        let e = ClientError::Service {
            op: Op::Logoff,
            code: ErrorCode(0x8000_0999),
        };
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
    fn messages_are_lower_case_and_name_the_operation() {
        let e = ClientError::canceled(Op::LoginLocal);
        assert_eq!(e.to_string(), "local login failed: operation was canceled");
        let e = relay(RelayErrorKind::PolicyDenied).with_op(Op::Connect);
        assert_eq!(e.to_string(), "connect failed: policy_denied: x");
    }
}
