//! What the simulated service does with the packages of a connection: logins, sessions, the
//! sim's long tasks and the error codes, following `prl-disp-service`
//! (`CDspClientManager::handleToDispatcherPackage`, `processAuthorizeCmd`,
//! `CDspUserHelper::processLogin` / `processUserLoginLocal` / `processUserLogoff`,
//! `CDspShellHelper::cancelOperation` / `attachToLostTask`, `CDspTaskHelper`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prl_protocol::codes::cmd;
use prl_protocol::commands::{
    self, error_response, login_event, login_reply_with_matrices, package_event, param,
    progress_event, simple_response, LostTask, Password, ServerInfo, PLLF_LOGIN_WITH_RSA_KEYS,
};
use prl_protocol::event::{Event, ParamType, ParamValue};
use prl_protocol::handshake::ServerOutcome;
use prl_protocol::matrices::ServerMatrices;
use prl_protocol::package::{Package, DESCRIPTOR_LEN, HEADER_LEN};
use prl_protocol::{parse_uuid, uuid_string, ErrorCode, Uuid};
use prl_transport::{AcceptPolicy, Admission, Connection, ConnectionInfo, PackageSender, Peer};
use tokio::sync::Notify;
use zeroize::{Zeroize, Zeroizing};

use crate::config::{SimConfig, TaskSpec, MAX_TASK_INTERVAL_MS, MAX_TASK_STEPS};
use crate::faults::Faults;
use crate::users::UserDb;

/// The sim-only command that starts a long-running task (outside every real command range:
/// the service's package types stop at 7000 for commands, events and replies).
///
/// Payload: the usual command event, with optional UnsignedInt params
/// [`SIM_TASK_STEPS`] (default 10) and [`SIM_TASK_INTERVAL_MS`] (default 100). Flag
/// `PACF_CANCEL_TASK_ON_END_SESSION` (1 << 3) in `proto_command_flags` makes the task end with
/// its session, as in the service. The task sends one `JOB_PROGRESS_CHANGED` event (3003, parent =
/// the request) per step and a final 5001 reply (opcode 9001) when done.
pub const SIM_CMD_START_LONG_TASK: u32 = 9001;
/// Number of progress steps of a sim task.
pub const SIM_TASK_STEPS: &str = "sim_task_steps";
/// Milliseconds between two progress steps.
pub const SIM_TASK_INTERVAL_MS: &str = "sim_task_interval_ms";
/// `PACF_CANCEL_TASK_ON_END_SESSION`.
pub const PACF_CANCEL_TASK_ON_END_SESSION: u32 = 1 << 3;
/// `EVT_PARAM_DETAIL_DESCRIPTION`.
const DETAIL_DESCRIPTION: &str = "Details";
/// Highest IO management package type (`IOCommunicationMngPackage`); these never reach the
/// dispatcher.
const LAST_MANAGEMENT_TYPE: u32 = 11;

/// Builds the sim-only "start long task" command.
pub fn start_long_task_command(
    steps: u32,
    interval_ms: u32,
    flags: u32,
    job_uuid: Uuid,
    sender: Uuid,
) -> Package {
    let mut event = commands::command_event(flags, &mut Uuid::new_v4);
    event.add_uint(SIM_TASK_STEPS, steps);
    event.add_uint(SIM_TASK_INTERVAL_MS, interval_ms);
    commands::request_package(SIM_CMD_START_LONG_TASK, &event, job_uuid, sender)
}

/// A login session (`CDspClient`). Its handle is the UUID of the connection that created it.
pub(crate) struct Session {
    handle: String,
    user: String,
    prev_session: String,
    local: bool,
}

impl std::fmt::Debug for Session {
    /// Session uuids are credentials: redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handle", &"<redacted>")
            .field("user", &self.user)
            .field("prev_session", &"<redacted>")
            .field("local", &self.local)
            .finish()
    }
}

struct TaskAssignment {
    session: Arc<Session>,
    request: Package,
}

/// A sim task (`CDspTaskHelper`).
struct Task {
    id: Uuid,
    task_type: u32,
    assignment: Mutex<TaskAssignment>,
    cancelled: AtomicBool,
    completed: AtomicBool,
    cancel_on_end_session: bool,
    wake: Notify,
    params_xml: String,
}

impl Task {
    fn assignment(&self) -> MutexGuard<'_, TaskAssignment> {
        self.assignment.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A live connection, as the IO server knows it (`IOSender::Handle` → its socket).
struct Link {
    sender: PackageSender,
    local_uuid: Uuid,
    /// Its reply faults.
    faults: Faults,
    /// Its number, for logs.
    id: u64,
    /// Its peer takes the binary login reply (protocol >= 6.2).
    binary_response: bool,
}

/// The connection a reply goes out on, as far as building the reply is concerned.
struct Target {
    /// Our connection uuid on it (the reply's sender).
    local_uuid: Uuid,
    /// Its peer takes the binary login reply 5003 (`IOPROTOCOL_BINARY_RESPONSE_SUPPORT` of
    /// that connection's client).
    binary_response: bool,
}

#[derive(Default)]
struct State {
    /// `m_clients`: logged-in connections (by connection uuid) and their session.
    sessions: HashMap<Uuid, Arc<Session>>,
    /// Live connections, to deliver task events to a session's connection.
    links: HashMap<Uuid, Link>,
    /// `m_setLogonClients`: connections with a login in progress.
    logons: HashSet<Uuid>,
    /// `CDspTaskManager::m_tasks`.
    tasks: HashMap<Uuid, Arc<Task>>,
}

/// State shared by every connection of a simulator.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    info: ServerInfo,
    /// The guest OS and features matrices of binary login replies.
    matrices: ServerMatrices,
    state: Mutex<State>,
    faults: Mutex<Faults>,
    connection_faults: Mutex<HashMap<Uuid, Faults>>,
}

impl Shared {
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
        Shared {
            faults: Mutex::new(config.faults.clone()),
            config,
            info,
            matrices,
            state: Mutex::new(State::default()),
            connection_faults: Mutex::new(HashMap::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
    fn faults_for(&self, client: Uuid) -> Faults {
        let own = self
            .connection_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        own.unwrap_or_else(|| self.run_faults())
    }

    pub(crate) fn session_count(&self) -> usize {
        self.state().sessions.len()
    }

    pub(crate) fn task_count(&self) -> usize {
        self.state().tasks.len()
    }

    pub(crate) fn users(&self) -> &UserDb {
        &self.config.users
    }
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

/// The accept policy: handshake-stage faults.
pub(crate) struct Policy {
    pub(crate) shared: Arc<Shared>,
}

impl AcceptPolicy for Policy {
    fn on_connect(&self, peer: &Peer) -> Admission {
        let f = self.shared.run_faults();
        // `refuse` closes the listeners; a connection accepted just before is closed here.
        if f.close_on_accept || f.refuse {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault close-on-accept: closing");
            Admission::Close
        } else if f.stall_handshake {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-handshake");
            Admission::Stall
        } else {
            Admission::Continue
        }
    }

    fn on_client_hello(&self, peer: &Peer, hello: &ServerOutcome) -> Admission {
        let f = self.shared.faults_for(hello.client_header.connection_uuid);
        // Per connection, `refuse` and `close-on-accept` act at the first point the connection
        // uuid is known: right after the client's hello.
        if f.refuse || f.close_on_accept {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault close-on-accept: closing after the hello");
            Admission::Close
        } else if f.stall_handshake {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-handshake");
            Admission::Stall
        } else if f.stall_tls {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-tls");
            Admission::StallTls
        } else {
            Admission::Continue
        }
    }
}

/// Removes the connection from `m_setLogonClients` when the login ends.
struct LogonGuard {
    shared: Arc<Shared>,
    handle: Uuid,
    captured: bool,
}

impl Drop for LogonGuard {
    fn drop(&mut self) {
        if self.captured {
            self.shared.state().logons.remove(&self.handle);
        }
    }
}

enum Flow {
    Continue,
    Close,
}

/// One connection being served.
struct ConnCtx {
    shared: Arc<Shared>,
    sender: PackageSender,
    info: Arc<ConnectionInfo>,
    /// The client's connection uuid: the connection handle and future session id. A secret:
    /// never logged.
    handle: Uuid,
    /// The connection's number, for logs.
    id: u64,
    faults: Faults,
}

/// Serves a connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, conn: Connection) {
    let (sender, mut receiver, info) = conn.split();
    let handle = info.peer_connection_uuid;
    // Logs name the connection by its number, never by `handle`: the client's connection
    // uuid is its session id, and naming a live session logs in without a password.
    let id = info.connection_id;
    let faults = shared.faults_for(handle);
    shared
        .connection_faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&handle);
    let duplicate = {
        let mut st = shared.state();
        let duplicate = st.links.contains_key(&handle);
        if !duplicate {
            st.links.insert(
                handle,
                Link {
                    sender: sender.clone(),
                    local_uuid: info.local_connection_uuid,
                    faults: faults.clone(),
                    id,
                    binary_response: info.peer_version.supports_binary_response(),
                },
            );
        }
        duplicate
    };
    if duplicate {
        // `srv_validateAfterHandshake`: a connection uuid already connected is refused.
        tracing::info!(conn = id, "connection uuid already connected: closing");
        let _ = sender.close().await;
        return;
    }
    tracing::info!(
        conn = id,
        peer = %info.peer_address,
        level = ?info.security_level,
        version = %info.peer_version,
        "client connected"
    );
    let mut ctx = ConnCtx {
        shared: shared.clone(),
        sender,
        info,
        handle,
        id,
        faults,
    };
    let mut received: u64 = 0;
    while let Some(item) = receiver.recv().await {
        let package = match item {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(conn = id, error = %e, kind = e.kind(), "connection failed");
                break;
            }
        };
        received += 1;
        let flow = ctx.handle_package(package).await;
        if matches!(flow, Flow::Close) {
            let _ = ctx.sender.close().await;
            break;
        }
        if ctx.faults.drop_after.is_some_and(|n| received >= n) {
            tracing::info!(
                conn = id,
                received,
                "fault drop-after: dropping the connection"
            );
            let _ = ctx.sender.close().await;
            break;
        }
    }
    ctx.disconnected();
}

impl ConnCtx {
    fn handle_str(&self) -> String {
        uuid_string(&self.handle)
    }

    fn base64_password(&self) -> bool {
        self.info.peer_version.supports_base64_password()
    }

    async fn handle_package(&mut self, mut p: Package) -> Flow {
        let t = p.header.package_type;
        if (1..=LAST_MANAGEMENT_TYPE).contains(&t) {
            tracing::debug!(
                conn = self.id,
                package_type = t,
                "io management package ignored"
            );
            return Flow::Continue;
        }
        tracing::debug!(conn = self.id, package_type = t, "command");
        match t {
            cmd::USER_LOGIN | cmd::USER_EASY_LOGIN_LOCAL => {
                let flow = if t == cmd::USER_LOGIN {
                    self.login(&mut p).await
                } else {
                    self.login_local(&p).await
                };
                // `handleToDispatcherPackage`'s scope exit: the payload of every 2039 and
                // 2186 is zeroed once handled, whatever happened.
                zero_payload(&mut p);
                return flow;
            }
            _ => {}
        }
        let session = self.shared.state().sessions.get(&self.handle).cloned();
        let Some(session) = session else {
            self.simple(&p, ErrorCode::USER_OPERATION_NOT_AUTHORISED)
                .await;
            return Flow::Continue;
        };
        match t {
            cmd::USER_LOGOFF => {
                // `processUserLogoff`: SUCCESS through the session, then the session's
                // connection is closed (`deleteUserSession(pUser->getClientHandle())`). From a
                // connection that restored another's live session, that is the other one; this
                // connection stays open and logged in.
                tracing::info!(conn = self.id, user = %session.user, "logged off");
                self.simple_via_session(&p, &session, ErrorCode::SUCCESS)
                    .await;
                if session.handle == self.handle_str() {
                    return Flow::Close;
                }
                let other = {
                    let st = self.shared.state();
                    canonical_uuid(&session.handle)
                        .and_then(|u| st.links.get(&u))
                        .map(|l| l.sender.clone())
                };
                if let Some(sender) = other {
                    let _ = sender.close().await;
                }
            }
            cmd::USER_CANCEL_OPERATION => self.cancel(&p, &session).await,
            cmd::ATTACH_TO_LOST_TASK => self.attach(&p, &session).await,
            SIM_CMD_START_LONG_TASK => self.start_task(&p, &session).await,
            // Not handled by the dispatcher's switch and not routable: `PRL_ERR_UNIMPLEMENTED`
            // (this includes DspCmdUserPing, which the service never implemented).
            _ => self.simple(&p, ErrorCode::UNIMPLEMENTED).await,
        }
        Flow::Continue
    }

    /// Sends a reply on this connection, applying its reply faults
    /// (`CDspService::sendSimpleResponseToClient(h, ...)`: to the connection that asked).
    async fn reply(&self, package: Package) {
        deliver(&self.sender, &self.faults, self.id, package).await;
    }

    /// Sends a reply the way `CDspClient` sends (`sendPackage`, `sendSimpleResponse`): to the
    /// session's own connection (`m_clientHandle`). After a live session was restored from
    /// another connection (`processAuthorizeCmd` registers the new connection with the old
    /// session object), that is the session's original connection, not this one; if it is
    /// gone the reply is lost, as in the service. `make` builds the reply for the connection
    /// it goes out on.
    async fn reply_via_session(&self, session: &Session, make: impl FnOnce(&Target) -> Package) {
        if session.handle == self.handle_str() {
            let target = Target {
                local_uuid: self.info.local_connection_uuid,
                binary_response: self.info.peer_version.supports_binary_response(),
            };
            return self.reply(make(&target)).await;
        }
        let link = {
            let st = self.shared.state();
            canonical_uuid(&session.handle)
                .and_then(|u| st.links.get(&u))
                .map(|l| {
                    let target = Target {
                        local_uuid: l.local_uuid,
                        binary_response: l.binary_response,
                    };
                    (l.sender.clone(), target, l.faults.clone(), l.id)
                })
        };
        match link {
            Some((sender, target, faults, id)) => {
                tracing::debug!(
                    conn = self.id,
                    to = id,
                    "reply sent to the session's connection"
                );
                deliver(&sender, &faults, id, make(&target)).await;
            }
            None => tracing::debug!(
                conn = self.id,
                "the session's connection is gone: reply lost"
            ),
        }
    }

    /// A simple reply through the session (see [`ConnCtx::reply_via_session`]).
    async fn simple_via_session(&self, request: &Package, session: &Session, code: ErrorCode) {
        self.reply_via_session(session, |target| {
            simple_response(
                request,
                target.local_uuid,
                Uuid::new_v4(),
                code,
                &[],
                &mut Uuid::new_v4,
            )
        })
        .await;
    }

    async fn simple(&self, request: &Package, code: ErrorCode) {
        let reply = simple_response(
            request,
            self.info.local_connection_uuid,
            Uuid::new_v4(),
            code,
            &[],
            &mut Uuid::new_v4,
        );
        self.reply(reply).await;
    }

    /// `LogonClientSetGuard`: root on the unix socket is trusted (not counted); otherwise at
    /// most `MaxLogonActions` logins may be in progress.
    fn logon_guard(&self) -> Option<LogonGuard> {
        let trusted = self.info.peer_uid() == Some(0);
        let mut st = self.shared.state();
        if trusted {
            return Some(LogonGuard {
                shared: self.shared.clone(),
                handle: self.handle,
                captured: false,
            });
        }
        if st.logons.len() >= self.shared.config.max_logon_actions {
            return None;
        }
        st.logons.insert(self.handle);
        Some(LogonGuard {
            shared: self.shared.clone(),
            handle: self.handle,
            captured: true,
        })
    }

    fn already_logged(&self) -> bool {
        self.shared.state().sessions.contains_key(&self.handle)
    }

    /// `processAuthorizeCmd` (and `processPubKeyAuthorizeCmd` for the RSA-key flag).
    async fn login(&mut self, p: &mut Package) -> Flow {
        let Some(LoginFields {
            flags,
            user,
            password_wire,
            prev,
        }) = take_login(p)
        else {
            self.simple(p, ErrorCode::FAILURE).await;
            return Flow::Continue;
        };
        if self.already_logged() {
            self.simple(p, ErrorCode::USER_IS_ALREADY_LOGGED).await;
            return Flow::Continue;
        }
        let Some(guard) = self.logon_guard() else {
            tracing::info!(conn = self.id, "logon actions reached the limit");
            self.simple(p, ErrorCode::DISP_LOGON_ACTIONS_REACHED_UP_LIMIT)
                .await;
            return Flow::Continue;
        };
        if flags & PLLF_LOGIN_WITH_RSA_KEYS != 0 {
            // Public-key login: the simulator knows no authorised keys.
            self.simple(p, ErrorCode::PUBLIC_KEY_NOT_AUTHORIZED).await;
            return Flow::Continue;
        }
        // Session restore: a live session named by the previous session uuid is reused
        // without a password check.
        let live = if prev.is_empty() {
            None
        } else {
            let st = self.shared.state();
            canonical_uuid(&prev).and_then(|u| st.sessions.get(&u).cloned())
        };
        let created = live.is_none();
        let session = match live {
            Some(s) => {
                tracing::info!(conn = self.id, user = %s.user, "live session restored");
                s
            }
            None => {
                if !self.shared.config.auth_delay.is_zero() {
                    tokio::time::sleep(self.shared.config.auth_delay).await;
                }
                let password = match Password::decode(&password_wire, self.base64_password()) {
                    Ok(pw) => pw,
                    Err(commands::CommandError::PasswordTooLong { .. }) => {
                        let mut e = Event {
                            code: ErrorCode::INVALID_ARG.0,
                            ..Event::default()
                        };
                        e.add_string(
                            DETAIL_DESCRIPTION,
                            format!(
                                "Passwords longer than {} characters are not allowed",
                                commands::MAX_PASSWORD_LENGTH
                            ),
                        );
                        tracing::info!(conn = self.id, %user, "password exceeds maximum length");
                        let reply = error_response(
                            p,
                            self.info.local_connection_uuid,
                            Uuid::new_v4(),
                            &e,
                            &mut Uuid::new_v4,
                        );
                        self.reply(reply).await;
                        return Flow::Continue;
                    }
                    // Qt's decoding itself never fails; only the length check does.
                    Err(_) => {
                        self.simple(p, ErrorCode::AUTHENTICATION_FAILED).await;
                        return Flow::Continue;
                    }
                };
                drop(password_wire);
                if user.is_empty()
                    || self
                        .shared
                        .users()
                        .authenticate(&user, password.expose())
                        .is_none()
                {
                    tracing::info!(conn = self.id, %user, "authentication failed");
                    self.simple(p, ErrorCode::AUTHENTICATION_FAILED).await;
                    return Flow::Continue;
                }
                Arc::new(Session {
                    handle: self.handle_str(),
                    user: user.clone(),
                    prev_session: prev.clone(),
                    local: false,
                })
            }
        };
        // The login is no longer in progress once the session exists (the service queues the
        // reply without waiting, then releases the guard).
        self.start_session(p, session, guard, created).await;
        Flow::Continue
    }

    /// `DspCmdUserEasyLoginLocal`: the user is the unix peer's uid.
    async fn login_local(&mut self, p: &Package) -> Flow {
        if self.already_logged() {
            self.simple(p, ErrorCode::USER_IS_ALREADY_LOGGED).await;
            return Flow::Continue;
        }
        let Some(guard) = self.logon_guard() else {
            self.simple(p, ErrorCode::DISP_LOGON_ACTIONS_REACHED_UP_LIMIT)
                .await;
            return Flow::Continue;
        };
        let request =
            match package_event(p).and_then(|e| commands::LoginLocalRequest::from_event(&e)) {
                Ok(r) => r,
                Err(_) => {
                    self.simple(p, ErrorCode::FAILURE).await;
                    return Flow::Continue;
                }
            };
        let user = self
            .info
            .peer_uid()
            .and_then(|uid| self.shared.users().by_uid(uid))
            .map(|u| u.name().to_owned());
        let Some(user) = user else {
            tracing::info!(conn = self.id, uid = ?self.info.peer_uid(), "local authentication failed");
            self.simple(p, ErrorCode::LOCAL_AUTHENTICATION_FAILED).await;
            return Flow::Continue;
        };
        let session = Arc::new(Session {
            handle: self.handle_str(),
            user,
            prev_session: request.prev_session_uuid,
            local: true,
        });
        // The login is no longer in progress once the session exists (the service queues the
        // reply without waiting, then releases the guard).
        self.start_session(p, session, guard, true).await;
        Flow::Continue
    }

    /// Registers the session and sends `makeLoginResponsePacket`; `created`: a new session
    /// (not a live one taken over).
    async fn start_session(
        &self,
        p: &Package,
        session: Arc<Session>,
        mut guard: LogonGuard,
        created: bool,
    ) {
        let tasks: Vec<LostTask> = {
            let mut st = self.shared.state();
            st.sessions.insert(self.handle, session.clone());
            if guard.captured {
                st.logons.remove(&guard.handle);
                guard.captured = false;
            }
            if session.prev_session.is_empty() {
                Vec::new()
            } else {
                st.tasks
                    .values()
                    .filter(|t| t.assignment().session.handle == session.prev_session)
                    .map(|t| LostTask {
                        task_id: uuid_string(&t.id),
                        task_type: t.task_type,
                        task_params: t.params_xml.clone(),
                    })
                    .collect()
            }
        };
        tracing::info!(
            conn = self.id,
            user = %session.user,
            local = session.local,
            lost_tasks = tasks.len(),
            "session started"
        );
        // `makeLoginResponsePacket` + `pClient->sendPackage`: the reply carries the session's
        // uuid and goes to the session's connection, in the format that connection's client
        // takes; after a live session was restored from another connection, that is the old
        // one, and the connection that asked gets nothing. A binary reply (client protocol
        // >= 6.2) ends with the OS matrix and the features matrix, as the service's does.
        let login = login_event(
            &session.handle,
            &self.shared.info,
            &tasks,
            &mut Uuid::new_v4,
        );
        self.reply_via_session(&session, |target| {
            login_reply_with_matrices(
                p,
                target.local_uuid,
                Uuid::new_v4(),
                &login,
                &self.shared.matrices,
                target.binary_response,
                &mut Uuid::new_v4,
            )
        })
        .await;
        if let (Some(spec), true) = (self.shared.config.task_on_login, created) {
            // `--task-on-login`: as if the client had sent 9001 right after its login.
            let request = start_long_task_command(
                spec.steps,
                spec.interval_ms,
                0,
                Uuid::new_v4(),
                self.handle,
            );
            if !self.spawn_task(&request, spec, 0, &session) {
                tracing::warn!(conn = self.id, "task on login not started: task limit");
            }
        }
    }

    /// `CDspShellHelper::cancelOperation`.
    async fn cancel(&self, p: &Package, session: &Arc<Session>) {
        let job = match commands::Command::parse(p, self.base64_password()) {
            Ok(commands::Command::Cancel { job_uuid }) => job_uuid,
            _ => {
                return self
                    .simple_via_session(p, session, ErrorCode::UNRECOGNIZED_REQUEST)
                    .await
            }
        };
        let matching: Vec<Arc<Task>> = self
            .shared
            .state()
            .tasks
            .values()
            .filter(|t| uuid_string(&t.assignment().request.header.uuid) == job)
            .cloned()
            .collect();
        if matching.is_empty() {
            return self
                .simple_via_session(p, session, ErrorCode::TASK_NOT_FOUND)
                .await;
        }
        let mut count = 0;
        for task in matching {
            if Arc::ptr_eq(&task.assignment().session, session) {
                count += 1;
                let code = if task.completed.load(Ordering::SeqCst) {
                    ErrorCode::TASK_NOT_FOUND
                } else {
                    ErrorCode::SUCCESS
                };
                task.cancelled.store(true, Ordering::SeqCst);
                task.wake.notify_one();
                self.simple_via_session(p, session, code).await;
            }
        }
        if count == 0 {
            self.simple_via_session(p, session, ErrorCode::ACCESS_DENIED)
                .await;
        }
    }

    /// `CDspShellHelper::attachToLostTask`.
    async fn attach(&self, p: &Package, session: &Arc<Session>) {
        let task_id = match commands::Command::parse(p, self.base64_password()) {
            Ok(commands::Command::AttachToLostTask { task_id }) => task_id,
            _ => {
                return self
                    .simple_via_session(p, session, ErrorCode::FAILURE)
                    .await
            }
        };
        let task = parse_uuid(&task_id).and_then(|id| self.shared.state().tasks.get(&id).cloned());
        let Some(task) = task else {
            return self
                .simple_via_session(p, session, ErrorCode::TASK_NOT_FOUND)
                .await;
        };
        let reassigned = {
            let mut a = task.assignment();
            if a.session.handle == session.prev_session {
                // `reassignTask`: the new session, and the 2090 request posing as the original.
                let old_type = a.request.header.package_type;
                let mut request = header_only(p);
                request.header.package_type = old_type;
                a.session = session.clone();
                a.request = request;
                true
            } else {
                false
            }
        };
        if !reassigned {
            return self
                .simple_via_session(p, session, ErrorCode::ATTACH_TO_TASK_BAD_SESSION)
                .await;
        }
        tracing::info!(conn = self.id, task = %task.id, "task re-attached");
        self.simple_via_session(p, session, ErrorCode::SUCCESS)
            .await;
    }

    async fn start_task(&self, p: &Package, session: &Arc<Session>) {
        let Ok(event) = package_event(p) else {
            return self
                .simple_via_session(p, session, ErrorCode::FAILURE)
                .await;
        };
        let steps = event
            .uint(SIM_TASK_STEPS)
            .unwrap_or(10)
            .clamp(1, MAX_TASK_STEPS);
        let interval = event
            .uint(SIM_TASK_INTERVAL_MS)
            .unwrap_or(100)
            .min(MAX_TASK_INTERVAL_MS);
        let flags = event.uint(param::COMMAND_FLAGS).unwrap_or(0);
        let spec = TaskSpec {
            steps,
            interval_ms: interval,
        };
        if !self.spawn_task(p, spec, flags, session) {
            self.simple_via_session(p, session, ErrorCode::TRY_AGAIN)
                .await;
        }
    }

    /// Registers and runs a sim task for `request` (a 9001 command) owned by `session`;
    /// `false` when the session or the simulator already runs the most tasks allowed.
    fn spawn_task(&self, p: &Package, spec: TaskSpec, flags: u32, session: &Arc<Session>) -> bool {
        let TaskSpec {
            steps,
            interval_ms: interval,
        } = spec;
        let task = Arc::new(Task {
            id: Uuid::new_v4(),
            task_type: p.header.package_type,
            assignment: Mutex::new(TaskAssignment {
                session: session.clone(),
                request: header_only(p),
            }),
            cancelled: AtomicBool::new(false),
            completed: AtomicBool::new(false),
            cancel_on_end_session: flags & PACF_CANCEL_TASK_ON_END_SESSION != 0,
            wake: Notify::new(),
            params_xml: Event::default().to_xml(),
        });
        let admitted = {
            let mut st = self.shared.state();
            let mine = st
                .tasks
                .values()
                .filter(|t| Arc::ptr_eq(&t.assignment().session, session))
                .count();
            let admitted = mine < self.shared.config.max_tasks_per_session
                && st.tasks.len() < self.shared.config.max_tasks;
            if admitted {
                st.tasks.insert(task.id, task.clone());
            }
            admitted
        };
        if !admitted {
            return false;
        }
        tracing::info!(conn = self.id, task = %task.id, steps, interval, "sim task started");
        tokio::spawn(run_task(
            self.shared.clone(),
            task,
            steps,
            Duration::from_millis(u64::from(interval)),
        ));
        true
    }

    /// `handleClientDisconnected`: the session dies with its connection; tasks flagged
    /// `PACF_CANCEL_TASK_ON_END_SESSION` are cancelled, the others keep running.
    fn disconnected(&self) {
        let mut st = self.shared.state();
        st.links.remove(&self.handle);
        st.logons.remove(&self.handle);
        if let Some(session) = st.sessions.remove(&self.handle) {
            let handle = self.handle_str();
            for task in st.tasks.values() {
                if task.cancel_on_end_session && task.assignment().session.handle == handle {
                    task.cancelled.store(true, Ordering::SeqCst);
                    task.wake.notify_one();
                }
            }
            tracing::info!(conn = self.id, user = %session.user, "session ended");
        }
        tracing::info!(conn = self.id, "client disconnected");
    }
}

/// What a login request (2039) carries.
struct LoginFields {
    flags: u32,
    user: String,
    /// The password as sent (base64 from protocol 6.9), in memory zeroed on drop.
    password_wire: Zeroizing<String>,
    prev: String,
}

/// Parses a login request, then zeroes its payload (as the service does once it has handled
/// a 2039 or 2186): afterwards the wire password exists only in the returned zeroizing string.
fn take_login(p: &mut Package) -> Option<LoginFields> {
    let fields = parse_login(p);
    zero_payload(p);
    fields
}

/// Zeroes buffer 0, the command's payload (`bzero(p->buffers[0].getImpl(), size)`).
fn zero_payload(p: &mut Package) {
    if let Some(b) = p.buffers.first_mut() {
        b.data.as_mut_slice().zeroize();
    }
}

/// The three String params `CProtoCommandDspCmdUserLogin::IsValid` requires. The password is
/// moved out of the parsed event into zeroizing memory.
fn parse_login(p: &Package) -> Option<LoginFields> {
    let mut event = package_event(p).ok()?;
    let get = |event: &Event, name: &str| -> Option<String> {
        let param = event.param(name)?;
        if param.param_type != ParamType::STRING {
            return None;
        }
        param.as_str().map(str::to_owned)
    };
    let user = get(&event, param::LOGIN_USERNAME);
    let prev = get(&event, param::LOGIN_SESSION_TO_RESTORE);
    let flags = event.uint(param::COMMAND_FLAGS).unwrap_or(0);
    // `Event::param` semantics: the first parameter of that name.
    let password = event
        .params
        .iter_mut()
        .find(|x| x.name == param::LOGIN_PASSWORD)
        .filter(|x| x.param_type == ParamType::STRING)
        .and_then(|x| match &mut x.value {
            ParamValue::Plain(text) => Some(Zeroizing::new(std::mem::take(text))),
            ParamValue::CData(bytes) => {
                let bytes = Zeroizing::new(std::mem::take(bytes));
                std::str::from_utf8(&bytes)
                    .ok()
                    .map(|text| Zeroizing::new(text.to_owned()))
            }
            ParamValue::List(_) | ParamValue::Binary(_) => None,
        });
    Some(LoginFields {
        flags,
        user: user?,
        password_wire: password?,
        prev: prev?,
    })
}

/// The request a task answers, without its payload: replies and events need only its header,
/// and a task must not pin up to a package's worth of memory.
fn header_only(p: &Package) -> Package {
    Package {
        header: p.header,
        buffers: Vec::new(),
    }
}

/// A session handle is compared as a string (`QString`): only the canonical `{lower-case}`
/// form names a session.
fn canonical_uuid(text: &str) -> Option<Uuid> {
    parse_uuid(text).filter(|u| uuid_string(u) == text)
}

/// Writes a reply on a connection, applying that connection's reply faults.
async fn deliver(sender: &PackageSender, faults: &Faults, conn: u64, package: Package) {
    if let Some(d) = faults.reply_delay {
        tokio::time::sleep(d).await;
    }
    let result = if faults.garbage {
        sender.send_raw_wire(vec![0x5A; 64]).await
    } else if faults.bad_crc {
        let mut header = package
            .header
            .to_bytes(u32::try_from(package.buffers.len()).unwrap_or(u32::MAX));
        if let Some(b) = header.get_mut(HEADER_LEN - 1) {
            *b ^= 0xFF;
        }
        let mut parts = vec![header.to_vec()];
        if !package.buffers.is_empty() {
            let mut d = Vec::with_capacity(package.buffers.len() * DESCRIPTOR_LEN);
            for b in &package.buffers {
                d.extend_from_slice(&b.encoding.to_le_bytes());
                let len = u32::try_from(b.data.len()).unwrap_or(u32::MAX);
                d.extend_from_slice(&len.to_le_bytes());
            }
            parts.push(d);
        }
        parts.extend(
            package
                .buffers
                .iter()
                .filter(|b| !b.data.is_empty())
                .map(|b| b.data.clone()),
        );
        sender
            .send_raw_parts(package.header.package_type, parts)
            .await
    } else {
        sender.send(package).await
    };
    if let Err(e) = result {
        tracing::debug!(conn, error = %e, "reply not sent");
    }
}

/// Sends a package to the connection of the session a task belongs to now (lost if that
/// connection is gone, as in the service).
async fn send_to_session(shared: &Shared, session: &Session, make: impl FnOnce(Uuid) -> Package) {
    let target = {
        let st = shared.state();
        canonical_uuid(&session.handle)
            .and_then(|u| st.links.get(&u))
            .map(|l| (l.sender.clone(), l.local_uuid))
    };
    if let Some((sender, local)) = target {
        let _ = sender.send(make(local)).await;
    }
}

async fn run_task(shared: Arc<Shared>, task: Arc<Task>, steps: u32, interval: Duration) {
    let issuer = uuid_string(&shared.config.server_uuid);
    for step in 1..=steps {
        if interval.is_zero() {
            // No pacing: events go out as fast as the connection takes them (backpressure is
            // the session's bounded queue), yielding so other connections keep being served.
            tokio::task::yield_now().await;
        } else if !task.cancelled.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = task.wake.notified() => {}
            }
        }
        if task.cancelled.load(Ordering::SeqCst) {
            break;
        }
        let percent = step.saturating_mul(100) / steps;
        let (session, request) = {
            let a = task.assignment();
            (a.session.clone(), a.request.clone())
        };
        send_to_session(&shared, &session, |local| {
            progress_event(
                request.header.uuid,
                request.header.sender_uuid,
                local,
                Uuid::new_v4(),
                &issuer,
                percent,
                &mut Uuid::new_v4,
            )
        })
        .await;
    }
    // `finalizeTask`.
    task.completed.store(true, Ordering::SeqCst);
    let code = if task.cancelled.load(Ordering::SeqCst) {
        ErrorCode::OPERATION_WAS_CANCELED
    } else {
        ErrorCode::SUCCESS
    };
    let (session, request) = {
        let a = task.assignment();
        (a.session.clone(), a.request.clone())
    };
    tracing::info!(task = %task.id, result = %code, "sim task finished");
    send_to_session(&shared, &session, |local| {
        simple_response(
            &request,
            local,
            Uuid::new_v4(),
            code,
            &[],
            &mut Uuid::new_v4,
        )
    })
    .await;
    shared.state().tasks.remove(&task.id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::commands::{LoginRequest, PCF_ORIGINAL_CLIENT};

    #[test]
    fn a_parsed_login_leaves_no_password_in_the_request() {
        let request = LoginRequest {
            user: "testuser".into(),
            password: Password::new("Zer0ize-me"),
            prev_session_uuid: String::new(),
            flags: PCF_ORIGINAL_CLIENT,
        };
        let mut p = request.to_package(Uuid::from_u128(1), Uuid::from_u128(2), true, &mut || {
            Uuid::from_u128(3)
        });
        let len = p.buffers[0].data.len();
        let wire = request.password.encode(true);
        let fields = take_login(&mut p).unwrap();
        assert_eq!(fields.user, "testuser");
        assert_eq!(fields.flags, PCF_ORIGINAL_CLIENT);
        assert_eq!(*fields.password_wire, *wire);
        assert_eq!(
            Password::decode(&fields.password_wire, true)
                .unwrap()
                .expose(),
            "Zer0ize-me"
        );
        // The payload is zeroed in place, like `bzero(p->buffers[0])`.
        assert_eq!(p.buffers[0].data.len(), len);
        assert!(p.buffers[0].data.iter().all(|b| *b == 0));
        // A request that is not a valid login is zeroed too.
        let mut bad = Package::request(cmd::USER_LOGIN, Uuid::nil(), Uuid::nil(), vec![])
            .with_text("<ParallelsEvent/>");
        assert!(take_login(&mut bad).is_none());
        assert!(bad.buffers[0].data.iter().all(|b| *b == 0));
    }
}
