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
    /// Not initialised (the service: a stop-kill of a VM libvirt does not know).
    UNINITIALIZED = 0x8000_0007,
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
    /// A bad VM directory configuration file.
    BAD_VM_DIR_CONFIG_FILE_SPECIFIED = 0x8000_0027,
    /// A VM configuration does not parse.
    PARSE_VM_CONFIG = 0x8000_0036,
    /// The VM's state cannot be read (the service: a graceful stop or a reset of a VM libvirt
    /// does not know).
    VM_GET_STATUS_FAILED = 0x8000_0047,
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
    /// No VM with that uuid.
    VM_UUID_NOT_FOUND = 0x8000_0105,
    /// Placeholder result of an unfinished operation.
    FIXME = 0x8000_0227,
    /// The session has no read access to the VM.
    ACCESS_TO_VM_DENIED = 0x8000_0239,
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
    /// The VM's configuration file does not exist.
    VM_CONFIG_DOESNT_EXIST = 0x8000_0283,
    /// IO-level authentication failed.
    IO_AUTHENTICATION_FAILED = 0x8000_0304,
    /// The VM directory does not exist.
    VM_DIRECTORY_NOT_EXIST = 0x8000_0327,
    /// Wrong user name or password.
    AUTHENTICATION_FAILED = 0x8000_0330,
    /// Local (peer credential) authentication failed.
    LOCAL_AUTHENTICATION_FAILED = 0x8000_0331,
    /// The task to attach to was not started by the previous session of this one.
    ATTACH_TO_TASK_BAD_SESSION = 0x8000_0349,
    /// A template cannot be started.
    CANT_TO_START_VM_TEMPLATE = 0x8000_0368,
    /// The VM configuration's uuid is invalid.
    VM_CONFIG_INVALID_VM_UUID = 0x8000_0374,
    /// The VM configuration's server uuid is invalid.
    VM_CONFIG_INVALID_SERVER_UUID = 0x8000_0375,
    /// The VM is not started.
    DISP_VM_IS_NOT_STARTED = 0x8000_0377,
    /// IO: no connection.
    IO_NO_CONNECTION = 0x8000_0401,
    /// The VM is already running.
    VM_ALREADY_RUNNING = 0x8000_0402,
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
    /// The VM configuration can be restored from a backup.
    VM_CONFIG_CAN_BE_RESTORED = 0x8000_0454,
    /// Another session holds the VM exclusively.
    VM_IS_EXCLUSIVELY_LOCKED = 0x8000_0476,
    /// Could not connect after several attempts.
    CANT_CONNECT_TO_DISPATCHER_ITERATIVELY = 0x8000_0510,
    /// The operation is not valid in the VM's state (libvirt's `VIR_ERR_OPERATION_INVALID`).
    INVALID_ACTION_REQUESTED = 0x8000_0516,
    /// RSA decryption failed (public-key login).
    RSA_DECRYPTION_FAILED = 0x8000_0588,
    /// Public key not authorised (public-key login).
    PUBLIC_KEY_NOT_AUTHORIZED = 0x8000_0589,
    /// The VM is not running (a graceful stop of a VM that does not run).
    DISP_VM_IS_NOT_RUNNING = 0x8000_0595,
    /// The VM is locked by a running start.
    VM_LOCKED_FOR_EXECUTE = 0x8003_8104,
    /// The VM is locked by a running operation.
    VM_LOCKED_FOR_EXECUTE_EX = 0x8003_8105,
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
    /// Start a VM (`DspCmdVmStart`); also what `PrlVm_Resume` sends.
    pub const VM_START: u32 = 1001;
    /// Stop a VM (`DspCmdVmStop`), killed or shut down by the stop mode.
    pub const VM_STOP: u32 = 1002;
    /// Reset a VM (`DspCmdVmReset`).
    pub const VM_RESET: u32 = 1006;
    /// Pause a VM (`DspCmdVmPause`).
    pub const VM_PAUSE: u32 = 1007;
    /// Suspend a VM to disk (`DspCmdVmSuspend`).
    pub const VM_SUSPEND: u32 = 1008;
    /// Resume a suspended VM (`DspCmdVmResume`): no SDK call sends it and the service has no
    /// handler for it (`PRL_ERR_UNRECOGNIZED_REQUEST`).
    pub const VM_RESUME: u32 = 1009;
    /// Start a VM in a mode (`DspCmdVmStartEx`).
    pub const VM_START_EX: u32 = 1036;
    /// Restart the guest OS (`DspCmdVmRestartGuest`), what `PrlVm_Restart` sends.
    pub const VM_RESTART_GUEST: u32 = 1039;
    /// VM list (`DspCmdDirGetVmList`): one VM configuration per standard parameter.
    pub const DIR_GET_VM_LIST: u32 = 2029;
    /// Remote login with user name and password.
    pub const USER_LOGIN: u32 = 2039;
    /// Legacy file-challenge local login (no handler in the current service).
    pub const USER_LOGIN_LOCAL: u32 = 2040;
    /// Stage 2 of the legacy local login.
    pub const USER_LOGIN_LOCAL_STAGE2: u32 = 2041;
    /// Logoff.
    pub const USER_LOGOFF: u32 = 2042;
    /// Host hardware info (`DspCmdUserGetHostHwInfo`, `PrlSrv_GetSrvConfig`).
    pub const USER_GET_HOST_HW_INFO: u32 = 2051;
    /// Ping.
    pub const USER_PING: u32 = 2052;
    /// Cancel an operation (first string param: the job uuid).
    pub const USER_CANCEL_OPERATION: u32 = 2053;
    /// VM info: the VM's state and access (`DspCmdGetVmInfo`, `PrlVm_GetState`).
    pub const GET_VM_INFO: u32 = 2062;
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

    /// True for the client->VM command range (1000..=1999), which the service routes to its
    /// VM manager (`CDspRouter`, `RoutesTable.cpp`).
    pub fn is_vm_command(package_type: u32) -> bool {
        (1000..=1999).contains(&package_type)
    }
}

/// Event types (`PRL_EVENT_TYPE`, `PrlEventsValues.h`).
pub mod event_type {
    /// Default type of a fresh CVmEvent.
    pub const UNINITIALIZED: u32 = 100_000;
    /// A VM changed state (one Integer parameter `vminfo_vm_state`).
    pub const VM_STATE_CHANGED: u32 = 100_001;
    /// A VM's configuration changed.
    pub const VM_CONFIG_CHANGED: u32 = 100_002;
    /// A VM was added (registered or created).
    pub const VM_ADDED: u32 = 100_005;
    /// A VM was deleted.
    pub const VM_DELETED: u32 = 100_006;
    /// A VM was unregistered.
    pub const VM_UNREGISTERED: u32 = 100_026;
    /// A job's progress changed.
    pub const JOB_PROGRESS_CHANGED: u32 = 100_051;
    /// The guest tools' state of a VM changed (one Integer parameter
    /// `vminfo_vm_addition_state`).
    pub const VM_ADDITION_STATE_CHANGED: u32 = 100_056;
    /// Client side: the connection to the service closed.
    pub const DISP_CONNECTION_CLOSED: u32 = 100_403;
    /// A VM message.
    pub const VM_MESSAGE: u32 = 100_502;
    /// A question to answer.
    pub const VM_QUESTION: u32 = 100_503;
    /// An error message.
    pub const ERROR_MESSAGE: u32 = 100_507;
}

/// Command flags (`proto_command_flags`) and modes of the host and VM commands.
///
/// Evidence: `libprlsdk:Sources/SDK/Include/PrlCommandsFlags.h` and `PrlEnums.h`.
/// `PACF_MAX` is 10, so the command-specific flags start at bit 11; several share a bit
/// (`PVTF_VM` = `PGVLF_GET_ONLY_VM` = `PSF_FORCE` = `PSM_VM_START` = the login's
/// `PCF_ORIGINAL_CLIENT` = 2048): a flag means what its command reads it as, so never add one a
/// command does not take.
pub mod flags {
    /// `PACF_NORMAL_SECURITY`.
    pub const PACF_NORMAL_SECURITY: u32 = 1 << 0;
    /// `PACF_HIGH_SECURITY`.
    pub const PACF_HIGH_SECURITY: u32 = 1 << 1;
    /// `PACF_NON_INTERACTIVE_MODE`: the service answers questions with their defaults.
    pub const PACF_NON_INTERACTIVE_MODE: u32 = 1 << 2;
    /// `PACF_CANCEL_TASK_ON_END_SESSION`.
    pub const PACF_CANCEL_TASK_ON_END_SESSION: u32 = 1 << 3;

    /// `PSM_KILL`: stop by killing the VM (`PrlVm_Stop(h, FALSE)`).
    pub const PSM_KILL: u32 = 0;
    /// `PSM_SHUTDOWN`: graceful guest shutdown (`PrlVm_Stop(h, TRUE)`).
    pub const PSM_SHUTDOWN: u32 = 1;
    /// `PSM_ACPI`: ACPI power button.
    pub const PSM_ACPI: u32 = 2;
    /// `PRL_VM_STOP_MODE_MASK`: the stop mode's bits; the rest of a stop's mode word are flags.
    pub const STOP_MODE_MASK: u32 = 0xFF;
    /// `PSF_FORCE` (stop flag).
    pub const PSF_FORCE: u32 = 1 << 11;
    /// `PSF_NOFORCE` (stop flag).
    pub const PSF_NOFORCE: u32 = 1 << 12;

    /// `PSM_VM_START`: `PrlVm_StartEx` start mode, a normal start.
    pub const PSM_VM_START: u32 = 1 << 11;
    /// `PSM_VM_SAFE_START`.
    pub const PSM_VM_SAFE_START: u32 = 1 << 12;
    /// `PSM_VM_START_FOR_COMPACT`.
    pub const PSM_VM_START_FOR_COMPACT: u32 = 1 << 13;
    /// `PSM_VM_START_FOR_REPAIR` (`PSM_VM_START_LAST_ITEM`).
    pub const PSM_VM_START_FOR_REPAIR: u32 = 1 << 14;
    /// `PNSF_VM_START_WAIT`: a `PrlVm_StartEx` reserved-parameter flag.
    pub const PNSF_VM_START_WAIT: u32 = 1 << 12;
    /// `PNSF_CT_SKIP_ARPDETECT`.
    pub const PNSF_CT_SKIP_ARPDETECT: u32 = 1 << 13;

    /// `PGVLF_GET_ONLY_VM` (= `PVTF_VM`).
    pub const PGVLF_GET_ONLY_VM: u32 = 1 << 11;
    /// `PGVLF_GET_ONLY_CT` (= `PVTF_CT`).
    pub const PGVLF_GET_ONLY_CT: u32 = 1 << 12;
    /// `PGVLF_GET_ONLY_IDENTITY_INFO`: skeleton configurations without state.
    pub const PGVLF_GET_ONLY_IDENTITY_INFO: u32 = 1 << 13;
    /// `PGVLF_GET_STATE_INFO`: configurations whose `InternalVmInfo` holds only the state.
    pub const PGVLF_GET_STATE_INFO: u32 = 1 << 14;
    /// `PGVLF_FILL_AUTOGENERATED`.
    pub const PGVLF_FILL_AUTOGENERATED: u32 = 1 << 15;
    /// `PGVLF_GET_ONLY_VM_TEMPLATES`.
    pub const PGVLF_GET_ONLY_VM_TEMPLATES: u32 = 1 << 16;
    /// `PGVLF_GET_NET_INFO`.
    pub const PGVLF_GET_NET_INFO: u32 = 1 << 17;
    /// `PGVLF_GET_NET_STATIC_IP_INFO`.
    pub const PGVLF_GET_NET_STATIC_IP_INFO: u32 = 1 << 18;
}

/// A `VIRTUAL_MACHINE_STATE` (`PrlEnums.h`): the state of a VM as the service reports it
/// (`vminfo_vm_state`, a signed decimal Integer on the wire). Any value is kept as it is;
/// [`VmState::name`] gives the client's name of a known one and `"unknown"` otherwise.
///
/// A libvirt-based service (prl-disp-service 9) only ever reports the stable states
/// [`VmState::STOPPED`], [`VmState::RUNNING`], [`VmState::PAUSED`] and [`VmState::SUSPENDED`]
/// (and `MOUNTED` / `MIGRATING` in other flows); the transient ones come from the legacy
/// dispatcher.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VmState(pub u32);

macro_rules! vm_states {
    ($($(#[$doc:meta])* $name:ident = $value:literal => $text:literal,)*) => {
        impl VmState {
            $($(#[$doc])* pub const $name: VmState = VmState($value);)*

            /// Every named state, in numeric order.
            pub const ALL: &'static [VmState] = &[$(VmState($value)),*];

            /// The client's name of a known state (`"stopped"`, `"running"`, ...).
            pub fn known_name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }

            /// The SDK's name (`VMS_...`) of a known state.
            pub fn sdk_name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(concat!("VMS_", stringify!($name))),)*
                    _ => None,
                }
            }

            /// The state with this client name.
            pub fn from_name(name: &str) -> Option<VmState> {
                match name {
                    $($text => Some(VmState($value)),)*
                    _ => None,
                }
            }
        }
    };
}

vm_states! {
    /// `VMS_UNKNOWN`: no state known (e.g. a uuid the service does not know).
    UNKNOWN = 0 => "unknown",
    /// `VMS_STOPPED`.
    STOPPED = 0x3000_0001 => "stopped",
    /// `VMS_STARTING` (legacy dispatcher only).
    STARTING = 0x3000_0002 => "starting",
    /// `VMS_RESTORING`: resuming from a suspended state (legacy dispatcher only).
    RESTORING = 0x3000_0003 => "restoring",
    /// `VMS_RUNNING`.
    RUNNING = 0x3000_0004 => "running",
    /// `VMS_PAUSED`.
    PAUSED = 0x3000_0005 => "paused",
    /// `VMS_SUSPENDING` (legacy dispatcher only).
    SUSPENDING = 0x3000_0006 => "suspending",
    /// `VMS_STOPPING` (legacy dispatcher only).
    STOPPING = 0x3000_0007 => "stopping",
    /// `VMS_COMPACTING`.
    COMPACTING = 0x3000_0008 => "compacting",
    /// `VMS_SUSPENDED`.
    SUSPENDED = 0x3000_0009 => "suspended",
    /// `VMS_SNAPSHOTING`.
    SNAPSHOTING = 0x3000_000A => "snapshoting",
    /// `VMS_RESETTING` (legacy dispatcher only).
    RESETTING = 0x3000_000B => "resetting",
    /// `VMS_PAUSING` (legacy dispatcher only).
    PAUSING = 0x3000_000C => "pausing",
    /// `VMS_CONTINUING`: leaving the paused state (legacy dispatcher only).
    CONTINUING = 0x3000_000D => "continuing",
    /// `VMS_MIGRATING`.
    MIGRATING = 0x3000_000E => "migrating",
    /// `VMS_DELETING_STATE`.
    DELETING_STATE = 0x3000_000F => "deleting_state",
    /// `VMS_RESUMING`.
    RESUMING = 0x3000_0010 => "resuming",
    /// `VMS_SUSPENDING_SYNC`.
    SUSPENDING_SYNC = 0x3000_0011 => "suspending_sync",
    /// `VMS_RECONNECTING`.
    RECONNECTING = 0x3000_0012 => "reconnecting",
    /// `VMS_MOUNTED`.
    MOUNTED = 0x3000_0013 => "mounted",
}

impl VmState {
    /// The client's name: that of a known state, `"unknown"` for any other value (the raw
    /// number stays in `.0`).
    pub fn name(self) -> &'static str {
        self.known_name().unwrap_or("unknown")
    }

    /// The state as the wire prints it: `QString("%1").arg((int)state)`.
    pub fn as_signed(self) -> i32 {
        self.0 as i32
    }

    /// Whether a libvirt-based service reports this state as the end of a transition
    /// (stopped, running, paused, suspended).
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            VmState::STOPPED | VmState::RUNNING | VmState::PAUSED | VmState::SUSPENDED
        )
    }
}

impl fmt::Debug for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sdk_name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "VmState({:#x})", self.0),
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.known_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown ({:#x})", self.0),
        }
    }
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
    fn vm_states_map_names_and_keep_unknown_values() {
        assert_eq!(VmState::RUNNING.0, 805_306_372);
        assert_eq!(VmState::RUNNING.name(), "running");
        assert_eq!(VmState::RUNNING.sdk_name(), Some("VMS_RUNNING"));
        assert_eq!(VmState::from_name("suspended"), Some(VmState(0x3000_0009)));
        assert_eq!(VmState::from_name("Running"), None);
        assert_eq!(VmState(0x3000_0099).name(), "unknown");
        assert_eq!(VmState(0x3000_0099).known_name(), None);
        assert_eq!(VmState(0x3000_0099).to_string(), "unknown (0x30000099)");
        assert_eq!(format!("{:?}", VmState::STOPPED), "VMS_STOPPED");
        assert_eq!(VmState(0xB000_0001).as_signed(), -1_342_177_279);
        for pair in VmState::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for s in VmState::ALL {
            assert_eq!(VmState::from_name(s.name()), Some(*s));
        }
        let stable: Vec<_> = VmState::ALL.iter().filter(|s| s.is_stable()).collect();
        assert_eq!(stable.len(), 4);
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
