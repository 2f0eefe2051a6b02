//! The session driver: one browser WebSocket to prl-proxy, the core's sans-I/O
//! [`ClientSession`] on top, and automatic restore.
//!
//! All state lives in one `Rc<RefCell<Inner>>`. Borrows are short and never held across an
//! `.await` or a call into JavaScript: JavaScript listeners run only from [`dispatch`], after
//! the borrow is released, so a listener may call back into the client.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use gloo_timers::future::TimeoutFuture;
use js_sys::Function;
use prl_protocol::commands::{
    LoginLocalRequest, LoginRequest, LoginResponse, Password, PAM_SERVER, PCF_ORIGINAL_CLIENT,
};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, Opened, ProxyMessage, RelayError, RelayErrorKind,
    RelayMessageError, ResumeRequest, Secret, Target, RELAY_VERSION, SUBPROTOCOL,
};
use prl_protocol::session::{ClientSession, JobResult, SessionConfig, SessionEvent};
use prl_protocol::{parse_uuid, ErrorCode, Uuid};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;
use zeroize::{Zeroize, Zeroizing};

use crate::abort::{wait_opt, AbortWatch};
use crate::backoff;
use crate::error::{ClientError, Op};
use crate::js;
use crate::relay_json::{self, CodecError};
use crate::ws::{Socket, WsEvent};

/// Extra time the client waits past the connect budget before giving up on its own, so the
/// proxy's typed `timeout` error (same budget) normally arrives first.
const CONNECT_GRACE_MS: u32 = 1_500;

/// With no budget of the caller's (`timeoutMs` 0), the proxy's ceiling bounds the connect
/// (60 s by default); this backstop (that ceiling plus a grace) bounds it on the client too, so
/// a proxy that accepts the WebSocket and then never answers cannot hold a login or an
/// automatic restore forever.
const NO_BUDGET_BACKSTOP_MS: u32 = 75_000;

/// The state JavaScript sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicState {
    /// No session.
    Disconnected,
    /// A login is in progress.
    Connecting,
    /// Logged in.
    Connected,
    /// The connection was lost; a restore attempt is scheduled.
    Unstable,
    /// A restore attempt is running.
    Restoring,
    /// `free()` was called: the object is unusable.
    Closed,
}

impl PublicState {
    /// The JavaScript string.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicState::Disconnected => "disconnected",
            PublicState::Connecting => "connecting",
            PublicState::Connected => "connected",
            PublicState::Unstable => "unstable",
            PublicState::Restoring => "restoring",
            PublicState::Closed => "closed",
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
struct LoginInfo {
    params: ConnectParams,
    /// Held only while `autoRestore` is on; `None` otherwise.
    credentials: Option<Credentials>,
    session_uuid: String,
}

/// A secret string held in WASM memory and zeroized on drop (resume tokens).
type Token = Zeroizing<String>;

struct ResumeInfo {
    token: Token,
    window_ms: u32,
    received: u64,
    lost_at_ms: f64,
}

impl std::fmt::Debug for ResumeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeInfo")
            .field("token", &"<redacted>")
            .field("window_ms", &self.window_ms)
            .field("received", &self.received)
            .finish()
    }
}

/// The restore proof of the last session this object logged in: the session UUID and the
/// last resume token the proxy gave for its upstream connection. A login naming that session
/// as `prevSessionId` sends the token as the open's `restore` (docs/relay-protocol.md,
/// "Previous sessions"). Kept in WASM memory only; zeroized on logoff and free.
struct RestoreProof {
    session: Uuid,
    token: Token,
}

impl std::fmt::Debug for RestoreProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreProof(<redacted>)")
    }
}

struct Conn {
    socket: Socket,
    generation: u64,
    received: u64,
    resume_token: Token,
    resume_window_ms: u32,
    relay_error: Option<RelayError>,
}

type Waiter = oneshot::Sender<Result<JobResult, ClientError>>;

/// Something to tell JavaScript once the borrow is released.
pub enum Note {
    /// Dispatch a `CustomEvent` of this type with this detail on the server's target.
    Event(&'static str, JsValue),
    /// Call a progress callback.
    Call(Function, JsValue),
}

/// Per-job entries. A handful of jobs are in flight at most (login, logoff, attached tasks),
/// so a vector beats a `BTreeMap`, whose code costs kilobytes of WASM per value type.
struct JobMap<T>(Vec<(Uuid, T)>);

impl<T> Default for JobMap<T> {
    fn default() -> Self {
        JobMap(Vec::new())
    }
}

impl<T> JobMap<T> {
    fn insert(&mut self, job: Uuid, value: T) {
        self.remove(&job);
        self.0.push((job, value));
    }

    fn get(&self, job: &Uuid) -> Option<&T> {
        self.0.iter().find(|(j, _)| j == job).map(|(_, v)| v)
    }

    fn remove(&mut self, job: &Uuid) -> Option<T> {
        let i = self.0.iter().position(|(j, _)| j == job)?;
        Some(self.0.swap_remove(i).1)
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The shared client state.
pub struct Inner {
    opts: Options,
    state: PublicState,
    target: EventTarget,
    session: ClientSession,
    conn: Option<Conn>,
    generation: u64,
    waiters: JobMap<Waiter>,
    progress: JobMap<Function>,
    login: Option<LoginInfo>,
    resume: Option<ResumeInfo>,
    proof: Option<RestoreProof>,
    /// Set while `connection_lost` fails pending jobs: the detailed reason they get.
    loss_reason: Option<ClientError>,
    logging_off: bool,
    freed: bool,
}

/// Shared handle.
pub type Shared = Rc<RefCell<Inner>>;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn new_id() -> Uuid {
    Uuid::new_v4()
}

/// `base64_password` is "service protocol >= 6.9"; unparseable text counts as current.
fn base64_password(service_protocol: &str) -> bool {
    let mut parts = service_protocol.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 9),
        _ => true,
    }
}

impl Inner {
    /// A new, disconnected client.
    pub fn new(opts: Options, target: EventTarget) -> Self {
        Inner {
            opts,
            state: PublicState::Disconnected,
            target,
            session: ClientSession::new(SessionConfig {
                // Over the relay the proxy sends the service its heartbeats.
                heartbeat_interval_ms: None,
            }),
            conn: None,
            generation: 0,
            waiters: JobMap::default(),
            progress: JobMap::default(),
            login: None,
            resume: None,
            proof: None,
            loss_reason: None,
            logging_off: false,
            freed: false,
        }
    }

    /// Current public state.
    pub fn state(&self) -> PublicState {
        self.state
    }

    /// Session UUID of the current login.
    pub fn session_id(&self) -> Option<String> {
        self.login.as_ref().map(|l| l.session_uuid.clone())
    }

    /// The event target listeners are registered on.
    pub fn target(&self) -> &EventTarget {
        &self.target
    }

    fn set_state(&mut self, state: PublicState, notes: &mut Vec<Note>) {
        if self.state != state && self.state != PublicState::Closed {
            let previous = self.state;
            self.state = state;
            notes.push(Note::Event(
                "statechange",
                js::state_detail(state.as_str(), previous.as_str()),
            ));
        }
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        if let Some(conn) = &self.conn {
            // A failed send means the socket is closing: its close event reports the loss.
            let _ = conn.socket.send_binary(bytes);
        }
    }

    /// Sends what the session queued and routes what it reported.
    fn drain(&mut self, notes: &mut Vec<Note>) {
        while let Some(mut package) = self.session.poll_transmit() {
            let mut bytes = package.encode();
            self.send_bytes(&bytes);
            // A login carries the password: no copy of what went out stays in this module's
            // memory (the WebSocket has its own).
            bytes.zeroize();
            package.buffers.iter_mut().for_each(|b| b.data.zeroize());
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::JobFinished { job, result, .. } => {
                    self.progress.remove(&job);
                    let Some(waiter) = self.waiters.remove(&job) else {
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
                    let _ = waiter.send(outcome);
                }
                SessionEvent::Progress { job, percent } => {
                    let detail = js::progress_detail(&job, percent);
                    if let Some(callback) = self.progress.get(&job) {
                        notes.push(Note::Call(callback.clone(), detail.clone()));
                    }
                    notes.push(Note::Event("event", detail));
                }
                SessionEvent::ServiceEvent {
                    package_type,
                    event,
                } => {
                    notes.push(Note::Event(
                        "event",
                        js::service_event_detail(package_type, event.as_ref()),
                    ));
                }
                SessionEvent::StateChanged(_)
                | SessionEvent::ConnectTimedOut
                | SessionEvent::TaskAttached { .. }
                | SessionEvent::ConnectionLost => {}
            }
        }
    }

    /// Drops the connection and fails what waits on it with `reason`.
    fn teardown(&mut self, reason: ClientError, notes: &mut Vec<Note>) {
        self.generation = self.generation.wrapping_add(1);
        self.conn = None;
        self.loss_reason = Some(reason);
        self.session.connection_lost();
        self.drain(notes);
        self.loss_reason = None;
        // Anything left (e.g. a job the session no longer tracks) fails too.
        for (_, waiter) in std::mem::take(&mut self.waiters.0) {
            let _ = waiter.send(Err(ClientError::closed(Op::Connect, "connection closed")));
        }
        self.progress.clear();
    }

    /// Forgets the login and its credentials (zeroized on drop). The restore proof stays: the
    /// application may still name the lost session as `prevSessionId`.
    fn forget_login(&mut self) {
        self.login = None;
        self.resume = None;
    }

    /// Remembers the current connection's token as the proof of `session` (after a login).
    fn keep_proof(&mut self, session: &str) {
        let token = self.conn.as_ref().map(|c| c.resume_token.clone());
        self.proof = match (parse_uuid(session), token) {
            (Some(session), Some(token)) => Some(RestoreProof { session, token }),
            _ => None,
        };
    }

    /// The token proving ownership of `prev_session`, if this object had that session.
    fn proof_for(&self, prev_session: &str) -> Option<Token> {
        let prev = parse_uuid(prev_session)?;
        self.proof
            .as_ref()
            .filter(|p| p.session == prev)
            .map(|p| p.token.clone())
    }
}

/// Runs the notes: dispatches events and calls callbacks (no borrow may be held).
pub fn dispatch(shared: &Shared, notes: Vec<Note>) {
    if notes.is_empty() {
        return;
    }
    let target = shared.borrow().target.clone();
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

/// Applies `f` to the state with a fresh note list, then dispatches.
fn with<R>(shared: &Shared, f: impl FnOnce(&mut Inner, &mut Vec<Note>) -> R) -> R {
    let mut notes = Vec::new();
    let r = {
        let mut inner = shared.borrow_mut();
        f(&mut inner, &mut notes)
    };
    dispatch(shared, notes);
    r
}

/// Why an awaited step stopped early.
enum Interrupt {
    Aborted,
    TimedOut,
}

/// Awaits `fut` unless `abort` fires or `deadline_ms` passes first.
async fn guarded<F: Future>(
    fut: F,
    deadline_ms: Option<u32>,
    abort: &mut Option<AbortWatch>,
) -> Result<F::Output, Interrupt> {
    let timer = async {
        match deadline_ms {
            Some(ms) => TimeoutFuture::new(ms).await,
            None => std::future::pending().await,
        }
    };
    let timer = pin!(timer);
    let aborted = pin!(wait_opt(abort));
    let fut = pin!(fut);
    match select(fut, select(timer, aborted)).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right((Either::Left(_), _)) => Err(Interrupt::TimedOut),
        Either::Right((Either::Right(_), _)) => Err(Interrupt::Aborted),
    }
}

async fn resolve_ticket(shared: &Shared, op: Op) -> Result<Option<Zeroizing<String>>, ClientError> {
    let provider = {
        let inner = shared.borrow();
        match &inner.opts.ticket {
            TicketSource::None => return Ok(None),
            TicketSource::Fixed(t) => return Ok(Some(t.clone())),
            TicketSource::Provider(f) => f.clone(),
        }
    };
    let value = provider
        .call0(&JsValue::NULL)
        .map_err(|_| ClientError::InvalidArgument("ticket provider threw".into()))?;
    let value = match value.dyn_into::<js_sys::Promise>() {
        Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(|_| ClientError::InvalidArgument("ticket provider rejected".into()))?,
        Err(value) => value,
    };
    match value.as_string() {
        Some(t) if !t.is_empty() => Ok(Some(Zeroizing::new(t))),
        Some(_) => Ok(None),
        None => Err(ClientError::InvalidArgument(format!(
            "{}: ticket provider must return a string",
            op.as_str()
        ))),
    }
}

/// Reads the proxy's answer to an `open` / `resume` request: the first message must be text.
async fn next_control(
    rx: &mut mpsc::UnboundedReceiver<WsEvent>,
    op: Op,
) -> Result<ProxyMessage, ClientError> {
    loop {
        match rx.next().await {
            Some(WsEvent::Open | WsEvent::Error) => continue,
            Some(WsEvent::Text(text)) => {
                return relay_json::decode(&text)
                    .map_err(|e| ClientError::protocol(op, e.to_string()))
            }
            Some(WsEvent::Binary(_)) => {
                return Err(ClientError::protocol(
                    op,
                    "package before the relay answered the request",
                ))
            }
            Some(WsEvent::Close { code, reason }) => {
                return Err(ClientError::closed(
                    op,
                    format!(
                        "proxy closed the websocket without an answer (code {code}{})",
                        reason_suffix(&reason)
                    ),
                ))
            }
            None => return Err(ClientError::closed(op, "websocket ended")),
        }
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Waits until the socket is open (or failed).
async fn wait_open(
    socket: &Socket,
    rx: &mut mpsc::UnboundedReceiver<WsEvent>,
    op: Op,
    url: &str,
) -> Result<(), ClientError> {
    loop {
        match rx.next().await {
            Some(WsEvent::Open) => return Ok(()),
            // A connection blocked by the page's Content-Security-Policy (`connect-src`) gets
            // an error and no close event in Chromium: the socket is simply closed.
            Some(WsEvent::Error) if !socket.is_closed() => continue,
            _ => {
                return Err(ClientError::ProxyUnreachable {
                    op,
                    url: url.to_owned(),
                })
            }
        }
    }
}

/// Zeroizes the secrets (ticket, restore proof, resume token) of a message already encoded.
fn wipe(mut message: ClientMessage) {
    match &mut message {
        ClientMessage::Open(o) => {
            for secret in [o.ticket.as_mut(), o.restore.as_mut()]
                .into_iter()
                .flatten()
            {
                secret.0.zeroize();
            }
        }
        ClientMessage::Resume(r) => r.token.0.zeroize(),
    }
}

/// Moves a received token into zeroizing storage (no copy is left behind).
fn take_token(secret: &mut Secret) -> Token {
    Zeroizing::new(std::mem::take(&mut secret.0))
}

/// Opens a WebSocket, sends `message`, and returns the socket, its events and the first answer.
async fn relay_exchange(
    shared: &Shared,
    message: ClientMessage,
    op: Op,
) -> Result<(Socket, mpsc::UnboundedReceiver<WsEvent>, ProxyMessage), ClientError> {
    let encoded = relay_json::encode(&message);
    wipe(message);
    let json = encoded.map_err(|e| match e {
        CodecError::Relay(RelayMessageError::TooLong { .. }) => ClientError::InvalidArgument(
            format!("{} failed: {e} (is the ticket too long?)", op.as_str()),
        ),
        e => ClientError::protocol(op, e.to_string()),
    })?;
    let url = shared.borrow().opts.proxy_url.clone();
    // The URL was checked when the Server was made: a throwing constructor means no usable
    // WebSocket here (none in this runtime, or one the page's policy forbids).
    let (socket, mut rx) =
        Socket::connect(&url, &[SUBPROTOCOL]).map_err(|_| ClientError::ProxyUnreachable {
            op,
            url: url.clone(),
        })?;
    wait_open(&socket, &mut rx, op, &url).await?;
    let protocol = socket.protocol();
    if protocol != SUBPROTOCOL {
        return Err(ClientError::protocol(
            op,
            format!("proxy selected subprotocol \"{protocol}\", expected \"{SUBPROTOCOL}\""),
        ));
    }
    socket
        .send_text(&json)
        .map_err(|_| ClientError::closed(op, "websocket closed before the request was sent"))?;
    let answer = next_control(&mut rx, op).await?;
    Ok((socket, rx, answer))
}

fn relay_error(op: Op, e: RelayError) -> ClientError {
    ClientError::Relay {
        op,
        kind: e.kind,
        code: e.code,
        message: e.message,
    }
}

/// Installs an opened connection and starts its reader.
fn install(
    shared: &Shared,
    socket: Socket,
    rx: mpsc::UnboundedReceiver<WsEvent>,
    received: u64,
    resume_token: Token,
    resume_window_ms: u32,
) {
    let generation = {
        let mut inner = shared.borrow_mut();
        inner.generation = inner.generation.wrapping_add(1);
        let generation = inner.generation;
        inner.conn = Some(Conn {
            socket,
            generation,
            received,
            resume_token,
            resume_window_ms,
            relay_error: None,
        });
        generation
    };
    wasm_bindgen_futures::spawn_local(pump(shared.clone(), generation, rx));
}

/// Reads one connection's events until it ends or is replaced.
async fn pump(shared: Shared, generation: u64, mut rx: mpsc::UnboundedReceiver<WsEvent>) {
    while let Some(event) = rx.next().await {
        let current = {
            let inner = shared.borrow();
            inner.generation == generation
                && inner
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
        };
        if !current {
            return;
        }
        match event {
            WsEvent::Binary(bytes) => {
                let bad = with(&shared, |inner, notes| {
                    if let Some(conn) = inner.conn.as_mut() {
                        conn.received = conn.received.saturating_add(1);
                    }
                    match Package::decode(&bytes, &Limits::default()) {
                        Ok(package) => {
                            // A reply that does not parse fails its job (FAILURE) inside the
                            // session; nothing else to do here.
                            let _ = inner.session.handle_package(package);
                            inner.drain(notes);
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    }
                });
                if let Some(detail) = bad {
                    connection_lost(
                        &shared,
                        generation,
                        ClientError::protocol(
                            Op::Connect,
                            format!("bad package from the proxy: {detail}"),
                        ),
                    );
                    return;
                }
            }
            WsEvent::Text(text) => {
                if let Ok(ProxyMessage::Error(e)) = relay_json::decode(&text) {
                    if let Some(conn) = shared.borrow_mut().conn.as_mut() {
                        conn.relay_error = Some(e);
                    }
                }
            }
            WsEvent::Open | WsEvent::Error => {}
            WsEvent::Close { code, reason } => {
                let relay = shared
                    .borrow_mut()
                    .conn
                    .as_mut()
                    .and_then(|c| c.relay_error.take());
                let err = match relay {
                    Some(e) => relay_error(Op::Connect, e),
                    None => ClientError::closed(
                        Op::Connect,
                        format!("websocket closed (code {code}{})", reason_suffix(&reason)),
                    ),
                };
                connection_lost(&shared, generation, err);
                return;
            }
        }
    }
}

/// The connection of `generation` is gone.
fn connection_lost(shared: &Shared, generation: u64, err: ClientError) {
    let restore = with(shared, |inner, notes| {
        let Some(conn) = inner.conn.take_if(|c| c.generation == generation) else {
            return false;
        };
        let logged_in = inner.state == PublicState::Connected && inner.login.is_some();
        let can_restore =
            logged_in && inner.opts.auto_restore && !inner.logging_off && !inner.freed;
        if can_restore {
            // Keep the session and its pending jobs: a resume through the proxy continues it.
            inner.resume = Some(ResumeInfo {
                token: conn.resume_token.clone(),
                window_ms: conn.resume_window_ms,
                received: conn.received,
                lost_at_ms: now_ms(),
            });
            drop(conn);
            inner.set_state(PublicState::Unstable, notes);
            return true;
        }
        drop(conn);
        inner.teardown(err, notes);
        if logged_in && !inner.logging_off {
            inner.forget_login();
            inner.set_state(PublicState::Disconnected, notes);
        }
        false
    });
    if restore {
        wasm_bindgen_futures::spawn_local(restore_loop(shared.clone()));
    }
}

/// Opens a new upstream connection and logs in; used by `login`, `loginLocal` and restore.
/// `restore` is the proof for `prev_session`, when this object had that session.
/// On failure the connection is torn down; the caller sets the public state.
pub async fn establish(
    shared: &Shared,
    params: &ConnectParams,
    credentials: &Credentials,
    prev_session: &str,
    restore: Option<Token>,
    op: Op,
    abort: &mut Option<AbortWatch>,
) -> Result<LoginResponse, ClientError> {
    let result = establish_inner(
        shared,
        params,
        credentials,
        prev_session,
        restore,
        op,
        abort,
    )
    .await;
    if result.is_err() {
        with(shared, |inner, notes| {
            inner.teardown(ClientError::closed(op, "login failed"), notes)
        });
    }
    result
}

async fn establish_inner(
    shared: &Shared,
    params: &ConnectParams,
    credentials: &Credentials,
    prev_session: &str,
    restore: Option<Token>,
    op: Op,
    abort: &mut Option<AbortWatch>,
) -> Result<LoginResponse, ClientError> {
    if abort.as_ref().is_some_and(AbortWatch::aborted) {
        return Err(ClientError::canceled(op));
    }
    let ticket = resolve_ticket(shared, op).await?;
    let (budget_ms, deadline) = {
        let mut inner = shared.borrow_mut();
        inner
            .session
            .connecting(now_ms() as u64, u64::from(params.timeout_ms))
            .map_err(|_| ClientError::InvalidState {
                op,
                detail: "a connection is already being established",
                code: ErrorCode::ALREADY_CONNECTED_TO_DISPATCHER,
            })?;
        // The budget a timeout reports, and when the client itself gives up.
        if params.timeout_ms > 0 {
            (
                params.timeout_ms,
                params.timeout_ms.saturating_add(CONNECT_GRACE_MS),
            )
        } else {
            (NO_BUDGET_BACKSTOP_MS, NO_BUDGET_BACKSTOP_MS)
        }
    };
    let open = ClientMessage::Open(OpenRequest {
        version: RELAY_VERSION,
        target: Target {
            host: params.host.clone(),
            port: params.port,
        },
        security_level: params.level,
        timeout_ms: params.timeout_ms,
        mode: params.mode,
        ticket: ticket.as_ref().map(|t| Secret(t.to_string())),
        restore: restore.as_ref().map(|t| Secret(t.to_string())),
    });
    drop(ticket);
    drop(restore);
    let exchange = guarded(relay_exchange(shared, open, op), Some(deadline), abort).await;
    let (socket, rx, answer) = match exchange {
        Ok(r) => r?,
        Err(Interrupt::Aborted) => return Err(ClientError::canceled(op)),
        Err(Interrupt::TimedOut) => return Err(ClientError::Timeout { op, ms: budget_ms }),
    };
    let mut opened: Opened = match answer {
        ProxyMessage::Opened(o) => o,
        ProxyMessage::Error(e) => return Err(relay_error(op, e)),
        ProxyMessage::Resumed(_) => {
            return Err(ClientError::protocol(
                op,
                "proxy answered open with resumed",
            ))
        }
    };
    let connection_uuid = parse_uuid(&opened.connection_uuid)
        .ok_or_else(|| ClientError::protocol(op, "proxy sent a malformed connection uuid"))?;
    install(
        shared,
        socket,
        rx,
        0,
        take_token(&mut opened.resume_token),
        opened.resume_window_ms,
    );
    let job = new_id();
    let (tx, reply) = oneshot::channel();
    with(shared, |inner, notes| {
        inner
            .session
            .connected(
                now_ms() as u64,
                connection_uuid,
                base64_password(&opened.service_protocol),
            )
            .map_err(|_| ClientError::protocol(op, "session not connecting"))?;
        inner.waiters.insert(job, tx);
        let sent = match credentials {
            Credentials::Remote { user, password } => {
                let request = LoginRequest {
                    user: user.to_string(),
                    password: password.clone(),
                    prev_session_uuid: prev_session.to_owned(),
                    flags: PCF_ORIGINAL_CLIENT,
                };
                inner.session.login(job, &request, &mut new_id)
            }
            Credentials::Local => {
                let request = LoginLocalRequest {
                    application_mode: PAM_SERVER,
                    prev_session_uuid: prev_session.to_owned(),
                    flags: PCF_ORIGINAL_CLIENT,
                };
                inner.session.login_local(job, &request, &mut new_id)
            }
        };
        if sent.is_err() {
            inner.waiters.remove(&job);
            return Err(ClientError::protocol(op, "session refused the login"));
        }
        inner.drain(notes);
        Ok(())
    })?;
    // The SDK puts no timer on the login reply (only the connect budget above).
    let outcome = match guarded(reply, None, abort).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ClientError::closed(op, "connection closed")),
        Err(_) => {
            // After the request is out, cancel it the SDK's way (2053), then close.
            with(shared, |inner, notes| {
                let _ = inner.session.cancel(job, new_id(), &mut new_id);
                inner.drain(notes);
            });
            return Err(ClientError::canceled(op));
        }
    };
    match outcome.map_err(|e| e.with_op(op))? {
        JobResult::LoggedIn(response) => Ok(response),
        JobResult::Failed { code, .. } if code == ErrorCode::OPERATION_WAS_CANCELED => {
            Err(ClientError::canceled(op))
        }
        JobResult::Failed { code, .. } => Err(ClientError::Service { op, code }),
        JobResult::Done(_) => Err(ClientError::protocol(
            op,
            "login finished without a login reply",
        )),
    }
}

/// `login` / `loginLocal`.
pub async fn login(
    shared: Shared,
    params: ConnectParams,
    credentials: Credentials,
    prev_session: String,
    mut abort: Option<AbortWatch>,
) -> Result<(LoginResponse, bool), ClientError> {
    let op = match credentials {
        Credentials::Remote { .. } => Op::Login,
        Credentials::Local => Op::LoginLocal,
    };
    let restore = with(&shared, |inner, notes| {
        match inner.state {
            PublicState::Disconnected => {}
            PublicState::Closed => {
                // free() came before this login's first step ran.
                return Err(ClientError::closed(op, "the client was freed"));
            }
            _ => {
                return Err(ClientError::InvalidState {
                    op,
                    detail: "already logged in or connecting",
                    code: ErrorCode::ALREADY_CONNECTED_TO_DISPATCHER,
                })
            }
        }
        inner.set_state(PublicState::Connecting, notes);
        Ok(inner.proof_for(&prev_session))
    })?;
    let result = establish(
        &shared,
        &params,
        &credentials,
        &prev_session,
        restore,
        op,
        &mut abort,
    )
    .await;
    with(&shared, |inner, notes| {
        if inner.freed {
            // free() ended the login underway: its connection is closed.
            return Err(ClientError::closed(op, "the client was freed"));
        }
        match result {
            Ok(response) => {
                let restored = !prev_session.is_empty()
                    && (response.session_uuid == prev_session
                        || !response.running_tasks.is_empty());
                inner.login = Some(LoginInfo {
                    params,
                    credentials: inner.opts.auto_restore.then_some(credentials),
                    session_uuid: response.session_uuid.clone(),
                });
                inner.keep_proof(&response.session_uuid);
                inner.set_state(PublicState::Connected, notes);
                Ok((response, restored))
            }
            Err(e) => {
                inner.set_state(PublicState::Disconnected, notes);
                Err(e)
            }
        }
    })
}

/// `logoff`.
pub async fn logoff(shared: Shared) -> Result<(), ClientError> {
    let op = Op::Logoff;
    let reply = with(&shared, |inner, notes| {
        // Logging off gives up every claim on earlier sessions: the proof is zeroized (a
        // refused logoff, below, changes nothing).
        match inner.state {
            PublicState::Connected => inner.proof = None,
            PublicState::Unstable | PublicState::Restoring => {
                inner.proof = None;
                // Stop restoring; the proxy drops the kept upstream when its window ends.
                inner.forget_login();
                inner.teardown(ClientError::closed(op, "logged off"), notes);
                inner.set_state(PublicState::Disconnected, notes);
                return Ok(None);
            }
            _ => {
                return Err(ClientError::InvalidState {
                    op,
                    detail: "not logged in",
                    code: ErrorCode::NOT_CONNECTED_TO_DISPATCHER,
                })
            }
        }
        let job = new_id();
        let (tx, rx) = oneshot::channel();
        inner
            .session
            .logoff(job, &mut new_id)
            .map_err(|_| ClientError::protocol(op, "session refused the logoff"))?;
        inner.waiters.insert(job, tx);
        inner.logging_off = true;
        // Credentials are not needed any more.
        if let Some(login) = inner.login.as_mut() {
            login.credentials = None;
        }
        inner.drain(notes);
        Ok(Some(rx))
    })?;
    let Some(reply) = reply else {
        return Ok(());
    };
    let outcome = reply.await;
    with(&shared, |inner, notes| {
        inner.logging_off = false;
        inner.forget_login();
        inner.teardown(ClientError::closed(op, "logged off"), notes);
        inner.set_state(PublicState::Disconnected, notes);
    });
    match outcome {
        Ok(Ok(JobResult::Failed { code, .. })) => Err(ClientError::Service { op, code }),
        // A closed connection ends the session on the service too (it destroys the session
        // on disconnect), so the logoff is done either way.
        _ => Ok(()),
    }
}

/// The result of an attached task.
#[derive(Debug)]
pub struct TaskOutcome {
    /// The type of the request the final reply answers.
    pub opcode: u32,
    /// Its code (success).
    pub code: ErrorCode,
    /// Standard string params of the reply.
    pub params: Vec<String>,
}

/// `attachToLostTask`.
pub async fn attach_to_lost_task(
    shared: Shared,
    task_id: String,
    on_progress: Option<Function>,
    mut abort: Option<AbortWatch>,
) -> Result<TaskOutcome, ClientError> {
    let op = Op::AttachToLostTask;
    let (job, reply) = with(&shared, |inner, notes| {
        if inner.state != PublicState::Connected {
            return Err(ClientError::InvalidState {
                op,
                detail: "not logged in",
                code: ErrorCode::NOT_CONNECTED_TO_DISPATCHER,
            });
        }
        let job = new_id();
        let (tx, rx) = oneshot::channel();
        inner
            .session
            .attach_to_lost_task(job, &task_id, &mut new_id)
            .map_err(|_| ClientError::protocol(op, "session refused the request"))?;
        inner.waiters.insert(job, tx);
        if let Some(f) = on_progress {
            inner.progress.insert(job, f);
        }
        inner.drain(notes);
        Ok((job, rx))
    })?;
    let outcome = match guarded(reply, None, &mut abort).await {
        Ok(Ok(result)) => result.map_err(|e| e.with_op(op))?,
        Ok(Err(_)) => return Err(ClientError::closed(op, "connection closed")),
        Err(_) => {
            with(&shared, |inner, notes| {
                let _ = inner.session.cancel(job, new_id(), &mut new_id);
                inner.drain(notes);
            });
            return Err(ClientError::canceled(op));
        }
    };
    match outcome {
        JobResult::Done(reply) => Ok(TaskOutcome {
            opcode: reply.opcode,
            code: reply.code,
            params: reply
                .standard_params()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }),
        JobResult::Failed { code, .. } if code == ErrorCode::OPERATION_WAS_CANCELED => {
            Err(ClientError::canceled(op))
        }
        JobResult::Failed { code, .. } => Err(ClientError::Service { op, code }),
        JobResult::LoggedIn(_) => Err(ClientError::protocol(op, "unexpected login reply")),
    }
}

/// Tries to resume the kept upstream connection. `Ok(true)`: resumed; `Ok(false)`: the proxy
/// no longer has it (fall back to a new login); `Err`: transient, try again later.
async fn try_resume(shared: &Shared, resume: &ResumeInfo) -> Result<bool, ClientError> {
    let op = Op::Connect;
    let message = ClientMessage::Resume(ResumeRequest {
        version: RELAY_VERSION,
        token: Secret(resume.token.to_string()),
        received: resume.received,
    });
    let mut no_abort = None;
    let exchange = guarded(
        relay_exchange(shared, message, op),
        Some(10_000),
        &mut no_abort,
    )
    .await;
    let (socket, rx, answer) = match exchange {
        Ok(r) => r?,
        Err(_) => return Err(ClientError::Timeout { op, ms: 10_000 }),
    };
    match answer {
        ProxyMessage::Resumed(mut r) => {
            let token = take_token(&mut r.resume_token);
            {
                // Every resume rotates the token: only the newest proves ownership.
                let mut inner = shared.borrow_mut();
                let session = inner
                    .login
                    .as_ref()
                    .and_then(|l| parse_uuid(&l.session_uuid));
                if let Some(proof) = inner.proof.as_mut().filter(|p| Some(p.session) == session) {
                    proof.token = token.clone();
                }
            }
            install(shared, socket, rx, resume.received, token, resume.window_ms);
            Ok(true)
        }
        ProxyMessage::Error(e)
            if matches!(
                e.kind,
                RelayErrorKind::ResumeFailed | RelayErrorKind::Closed
            ) =>
        {
            Ok(false)
        }
        ProxyMessage::Error(e) => Err(relay_error(op, e)),
        ProxyMessage::Opened(_) => Ok(false),
    }
}

/// Failures that another attempt cannot fix.
fn permanent(e: &ClientError) -> bool {
    matches!(
        e.kind(),
        "authentication"
            | "service"
            | "policy_denied"
            | "origin_denied"
            | "ticket_invalid"
            | "invalid_argument"
            | "invalid_state"
            | "wrong_protocol_version"
            | "handshake_failed"
    )
}

/// Automatic restore after an unexpected loss: resume through the proxy, else log in again
/// with the previous session UUID (its restore proof), else, when the proxy refuses that
/// proof, log in to a new session. Jittered exponential backoff between attempts.
async fn restore_loop(shared: Shared) {
    let mut last_error = None;
    for attempt in 0..backoff::MAX_ATTEMPTS {
        TimeoutFuture::new(backoff::delay_ms(attempt, js_sys::Math::random())).await;
        let plan = with(&shared, |inner, notes| {
            if inner.freed || !matches!(inner.state, PublicState::Unstable | PublicState::Restoring)
            {
                return None;
            }
            let login = inner.login.as_ref()?;
            let kept = (
                login.params.clone(),
                login.credentials.clone(),
                login.session_uuid.clone(),
            );
            inner.set_state(PublicState::Restoring, notes);
            let resume = inner
                .resume
                .take()
                .filter(|r| now_ms() - r.lost_at_ms < f64::from(r.window_ms));
            Some((resume, kept.0, kept.1, kept.2))
        });
        let Some((resume, params, credentials, old_session)) = plan else {
            return;
        };
        if let Some(resume) = resume {
            match try_resume(&shared, &resume).await {
                Ok(true) => {
                    with(&shared, |inner, notes| {
                        inner.set_state(PublicState::Connected, notes);
                        notes.push(Note::Event(
                            "restored",
                            js::restored_detail("resumed", &old_session, &old_session, &[]),
                        ));
                    });
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    last_error = Some(e);
                    with(&shared, |inner, notes| {
                        inner.resume = Some(resume);
                        inner.set_state(PublicState::Unstable, notes);
                    });
                    continue;
                }
            }
        }
        let Some(credentials) = credentials else {
            break;
        };
        // The old connection is gone for good: its pending jobs fail now.
        let restore = with(&shared, |inner, notes| {
            inner.teardown(
                ClientError::closed(
                    Op::Connect,
                    "connection lost; the session was logged in again",
                ),
                notes,
            );
            inner.proof_for(&old_session)
        });
        let mut no_abort = None;
        // Without a proof the proxy would refuse the previous session: log in afresh.
        let mut fresh = restore.is_none();
        let prev = if fresh { "" } else { old_session.as_str() };
        let mut result = establish(
            &shared,
            &params,
            &credentials,
            prev,
            restore,
            Op::Connect,
            &mut no_abort,
        )
        .await;
        if matches!(&result, Err(e) if e.kind() == "restore_refused") {
            // The proxy no longer holds the proof (it restarted, or the proof expired): the
            // old session's lost tasks are out of reach, but a new session keeps the
            // application connected. The `restored` event says so (`mode: "new_session"`).
            fresh = true;
            result = establish(
                &shared,
                &params,
                &credentials,
                "",
                None,
                Op::Connect,
                &mut no_abort,
            )
            .await;
        }
        match result {
            Ok(response) => {
                with(&shared, |inner, notes| {
                    if inner.freed || inner.state != PublicState::Restoring {
                        inner
                            .teardown(ClientError::closed(Op::Connect, "restore abandoned"), notes);
                        return;
                    }
                    if let Some(login) = inner.login.as_mut() {
                        login.session_uuid = response.session_uuid.clone();
                    }
                    inner.keep_proof(&response.session_uuid);
                    inner.set_state(PublicState::Connected, notes);
                    notes.push(Note::Event(
                        "restored",
                        js::restored_detail(
                            if fresh { "new_session" } else { "relogin" },
                            &response.session_uuid,
                            &old_session,
                            &response.running_tasks,
                        ),
                    ));
                });
                return;
            }
            Err(e) => {
                let stop = permanent(&e);
                last_error = Some(e);
                if stop {
                    break;
                }
                with(&shared, |inner, notes| {
                    if inner.state == PublicState::Restoring {
                        inner.set_state(PublicState::Unstable, notes);
                    }
                });
            }
        }
    }
    with(&shared, |inner, notes| {
        if inner.freed || !matches!(inner.state, PublicState::Unstable | PublicState::Restoring) {
            return;
        }
        let reason = last_error
            .clone()
            .unwrap_or_else(|| ClientError::closed(Op::Connect, "restore gave up"));
        inner.forget_login();
        inner.teardown(reason.clone(), notes);
        let previous = inner.state;
        inner.state = PublicState::Disconnected;
        notes.push(Note::Event(
            "statechange",
            js::state_detail_with_error(
                PublicState::Disconnected.as_str(),
                previous.as_str(),
                &reason,
            ),
        ));
    });
}

/// `free()`: end everything now.
pub fn shutdown(shared: &Shared) {
    with(shared, |inner, notes| {
        if inner.freed {
            return;
        }
        inner.freed = true;
        inner.forget_login();
        inner.proof = None;
        inner.teardown(
            ClientError::closed(Op::Connect, "the client was freed"),
            notes,
        );
        inner.set_state(PublicState::Closed, notes);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_passwords_from_protocol_6_9() {
        assert!(base64_password("6.10"));
        assert!(base64_password("6.9"));
        assert!(!base64_password("6.8"));
        assert!(!base64_password("5.20"));
        assert!(base64_password("7.0"));
        assert!(base64_password(""));
        assert!(base64_password("garbage"));
    }

    #[test]
    fn permanent_failures_stop_restore() {
        let auth = ClientError::Service {
            op: Op::Login,
            code: ErrorCode::AUTHENTICATION_FAILED,
        };
        assert!(permanent(&auth));
        assert!(!permanent(&ClientError::closed(Op::Connect, "x")));
        assert!(!permanent(&ClientError::Timeout {
            op: Op::Connect,
            ms: 1
        }));
        assert!(!permanent(&ClientError::ProxyUnreachable {
            op: Op::Connect,
            url: "ws://x".into()
        }));
    }
}
