//! Parameter names (`libprlcommon:Interfaces/VirtuozzoDomModel.h`).

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
