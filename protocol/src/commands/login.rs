//! Login (2039) and easy local login (2186) requests.

use uuid::Uuid;
use zeroize::Zeroizing;

use std::fmt;

use super::request::{command_event, optional_uint, package_event, request_package, required};
use super::{param, CommandError, Password};
use crate::codes::cmd;
use crate::event::{Event, ParamType};
use crate::package::{text_buffer, Package};

/// `PCF_ORIGINAL_CLIENT`: the SDK ORs it into every login's flags.
pub const PCF_ORIGINAL_CLIENT: u32 = 1 << 11;
/// `PLLF_LOGIN_WITH_RSA_KEYS`: public-key login (not supported by this crate's client).
pub const PLLF_LOGIN_WITH_RSA_KEYS: u32 = 1 << 14;
/// `PAM_SERVER`, the application mode of easy local login.
pub const PAM_SERVER: u32 = 0;

/// `DspCmdUserLogin` (2039).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// User name.
    pub user: String,
    /// Password.
    pub password: Password,
    /// Previous session uuid to restore (`{...}`), empty for none.
    pub prev_session_uuid: String,
    /// `proto_command_flags` (the SDK always sets [`PCF_ORIGINAL_CLIENT`]).
    pub flags: u32,
}

/// A login request (2039) as far as it is read before its password: what the service checks
/// first (`IsValid`, then an already logged-in connection, the logon limit, the public-key
/// flag, a live session to take over) and what a relay needs to throttle and police it. Reading
/// it never decodes the password and never fails over it: a password longer than the service
/// accepts is the service's to refuse (`PRL_ERR_INVALID_ARG`, see
/// [`CommandError::service_code`]), not the reader's.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginPeek {
    /// `login_cmd_username`.
    pub user: String,
    /// `login_cmd_session_uuid_to_restore` (`{...}`), empty for none. A secret: a live session
    /// named here is taken over without a password.
    pub prev_session_uuid: String,
    /// `proto_command_flags` as the service reads them (`QString::toUInt`: 0 when missing or
    /// not a number).
    pub flags: u32,
}

impl fmt::Debug for LoginPeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prev = if self.prev_session_uuid.is_empty() {
            "none"
        } else {
            "<redacted>"
        };
        f.debug_struct("LoginPeek")
            .field("user", &self.user)
            .field("prev_session_uuid", &prev)
            .field("flags", &self.flags)
            .finish()
    }
}

/// `DspCmdUserEasyLoginLocal` (2186).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLocalRequest {
    /// `easy_login_local_cmd_application_mode` (the SDK sends `PAM_SERVER` = 0).
    pub application_mode: u32,
    /// Previous session uuid to restore, empty for none.
    pub prev_session_uuid: String,
    /// `proto_command_flags`.
    pub flags: u32,
}

impl LoginRequest {
    /// The login event exactly as the SDK builds it.
    pub fn to_event(&self, base64_password: bool, ids: &mut dyn FnMut() -> Uuid) -> Event {
        let mut event = command_event(self.flags, ids);
        event.add_string(param::LOGIN_USERNAME, &self.user);
        event.add_string(
            param::LOGIN_PASSWORD,
            self.password.encode(base64_password).as_str(),
        );
        event.add_string(param::LOGIN_SESSION_TO_RESTORE, &self.prev_session_uuid);
        event
    }

    /// The login package; its uuid is the job uuid the reply will name as parent.
    pub fn to_package(
        &self,
        job_uuid: Uuid,
        sender: Uuid,
        base64_password: bool,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Package {
        let mut event = self.to_event(base64_password, ids);
        // The XML and the event hold the (encoded) password: both are zeroized once the
        // package buffer (sized exactly, so never reallocated) has its copy.
        let xml = Zeroizing::new(event.to_xml());
        let package = Package::request(cmd::USER_LOGIN, job_uuid, sender, vec![text_buffer(&xml)]);
        event.wipe();
        package
    }

    /// Reads a login package without decoding its password ([`LoginPeek`]); the copy of the
    /// password the parsed event held is wiped before this returns.
    pub fn peek(package: &Package) -> Result<LoginPeek, CommandError> {
        let mut event = package_event(package)?;
        let peek = Self::peek_event(&event);
        event.wipe();
        peek
    }

    /// Reads a login event as `CProtoCommandDspCmdUserLogin::IsValid` validates it (the user
    /// name, password and session-to-restore String parameters must be there), without
    /// decoding the password.
    pub fn peek_event(event: &Event) -> Result<LoginPeek, CommandError> {
        let t = cmd::USER_LOGIN;
        let user = required(event, t, param::LOGIN_USERNAME, ParamType::STRING)?;
        required(event, t, param::LOGIN_PASSWORD, ParamType::STRING)?;
        let prev = required(event, t, param::LOGIN_SESSION_TO_RESTORE, ParamType::STRING)?;
        Ok(LoginPeek {
            user: user.to_owned(),
            prev_session_uuid: prev.to_owned(),
            flags: event.uint(param::COMMAND_FLAGS).unwrap_or(0),
        })
    }

    /// Parse as the service does ([`LoginRequest::peek_event`] + `decodePassword`), and
    /// stricter about the flags: a non-numeric `proto_command_flags` is
    /// [`CommandError::BadNumber`].
    pub fn from_event(event: &Event, base64_password: bool) -> Result<Self, CommandError> {
        let LoginPeek {
            user,
            prev_session_uuid,
            ..
        } = Self::peek_event(event)?;
        let t = cmd::USER_LOGIN;
        let wire = required(event, t, param::LOGIN_PASSWORD, ParamType::STRING)?;
        Ok(LoginRequest {
            user,
            password: Password::decode(wire, base64_password)?,
            prev_session_uuid,
            flags: optional_uint(event, t, param::COMMAND_FLAGS)?.unwrap_or(0),
        })
    }
}

impl LoginLocalRequest {
    /// The easy local login event as the SDK builds it.
    pub fn to_event(&self, ids: &mut dyn FnMut() -> Uuid) -> Event {
        let mut event = command_event(self.flags, ids);
        event.add_uint(
            param::EASY_LOGIN_LOCAL_APPLICATION_MODE,
            self.application_mode,
        );
        event.add_string(
            param::EASY_LOGIN_LOCAL_SESSION_TO_RESTORE,
            &self.prev_session_uuid,
        );
        event
    }

    /// The easy local login package.
    pub fn to_package(
        &self,
        job_uuid: Uuid,
        sender: Uuid,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Package {
        request_package(
            cmd::USER_EASY_LOGIN_LOCAL,
            &self.to_event(ids),
            job_uuid,
            sender,
        )
    }

    /// Parse as the service does (`IsValid` needs only the session-to-restore string).
    pub fn from_event(event: &Event) -> Result<Self, CommandError> {
        let t = cmd::USER_EASY_LOGIN_LOCAL;
        let prev = required(
            event,
            t,
            param::EASY_LOGIN_LOCAL_SESSION_TO_RESTORE,
            ParamType::STRING,
        )?;
        Ok(LoginLocalRequest {
            application_mode: optional_uint(event, t, param::EASY_LOGIN_LOCAL_APPLICATION_MODE)?
                .unwrap_or(PAM_SERVER),
            prev_session_uuid: prev.to_owned(),
            flags: optional_uint(event, t, param::COMMAND_FLAGS)?.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{WirePassword, MAX_ENCODED_PASSWORD_LENGTH};
    use crate::event::ParamValue;

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn login(password: &str, prev: &str) -> LoginRequest {
        LoginRequest {
            user: "alice".into(),
            password: Password::new(password),
            prev_session_uuid: prev.into(),
            flags: PCF_ORIGINAL_CLIENT,
        }
    }

    fn package(request: &LoginRequest) -> Package {
        request.to_package(Uuid::from_u128(0xa), Uuid::from_u128(0xb), true, &mut ids())
    }

    #[test]
    fn peek_reads_what_a_full_parse_reads_but_the_password() {
        let request = login("secret", "{00000000-0000-0000-0000-00000000000c}");
        let peek = LoginRequest::peek(&package(&request)).unwrap();
        assert_eq!(peek.user, request.user);
        assert_eq!(peek.prev_session_uuid, request.prev_session_uuid);
        assert_eq!(peek.flags, PCF_ORIGINAL_CLIENT);
        let event = package_event(&package(&request)).unwrap();
        assert_eq!(LoginRequest::peek_event(&event).unwrap(), peek);
        assert_eq!(LoginRequest::from_event(&event, true).unwrap(), request);
        let d = format!("{peek:?}");
        assert!(!d.contains("000c") && d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn an_over_long_password_is_the_services_to_refuse() {
        let request = login(&"x".repeat(MAX_ENCODED_PASSWORD_LENGTH + 1), "");
        let p = package(&request);
        // The peek does not look at the password at all.
        let peek = LoginRequest::peek(&p).unwrap();
        assert_eq!(
            (peek.user.as_str(), peek.flags),
            ("alice", PCF_ORIGINAL_CLIENT)
        );
        // Decoding it is what fails, with the service's own answer.
        let mut event = package_event(&p).unwrap();
        let e = LoginRequest::from_event(&event, true).unwrap_err();
        assert_eq!(e.kind(), "password_too_long");
        assert_eq!(e.service_code(), crate::ErrorCode::INVALID_ARG);
        let wire = WirePassword::take(&mut event).unwrap();
        assert_eq!(
            wire.decode(true).map_err(|e| e.service_code()),
            Err(crate::ErrorCode::INVALID_ARG)
        );
    }

    #[test]
    fn peek_validates_like_is_valid_and_reads_flags_like_to_uint() {
        let mut event = package_event(&package(&login("pw", ""))).unwrap();
        event.params.retain(|p| p.name != param::LOGIN_PASSWORD);
        let e = LoginRequest::peek_event(&event).unwrap_err();
        assert_eq!(e.kind(), "missing_param");
        assert_eq!(e.service_code(), crate::ErrorCode::FAILURE);
        let mut event = package_event(&package(&login("pw", ""))).unwrap();
        for p in &mut event.params {
            if p.name == param::COMMAND_FLAGS {
                p.value = ParamValue::Plain("lots".into());
            }
        }
        assert_eq!(LoginRequest::peek_event(&event).unwrap().flags, 0);
        assert_eq!(
            LoginRequest::from_event(&event, true).map_err(|e| e.kind()),
            Err("bad_number")
        );
    }

    #[test]
    fn the_wire_password_moves_out_of_the_event() {
        let request = login("Zer0ize-me", "");
        let mut event = package_event(&package(&request)).unwrap();
        let wire = WirePassword::take(&mut event).unwrap();
        assert_eq!(wire.expose(), request.password.encode(true).as_str());
        assert_eq!(wire.decode(true).unwrap().expose(), "Zer0ize-me");
        assert_eq!(event.string(param::LOGIN_PASSWORD), Some(""));
        assert!(!format!("{wire:?}").contains(wire.expose()));
        // A CData password is taken as text; one that is not UTF-8 is missing (`IsValid`).
        let mut event = Event::default();
        event.add_cdata(param::LOGIN_PASSWORD, "cGFzcw==");
        event.params[0].param_type = ParamType::STRING;
        assert_eq!(WirePassword::take(&mut event).unwrap().expose(), "cGFzcw==");
        assert_eq!(event.params[0].value, ParamValue::CData(Vec::new()));
        let mut event = Event::default();
        event.add_cdata(param::LOGIN_PASSWORD, b"\xff");
        event.params[0].param_type = ParamType::STRING;
        assert_eq!(
            WirePassword::take(&mut event).map_err(|e| e.kind()),
            Err("missing_param")
        );
        assert_eq!(
            WirePassword::take(&mut Event::default()).map_err(|e| e.kind()),
            Err("missing_param")
        );
    }
}
