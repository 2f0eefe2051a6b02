//! Simulator configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use prl_protocol::handshake::SecurityLevel;
use prl_protocol::Uuid;

use crate::error::ConfigError;
use crate::faults::Faults;
use crate::inventory::Inventory;
use crate::users::UserDb;

/// `PRL_APPLICATION_MODE`-like service mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `PAM_SERVER`: remote (TCP) and local logins, many users.
    Server,
    /// `PAM_DESKTOP`: local logins only (unix socket), one user.
    Desktop,
}

impl Mode {
    /// Parses `server` / `desktop`.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s {
            "server" => Ok(Mode::Server),
            "desktop" => Ok(Mode::Desktop),
            other => Err(ConfigError::Invalid(format!(
                "--mode: unknown mode {other:?}: expected server or desktop"
            ))),
        }
    }

    /// The `server_info_app_execute_mode` value: `PAM_SERVER` = 0; the Parallels Desktop SDK's
    /// `PAM_DESKTOP_MAC` = 1 for desktop.
    pub fn app_execute_mode(self) -> u32 {
        match self {
            Mode::Server => 0,
            Mode::Desktop => 1,
        }
    }
}

/// Parses `low` / `normal` / `high`.
pub fn parse_security_level(s: &str) -> Result<SecurityLevel, ConfigError> {
    match s {
        "low" => Ok(SecurityLevel::Low),
        "normal" => Ok(SecurityLevel::Normal),
        "high" => Ok(SecurityLevel::High),
        other => Err(ConfigError::Invalid(format!(
            "--min-security: unknown level {other:?}: expected low, normal or high"
        ))),
    }
}

/// Everything the simulator needs to run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// TCP listen address (server mode only).
    pub tcp: Option<SocketAddr>,
    /// Unix socket path.
    pub unix: Option<PathBuf>,
    /// Server or desktop.
    pub mode: Mode,
    /// Clients whose routing table conflicts with this level's are refused during the handshake
    /// (`IORoutingTable::accept`: a NORMAL service refuses LOW and HIGH clients).
    pub min_security: SecurityLevel,
    /// The users.
    pub users: UserDb,
    /// The server UUID reported in login replies.
    pub server_uuid: Uuid,
    /// `server_info_product_version`.
    pub product_version: String,
    /// `server_info_os_version`.
    pub os_version: String,
    /// Heartbeat period (the service's is 10 s).
    pub heartbeat_interval: Duration,
    /// `MaxLogonActions`: concurrent logins in progress allowed (the service's default is 16).
    pub max_logon_actions: usize,
    /// Time a password check takes (PAM is not instant; makes the logon limit observable).
    pub auth_delay: Duration,
    /// Largest package accepted from a client (memory bound per connection).
    pub max_package_len: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most sim tasks running per session.
    pub max_tasks_per_session: usize,
    /// Most sim tasks running in all (tasks outlive their session, so the per-session limit
    /// alone does not bound them).
    pub max_tasks: usize,
    /// Faults applied to every connection.
    pub faults: Faults,
    /// A certificate and key: the certificate (RSA) mode (`RSA:ADH` cipher list) instead of
    /// anonymous DH only.
    pub tls_credentials: Option<prl_transport::Credentials>,
    /// Start one sim task for every session a login creates, as if its client had sent the
    /// sim-only command 9001 (`--task-on-login STEPS:INTERVAL_MS`).
    pub task_on_login: Option<TaskSpec>,
    /// The host and its VMs (`--vms FILE`; default [`Inventory::demo`]).
    pub inventory: Inventory,
    /// How the VM power operations behave (`--transition-ms`, `--transient-states`,
    /// `--no-duplicate-replies`, `--reply-before-event`).
    pub vm_behaviour: VmBehaviour,
}

/// Longest transition time of a VM operation, in ms.
pub const MAX_TRANSITION_MS: u64 = 600_000;

/// How long each VM power operation takes, from the request to the end state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmTiming {
    /// Start, start-ex and resume-by-start.
    pub start: Duration,
    /// Stop (kill and graceful).
    pub stop: Duration,
    /// Pause.
    pub pause: Duration,
    /// Suspend.
    pub suspend: Duration,
    /// Reset (the reply comes when it is done, as libvirt returns).
    pub reset: Duration,
    /// Restart of the guest.
    pub restart: Duration,
}

impl VmTiming {
    /// Every operation takes `d`.
    pub fn all(d: Duration) -> VmTiming {
        VmTiming {
            start: d,
            stop: d,
            pause: d,
            suspend: d,
            reset: d,
            restart: d,
        }
    }

    /// Applies one `OP=MS` spec (`OP`: start, stop, pause, suspend, reset, restart or all).
    pub fn apply(&mut self, spec: &str) -> Result<(), ConfigError> {
        let invalid = |why: &str| {
            ConfigError::Invalid(format!(
                "--transition-ms {spec:?}: {why}: expected OP=MS with OP one of start, stop, \
                 pause, suspend, reset, restart, all and MS 0..={MAX_TRANSITION_MS}"
            ))
        };
        let (op, ms) = spec.split_once('=').ok_or_else(|| invalid("missing '='"))?;
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| invalid("MS is not a number"))?;
        if ms > MAX_TRANSITION_MS {
            return Err(invalid("MS out of range"));
        }
        let d = Duration::from_millis(ms);
        match op.trim() {
            "start" => self.start = d,
            "stop" => self.stop = d,
            "pause" => self.pause = d,
            "suspend" => self.suspend = d,
            "reset" => self.reset = d,
            "restart" => self.restart = d,
            "all" => *self = VmTiming::all(d),
            _ => return Err(invalid("unknown operation")),
        }
        Ok(())
    }
}

/// The default transition time: fast, for tests.
pub const DEFAULT_TRANSITION: Duration = Duration::from_millis(50);

/// How the VM power operations behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmBehaviour {
    /// Transition time per operation (default 50 ms each).
    pub timing: VmTiming,
    /// Report transient states (STARTING, STOPPING, PAUSING, SUSPENDING, RESETTING,
    /// CONTINUING, RESUMING) during a transition, with a state event at its start, as the
    /// legacy dispatcher did; a libvirt host never does (off by default).
    pub transient_states: bool,
    /// Answer a forked operation's synchronous failure twice (the real error, then
    /// `PRL_ERR_FAILURE`), as the service does (on by default).
    pub duplicate_replies: bool,
    /// Send a successful operation's reply before its state event (the real order is not
    /// fixed; default: event first).
    pub reply_before_event: bool,
    /// Most operations waiting for one VM (more are refused with
    /// `PRL_ERR_VM_IS_EXCLUSIVELY_LOCKED`; a sim limit).
    pub max_queued_per_vm: usize,
    /// Most operations in flight in all (more get `PRL_ERR_TRY_AGAIN`; a sim limit).
    pub max_in_flight: usize,
}

impl Default for VmBehaviour {
    fn default() -> Self {
        VmBehaviour {
            timing: VmTiming::all(DEFAULT_TRANSITION),
            transient_states: false,
            duplicate_replies: true,
            reply_before_event: false,
            max_queued_per_vm: 16,
            max_in_flight: 4096,
        }
    }
}

/// Most progress steps of a sim task.
pub const MAX_TASK_STEPS: u32 = 10_000;
/// Longest interval between two progress steps of a sim task, in ms.
pub const MAX_TASK_INTERVAL_MS: u32 = 60_000;

/// The shape of a sim task: how many progress steps, how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    /// Progress events before the final reply (1..=[`MAX_TASK_STEPS`]).
    pub steps: u32,
    /// Milliseconds between two steps (0..=[`MAX_TASK_INTERVAL_MS`]).
    pub interval_ms: u32,
}

impl TaskSpec {
    /// Parses `STEPS:INTERVAL_MS` (the `--task-on-login` value), e.g. `20:250`.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let invalid = |why: &str| {
            ConfigError::Invalid(format!(
                "--task-on-login: {why}: expected STEPS:INTERVAL_MS with STEPS 1..={MAX_TASK_STEPS} \
                 and INTERVAL_MS 0..={MAX_TASK_INTERVAL_MS}"
            ))
        };
        let (steps, interval) = spec.split_once(':').ok_or_else(|| invalid("missing ':'"))?;
        let steps: u32 = steps
            .trim()
            .parse()
            .map_err(|_| invalid("STEPS is not a number"))?;
        let interval_ms: u32 = interval
            .trim()
            .parse()
            .map_err(|_| invalid("INTERVAL_MS is not a number"))?;
        if !(1..=MAX_TASK_STEPS).contains(&steps) {
            return Err(invalid("STEPS out of range"));
        }
        if interval_ms > MAX_TASK_INTERVAL_MS {
            return Err(invalid("INTERVAL_MS out of range"));
        }
        Ok(TaskSpec { steps, interval_ms })
    }
}

/// Default `server_info_product_version`.
pub const DEFAULT_PRODUCT_VERSION: &str = "7.0.0 (prl-sim)";

impl SimConfig {
    /// Server mode on `127.0.0.1:64000`, no unix socket, no users.
    pub fn new() -> Self {
        SimConfig {
            tcp: Some(SocketAddr::from((
                [127, 0, 0, 1],
                prl_protocol::DEFAULT_PORT,
            ))),
            unix: None,
            mode: Mode::Server,
            min_security: SecurityLevel::Low,
            users: UserDb::new(),
            server_uuid: default_server_uuid(),
            product_version: DEFAULT_PRODUCT_VERSION.to_owned(),
            os_version: host_os_version(),
            heartbeat_interval: Duration::from_secs(10),
            max_logon_actions: 16,
            auth_delay: Duration::ZERO,
            max_package_len: 1 << 20,
            max_connections: 1024,
            max_tasks_per_session: 64,
            max_tasks: 4096,
            faults: Faults::none(),
            tls_credentials: None,
            task_on_login: None,
            inventory: Inventory::demo(),
            vm_behaviour: VmBehaviour::default(),
        }
    }

    /// Checks that the options fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.mode {
            Mode::Desktop => {
                if self.tcp.is_some() {
                    return Err(ConfigError::Invalid(
                        "--listen: desktop mode serves local logins on the unix socket only; \
                         drop --listen or use --mode server"
                            .into(),
                    ));
                }
                if self.unix.is_none() {
                    return Err(ConfigError::Invalid(
                        "--mode desktop needs --unix PATH (local logins only)".into(),
                    ));
                }
                if self.users.len() != 1 {
                    return Err(ConfigError::Invalid(format!(
                        "--mode desktop serves exactly one user, {} configured",
                        self.users.len()
                    )));
                }
            }
            Mode::Server => {
                if self.tcp.is_none() && self.unix.is_none() {
                    return Err(ConfigError::Invalid(
                        "nothing to listen on: give --listen and/or --unix".into(),
                    ));
                }
            }
        }
        if self.max_logon_actions == 0 {
            return Err(ConfigError::Invalid(
                "max logon actions must be at least 1".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "heartbeat interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new()
    }
}

/// A stable default server UUID: this machine's `/etc/machine-id` (128 bits), else a fixed one.
pub fn default_server_uuid() -> Uuid {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .and_then(|id| Uuid::try_parse(id.trim()).ok())
        .unwrap_or_else(|| Uuid::from_u128(0x7072_6c2d_7369_6d00_0000_0000_0000_0001))
}

/// `Linux <kernel release>` when the kernel says, else `Unknown` (what the service reports
/// for an empty version).
pub fn host_os_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("Linux {}", r.trim()))
        .unwrap_or_else(|_| "Unknown".to_owned())
}
