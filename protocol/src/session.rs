//! The client side of a Parallels session as a sans-I/O state machine.
//!
//! The caller owns the transport (a WebSocket to prl-proxy in the browser, a native IOService
//! connection elsewhere) and the clock. It feeds in what happened (`connecting`, `connected`,
//! `handle_package`, `connection_lost`, `handle_timeout` with the current time in ms) and
//! drains what to do (`poll_transmit` packages to send, `poll_event` results, `poll_timeout`
//! the next instant `handle_timeout` must be called). Nothing here sleeps or reads a clock, so
//! every timeout is unit-testable (the quinn-proto pattern).
//!
//! SDK semantics kept (protocol.md §4, §6, §7):
//! - the connect budget covers connect + handshake + TLS only, not the wait for the login
//!   reply; `0` means the SDK's 60 s (`PVE_CONNECTION_TIMEOUT`); on expiry the job fails with
//!   `PRL_ERR_CANT_CONNECT_TO_DISPATCHER`;
//! - a job is its request package's uuid; replies are matched by `parentUuid`;
//! - heartbeats (type 10) go out every 10 s when enabled (direct connections; over the relay the
//!   proxy sends them), incoming ones are ignored;
//! - a lost connection fails every pending job with `PRL_ERR_WS_DISP_CONNECTION_CLOSED`;
//! - attach to lost task (2090) first gets a SUCCESS reply, then the task's progress events and
//!   its final result, all naming the 2090 package as parent;
//! - cancel sends `DspCmdUserCancelOperation` (2053) naming the job; the job fails at once with
//!   `PRL_ERR_OPERATION_WAS_CANCELED`, and the cancel is a job of its own whose reply is
//!   reported (`JobKind::Cancel`): for a VM power operation the service answers
//!   `PRL_ERR_TASK_NOT_FOUND` and the operation goes on (its state event still comes);
//! - any command the core can describe ([`RequestSpec`]: host info, VM list and info, the VM
//!   power operations, or any other client → service command) is a job of its own
//!   ([`ClientSession::request`], `JobKind::Command`) that ends with its first reply;
//! - a job can also end without its reply ([`ClientSession::fail_job`]): a request the relay
//!   refused (`command_refused`, [`ClientSession::refused_by_relay`]), or a cancel whose answer
//!   the caller stopped waiting for;
//! - replies to a job that already ended (a cancelled one's late reply, the service's second
//!   reply to a forked VM operation that failed: ops-wire.md §4.4) are dropped silently, as the
//!   SDK drops them; the session remembers the last [`FINISHED_JOBS_KEPT`] ended jobs for that.
//!
//! VM events (state changed, added, ...) arrive as `SessionEvent::ServiceEvent` with their
//! event; `commands::VmEvent::from_event` reads them. A request the relay refuses
//! (`command_refused`, which names the job) fails its job through
//! [`ClientSession::refused_by_relay`].

use std::collections::VecDeque;

use uuid::Uuid;

use crate::codes::{cmd, event_type, ErrorCode};
use crate::commands::{
    carried_event, one_str_command, param, simple_command, CommandError, LoginLocalRequest,
    LoginRequest, LoginResponse, Reply, RequestSpec, SpecError,
};
use crate::event::Event;
use crate::package::{Package, MNG_HEARTBEAT};
use crate::uuid_string;

/// The SDK's connect budget when the caller passes 0 (`PVE_CONNECTION_TIMEOUT`).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 60_000;
/// Heartbeat send interval (`IOHeartBeatSendTimeout`).
pub const HEARTBEAT_INTERVAL_MS: u64 = 10_000;
/// How many ended jobs the session remembers, to drop late replies to them silently.
pub const FINISHED_JOBS_KEPT: usize = 256;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No connection.
    Disconnected,
    /// Establishing the connection (connect budget running).
    Connecting,
    /// Connection up, not logged in.
    Connected,
    /// Login sent, waiting for the reply.
    LoggingIn,
    /// Logged in.
    LoggedIn,
    /// Logged off; the connection is over.
    Closed,
}

/// What kind of job a pending request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// 2039.
    Login,
    /// 2186.
    LoginLocal,
    /// 2042.
    Logoff,
    /// 2052.
    Ping,
    /// 2090, before its SUCCESS reply.
    AttachToLostTask,
    /// 2090 after SUCCESS: waiting for the task's own result.
    AttachedTask,
    /// 2053: its reply ends it (for a VM power operation the service answers
    /// `PRL_ERR_TASK_NOT_FOUND`).
    Cancel,
    /// A command sent from its description ([`ClientSession::request`]): the package type.
    Command(u32),
}

/// The outcome of a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobResult {
    /// A login succeeded.
    LoggedIn(LoginResponse),
    /// A job finished with success; the reply is attached.
    Done(Reply),
    /// A job failed with an SDK code.
    Failed {
        /// The code.
        code: ErrorCode,
        /// The error event the service attached, if any.
        error: Option<Event>,
    },
}

/// Something the caller should know.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The state changed.
    StateChanged(SessionState),
    /// The connect budget expired before the connection was up.
    ConnectTimedOut,
    /// A job ended.
    JobFinished {
        /// The job (request package uuid).
        job: Uuid,
        /// Its kind.
        kind: JobKind,
        /// Its result.
        result: JobResult,
    },
    /// A 2090 was accepted: the task's progress and result follow under the same job.
    TaskAttached {
        /// The 2090 job.
        job: Uuid,
    },
    /// Progress of a job (3003 `PET_DSP_EVT_JOB_PROGRESS_CHANGED`).
    Progress {
        /// The job the event names as parent.
        job: Uuid,
        /// Percent done.
        percent: u32,
    },
    /// Any other event or unmatched package from the service.
    ServiceEvent {
        /// Package type.
        package_type: u32,
        /// The event, when the package carries an XML event.
        event: Option<Event>,
    },
    /// The connection was lost (not by logoff).
    ConnectionLost,
}

/// Misuse of the session or a broken reply.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The call needs another state.
    #[error("{action} is not possible while {state:?}")]
    WrongState {
        /// What was attempted.
        action: &'static str,
        /// The state at the time.
        state: SessionState,
    },
    /// No such pending job.
    #[error("no pending job {0}")]
    UnknownJob(String),
    /// A reply could not be parsed.
    #[error("bad reply: {0}")]
    BadReply(#[from] CommandError),
    /// A request description cannot be built.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] SpecError),
}

impl SessionError {
    /// Stable name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WrongState { .. } => "wrong_state",
            Self::UnknownJob(_) => "unknown_job",
            Self::BadReply(_) => "bad_reply",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Send heartbeats every this many ms while connected (`None`: never; the relay sends them).
    pub heartbeat_interval_ms: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_interval_ms: Some(HEARTBEAT_INTERVAL_MS),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: JobKind,
}

/// The pending jobs, sorted by uuid (the order a `BTreeMap` gave): a client has a handful at
/// a time, so a sorted vector does the map's work with a fraction of its WASM code.
#[derive(Debug, Default)]
struct PendingJobs(Vec<(Uuid, Pending)>);

impl PendingJobs {
    fn find(&self, job: &Uuid) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(job))
    }

    fn get(&self, job: &Uuid) -> Option<Pending> {
        self.find(job).ok().map(|i| self.0[i].1)
    }

    fn insert(&mut self, job: Uuid, pending: Pending) {
        match self.find(&job) {
            Ok(i) => self.0[i].1 = pending,
            Err(i) => self.0.insert(i, (job, pending)),
        }
    }

    fn remove(&mut self, job: &Uuid) -> Option<Pending> {
        self.find(job).ok().map(|i| self.0.remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = &(Uuid, Pending)> {
        self.0.iter()
    }
}

/// The client session state machine.
#[derive(Debug)]
pub struct ClientSession {
    config: SessionConfig,
    state: SessionState,
    connect_deadline: Option<u64>,
    next_heartbeat: Option<u64>,
    connection_uuid: Uuid,
    base64_password: bool,
    session_uuid: Option<String>,
    pending: PendingJobs,
    /// The last jobs that ended (at most [`FINISHED_JOBS_KEPT`]): their late replies are dropped.
    finished: VecDeque<Uuid>,
    transmit: VecDeque<Package>,
    events: VecDeque<SessionEvent>,
}

impl ClientSession {
    /// A disconnected session.
    pub fn new(config: SessionConfig) -> Self {
        ClientSession {
            config,
            state: SessionState::Disconnected,
            connect_deadline: None,
            next_heartbeat: None,
            connection_uuid: Uuid::nil(),
            base64_password: true,
            session_uuid: None,
            pending: PendingJobs::default(),
            finished: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The session uuid of the current login, if logged in.
    pub fn session_uuid(&self) -> Option<&str> {
        self.session_uuid.as_deref()
    }

    /// Jobs waiting for a reply.
    pub fn pending_jobs(&self) -> impl Iterator<Item = (Uuid, JobKind)> + '_ {
        self.pending.iter().map(|(k, v)| (*k, v.kind))
    }

    fn set_state(&mut self, state: SessionState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(SessionEvent::StateChanged(state));
        }
    }

    /// A connection attempt starts at `now_ms` with the SDK's `timeout_ms` (0 = 60 s).
    pub fn connecting(&mut self, now_ms: u64, timeout_ms: u64) -> Result<(), SessionError> {
        match self.state {
            SessionState::Disconnected | SessionState::Closed => {}
            state => {
                return Err(SessionError::WrongState {
                    action: "connect",
                    state,
                })
            }
        }
        let budget = if timeout_ms == 0 {
            DEFAULT_CONNECT_TIMEOUT_MS
        } else {
            timeout_ms
        };
        self.connect_deadline = Some(now_ms.saturating_add(budget));
        self.session_uuid = None;
        self.set_state(SessionState::Connecting);
        Ok(())
    }

    /// The connection is up (handshake and TLS done). `connection_uuid` is the sender uuid of
    /// our packages; `base64_password` is the service protocol >= 6.9.
    pub fn connected(
        &mut self,
        now_ms: u64,
        connection_uuid: Uuid,
        base64_password: bool,
    ) -> Result<(), SessionError> {
        if self.state != SessionState::Connecting {
            return Err(SessionError::WrongState {
                action: "complete the connection",
                state: self.state,
            });
        }
        self.connect_deadline = None;
        self.connection_uuid = connection_uuid;
        self.base64_password = base64_password;
        self.next_heartbeat = self
            .config
            .heartbeat_interval_ms
            .map(|i| now_ms.saturating_add(i));
        self.set_state(SessionState::Connected);
        Ok(())
    }

    fn require(&self, action: &'static str, ok: &[SessionState]) -> Result<(), SessionError> {
        if ok.contains(&self.state) {
            Ok(())
        } else {
            Err(SessionError::WrongState {
                action,
                state: self.state,
            })
        }
    }

    fn send(&mut self, job: Uuid, kind: JobKind, package: Package) -> Uuid {
        self.pending.insert(job, Pending { kind });
        self.transmit.push_back(package);
        job
    }

    /// Send a login (2039) as job `job`.
    pub fn login(
        &mut self,
        job: Uuid,
        request: &LoginRequest,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Uuid, SessionError> {
        self.require("login", &[SessionState::Connected])?;
        let package = request.to_package(job, self.connection_uuid, self.base64_password, ids);
        self.set_state(SessionState::LoggingIn);
        Ok(self.send(job, JobKind::Login, package))
    }

    /// Send an easy local login (2186) as job `job`.
    pub fn login_local(
        &mut self,
        job: Uuid,
        request: &LoginLocalRequest,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Uuid, SessionError> {
        self.require("local login", &[SessionState::Connected])?;
        let package = request.to_package(job, self.connection_uuid, ids);
        self.set_state(SessionState::LoggingIn);
        Ok(self.send(job, JobKind::LoginLocal, package))
    }

    /// Send a logoff (2042).
    pub fn logoff(
        &mut self,
        job: Uuid,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Uuid, SessionError> {
        self.require("logoff", &[SessionState::LoggedIn])?;
        let package = simple_command(cmd::USER_LOGOFF, job, self.connection_uuid, ids);
        Ok(self.send(job, JobKind::Logoff, package))
    }

    /// Send a ping (2052). The real service has no handler for it: once logged in it answers
    /// `PRL_ERR_UNIMPLEMENTED` (before login `USER_OPERATION_NOT_AUTHORISED`), so this is a
    /// round-trip probe whose reply code says nothing about health.
    pub fn ping(&mut self, job: Uuid, ids: &mut dyn FnMut() -> Uuid) -> Result<Uuid, SessionError> {
        self.require("ping", &[SessionState::LoggedIn])?;
        let package = simple_command(cmd::USER_PING, job, self.connection_uuid, ids);
        Ok(self.send(job, JobKind::Ping, package))
    }

    /// Attach to a task of a lost session (2090).
    pub fn attach_to_lost_task(
        &mut self,
        job: Uuid,
        task_id: &str,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Uuid, SessionError> {
        self.require("attach to lost task", &[SessionState::LoggedIn])?;
        let package = one_str_command(
            cmd::ATTACH_TO_LOST_TASK,
            task_id,
            job,
            self.connection_uuid,
            ids,
        );
        Ok(self.send(job, JobKind::AttachToLostTask, package))
    }

    /// Send a command described as data (host info, VM list and info, a VM power operation, or
    /// any other client → service command; see [`RequestSpec`]) as job `job`. The job ends
    /// with the command's first reply: `JobResult::Done` with the reply on success, else
    /// `JobResult::Failed` with the service's code and error event (its `Details`).
    pub fn request(
        &mut self,
        job: Uuid,
        spec: &RequestSpec,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<Uuid, SessionError> {
        self.require("send a command", &[SessionState::LoggedIn])?;
        let package = spec.to_package(job, self.connection_uuid, ids)?;
        Ok(self.send(job, JobKind::Command(spec.package_type), package))
    }

    /// Cancel a pending job: sends 2053 naming it (`PrlHandleLoginHelperJob::Cancel`) and fails
    /// the job at once with `PRL_ERR_OPERATION_WAS_CANCELED`. The 2053 is job `cancel_job`,
    /// which ends with the service's answer (`JobKind::Cancel`); late replies to `job` are
    /// dropped.
    pub fn cancel(
        &mut self,
        job: Uuid,
        cancel_job: Uuid,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Result<(), SessionError> {
        let pending = self.take_pending(job)?;
        let package = one_str_command(
            cmd::USER_CANCEL_OPERATION,
            &uuid_string(&job),
            cancel_job,
            self.connection_uuid,
            ids,
        );
        self.send(cancel_job, JobKind::Cancel, package);
        self.end_without_reply(job, pending.kind, ErrorCode::OPERATION_WAS_CANCELED);
        Ok(())
    }

    /// Ends a pending job without a reply from the service, failed with `code`: a request the
    /// relay refused (a `command_refused` error: it never reached the service), or a job the
    /// caller stopped waiting for (a cancel left unanswered). Late replies to it are dropped
    /// like those of any ended job.
    pub fn fail_job(&mut self, job: Uuid, code: ErrorCode) -> Result<(), SessionError> {
        let pending = self.take_pending(job)?;
        self.end_without_reply(job, pending.kind, code);
        Ok(())
    }

    fn take_pending(&mut self, job: Uuid) -> Result<Pending, SessionError> {
        self.pending
            .remove(&job)
            .ok_or_else(|| SessionError::UnknownJob(uuid_string(&job)))
    }

    fn end_without_reply(&mut self, job: Uuid, kind: JobKind, code: ErrorCode) {
        if matches!(kind, JobKind::Login | JobKind::LoginLocal) {
            self.set_state(SessionState::Connected);
        }
        self.finish(job, kind, JobResult::Failed { code, error: None });
    }

    /// The relay refused the request of `job` without forwarding it (a `command_refused`
    /// relay error, `RelayError::refused_request` names the job): the job fails at once with
    /// `code` (the error's code, `PRL_ERR_ACCESS_DENIED`). The session is unaffected.
    pub fn refused_by_relay(&mut self, job: Uuid, code: ErrorCode) -> Result<(), SessionError> {
        self.fail_job(job, code)
    }

    fn finish(&mut self, job: Uuid, kind: JobKind, result: JobResult) {
        if self.finished.len() >= FINISHED_JOBS_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(job);
        self.events
            .push_back(SessionEvent::JobFinished { job, kind, result });
    }

    /// A package arrived from the service.
    pub fn handle_package(&mut self, package: Package) -> Result<(), SessionError> {
        let header = package.header;
        if header.package_type == MNG_HEARTBEAT {
            return Ok(());
        }
        let is_reply = matches!(
            header.package_type,
            cmd::WS_RESPONSE | cmd::WS_BINARY_RESPONSE
        );
        let pending = if header.is_response() {
            self.pending.get(&header.parent_uuid)
        } else {
            None
        };
        if let (Some(p), true) = (pending, is_reply) {
            return self.handle_reply(header.parent_uuid, p.kind, &package);
        }
        if is_reply && header.is_response() && self.finished.contains(&header.parent_uuid) {
            // A late reply to a job that ended (cancelled, or the duplicate of a forked
            // operation's failure): the SDK's job is gone, so is ours.
            return Ok(());
        }
        let event = carried_event(&package);
        if pending.is_some() {
            // An event addressed to one of our jobs (its parent): progress or otherwise.
            let event = event?;
            if let Some(e) = event
                .as_ref()
                .filter(|e| e.event_type == event_type::JOB_PROGRESS_CHANGED)
            {
                let percent = e.uint(param::PROGRESS_CHANGED).unwrap_or(0);
                self.events.push_back(SessionEvent::Progress {
                    job: header.parent_uuid,
                    percent,
                });
                return Ok(());
            }
            self.events.push_back(SessionEvent::ServiceEvent {
                package_type: header.package_type,
                event,
            });
            return Ok(());
        }
        self.events.push_back(SessionEvent::ServiceEvent {
            package_type: header.package_type,
            event: event.ok().flatten(),
        });
        Ok(())
    }

    fn handle_reply(
        &mut self,
        job: Uuid,
        kind: JobKind,
        package: &Package,
    ) -> Result<(), SessionError> {
        let reply = match Reply::parse(package) {
            Ok(reply) => reply,
            Err(e) => {
                self.pending.remove(&job);
                if matches!(kind, JobKind::Login | JobKind::LoginLocal) {
                    self.set_state(SessionState::Connected);
                }
                self.finish(
                    job,
                    kind,
                    JobResult::Failed {
                        code: ErrorCode::FAILURE,
                        error: None,
                    },
                );
                return Err(e.into());
            }
        };
        if kind == JobKind::AttachToLostTask && !reply.code.is_error() {
            self.pending.insert(
                job,
                Pending {
                    kind: JobKind::AttachedTask,
                },
            );
            self.events.push_back(SessionEvent::TaskAttached { job });
            return Ok(());
        }
        self.pending.remove(&job);
        if reply.code.is_error() {
            if matches!(kind, JobKind::Login | JobKind::LoginLocal) {
                self.set_state(SessionState::Connected);
            }
            let error = reply.error_event();
            self.finish(
                job,
                kind,
                JobResult::Failed {
                    code: reply.code,
                    error,
                },
            );
            return Ok(());
        }
        match kind {
            JobKind::Login | JobKind::LoginLocal => match reply.login_response() {
                Ok(response) => {
                    self.session_uuid = Some(response.session_uuid.clone());
                    self.set_state(SessionState::LoggedIn);
                    self.finish(job, kind, JobResult::LoggedIn(response));
                }
                Err(e) => {
                    self.set_state(SessionState::Connected);
                    self.finish(
                        job,
                        kind,
                        JobResult::Failed {
                            code: ErrorCode::FAILURE,
                            error: None,
                        },
                    );
                    return Err(e.into());
                }
            },
            JobKind::Logoff => {
                // The SDK disconnects after a successful logoff reply.
                self.fail_all(ErrorCode::WS_DISP_CONNECTION_CLOSED);
                self.session_uuid = None;
                self.next_heartbeat = None;
                self.set_state(SessionState::Closed);
                self.finish(job, kind, JobResult::Done(reply));
            }
            _ => self.finish(job, kind, JobResult::Done(reply)),
        }
        Ok(())
    }

    fn fail_all(&mut self, code: ErrorCode) {
        let pending = std::mem::take(&mut self.pending);
        for (job, p) in pending.0 {
            self.finish(job, p.kind, JobResult::Failed { code, error: None });
        }
    }

    /// The connection closed or failed. Pending jobs fail with
    /// `PRL_ERR_WS_DISP_CONNECTION_CLOSED` (or `CANT_CONNECT_TO_DISPATCHER` while connecting).
    pub fn connection_lost(&mut self) {
        let (code, lost) = match self.state {
            SessionState::Connecting => (ErrorCode::CANT_CONNECT_TO_DISPATCHER, false),
            SessionState::Disconnected | SessionState::Closed => return,
            _ => (ErrorCode::WS_DISP_CONNECTION_CLOSED, true),
        };
        self.fail_all(code);
        self.connect_deadline = None;
        self.next_heartbeat = None;
        self.transmit.clear();
        self.set_state(SessionState::Disconnected);
        if lost {
            self.events.push_back(SessionEvent::ConnectionLost);
        }
    }

    /// Advance time: expire the connect budget, queue due heartbeats.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if let Some(deadline) = self.connect_deadline {
            if now_ms >= deadline {
                self.connect_deadline = None;
                self.transmit.clear();
                self.set_state(SessionState::Disconnected);
                self.events.push_back(SessionEvent::ConnectTimedOut);
            }
        }
        if let (Some(due), Some(interval)) =
            (self.next_heartbeat, self.config.heartbeat_interval_ms)
        {
            if now_ms >= due {
                self.transmit.push_back(Package::heartbeat());
                // One heartbeat per call even after a long pause, then the regular rhythm.
                self.next_heartbeat = Some(now_ms.saturating_add(interval));
            }
        }
    }

    /// The earliest time `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.connect_deadline, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next package to send.
    pub fn poll_transmit(&mut self) -> Option<Package> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }
}
