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
//! - `spec`: requests described as data ([`RequestSpec`]: package type, flags, typed
//!   parameters), the one builder of every other request, and the generic view of a reply
//!   ([`ReplyView`]);
//! - `host`: host info (2051, [`HostInfo`]);
//! - `vm`: the VM list and info requests, the power operations ([`VmRequest`], [`VmAction`])
//!   and the VM events ([`VmEvent`], [`vm_state_event`]);
//! - `vm_info`: the VM info event ([`VmInfo`]) and `<Security>` ([`VmSecurity`]);
//! - `vm_config`: the VM configuration XML ([`VmSummary`] read, [`VmConfig`] written);
//! - `document`: reading the XML documents replies carry ([`DocumentError`]).
//!
//! Every request is built through [`RequestSpec`]; every XML document is read through the
//! crate's one XML reader (the QDom-like tree of `dom`).

mod document;
mod error;
mod host;
mod login;
mod login_reply;
pub mod param;
mod password;
mod reply;
mod request;
mod spec;
mod tasks;
mod vm;
mod vm_config;
mod vm_info;

pub use document::DocumentError;
pub use error::CommandError;
pub use host::{
    host_info_reply, host_info_request, parse_without_params, HostInfo, HOST_INFO_ROOT,
    PCM_CPU_MODE_64, PHO_LIN,
};
pub use login::{
    LoginLocalRequest, LoginPeek, LoginRequest, PAM_SERVER, PCF_ORIGINAL_CLIENT,
    PLLF_LOGIN_WITH_RSA_KEYS,
};
pub use login_reply::{
    login_event, login_reply, login_reply_with_matrices, LoginResponse, ServerInfo,
};
pub use password::{Password, WirePassword, MAX_ENCODED_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH};
pub use reply::{
    details_error, error_response, error_with_details, forked_failure_replies, simple_response,
    ws_response_event, Reply,
};
pub use request::{
    carried_event, command_event, fresh_event, one_str_command, package_event, request_package,
    simple_command, Command, ISSUER_DISPATCHER, ISSUER_UNKNOWN,
};
pub use spec::{
    ReplyErrorView, ReplyParam, ReplyView, RequestSpec, SpecError, SpecParam, SpecValue,
    MAX_SPEC_BYTES, MAX_SPEC_NAME_BYTES, MAX_SPEC_PARAMS,
};
pub use tasks::{progress_event, LostTask};
pub use vm::{
    parse_vm_info_request, vm_event_package, vm_info_request, vm_list_request, vm_state_event,
    VmAction, VmEvent, VmEventKind, VmRequest, UNINITIALIZED_EVENT_CODE,
};
pub use vm_config::{
    vm_list_from_reply, vm_list_reply, VmConfig, VmSummary, PVT_CT, PVT_VM, VM_CONFIG_ROOT,
};
pub use vm_info::{
    vm_info_reply, VmInfo, VmSecurity, PAO_VM_NOT_SHARED, PAO_VM_SHARED_ON_FULL_ACCESS,
    PAO_VM_SHARED_ON_VIEW, PAO_VM_SHARED_ON_VIEW_AND_RUN, VMAS_NOSTATE,
};
