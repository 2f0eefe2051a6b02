//! The commands and replies around a session: login (2039), easy local login (2186), logoff
//! (2042), ping (2052), cancel (2053), attach to lost task (2090), the replies 5001 / 5003 and
//! job progress events (3003).
//!
//! Both sides live here (one codec): the client builds requests and parses replies, the
//! simulator parses requests and builds replies, the proxy recognises logins.
//!
//! Evidence: `libprlcommon:Libraries/ProtoSerializer/CProtoCommands.cpp` (request payloads and
//! `IsValid`), `prl-disp-service:Dispatcher/Dispatcher/CDspUserHelper.cpp`
//! (`makeLoginResponsePacket`, `decodePassword`), `CDspClient.cpp` (`sendSimpleResponse`,
//! `sendResponseError`), `libprlsdk:Sources/SDK/Handles/Disp/PrlHandleLoginHelperJob.cpp`
//! (`EncodePassword`), `libprlcommon:Interfaces/VirtuozzoDomModel.h` (parameter names).
//!
//! Every CVmEvent the real code creates gets fresh random `EventIssuerId` and
//! `EventInitialRequestId` values (`CVmEventBase` constructor). This crate has no randomness:
//! callers pass a UUID source (`ids`).

use std::fmt;

use base64::Engine as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::codes::{cmd, event_type, ErrorCode};
use crate::event::{Event, EventError, ParamType, ParamValue};
use crate::matrices::{FeaturesMatrix, MatrixError, OsesMatrix, ServerMatrices};
use crate::package::{text_buffer, Buffer, Package, PackageError};
use crate::uuid_string;

/// Parameter names (`VirtuozzoDomModel.h`).
pub mod param {
    /// Every command: force-questions flag (UnsignedInt).
    pub const FORCE_QUESTIONS_SIGN: &str = "proto_force_questions_sign";
    /// Every command: flags (UnsignedInt).
    pub const COMMAND_FLAGS: &str = "proto_command_flags";
    /// Replies: the request's package type (UnsignedInt).
    pub const REQUEST_OP_CODE: &str = "proto_request_op_code";
    /// Generic first string parameter (cancel: job uuid; attach: task id).
    pub const FIRST_STR_PARAM: &str = "proto_first_str_param";
    /// Login: user name.
    pub const LOGIN_USERNAME: &str = "login_cmd_username";
    /// Login: password (base64 of the NUL-padded password for protocol >= 6.9).
    pub const LOGIN_PASSWORD: &str = "login_cmd_password";
    /// Login: previous session to restore.
    pub const LOGIN_SESSION_TO_RESTORE: &str = "login_cmd_session_uuid_to_restore";
    /// Easy local login: application mode.
    pub const EASY_LOGIN_LOCAL_APPLICATION_MODE: &str = "easy_login_local_cmd_application_mode";
    /// Easy local login: previous session to restore.
    pub const EASY_LOGIN_LOCAL_SESSION_TO_RESTORE: &str =
        "easy_login_local_cmd_session_uuid_to_restore";
    /// 5001: a reply's standard string parameters.
    pub const WS_RESPONSE_STANDARD_PARAM: &str = "ws_response_cmd_standard_param";
    /// 5001: the XML of an error event.
    pub const WS_RESPONSE_ERROR: &str = "ws_response_cmd_error";
    /// 5001 login reply of old clients: the login event's XML.
    pub const WS_RESPONSE_LOGIN_EVENT: &str = "ws_response_cmd_login_event";
    /// Login reply: session uuid.
    pub const SESSION_UUID: &str = "response_login_cmd_session_uuid";
    /// Login reply: one lost task (CData holding a CVmEvent XML).
    pub const TASK_INFO: &str = "response_login_cmd_task_info";
    /// Lost task: its job uuid.
    pub const TASK_ID: &str = "response_login_cmd_task_id";
    /// Lost task: the type of the request that started it.
    pub const TASK_TYPE: &str = "response_login_cmd_task_type";
    /// Lost task: its parameters (a CVmEvent XML).
    pub const TASK_PARAMS: &str = "response_login_cmd_task_params";
    /// Server info: host OS version.
    pub const OS_VERSION: &str = "server_info_os_version";
    /// Server info: server uuid.
    pub const SERVER_UUID: &str = "server_info_server_uuid";
    /// Server info: product version.
    pub const PRODUCT_VERSION: &str = "server_info_product_version";
    /// Server info: confirmation mode "0"/"1".
    pub const CONFIRMATION_MODE: &str = "server_info_confirmation_mode";
    /// Server info: application execute mode.
    pub const APP_EXECUTE_MODE: &str = "server_info_app_execute_mode";
    /// Server info: start time, ms since the epoch.
    pub const START_TIME: &str = "server_info_start_time";
    /// Server info: monotonic start time.
    pub const START_TIME_MONOTONIC: &str = "server_info_start_time_monotonic";
    /// Server info: launchd mode flag.
    pub const IS_LAUNCHD_MODE: &str = "server_info_is_launchd_mode";
    /// Binary login reply: the guest OS matrix ([`crate::matrices::OsesMatrix`]).
    pub const SUPPORTED_OSES_LIST: &str = "prl_supported_oses_list";
    /// Binary login reply: the features matrix ([`crate::matrices::FeaturesMatrix`]).
    pub const FEATURES_MATRIX: &str = "prl_features_matrix";
    /// Progress events: percent done (UnsignedInt).
    pub const PROGRESS_CHANGED: &str = "progress_changed";
}

/// `PCF_ORIGINAL_CLIENT`: the SDK ORs it into every login's flags.
pub const PCF_ORIGINAL_CLIENT: u32 = 1 << 11;
/// `PLLF_LOGIN_WITH_RSA_KEYS`: public-key login (not supported by this crate's client).
pub const PLLF_LOGIN_WITH_RSA_KEYS: u32 = 1 << 14;
/// `MAX_PASSWORD_LENGTH`: the SDK pads passwords to this many UTF-16 units.
pub const MAX_PASSWORD_LENGTH: usize = 1024;
/// `MAX_ENCODED_PASSWORD_LENGTH`: longer (decoded) passwords are refused with INVALID_ARG.
pub const MAX_ENCODED_PASSWORD_LENGTH: usize = 4 * MAX_PASSWORD_LENGTH.div_ceil(3);
/// `PAM_SERVER`, the application mode of easy local login.
pub const PAM_SERVER: u32 = 0;
/// `PIE_DISPATCHER` issuer type.
pub const ISSUER_DISPATCHER: u32 = 1;
/// `PIE_UNKNOWN` issuer type.
pub const ISSUER_UNKNOWN: u32 = 0xFF;

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

/// A password held in memory only as long as needed; zeroized on drop, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wrap a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The wire form: for protocol >= 6.9 `base64(utf8(password.leftJustified(1024, NUL)))`
    /// (`PrlHandleLoginHelperJob::EncodePassword`), else the password itself.
    pub fn encode(&self, base64_password: bool) -> Zeroizing<String> {
        if !base64_password {
            return self.0.clone();
        }
        let units = self.0.encode_utf16().count();
        let mut padded = Zeroizing::new(Vec::with_capacity(self.0.len() + MAX_PASSWORD_LENGTH));
        padded.extend_from_slice(self.0.as_bytes());
        padded.resize(self.0.len() + MAX_PASSWORD_LENGTH.saturating_sub(units), 0);
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*padded))
    }

    /// Decode a wire password exactly as the service does (`CDspUserHelper::decodePassword`,
    /// then the length check of `processLogin`), for protocol >= 6.9:
    /// 1. Qt's lenient `QByteArray::fromBase64` (Qt 5): every byte outside `A-Z a-z 0-9 + /`
    ///    is skipped (padding, line breaks, stray characters, non-ASCII), the remaining 6-bit
    ///    groups are concatenated and every full 8 bits is a byte; leftover bits are dropped.
    ///    So unpadded, wrapped or dirty text decodes, and nothing is ever an error.
    /// 2. `QString(QByteArray)`: cut at the first NUL, then Qt's UTF-8 decoder: a leading
    ///    UTF-8 BOM is skipped and every byte that is not part of a valid sequence becomes one
    ///    U+FFFD.
    /// 3. A result longer than `MAX_ENCODED_PASSWORD_LENGTH` UTF-16 units is refused with
    ///    `INVALID_ARG`. (The check is on the decoded password, not on the encoded text: a
    ///    non-ASCII password legitimately encodes to more than 1368 characters.)
    ///
    /// Below protocol 6.9 the wire text is the password itself.
    pub fn decode(wire: &str, base64_password: bool) -> Result<Password, CommandError> {
        let password = if base64_password {
            let bytes = qt_from_base64(wire.as_bytes());
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            Password(qt_from_utf8(bytes.get(..end).unwrap_or_default()))
        } else {
            Password::new(wire)
        };
        let units = password.0.encode_utf16().count();
        if units > MAX_ENCODED_PASSWORD_LENGTH {
            return Err(CommandError::PasswordTooLong { len: units });
        }
        Ok(password)
    }
}

/// Qt 5's `QByteArray::fromBase64(text)` (default options): bytes outside the standard
/// alphabet are skipped wherever they are (`=` included), the rest is one stream of 6-bit
/// groups; each full 8 bits is a byte and the leftover bits at the end are dropped.
///
/// Done with the base64 crate: the alphabet bytes, without the last one when it alone is left
/// over (6 bits make no byte), decoded with any trailing bits allowed and no padding.
fn qt_from_base64(text: &[u8]) -> Zeroizing<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const QT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let mut symbols: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            .collect(),
    );
    if symbols.len() % 4 == 1 {
        symbols.pop();
    }
    // Sized once (no reallocation leaves copies behind): at most 3 bytes per 4 symbols.
    let mut out = Zeroizing::new(vec![0u8; symbols.len().div_ceil(4) * 3]);
    // Only alphabet symbols remain, in a length the decoder accepts: this cannot fail.
    let written = QT.decode_slice(&*symbols, &mut out).unwrap_or(0);
    out.truncate(written);
    out
}

/// Qt 5's UTF-8 to `QString` conversion (`QUtf8::convertToUnicode`): a leading BOM is
/// skipped; valid sequences decode as in Rust (the validity rules are RFC 3629's in both, and
/// non-characters are allowed); after an invalid lead Qt consumes only that byte, so every
/// byte of an invalid sequence becomes its own U+FFFD (Rust's lossy decoding would replace a
/// truncated sequence with a single one).
fn qt_from_utf8(bytes: &[u8]) -> Zeroizing<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut text = Zeroizing::new(String::with_capacity(bytes.len()));
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for _ in chunk.invalid() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    text
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

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

/// A command recognised by [`Command::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 2039.
    Login(LoginRequest),
    /// 2186.
    LoginLocal(LoginLocalRequest),
    /// 2042.
    Logoff,
    /// 2052.
    Ping,
    /// 2053 with the job uuid to cancel.
    Cancel {
        /// The job (request package) uuid, `{...}`.
        job_uuid: String,
    },
    /// 2090 with the task to attach to.
    AttachToLostTask {
        /// The task id, `{...}`.
        task_id: String,
    },
    /// Any other package type.
    Other(u32),
}

/// A fresh command event: `CProtoCommandBase(bForceQuestionsSign = false, flags)`.
pub fn command_event(flags: u32, ids: &mut dyn FnMut() -> Uuid) -> Event {
    let mut event = fresh_event(ids);
    event.add_uint(param::FORCE_QUESTIONS_SIGN, 0);
    event.add_uint(param::COMMAND_FLAGS, flags);
    event
}

/// A default CVmEvent as the real constructor makes it (random issuer and request ids).
pub fn fresh_event(ids: &mut dyn FnMut() -> Uuid) -> Event {
    Event {
        issuer_id: uuid_string(&ids()),
        initial_request_id: uuid_string(&ids()),
        ..Event::default()
    }
}

/// A request package carrying `event` as NUL-terminated XML in buffer 0.
pub fn request_package(package_type: u32, event: &Event, job_uuid: Uuid, sender: Uuid) -> Package {
    Package::request(
        package_type,
        job_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    )
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

    /// Parse as the service does (`CProtoCommandDspCmdUserLogin::IsValid` + `decodePassword`).
    pub fn from_event(event: &Event, base64_password: bool) -> Result<Self, CommandError> {
        let t = cmd::USER_LOGIN;
        let user = required(event, t, param::LOGIN_USERNAME, ParamType::STRING)?;
        let password = required(event, t, param::LOGIN_PASSWORD, ParamType::STRING)?;
        let prev = required(event, t, param::LOGIN_SESSION_TO_RESTORE, ParamType::STRING)?;
        Ok(LoginRequest {
            user: user.to_owned(),
            password: Password::decode(password, base64_password)?,
            prev_session_uuid: prev.to_owned(),
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

/// A command without parameters of its own (logoff, ping).
pub fn simple_command(
    package_type: u32,
    job_uuid: Uuid,
    sender: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    request_package(package_type, &command_event(0, ids), job_uuid, sender)
}

/// A command with one string parameter (cancel: the job uuid; attach: the task id).
pub fn one_str_command(
    package_type: u32,
    value: &str,
    job_uuid: Uuid,
    sender: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = command_event(0, ids);
    event.add_string(param::FIRST_STR_PARAM, value);
    request_package(package_type, &event, job_uuid, sender)
}

/// The XML event in buffer 0 of a package.
pub fn package_event(package: &Package) -> Result<Event, CommandError> {
    let t = package.header.package_type;
    let text = match package.text(0) {
        None => return Err(CommandError::NoPayload(t)),
        Some(Err(_)) => return Err(CommandError::NotUtf8(t)),
        Some(Ok(text)) => text,
    };
    Event::from_xml(text).map_err(|source| CommandError::Event {
        package_type: t,
        source,
    })
}

/// The event a service package carries: the XML of a 3003 (`DspVmEvent`) or the binary
/// CVmEvent of a 3008 (`DspVmBinaryEvent`, whose event id is the header's `numericId`);
/// `None` for other package types.
pub fn carried_event(package: &Package) -> Result<Option<Event>, CommandError> {
    let t = package.header.package_type;
    match t {
        cmd::VM_EVENT => package_event(package).map(Some),
        cmd::VM_BINARY_EVENT => {
            let body = package
                .buffers
                .first()
                .map(|b| b.data.as_slice())
                .ok_or(CommandError::NoPayload(t))?;
            let (mut event, _) =
                Event::decode_binary(body).map_err(|source| CommandError::Event {
                    package_type: t,
                    source,
                })?;
            event.event_id = package.header.numeric_id;
            Ok(Some(event))
        }
        _ => Ok(None),
    }
}

impl Command {
    /// Recognise a command package. `base64_password` is the peer's protocol >= 6.9.
    pub fn parse(package: &Package, base64_password: bool) -> Result<Command, CommandError> {
        let t = package.header.package_type;
        Ok(match t {
            cmd::USER_LOGIN => Command::Login(LoginRequest::from_event(
                &package_event(package)?,
                base64_password,
            )?),
            cmd::USER_EASY_LOGIN_LOCAL => {
                Command::LoginLocal(LoginLocalRequest::from_event(&package_event(package)?)?)
            }
            cmd::USER_LOGOFF => Command::Logoff,
            cmd::USER_PING => Command::Ping,
            cmd::USER_CANCEL_OPERATION => Command::Cancel {
                job_uuid: required(
                    &package_event(package)?,
                    t,
                    param::FIRST_STR_PARAM,
                    ParamType::STRING,
                )?
                .to_owned(),
            },
            cmd::ATTACH_TO_LOST_TASK => Command::AttachToLostTask {
                task_id: required(
                    &package_event(package)?,
                    t,
                    param::FIRST_STR_PARAM,
                    ParamType::STRING,
                )?
                .to_owned(),
            },
            other => Command::Other(other),
        })
    }
}

fn required<'a>(
    event: &'a Event,
    package_type: u32,
    name: &'static str,
    expected: ParamType,
) -> Result<&'a str, CommandError> {
    match event.param(name) {
        Some(p) if p.param_type == expected => p.as_str().ok_or(CommandError::MissingParam {
            package_type,
            name,
            expected,
        }),
        _ => Err(CommandError::MissingParam {
            package_type,
            name,
            expected,
        }),
    }
}

fn optional_uint(
    event: &Event,
    package_type: u32,
    name: &'static str,
) -> Result<Option<u32>, CommandError> {
    match event.string(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| CommandError::BadNumber { package_type, name }),
    }
}

/// What the service reports about itself in a login reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// Host OS version ("Unknown" when empty, like the service).
    pub os_version: String,
    /// Server uuid, `{...}`.
    pub server_uuid: String,
    /// Product version (`VER_FULL_BUILD_NUMBER_STR`).
    pub product_version: String,
    /// Confirmation mode.
    pub confirmation_mode: bool,
    /// `PRL_APPLICATION_MODE` of the service.
    pub app_execute_mode: u32,
    /// Service start time, ms since the epoch.
    pub start_time_ms: u64,
    /// Monotonic start time.
    pub start_time_monotonic: u64,
    /// launchd mode.
    pub launchd_mode: bool,
}

/// A task left running by a lost session, as listed in a login reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LostTask {
    /// The task's job uuid, `{...}` (what 2090 takes).
    pub task_id: String,
    /// The package type of the request that started it.
    pub task_type: u32,
    /// The task's parameters (CVmEvent XML, may be empty).
    pub task_params: String,
}

impl LostTask {
    fn to_cdata(&self) -> String {
        let mut info = Event::default();
        info.add_string(param::TASK_ID, &self.task_id);
        info.add_uint(param::TASK_TYPE, self.task_type);
        info.add_string(param::TASK_PARAMS, &self.task_params);
        info.to_xml()
    }

    fn from_cdata(xml: &str) -> Result<LostTask, CommandError> {
        let t = cmd::WS_BINARY_RESPONSE;
        let info = Event::from_xml(xml).map_err(|source| CommandError::Event {
            package_type: t,
            source,
        })?;
        Ok(LostTask {
            task_id: info.string(param::TASK_ID).unwrap_or_default().to_owned(),
            task_type: optional_uint(&info, t, param::TASK_TYPE)?.unwrap_or(0),
            task_params: info
                .string(param::TASK_PARAMS)
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// The login event of a successful login (`makeLoginResponsePacket`), without the binary OS
/// and features matrices: the service adds those only to a binary reply
/// ([`login_reply_with_matrices`]). Like every `CVmEvent` it has a random issuer id and initial
/// request id (`ids`, called before the reply event's own).
pub fn login_event(
    session_uuid: &str,
    info: &ServerInfo,
    tasks: &[LostTask],
    ids: &mut dyn FnMut() -> Uuid,
) -> Event {
    let mut event = fresh_event(ids);
    let os = if info.os_version.is_empty() {
        "Unknown"
    } else {
        &info.os_version
    };
    event.add_string(param::SESSION_UUID, session_uuid);
    event.add_string(param::OS_VERSION, os);
    event.add_string(param::SERVER_UUID, &info.server_uuid);
    event.add_string(param::PRODUCT_VERSION, &info.product_version);
    event.add_string(
        param::CONFIRMATION_MODE,
        u8::from(info.confirmation_mode).to_string(),
    );
    event.add_string(param::APP_EXECUTE_MODE, info.app_execute_mode.to_string());
    event.add_string(param::START_TIME, info.start_time_ms.to_string());
    event.add_string(
        param::START_TIME_MONOTONIC,
        info.start_time_monotonic.to_string(),
    );
    event.add_string(
        param::IS_LAUNCHD_MODE,
        u8::from(info.launchd_mode).to_string(),
    );
    for task in tasks {
        event.add_cdata(param::TASK_INFO, task.to_cdata());
    }
    event
}

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

fn response_package(request: &Package, sender: Uuid, reply_uuid: Uuid, event: &Event) -> Package {
    Package::direct_response(
        request,
        cmd::WS_RESPONSE,
        reply_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    )
}

/// The successful login reply: 5003 with two binary events for clients with protocol >= 6.2
/// (`binary_response`), a broadcast response (no receiver uuid, as the service builds it), else
/// a direct 5001 with the login event's XML as a string parameter.
pub fn login_reply(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    login: &Event,
    binary_response: bool,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut response = ws_response_event(request.header.package_type, ErrorCode::SUCCESS, ids);
    if !binary_response {
        response.add_string(param::WS_RESPONSE_LOGIN_EVENT, login.to_xml());
        return response_package(request, sender, reply_uuid, &response);
    }
    let mut body = response.to_binary();
    body.extend_from_slice(&login.to_binary());
    // Built from a QDataStream: a broadcast response, receiverUuid zero (the XML replies are
    // direct responses).
    Package::broadcast_response(
        request,
        cmd::WS_BINARY_RESPONSE,
        reply_uuid,
        sender,
        vec![Buffer::raw(body)],
    )
}

/// The successful login reply exactly as the service sends it (`makeLoginResponsePacket`):
/// for a binary reply (client protocol >= 6.2) the two binary parameters
/// `prl_supported_oses_list` and `prl_features_matrix` are appended to the login event, after
/// everything else (the server info strings and the lost tasks), then the 5003 is built as
/// [`login_reply`] does; an old client's 5001 carries the login event without them. Nothing
/// follows the matrices (the `session_rectrict_event` the SDK looks for is never sent).
pub fn login_reply_with_matrices(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    login: &Event,
    matrices: &ServerMatrices,
    binary_response: bool,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    if !binary_response {
        return login_reply(request, sender, reply_uuid, login, false, ids);
    }
    let mut login = login.clone();
    login.add_binary(param::SUPPORTED_OSES_LIST, matrices.oses.encode());
    login.add_binary(param::FEATURES_MATRIX, matrices.features.encode());
    login_reply(request, sender, reply_uuid, &login, true, ids)
}

/// A job progress event (3003, `PET_DSP_EVT_JOB_PROGRESS_CHANGED`) for the task started by
/// the request `task_request_uuid` (its parentUuid; the SDK takes the event's request id
/// from it).
pub fn progress_event(
    task_request_uuid: Uuid,
    receiver: Uuid,
    sender: Uuid,
    event_uuid: Uuid,
    issuer_id: &str,
    percent: u32,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = fresh_event(ids);
    event.event_type = event_type::JOB_PROGRESS_CHANGED;
    event.issuer_type = ISSUER_UNKNOWN;
    event.issuer_id = issuer_id.to_owned();
    event.add_uint(param::PROGRESS_CHANGED, percent);
    let mut package = Package::request(
        cmd::VM_EVENT,
        event_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    );
    package.header.parent_uuid = task_request_uuid;
    package.header.receiver_uuid = receiver;
    package
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

    /// The login response of a successful login reply.
    pub fn login_response(&self) -> Result<LoginResponse, CommandError> {
        let event = self.login.as_ref().ok_or(CommandError::NoSessionUuid)?;
        LoginResponse::from_event(event)
    }
}

/// What a successful login tells the client (`PrlHandleServer::ProcessLoginResponse`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LoginResponse {
    /// The session uuid (= the client's IO connection uuid), `{...}`. A secret.
    pub session_uuid: String,
    /// Server uuid.
    pub server_uuid: String,
    /// Product version.
    pub product_version: String,
    /// Host OS version.
    pub host_os_version: String,
    /// Service start time (ms since the epoch), when reported.
    pub start_time_ms: Option<u64>,
    /// Tasks of the previous session still running.
    pub running_tasks: Vec<LostTask>,
    /// The raw guest OS matrix (`prl_supported_oses_list`), when the reply carries a binary
    /// parameter of that name (a 5001 reply never does); decoded on demand by
    /// [`LoginResponse::supported_oses`], so a client that never asks (the browser package)
    /// carries no decoder. Like the SDK, a login never fails over it.
    pub supported_oses_bytes: Option<Vec<u8>>,
    /// The raw features matrix (`prl_features_matrix`), under the same rule
    /// ([`LoginResponse::features`]).
    pub features_bytes: Option<Vec<u8>>,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("session_uuid", &"<redacted>")
            .field("server_uuid", &self.server_uuid)
            .field("product_version", &self.product_version)
            .field("host_os_version", &self.host_os_version)
            .field("start_time_ms", &self.start_time_ms)
            .field("running_tasks", &self.running_tasks)
            .field(
                "supported_oses_bytes",
                &self.supported_oses_bytes.as_ref().map(Vec::len),
            )
            .field(
                "features_bytes",
                &self.features_bytes.as_ref().map(Vec::len),
            )
            .finish()
    }
}

impl LoginResponse {
    /// Read the login event.
    pub fn from_event(event: &Event) -> Result<LoginResponse, CommandError> {
        let session_uuid = event
            .string(param::SESSION_UUID)
            .filter(|s| !s.is_empty())
            .ok_or(CommandError::NoSessionUuid)?;
        let get = |name| event.string(name).unwrap_or_default().to_owned();
        let running_tasks = event
            .strings(param::TASK_INFO)
            .into_iter()
            .map(LostTask::from_cdata)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoginResponse {
            session_uuid: session_uuid.to_owned(),
            server_uuid: get(param::SERVER_UUID),
            product_version: get(param::PRODUCT_VERSION),
            host_os_version: get(param::OS_VERSION),
            start_time_ms: event
                .string(param::START_TIME)
                .and_then(|s| s.trim().parse().ok()),
            running_tasks,
            supported_oses_bytes: binary_param(event, param::SUPPORTED_OSES_LIST)
                .map(<[u8]>::to_vec),
            features_bytes: binary_param(event, param::FEATURES_MATRIX).map(<[u8]>::to_vec),
        })
    }

    /// The guest OS matrix, decoded: `None` when the reply had none.
    pub fn supported_oses(&self) -> Option<Result<OsesMatrix, MatrixError>> {
        self.supported_oses_bytes.as_deref().map(OsesMatrix::decode)
    }

    /// The features matrix, decoded: `None` when the reply had none.
    pub fn features(&self) -> Option<Result<FeaturesMatrix, MatrixError>> {
        self.features_bytes.as_deref().map(FeaturesMatrix::decode)
    }
}

/// The bytes of the first parameter named `name` if it is a binary one
/// (`PrlHandleServer::ProcessLoginResponse` looks up the first and skips any other class).
fn binary_param<'a>(event: &'a Event, name: &str) -> Option<&'a [u8]> {
    match &event.param(name)?.value {
        ParamValue::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn login_request(ids: &mut dyn FnMut() -> Uuid) -> Package {
        LoginRequest {
            user: "u".into(),
            password: Password::new("p"),
            prev_session_uuid: String::new(),
            flags: PCF_ORIGINAL_CLIENT,
        }
        .to_package(Uuid::from_u128(0xa), Uuid::from_u128(0xb), true, ids)
    }

    #[test]
    fn binary_login_reply_ends_with_the_two_matrices() {
        let mut ids = counter();
        let request = login_request(&mut ids);
        let task = LostTask {
            task_id: "{t}".into(),
            task_type: 9001,
            task_params: String::new(),
        };
        let login = login_event("{s}", &ServerInfo::default(), &[task], &mut ids);
        let matrices = ServerMatrices::linux_service(0);
        let package = login_reply_with_matrices(
            &request,
            Uuid::from_u128(0xc),
            Uuid::from_u128(0xd),
            &login,
            &matrices,
            true,
            &mut ids,
        );
        assert_eq!(package.header.package_type, cmd::WS_BINARY_RESPONSE);
        let reply = Reply::parse(&package).unwrap();
        let event = reply.login.as_ref().unwrap();
        // makeLoginResponsePacket's order: the login event's params, then the OS matrix, then
        // the features matrix, and nothing after them.
        let names: Vec<&str> = event.params.iter().map(|p| p.name.as_str()).collect();
        let n = login.params.len();
        assert_eq!(names.len(), n + 2);
        assert_eq!(
            &names[n..],
            [param::SUPPORTED_OSES_LIST, param::FEATURES_MATRIX]
        );
        assert_eq!(event.params[..n], login.params[..]);
        assert_eq!(
            event.params[n].value,
            ParamValue::Binary(matrices.oses.encode())
        );
        assert_eq!(
            event.params[n + 1].value,
            ParamValue::Binary(matrices.features.encode())
        );
        // `CVmBinaryEventParameter(name)` is of type UnsignedInt.
        assert_eq!(event.params[n].param_type, ParamType::UNSIGNED_INT);
        let response = reply.login_response().unwrap();
        assert_eq!(response.supported_oses(), Some(Ok(matrices.oses.clone())));
        assert_eq!(response.features(), Some(Ok(matrices.features.clone())));
        assert_eq!(response.running_tasks.len(), 1);
    }

    #[test]
    fn old_clients_get_no_matrices() {
        let mut ids = counter();
        let request = login_request(&mut ids);
        let login = login_event("{s}", &ServerInfo::default(), &[], &mut ids);
        let package = login_reply_with_matrices(
            &request,
            Uuid::from_u128(0xc),
            Uuid::from_u128(0xd),
            &login,
            &ServerMatrices::linux_service(0),
            false,
            &mut ids,
        );
        assert_eq!(package.header.package_type, cmd::WS_RESPONSE);
        let reply = Reply::parse(&package).unwrap();
        assert_eq!(reply.login.as_ref(), Some(&login));
        let response = reply.login_response().unwrap();
        assert_eq!(response.supported_oses(), None);
        assert_eq!(response.features(), None);
    }

    #[test]
    fn unreadable_matrices_do_not_fail_the_login() {
        let mut login = login_event("{s}", &ServerInfo::default(), &[], &mut counter());
        // Truncated OS matrix; a features matrix that is a string, not a binary parameter.
        login.add_binary(param::SUPPORTED_OSES_LIST, vec![0, 0, 0, 1, 9]);
        login.add_string(param::FEATURES_MATRIX, "1 2 3");
        let (back, _) = Event::decode_binary(&login.to_binary()).unwrap();
        let response = LoginResponse::from_event(&back).unwrap();
        assert_eq!(response.session_uuid, "{s}");
        assert_eq!(
            response.supported_oses().unwrap().unwrap_err().kind(),
            "truncated"
        );
        assert_eq!(response.features(), None);
        // Only the first parameter of a name counts, as in CVmEvent::getEventParameter.
        let mut login = login_event("{s}", &ServerInfo::default(), &[], &mut counter());
        login.add_string(param::FEATURES_MATRIX, "");
        login.add_binary(param::FEATURES_MATRIX, vec![0, 0, 0, 0]);
        assert_eq!(LoginResponse::from_event(&login).unwrap().features(), None);
        // The Debug form shows the matrices but not the session.
        let mut login = login_event("{secret}", &ServerInfo::default(), &[], &mut counter());
        login.add_binary(param::FEATURES_MATRIX, vec![0, 0, 0, 1, 0, 0, 0, 12]);
        let d = format!("{:?}", LoginResponse::from_event(&login).unwrap());
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("features_bytes: Some(8)"), "{d}");
    }
}
