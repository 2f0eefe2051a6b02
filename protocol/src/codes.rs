//! Numeric identifiers of the protocol: `PRL_RESULT` error codes, command ids, event types.
//!
//! Evidence: `libprlsdk:Sources/SDK/Include/PrlErrorsValues.h` (`PRL_RESULT_DECLARE_ERROR(n)` is
//! `0x80000000 + 0x<n>`: the decimal-looking number is pasted as hex),
//! `libprlcommon:Interfaces/VirtuozzoNamespace.h` (`IDispatcherCommands`) and
//! `libprlsdk:Sources/SDK/Include/PrlEventsValues.h`.

use std::fmt;

/// A `PRL_RESULT`: 0 is success, values with the top bit set are errors.
///
/// Only the codes that matter around connecting and logging in carry a name here; any other
/// value is kept as is and displayed in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ErrorCode(pub u32);

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// The SDK's name (`PRL_ERR_...`) of a known code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(concat!("PRL_ERR_", stringify!($name))),)*
                    _ => None,
                }
            }

            /// Every code this crate names, in numeric order of declaration.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode($value)),*];
        }
    };
}

error_codes! {
    /// Success.
    SUCCESS = 0x0000_0000,
    /// Unexpected internal error.
    UNEXPECTED = 0x8000_0001,
    /// Out of memory.
    OUT_OF_MEMORY = 0x8000_0002,
    /// An argument is invalid (the service: password too long).
    INVALID_ARG = 0x8000_0003,
    /// Invalid handle.
    INVALID_HANDLE = 0x8000_0004,
    /// Access denied.
    ACCESS_DENIED = 0x8000_0005,
    /// Not implemented.
    UNIMPLEMENTED = 0x8000_0008,
    /// Generic failure (the service: malformed login request).
    FAILURE = 0x8000_0009,
    /// No data.
    NO_DATA = 0x8000_0014,
    /// Timeout (the service: initialisation not finished).
    TIMEOUT = 0x8000_0015,
    /// Operation failed.
    OPERATION_FAILED = 0x8000_0016,
    /// Invalid parameter.
    INVALID_PARAM = 0x8000_0018,
    /// A command other than login arrived before login.
    USER_OPERATION_NOT_AUTHORISED = 0x8000_0059,
    /// A second login on a logged-in connection.
    USER_IS_ALREADY_LOGGED = 0x8000_0061,
    /// The entry does not exist.
    ENTRY_DOES_NOT_EXIST = 0x8000_0079,
    /// Unknown command.
    UNRECOGNIZED_REQUEST = 0x8000_0091,
    /// No such task.
    TASK_NOT_FOUND = 0x8000_0092,
    /// Placeholder result of an unfinished operation.
    FIXME = 0x8000_0227,
    /// Client side: the connection to the service closed.
    WS_DISP_CONNECTION_CLOSED = 0x8000_0246,
    /// Client side: could not connect (includes an expired connect budget).
    CANT_CONNECT_TO_DISPATCHER = 0x8000_0249,
    /// Client side: not connected.
    NOT_CONNECTED_TO_DISPATCHER = 0x8000_0251,
    /// Client side: already connected.
    ALREADY_CONNECTED_TO_DISPATCHER = 0x8000_0252,
    /// The operation was canceled.
    OPERATION_WAS_CANCELED = 0x8000_0275,
    /// Client side: the peer sent a null routing table.
    WRONG_CONNECTION_SECURITY_LEVEL = 0x8000_0277,
    /// IO-level authentication failed.
    IO_AUTHENTICATION_FAILED = 0x8000_0304,
    /// Wrong user name or password.
    AUTHENTICATION_FAILED = 0x8000_0330,
    /// Local (peer credential) authentication failed.
    LOCAL_AUTHENTICATION_FAILED = 0x8000_0331,
    /// The task to attach to was not started by the previous session of this one.
    ATTACH_TO_TASK_BAD_SESSION = 0x8000_0349,
    /// IO: no connection.
    IO_NO_CONNECTION = 0x8000_0401,
    /// The service is shutting down.
    DISP_SHUTDOWN_IN_PROCESS = 0x8000_0404,
    /// Client side: the IOService handshake failed (a service refusing the security level
    /// closes the socket, which shows up as this).
    HANDSHAKE_FAILED = 0x8000_0412,
    /// Client side: the peer's protocol major version differs.
    WRONG_PROTOCOL_VERSION = 0x8000_0413,
    /// Client side: the TLS handshake failed.
    SSL_HANDSHAKE_FAILED = 0x8000_0414,
    /// More than `MaxLogonActions` (16) logins in progress.
    DISP_LOGON_ACTIONS_REACHED_UP_LIMIT = 0x8000_0415,
    /// Send queue full; try again.
    TRY_AGAIN = 0x8000_0450,
    /// Could not connect after several attempts.
    CANT_CONNECT_TO_DISPATCHER_ITERATIVELY = 0x8000_0510,
    /// RSA decryption failed (public-key login).
    RSA_DECRYPTION_FAILED = 0x8000_0588,
    /// Public key not authorised (public-key login).
    PUBLIC_KEY_NOT_AUTHORIZED = 0x8000_0589,
}

impl ErrorCode {
    /// True for failure codes (top bit set), as `PRL_FAILED`.
    pub fn is_error(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// The value as the XML `EventCode` prints it (a signed 32-bit integer).
    pub fn as_signed(self) -> i32 {
        self.0 as i32
    }

    /// The code from its signed XML form.
    pub fn from_signed(value: i32) -> Self {
        ErrorCode(value as u32)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#010x})", self.0),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

/// Command and reply package types (`PVE::IDispatcherCommands`).
pub mod cmd {
    /// Remote login with user name and password.
    pub const USER_LOGIN: u32 = 2039;
    /// Legacy file-challenge local login (no handler in the current service).
    pub const USER_LOGIN_LOCAL: u32 = 2040;
    /// Stage 2 of the legacy local login.
    pub const USER_LOGIN_LOCAL_STAGE2: u32 = 2041;
    /// Logoff.
    pub const USER_LOGOFF: u32 = 2042;
    /// Ping.
    pub const USER_PING: u32 = 2052;
    /// Cancel an operation (first string param: the job uuid).
    pub const USER_CANCEL_OPERATION: u32 = 2053;
    /// Attach to a task left running by a lost session.
    pub const ATTACH_TO_LOST_TASK: u32 = 2090;
    /// Mark the session non-interactive.
    pub const SET_NON_INTERACTIVE_SESSION: u32 = 2125;
    /// Local login proven by the unix socket's peer credentials.
    pub const USER_EASY_LOGIN_LOCAL: u32 = 2186;
    /// Event (CVmEvent XML).
    pub const VM_EVENT: u32 = 3003;
    /// Event (binary CVmEvent).
    pub const VM_BINARY_EVENT: u32 = 3008;
    /// Binary VM response.
    pub const VM_BINARY_RESPONSE: u32 = 3009;
    /// Reply (CVmEvent XML).
    pub const WS_RESPONSE: u32 = 5001;
    /// Status reply.
    pub const REPLY_WS_STATUS: u32 = 5002;
    /// Reply (binary CVmEvents; the login reply of protocol >= 6.2).
    pub const WS_BINARY_RESPONSE: u32 = 5003;

    /// True for the client->service command range (2000..=2999).
    pub fn is_dispatcher_command(package_type: u32) -> bool {
        (2000..=2999).contains(&package_type)
    }
}

/// Event types (`PRL_EVENT_TYPE`, `PrlEventsValues.h`).
pub mod event_type {
    /// Default type of a fresh CVmEvent.
    pub const UNINITIALIZED: u32 = 100_000;
    /// A VM changed state.
    pub const VM_STATE_CHANGED: u32 = 100_001;
    /// A job's progress changed.
    pub const JOB_PROGRESS_CHANGED: u32 = 100_051;
    /// Client side: the connection to the service closed.
    pub const DISP_CONNECTION_CLOSED: u32 = 100_403;
    /// A VM message.
    pub const VM_MESSAGE: u32 = 100_502;
    /// A question to answer.
    pub const VM_QUESTION: u32 = 100_503;
    /// An error message.
    pub const ERROR_MESSAGE: u32 = 100_507;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_pasted_hex() {
        assert_eq!(ErrorCode::AUTHENTICATION_FAILED.0, 0x8000_0330);
        assert_eq!(
            ErrorCode::AUTHENTICATION_FAILED.name(),
            Some("PRL_ERR_AUTHENTICATION_FAILED")
        );
        assert_eq!(ErrorCode::AUTHENTICATION_FAILED.as_signed(), -2147482832);
        assert_eq!(
            ErrorCode::from_signed(-2147482832),
            ErrorCode::AUTHENTICATION_FAILED
        );
        assert!(!ErrorCode::SUCCESS.is_error());
        assert!(ErrorCode::HANDSHAKE_FAILED.is_error());
        assert_eq!(
            ErrorCode(0x8000_0330).to_string(),
            "PRL_ERR_AUTHENTICATION_FAILED (0x80000330)"
        );
        assert_eq!(ErrorCode(0x8000_9999).to_string(), "0x80009999");
    }

    #[test]
    fn names_are_unique_and_sorted() {
        let mut seen = std::collections::HashSet::new();
        for pair in ErrorCode::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{:?} before {:?}", pair[0], pair[1]);
        }
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.name()));
        }
    }
}
