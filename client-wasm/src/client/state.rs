//! The client's one mutable state, the events it owes JavaScript, and [`Client`], the handle
//! every operation holds.
//!
//! All state lives in one `Rc<RefCell<ClientState>>`. Borrows are short and never held across
//! an `.await` or a call into JavaScript: the state queues what JavaScript is to be told
//! ([`Note`]s: events, progress callbacks) and [`Client::with`] runs a closure on the state,
//! then dispatches the queue after the borrow is released, so a listener may call back into
//! the client.

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::Function;
use prl_protocol::commands::Password;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{ConnectMode, RelayError};
use prl_protocol::session::{ClientSession, JobResult, SessionConfig, SessionEvent};
use prl_protocol::{parse_uuid, ErrorCode, Uuid};
use wasm_bindgen::JsValue;
use web_sys::EventTarget;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{ClientError, Op};
use crate::ws::Socket;
use crate::{js, js_ops};

/// The wall clock in ms (`Date.now()`: a test's virtual clock replaces it).
pub(super) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A fresh package / job uuid.
pub(super) fn new_id() -> Uuid {
    Uuid::new_v4()
}

/// Where the client stands. [`Phase::as_str`] is the state JavaScript sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No session.
    Disconnected,
    /// A login is in progress.
    Connecting,
    /// Logged in.
    Connected,
    /// Logged in, the logoff request sent (JavaScript sees `connected`): a lost connection
    /// ends the session instead of restoring it, and no new request starts.
    LoggingOff,
    /// The connection was lost; a restore attempt is scheduled.
    Unstable,
    /// A restore attempt is running.
    Restoring,
    /// `free()` was called: final, the object is unusable.
    Closed,
}

impl Phase {
    /// The phase JavaScript sees (logging off shows as connected).
    fn shown(self) -> Phase {
        match self {
            Phase::LoggingOff => Phase::Connected,
            phase => phase,
        }
    }

    /// The JavaScript string.
    pub fn as_str(self) -> &'static str {
        match self.shown() {
            Phase::Disconnected => "disconnected",
            Phase::Connecting => "connecting",
            Phase::Connected | Phase::LoggingOff => "connected",
            Phase::Unstable => "unstable",
            Phase::Restoring => "restoring",
            Phase::Closed => "closed",
        }
    }
}

/// Where tickets come from: none, a fixed string, or a JavaScript function called for every
/// new upstream connection (tickets are single use, so restore needs a fresh one).
pub enum TicketSource {
    /// No ticket.
    None,
    /// The same ticket every time.
    Fixed(Zeroizing<String>),
    /// `() => string | Promise<string>`.
    Provider(Function),
}

impl std::fmt::Debug for TicketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TicketSource::None => "None",
            TicketSource::Fixed(_) => "Fixed(<redacted>)",
            TicketSource::Provider(_) => "Provider",
        })
    }
}

/// Constructor options.
#[derive(Debug)]
pub struct Options {
    /// `ws://` or `wss://` URL of the proxy's relay endpoint.
    pub proxy_url: String,
    /// Ticket source.
    pub ticket: TicketSource,
    /// Restore automatically after an unexpected connection loss.
    pub auto_restore: bool,
}

/// Where and how to connect (kept for restore).
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// Remote or local login.
    pub mode: ConnectMode,
    /// Target host ("" for local).
    pub host: String,
    /// Target port (0 = 64000).
    pub port: u16,
    /// Security level of the IOService handshake.
    pub level: SecurityLevel,
    /// Connect budget in ms (0 = the proxy's ceiling).
    pub timeout_ms: u32,
}

/// The login to perform.
#[derive(Clone)]
pub enum Credentials {
    /// 2039 with user and password (zeroized on drop).
    Remote {
        /// User name.
        user: Zeroizing<String>,
        /// Password.
        password: Password,
    },
    /// 2186.
    Local,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Remote { .. } => "Remote(<redacted>)",
            Credentials::Local => "Local",
        })
    }
}

/// A successful login, as kept for restore.
#[derive(Debug)]
pub(super) struct LoginInfo {
    pub(super) params: ConnectParams,
    /// Held only while `autoRestore` is on; `None` otherwise.
    pub(super) credentials: Option<Credentials>,
    pub(super) session_uuid: String,
    /// The service's product version (the login reply's), for `getHostInfo`.
    pub(super) product_version: String,
}

/// A secret string held in WASM memory and zeroized on drop (resume tokens).
pub(super) type Token = Zeroizing<String>;

/// What a resume of a lost connection needs.
pub(super) struct ResumeInfo {
    pub(super) token: Token,
    pub(super) window_ms: u32,
    pub(super) received: u64,
    pub(super) lost_at_ms: f64,
    /// The public URL of the cluster instance that holds the connection, if the proxy said.
    pub(super) instance: Option<String>,
}

impl std::fmt::Debug for ResumeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeInfo")
            .field("token", &"<redacted>")
            .field("window_ms", &self.window_ms)
            .field("received", &self.received)
            .field("instance", &self.instance)
            .finish()
    }
}

/// The restore proof of the last session this object logged in: the session UUID and the
/// last resume token the proxy gave for its upstream connection. A login naming that session
/// as `prevSessionId` sends the token as the open's `restore` (docs/relay-protocol.md,
/// "Previous sessions"). Kept in WASM memory only; zeroized on logoff and free.
pub(super) struct RestoreProof {
    pub(super) session: Uuid,
    pub(super) token: Token,
}

impl std::fmt::Debug for RestoreProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreProof(<redacted>)")
    }
}

/// The installed connection.
pub(super) struct Conn {
    pub(super) socket: Socket,
    pub(super) generation: u64,
    /// Packages received on this connection and those it resumed (a resume's `received`).
    pub(super) received: u64,
    pub(super) resume_token: Token,
    pub(super) resume_window_ms: u32,
    /// The cluster instance that holds the upstream connection (`opened` / `resumed`).
    pub(super) instance: Option<String>,
    /// The proxy's typed error, reported when the close follows.
    pub(super) relay_error: Option<RelayError>,
}

/// Where a job's outcome goes.
pub(super) type Waiter = oneshot::Sender<Result<JobResult, ClientError>>;

/// A request waiting for its reply.
pub(super) struct PendingJob {
    pub(super) waiter: Waiter,
    /// Called with each progress event of the job.
    pub(super) on_progress: Option<Function>,
}

/// Something to tell JavaScript once the borrow is released (queued in
/// [`ClientState::notes`], dispatched by [`Client::with`]).
pub enum Note {
    /// Dispatch a `CustomEvent` of this type with this detail on the server's target.
    Event(&'static str, JsValue),
    /// Call a progress callback.
    Call(Function, JsValue),
}

/// Per-job entries. A handful of jobs are in flight at most (login, logoff, attached tasks),
/// so a vector beats a `BTreeMap`, whose code costs kilobytes of WASM per value type.
pub(super) struct JobMap<T>(Vec<(Uuid, T)>);

impl<T> Default for JobMap<T> {
    fn default() -> Self {
        JobMap(Vec::new())
    }
}

impl<T> JobMap<T> {
    pub(super) fn insert(&mut self, job: Uuid, value: T) {
        self.remove(&job);
        self.0.push((job, value));
    }

    fn get(&self, job: &Uuid) -> Option<&T> {
        self.0.iter().find(|(j, _)| j == job).map(|(_, v)| v)
    }

    pub(super) fn remove(&mut self, job: &Uuid) -> Option<T> {
        let i = self.0.iter().position(|(j, _)| j == job)?;
        Some(self.0.swap_remove(i).1)
    }
}

/// The client's state.
pub struct ClientState {
    pub(super) opts: Options,
    phase: Phase,
    target: EventTarget,
    /// The core's Parallels session (jobs, login state, the connect deadline).
    pub(super) session: ClientSession,
    pub(super) conn: Option<Conn>,
    /// Bumped by every install and teardown: a reader of an older connection stops.
    pub(super) generation: u64,
    pub(super) jobs: JobMap<PendingJob>,
    pub(super) login: Option<LoginInfo>,
    pub(super) resume: Option<ResumeInfo>,
    pub(super) proof: Option<RestoreProof>,
    /// Set while `teardown` fails pending jobs: the detailed reason they get.
    loss_reason: Option<ClientError>,
    /// What JavaScript is to be told once the borrow is released ([`Client::with`]).
    pub(super) notes: Vec<Note>,
}

impl ClientState {
    /// A new, disconnected client.
    pub fn new(opts: Options, target: EventTarget) -> Self {
        ClientState {
            opts,
            phase: Phase::Disconnected,
            target,
            session: ClientSession::new(SessionConfig {
                // Over the relay the proxy sends the service its heartbeats.
                heartbeat_interval_ms: None,
            }),
            conn: None,
            generation: 0,
            jobs: JobMap::default(),
            login: None,
            resume: None,
            proof: None,
            loss_reason: None,
            notes: Vec::new(),
        }
    }

    /// Where the client stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Session UUID of the current login.
    pub fn session_id(&self) -> Option<String> {
        self.login.as_ref().map(|l| l.session_uuid.clone())
    }

    /// The event target listeners are registered on.
    pub fn target(&self) -> &EventTarget {
        &self.target
    }

    /// Moves to `phase`, announcing the change when the state JavaScript sees changes.
    /// `Closed` is final.
    pub(super) fn set_phase(&mut self, phase: Phase) {
        self.set_phase_because(phase, None);
    }

    /// [`Self::set_phase`] with the error that caused it in the `statechange` detail.
    pub(super) fn set_phase_because(&mut self, phase: Phase, error: Option<&ClientError>) {
        if self.phase == Phase::Closed {
            return;
        }
        let previous = self.phase;
        self.phase = phase;
        if previous.shown() != phase.shown() {
            self.notes.push(Note::Event(
                "statechange",
                js::state_detail(phase.as_str(), previous.as_str(), error),
            ));
        }
    }

    /// Sends what the session queued and routes what it reported. True when the session's
    /// connect deadline passed.
    pub(super) fn drain(&mut self) -> bool {
        while let Some(mut package) = self.session.poll_transmit() {
            let mut bytes = package.encode();
            if let Some(conn) = &self.conn {
                // A failed send means the socket is closing: its close event reports the loss.
                let _ = conn.socket.send_binary(&bytes);
            }
            // A login carries the password: no copy of what went out stays in this module's
            // memory (the WebSocket has its own).
            bytes.zeroize();
            package.buffers.iter_mut().for_each(|b| b.data.zeroize());
        }
        let mut connect_timed_out = false;
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::JobFinished { job, result, .. } => {
                    let Some(pending) = self.jobs.remove(&job) else {
                        continue;
                    };
                    let outcome = match (&result, &self.loss_reason) {
                        (JobResult::Failed { code, .. }, Some(reason))
                            if *code == ErrorCode::WS_DISP_CONNECTION_CLOSED
                                || *code == ErrorCode::CANT_CONNECT_TO_DISPATCHER =>
                        {
                            Err(reason.clone())
                        }
                        _ => Ok(result),
                    };
                    let _ = pending.waiter.send(outcome);
                }
                SessionEvent::Progress { job, percent } => {
                    let detail = js::progress_detail(&job, percent);
                    if let Some(callback) = self.jobs.get(&job).and_then(|j| j.on_progress.as_ref())
                    {
                        self.notes
                            .push(Note::Call(callback.clone(), detail.clone()));
                    }
                    self.notes.push(Note::Event("event", detail));
                }
                SessionEvent::ServiceEvent {
                    package_type,
                    event,
                } => {
                    // A VM event is also its own `Server` event (`vmstatechange`, ...).
                    if let Some((kind, detail)) = event.as_ref().and_then(js_ops::vm_event) {
                        self.notes.push(Note::Event(kind, detail));
                    }
                    self.notes.push(Note::Event(
                        "event",
                        js::service_event_detail(package_type, event.as_ref()),
                    ));
                }
                SessionEvent::ConnectTimedOut => connect_timed_out = true,
                SessionEvent::StateChanged(_)
                | SessionEvent::TaskAttached { .. }
                | SessionEvent::ConnectionLost => {}
            }
        }
        connect_timed_out
    }

    /// Drops the connection and fails what waits on it with `reason`.
    pub(super) fn teardown(&mut self, reason: ClientError) {
        self.generation = self.generation.wrapping_add(1);
        self.conn = None;
        self.loss_reason = Some(reason);
        self.session.connection_lost();
        self.drain();
        self.loss_reason = None;
        // Anything left (e.g. a job the session no longer tracks) fails too.
        for (_, pending) in std::mem::take(&mut self.jobs.0) {
            let _ = pending
                .waiter
                .send(Err(ClientError::closed(Op::Connect, "connection closed")));
        }
    }

    /// Forgets the login and its credentials (zeroized on drop). The restore proof stays: the
    /// application may still name the lost session as `prevSessionId`.
    pub(super) fn forget_login(&mut self) {
        self.login = None;
        self.resume = None;
    }

    /// Remembers the current connection's token as the proof of `session` (after a login).
    pub(super) fn keep_proof(&mut self, session: &str) {
        let token = self.conn.as_ref().map(|c| c.resume_token.clone());
        self.proof = match (parse_uuid(session), token) {
            (Some(session), Some(token)) => Some(RestoreProof { session, token }),
            _ => None,
        };
    }

    /// The token proving ownership of `prev_session`, if this object had that session.
    pub(super) fn proof_for(&self, prev_session: &str) -> Option<Token> {
        let prev = parse_uuid(prev_session)?;
        self.proof
            .as_ref()
            .filter(|p| p.session == prev)
            .map(|p| p.token.clone())
    }
}

/// The handle on one client's state (what a `Server` object holds).
#[derive(Clone)]
pub struct Client(Rc<RefCell<ClientState>>);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.0.borrow().phase())
            .finish()
    }
}

impl Client {
    /// A handle on `state`.
    pub fn new(state: ClientState) -> Self {
        Client(Rc::new(RefCell::new(state)))
    }

    /// Reads the state (a short borrow: no `.await`, no JavaScript while it lives).
    pub fn borrow(&self) -> Ref<'_, ClientState> {
        self.0.borrow()
    }

    /// Changes the state without telling JavaScript anything.
    pub(super) fn borrow_mut(&self) -> RefMut<'_, ClientState> {
        self.0.borrow_mut()
    }

    /// Applies `f` to the state, then tells JavaScript what it queued (see [`Note`]).
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut ClientState) -> R) -> R {
        let r = f(&mut self.0.borrow_mut());
        self.flush();
        r
    }

    /// Dispatches the queued notes: events and callbacks, with no borrow held (a listener may
    /// call back into the client; its own notes go out before the rest of these).
    fn flush(&self) {
        let (target, notes) = {
            let mut state = self.0.borrow_mut();
            if state.notes.is_empty() {
                return;
            }
            (state.target.clone(), std::mem::take(&mut state.notes))
        };
        for note in notes {
            match note {
                Note::Event(kind, detail) => js::dispatch(&target, kind, &detail),
                Note::Call(f, detail) => {
                    // A throwing callback must not break the client.
                    let _ = f.call1(&JsValue::NULL, &detail);
                }
            }
        }
    }
}
