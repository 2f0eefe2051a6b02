//! Why a package is not the command or reply it should be.

use super::{param, DocumentError, MAX_ENCODED_PASSWORD_LENGTH};
use crate::codes::ErrorCode;
use crate::event::{EventError, ParamType};
use crate::package::PackageError;

/// Why a package is not the command or reply it should be.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The package has no text buffer 0.
    #[error("package of type {0} has no text payload")]
    NoPayload(u32),
    /// Buffer 0 is not UTF-8 text.
    #[error("package of type {0} has a payload that is not utf-8")]
    NotUtf8(u32),
    /// The payload is not a valid event.
    #[error("bad event in package of type {package_type}: {source}")]
    Event {
        /// The package type.
        package_type: u32,
        /// What is wrong.
        #[source]
        source: EventError,
    },
    /// A parameter the command needs is missing or has the wrong type (the service answers
    /// `PRL_ERR_FAILURE` for an invalid login).
    #[error("command {package_type} lacks parameter {name} of type {expected:?}")]
    MissingParam {
        /// The package type.
        package_type: u32,
        /// Parameter name.
        name: &'static str,
        /// Expected type.
        expected: ParamType,
    },
    /// A numeric parameter does not parse.
    #[error("command {package_type} has a non-numeric {name}")]
    BadNumber {
        /// The package type.
        package_type: u32,
        /// Parameter name.
        name: &'static str,
    },
    /// The password is longer than the service accepts.
    #[error("password is {len} characters, limit {MAX_ENCODED_PASSWORD_LENGTH}")]
    PasswordTooLong {
        /// Its length.
        len: usize,
    },
    /// Not a reply package (5001 / 5003).
    #[error("package type {0} is not a reply")]
    NotAReply(u32),
    /// A 5003 reply lacks one of its two events.
    #[error("binary reply holds {0} events, expected 2")]
    MissingEvent(usize),
    /// The login reply has no session uuid.
    #[error("login reply lacks {}", param::SESSION_UUID)]
    NoSessionUuid,
    /// A document the reply or event carries (a VM configuration, host info, VM info) does
    /// not read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The package codec failed.
    #[error(transparent)]
    Package(#[from] PackageError),
}

impl CommandError {
    /// Stable name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoPayload(_) => "no_payload",
            Self::NotUtf8(_) => "not_utf8",
            Self::Event { .. } => "bad_event",
            Self::MissingParam { .. } => "missing_param",
            Self::BadNumber { .. } => "bad_number",
            Self::PasswordTooLong { .. } => "password_too_long",
            Self::NotAReply(_) => "not_a_reply",
            Self::MissingEvent(_) => "missing_event",
            Self::NoSessionUuid => "no_session_uuid",
            Self::Document(_) => "bad_document",
            Self::Package(_) => "package",
        }
    }

    /// The code the real service answers a request with when it fails this way.
    pub fn service_code(&self) -> ErrorCode {
        match self {
            Self::PasswordTooLong { .. } => ErrorCode::INVALID_ARG,
            _ => ErrorCode::FAILURE,
        }
    }
}
