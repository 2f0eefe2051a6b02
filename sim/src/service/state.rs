//! What the service knows: the [`SimService`] every connection shares (configuration, server
//! info, faults and the [`ServiceRegistry`] of connections, sessions, logins in progress and
//! tasks), the records it keeps ([`UserSession`], [`LiveConnection`], [`SimTask`]) and the
//! state of one served connection ([`ConnectionHandler`]).
//!
//! Everything here is data; what the service does with it lives in the sibling modules.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use prl_protocol::codes::VmState;
use prl_protocol::commands::ServerInfo;
use prl_protocol::matrices::ServerMatrices;
use prl_protocol::package::Package;
use prl_protocol::{parse_uuid, uuid_string, Uuid};
use prl_transport::{ConnectionInfo, PackageSender};
use tokio::sync::Notify;

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::inventory::VmSpec;
use crate::users::UserDb;

/// The simulated service: what every connection of a simulator shares.
pub(crate) struct SimService {
    pub(crate) config: SimConfig,
    /// What login replies report about the service.
    pub(super) info: ServerInfo,
    /// The guest OS and features matrices of binary login replies.
    pub(super) matrices: ServerMatrices,
    /// The host hardware info document 2051 answers with (it does not change).
    pub(super) host_xml: String,
    registry: Mutex<ServiceRegistry>,
    faults: Mutex<Faults>,
    connection_faults: Mutex<HashMap<Uuid, Faults>>,
}

/// The service's books, behind one lock: who is connected, logged in, logging in, and which
/// tasks run.
#[derive(Default)]
pub(super) struct ServiceRegistry {
    /// `m_clients`: logged-in connections (by connection uuid) and their session.
    pub(super) sessions: HashMap<Uuid, Arc<UserSession>>,
    /// Live connections, to deliver task events to a session's connection.
    pub(super) links: HashMap<Uuid, LiveConnection>,
    /// `m_setLogonClients`: connections with a login in progress.
    pub(super) logons: HashSet<Uuid>,
    /// `CDspTaskManager::m_tasks`.
    pub(super) tasks: HashMap<Uuid, Arc<SimTask>>,
    /// The VMs, in list order.
    pub(super) vms: Vec<SimVm>,
    /// VM operations in flight (queued or running), all VMs together.
    pub(super) vm_ops_in_flight: usize,
}

/// A VM as the service keeps it: its configuration, its state (the last one notified, what
/// `getVmState` reports), and the lock that serialises its operations (the exclusive-operation
/// locks of `registerExclusiveVmOperation`).
pub(super) struct SimVm {
    pub(super) spec: VmSpec,
    /// The uuid as the service writes it, `{lower-case}` (looked up as given).
    pub(super) uuid_text: String,
    pub(super) state: VmState,
    /// Held by the operation that runs; the others wait on it, in order.
    pub(super) ops: Arc<tokio::sync::Mutex<()>>,
    /// Operations queued or running on this VM.
    pub(super) queued: usize,
}

impl SimVm {
    pub(super) fn new(spec: VmSpec) -> SimVm {
        SimVm {
            uuid_text: spec.uuid_text(),
            state: spec.state,
            spec,
            ops: Arc::new(tokio::sync::Mutex::new(())),
            queued: 0,
        }
    }
}

impl ServiceRegistry {
    /// The VM the service finds under `uuid`: the exact `{lower-case}` text only, as the
    /// service looks a VM up by the string it is given.
    pub(super) fn vm(&self, uuid: &str) -> Option<&SimVm> {
        self.vms.iter().find(|v| v.uuid_text == uuid)
    }

    pub(super) fn vm_mut(&mut self, uuid: &str) -> Option<&mut SimVm> {
        self.vms.iter_mut().find(|v| v.uuid_text == uuid)
    }

    /// The live sessions, each once (a session taken over from another connection is
    /// registered under both).
    pub(super) fn distinct_sessions(&self) -> Vec<Arc<UserSession>> {
        let mut out: Vec<Arc<UserSession>> = Vec::new();
        for s in self.sessions.values() {
            if !out.iter().any(|o| Arc::ptr_eq(o, s)) {
                out.push(s.clone());
            }
        }
        out
    }
}

/// A login session (`CDspClient`). Its handle is the UUID of the connection that created it.
pub(super) struct UserSession {
    /// The creating connection's uuid, `{lower-case}`: the session id. A secret.
    pub(super) handle: String,
    pub(super) user: String,
    /// The previous session named at login (its lost tasks may be re-attached). A secret.
    pub(super) prev_session: String,
    /// Logged in by peer credentials (2186).
    pub(super) local: bool,
}

impl std::fmt::Debug for UserSession {
    /// Session uuids are credentials: redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSession")
            .field("handle", &"<redacted>")
            .field("user", &self.user)
            .field("prev_session", &"<redacted>")
            .field("local", &self.local)
            .finish()
    }
}

/// A live connection, as the IO server knows it (`IOSender::Handle` → its socket).
pub(super) struct LiveConnection {
    pub(super) sender: PackageSender,
    /// Our connection uuid on it.
    pub(super) local_uuid: Uuid,
    /// Its reply faults.
    pub(super) faults: Faults,
    /// Its number, for logs.
    pub(super) id: u64,
    /// Its peer takes the binary login reply (protocol >= 6.2).
    pub(super) binary_response: bool,
}

/// Who a task answers now: its session and the request its events and result are parented to.
pub(super) struct TaskAssignment {
    pub(super) session: Arc<UserSession>,
    /// The request's header only (a task must not pin a package's worth of memory).
    pub(super) request: Package,
}

/// A sim task (`CDspTaskHelper`).
pub(super) struct SimTask {
    /// Its task id (listed at re-login, taken by 2090): a fresh uuid, not the request's.
    pub(super) id: Uuid,
    /// The type of the request that started it.
    pub(super) task_type: u32,
    pub(super) assignment: Mutex<TaskAssignment>,
    pub(super) cancelled: AtomicBool,
    pub(super) completed: AtomicBool,
    /// `PACF_CANCEL_TASK_ON_END_SESSION`: ends with its session.
    pub(super) cancel_on_end_session: bool,
    /// Wakes the task's pacing sleep (on cancel).
    pub(super) wake: Notify,
    /// Its parameters as listed in a login reply (an empty event's XML).
    pub(super) params_xml: String,
}

impl SimTask {
    pub(super) fn assignment(&self) -> MutexGuard<'_, TaskAssignment> {
        self.assignment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a handler leaves the connection in.
pub(super) enum Flow {
    /// Keep serving.
    Continue,
    /// Close this connection (a logoff of its own session).
    Close,
}

/// One connection being served: the handlers of the sibling modules are its methods.
pub(super) struct ConnectionHandler {
    pub(super) service: Arc<SimService>,
    pub(super) sender: PackageSender,
    pub(super) info: Arc<ConnectionInfo>,
    /// The client's connection uuid: the connection handle and future session id. A secret:
    /// never logged.
    pub(super) handle: Uuid,
    /// The connection's number, for logs.
    pub(super) id: u64,
    /// Its reply faults.
    pub(super) faults: Faults,
}

impl ConnectionHandler {
    /// The handle as a session id (`{lower-case}`).
    pub(super) fn handle_str(&self) -> String {
        uuid_string(&self.handle)
    }

    /// Whether the client's login password is base64 (protocol >= 6.9).
    pub(super) fn base64_password(&self) -> bool {
        self.info.peer_version.supports_base64_password()
    }

    /// This connection's session, if it is logged in.
    pub(super) fn session(&self) -> Option<Arc<UserSession>> {
        self.service.registry().sessions.get(&self.handle).cloned()
    }
}

impl SimService {
    pub(crate) fn new(config: SimConfig) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let info = ServerInfo {
            os_version: config.os_version.clone(),
            server_uuid: uuid_string(&config.server_uuid),
            product_version: config.product_version.clone(),
            confirmation_mode: false,
            app_execute_mode: config.mode.app_execute_mode(),
            start_time_ms: now_ms,
            start_time_monotonic: monotonic_ms(),
            launchd_mode: false,
        };
        // A Linux service with the default configuration; the application mode picks the
        // default guest OS versions (`CGuestOsesHelper::GetDefaultOsVersion`).
        let matrices = ServerMatrices::linux_service(info.app_execute_mode);
        let host_xml = config.inventory.host.host_info().to_xml();
        let registry = ServiceRegistry {
            vms: config
                .inventory
                .vms
                .iter()
                .cloned()
                .map(SimVm::new)
                .collect(),
            ..ServiceRegistry::default()
        };
        SimService {
            faults: Mutex::new(config.faults.clone()),
            config,
            info,
            matrices,
            host_xml,
            registry: Mutex::new(registry),
            connection_faults: Mutex::new(HashMap::new()),
        }
    }

    /// The books. Never held across an `.await`.
    pub(super) fn registry(&self) -> MutexGuard<'_, ServiceRegistry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub(crate) fn run_faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_connection_faults(&self, client: Uuid, faults: Faults) {
        self.connection_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client, faults);
    }

    /// The faults of a client connection: its own if set, else the run's.
    pub(super) fn faults_for(&self, client: Uuid) -> Faults {
        let own = self
            .connection_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        own.unwrap_or_else(|| self.run_faults())
    }

    /// The faults of a connection now being served; its own are used up.
    pub(super) fn take_faults_for(&self, client: Uuid) -> Faults {
        let faults = self.faults_for(client);
        self.connection_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client);
        faults
    }

    pub(crate) fn session_count(&self) -> usize {
        self.registry().sessions.len()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.registry().tasks.len()
    }

    pub(super) fn users(&self) -> &UserDb {
        &self.config.users
    }
}

impl ServiceRegistry {
    /// The live connection of a session, by its handle. Only the canonical `{lower-case}` form
    /// names a session: a handle is compared as a string (`QString`).
    pub(super) fn link_of(&self, session_handle: &str) -> Option<&LiveConnection> {
        canonical_uuid(session_handle).and_then(|u| self.links.get(&u))
    }
}

/// The uuid a session handle or a previous-session text names, if it is in the canonical
/// `{lower-case}` form (the service compares strings).
pub(super) fn canonical_uuid(text: &str) -> Option<Uuid> {
    parse_uuid(text).filter(|u| uuid_string(u) == text)
}

/// `/proc/uptime` in ms: a stand-in for the service's monotonic start time.
fn monotonic_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .and_then(|s| s.parse::<f64>().ok())
        .map(|secs| (secs * 1000.0) as u64)
        .unwrap_or(0)
}
