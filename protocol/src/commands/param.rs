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
/// VM commands (`CProtoBasicVmCommand`): the VM's uuid, `{...}` as its configuration holds it.
pub const BASIC_VM_CMD_VM_UUID: &str = "basic_vm_cmd_vm_uuid";
/// Pause (and stop, for old services): use ACPI (Boolean "0"/"1").
pub const VM_CMD_WITH_ACPI_SIGN: &str = "vm_cmd_with_acpi_sign_is_use_acpi";
/// Stop: the stop mode (`PSM_*`, UnsignedInt).
pub const VM_CMD_STOP_MODE: &str = "vm_cmd_vm_stop_mode";
/// StartEx: the start mode (`PSM_VM_START*`, UnsignedInt).
pub const VM_START_EX_MODE: &str = "vm_start_ex_cmd_start_mode";
/// StartEx: the reserved parameter (`PNSF_*` flags, UnsignedInt).
pub const VM_START_EX_RESERVED: &str = "vm_start_ex_cmd_reserved_parameter";
/// 5001 of 2051: the host hardware info XML.
pub const WS_RESPONSE_HOST_HW_INFO: &str = "ws_response_cmd_host_hardware_info";
/// 5001 of 2062: the VM info event's XML.
pub const WS_RESPONSE_VM_EVENT: &str = "ws_response_cmd_vm_event";
/// An error event's message (`EVT_PARAM_DETAIL_DESCRIPTION`, `Error::Simple`).
pub const DETAILS: &str = "Details";
/// VM info: `PRL_FAILED` of the access check (Integer 0/1).
pub const VMINFO_IS_INVALID: &str = "vminfo_vm_is_invalid";
/// VM info: the access check's result (Integer, a signed `PRL_RESULT`).
pub const VMINFO_VALID_RC: &str = "vminfo_vm_valid_rc";
/// VM info and state events: the `VIRTUAL_MACHINE_STATE` (Integer, signed decimal).
pub const VMINFO_STATE: &str = "vminfo_vm_state";
/// VM info: the `<Security>` XML of the VM for this session (String).
pub const VMINFO_SECURITY: &str = "vminfo_vm_security";
/// VM info: a VNC server runs for the VM (UnsignedInt 0/1).
pub const VMINFO_VNC_SERVER_STARTED: &str = "vminfo_vm_is_vnc_server_started";
/// VM info and addition-state events: `VIRTUAL_MACHINE_ADDITION_STATE`.
pub const VMINFO_ADDITION_STATE: &str = "vminfo_vm_addition_state";
/// VM info: the VM waits for an answer to a question (UnsignedInt 0/1).
pub const VMINFO_WAITING_FOR_ANSWER: &str = "vminfo_is_vm_waiting_for_answer";
/// VM added event: the generated name, when the service made one up (String).
pub const VM_GENERATED_NAME: &str = "vm_generated_name";
