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
//!
//! # Modules
//! One file per concern, all re-exported here (`prl_protocol::commands::X`):
//! - `request`: the command event every request carries ([`command_event`]), request packages,
//!   reading a package's event ([`package_event`], [`carried_event`]) and [`Command`], the
//!   recognised requests;
//! - `login`: [`LoginRequest`] (with [`LoginRequest::peek`]: user, previous session and flags
//!   without the password) and [`LoginLocalRequest`];
//! - `password`: [`Password`] (the SDK's encoding, the service's lenient decoding) and
//!   [`WirePassword`];
//! - `reply`: 5001 / 5003 replies ([`simple_response`], [`error_response`], [`Reply`]);
//! - `login_reply`: the login reply and what it tells the client ([`LoginResponse`]);
//! - `tasks`: lost tasks ([`LostTask`]) and job progress events ([`progress_event`]);
//! - `param`: the parameter names; `error`: [`CommandError`].
//!
//! Host and VM operations (`GetSrvConfig`, `GetVmList`, `GetVmInfo`, VM start / stop / pause,
//! VM events) get modules of their own beside these (`host`, `vm`): their builders and parsers
//! there, their parameter names in `param`, one [`Command`] variant each in `request`.

mod error;
mod login;
mod login_reply;
pub mod param;
mod password;
mod reply;
mod request;
mod tasks;

pub use error::CommandError;
pub use login::{
    LoginLocalRequest, LoginPeek, LoginRequest, PAM_SERVER, PCF_ORIGINAL_CLIENT,
    PLLF_LOGIN_WITH_RSA_KEYS,
};
pub use login_reply::{
    login_event, login_reply, login_reply_with_matrices, LoginResponse, ServerInfo,
};
pub use password::{Password, WirePassword, MAX_ENCODED_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH};
pub use reply::{error_response, simple_response, ws_response_event, Reply};
pub use request::{
    carried_event, command_event, fresh_event, one_str_command, package_event, request_package,
    simple_command, Command, ISSUER_DISPATCHER, ISSUER_UNKNOWN,
};
pub use tasks::{progress_event, LostTask};
