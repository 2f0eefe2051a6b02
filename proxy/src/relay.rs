//! The relay: one browser WebSocket bridged to one IOService connection (prl-transport).
//!
//! Flow (`docs/relay-protocol.md`): the first message is `open` (policy, ticket, connect within
//! the budget, `opened`) or `resume` (take over a kept upstream connection, `resumed`, replay);
//! then whole IO packages both ways as binary messages. Every failure is one typed `error`
//! message followed by a close.
//!
//! Memory is bounded everywhere: a writer task drains a bounded queue toward the browser
//! (package count and bytes); the relay reads the service only when that queue has room, and
//! reads the browser only when the queue toward the service has room, so a slow side slows the
//! other down instead of growing buffers. The replay ring that makes resume lossless is
//! bounded too; while detached, a full ring stops reading the service.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prl_protocol::codes::cmd;
use prl_protocol::commands::Command;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package, MAX_BUFFERS, MNG_HEARTBEAT};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, Opened, ProxyMessage, RelayError, RelayErrorKind,
    ResumeRequest, Resumed, Secret, RELAY_VERSION,
};
use prl_protocol::{parse_uuid, uuid_string, ErrorCode, Uuid};
use prl_transport::{ClientConfig, Endpoint, TransportError};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::config::{LimitsConfig, ResumeConfig};
use crate::limits::{client_key, user_key, MAX_USER_NAME_BYTES};
use crate::login::LoginOutcome;
use crate::policy::PolicyError;
use crate::server::{check_ticket, ConnPermits, Runtime, Shared};
use crate::session::{RestoreRefusal, TokenKeys};
use crate::ticket::{Claims, TicketError};
use crate::util::{random_uuid, Token};

/// Everything the upgrade learned about a browser connection.
#[derive(Debug)]
pub(crate) struct Context {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub origin: String,
    pub header_claims: Option<Claims>,
    pub permits: Arc<ConnPermits>,
}

fn err(kind: RelayErrorKind, message: impl Into<String>) -> RelayError {
    RelayError::new(kind, message)
}

/// The bytes queued toward all browsers together, with waiting for room: beyond its limit no
/// session reads its service (browsers drain it; a stalled one is cut off by the write-stall
/// limit, so it cannot hold the others for long).
#[derive(Debug)]
pub(crate) struct GlobalBudget {
    used: AtomicUsize,
    max: usize,
    notify: Notify,
}

impl GlobalBudget {
    pub(crate) fn new(max: usize) -> Arc<GlobalBudget> {
        Arc::new(GlobalBudget {
            used: AtomicUsize::new(0),
            max: max.max(1),
            notify: Notify::new(),
        })
    }

    async fn room(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.used.load(Ordering::Acquire) < self.max {
                return;
            }
            notified.await;
        }
    }

    /// Bytes queued toward all browsers.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A byte budget: a bounded queue's fill level, with waiting for room.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
    notify: Notify,
    gauge: Gauge,
    global: Option<Arc<GlobalBudget>>,
}

impl Budget {
    fn new(max: usize, gauge: Gauge) -> Arc<Budget> {
        Budget::with_global(max, gauge, None)
    }

    fn with_global(max: usize, gauge: Gauge, global: Option<Arc<GlobalBudget>>) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            max: max.max(1),
            notify: Notify::new(),
            gauge,
            global,
        })
    }

    /// Resolves once the queue (and the global budget it counts in) is below its limit (it
    /// may then exceed it by one item).
    async fn room(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.used.load(Ordering::Acquire) < self.max {
                break;
            }
            notified.await;
        }
        if let Some(g) = &self.global {
            g.room().await;
        }
    }

    fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
        if let Some(g) = &self.global {
            g.used.fetch_add(n, Ordering::AcqRel);
        }
        self.gauge.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn sub(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
        self.gauge.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
        self.notify.notify_waiters();
        if let Some(g) = &self.global {
            let _ = g
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    Some(u.saturating_sub(n))
                });
            g.notify.notify_waiters();
        }
    }

    /// At or over its limit (the reader of the other side is paused).
    fn is_full(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.max
    }

    /// Bytes currently queued.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The replay ring: the last packages sent (or to be sent) to the browser, by sequence number
/// (1 = the first package of this upstream connection).
#[derive(Debug)]
struct Ring {
    items: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next_seq: u64,
    max_items: usize,
    max_bytes: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum ReplayError {
    /// The browser claims more than was sent.
    Ahead,
    /// Packages the browser missed were already dropped.
    Lost,
}

impl Ring {
    fn new(max_items: usize, max_bytes: usize) -> Ring {
        Ring {
            items: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= self.max_items || self.bytes >= self.max_bytes
    }

    fn front_seq(&self) -> u64 {
        self.items.front().map(|(s, _)| *s).unwrap_or(self.next_seq)
    }

    /// Append, dropping the oldest entries beyond the bounds; returns its sequence number.
    fn push(&mut self, data: Bytes) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += data.len();
        self.items.push_back((seq, data));
        while self.items.len() > 1
            && (self.items.len() > self.max_items || self.bytes > self.max_bytes)
        {
            if let Some((_, d)) = self.items.pop_front() {
                self.bytes -= d.len();
            }
        }
        seq
    }

    /// While detached: room for one more without dropping a package never handed to the
    /// browser (`sent` = highest sequence number handed to the old WebSocket).
    fn can_accept_detached(&self, sent: u64) -> bool {
        !self.full() || self.front_seq() <= sent
    }

    /// The packages after `received`.
    fn replay_from(&self, received: u64) -> Result<Vec<Bytes>, ReplayError> {
        let total = self.next_seq - 1;
        if received > total {
            return Err(ReplayError::Ahead);
        }
        if received + 1 < self.front_seq() {
            return Err(ReplayError::Lost);
        }
        Ok(self
            .items
            .iter()
            .filter(|(s, _)| *s > received)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

/// What the handshakes told us, for `opened`.
#[derive(Debug, Clone)]
struct Facts {
    service_protocol: String,
    service_build: String,
    security_level: SecurityLevel,
    cipher: String,
    tls_version: String,
    base64_password: bool,
}

/// What the `open` of this connection proved about earlier sessions (its `restore` field).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Restore {
    /// No `restore` in the open.
    Absent,
    /// A valid proof: logins on this connection may name this session as the previous one.
    Granted(Uuid),
    /// The granted restore succeeded (a login on this connection succeeded): spent.
    Used,
    /// The proof was not accepted.
    Refused(RestoreRefusal),
}

impl fmt::Debug for Restore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restore::Absent => f.write_str("Absent"),
            Restore::Granted(_) => f.write_str("Granted(<redacted>)"),
            Restore::Used => f.write_str("Used"),
            Restore::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

/// A relay session: one upstream connection and its state, attached to a browser or
/// detached waiting for a resume.
pub struct Session {
    shared: Arc<Shared>,
    conn_uuid: Uuid,
    conn_uuid_text: String,
    facts: Facts,
    up_tx: ToService,
    up_rx: FromService,
    upstream: UpstreamTasks,
    to_service: Arc<Budget>,
    ring: Ring,
    sent_mark: u64,
    token: Token,
    /// The token the browser presented to resume, still accepted (for a resume or as restore
    /// proof) until the browser sends a package on the resumed connection, which shows that it
    /// got `token` in the `resumed` message.
    prev_token: Option<Token>,
    origin: String,
    subject: Option<String>,
    lineage: u64,
    client_ip: IpAddr,
    lifetime_deadline: Instant,
    /// Until a login succeeds, the session ends at this instant (`limits.login_deadline_ms`
    /// after `opened`).
    login_deadline: Instant,
    last_activity: Instant,
    pending_logins: VecDeque<(Uuid, Instant)>,
    /// A login on this upstream connection succeeded: a service session named by
    /// `conn_uuid` exists, and the current resume token becomes its restore proof on close.
    logged_in: bool,
    restore: Restore,
    limits: LimitsConfig,
    resume: ResumeConfig,
    local_login: bool,
    permits: Arc<ConnPermits>,
}

impl fmt::Debug for Session {
    /// The connection UUID is the service session UUID, a secret: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("lineage", &self.lineage)
            .field("origin", &self.origin)
            .field("client_ip", &self.client_ip)
            .field("facts", &self.facts)
            .field("logged_in", &self.logged_in)
            .field("restore", &self.restore)
            .field("sent_mark", &self.sent_mark)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn token_keys(&self) -> TokenKeys<'_> {
        TokenKeys {
            current: &self.token,
            previous: self.prev_token.as_ref(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.upstream
            .end(Duration::from_millis(self.limits.write_stall_ms).min(CLOSE_GRACE));
        if self.logged_in {
            // The browser's last resume token now proves ownership of the dead session.
            let subject = self.subject.take();
            self.shared.sessions.keep_restore_proof(
                self.token_keys(),
                self.conn_uuid,
                &self.origin,
                subject,
                Duration::from_millis(self.resume.restore_ttl_ms),
                self.resume.restore_max,
            );
        }
        tracing::info!(lineage = self.lineage, "upstream connection closed");
    }
}

/// Outgoing frames of the writer task.
#[derive(Debug)]
enum Out {
    Binary(Bytes),
    Text(String),
    Close(CloseFrame),
}

/// The browser-side writer: a task draining a bounded queue into the WebSocket. Pings skip
/// the queue (a browser that is busy reading a backlog still gets them, and its pongs tell
/// it apart from a dead one).
///
/// Every write is bounded in time (`limits.write_stall_ms`): a browser that takes no byte
/// for that long ends the writer, which the relay sees as a gone browser. Every hand-off to
/// the queue is bounded the same way, and closing aborts the task, so a browser that stops
/// reading cannot pin a session, its socket or its queued bytes.
#[derive(Debug)]
struct Writer {
    tx: mpsc::Sender<Out>,
    ping: Arc<Notify>,
    budget: Arc<Budget>,
    task: tokio::task::JoinHandle<()>,
    stall: Duration,
}

/// How long a close waits for the error and close frame to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

impl Writer {
    fn spawn<S>(
        sink: SplitSink<WebSocketStream<S>, Message>,
        limits: &LimitsConfig,
        shared: &Shared,
    ) -> Writer
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits.queue_packages);
        let budget = Budget::with_global(
            limits.queue_bytes,
            shared.metrics.queued_bytes.clone(),
            Some(Arc::clone(&shared.to_browsers)),
        );
        let ping = Arc::new(Notify::new());
        let stall = Duration::from_millis(limits.write_stall_ms);
        let queue = BudgetedQueue::new(rx, Arc::clone(&budget));
        let task = tokio::spawn(write_loop(sink, queue, Arc::clone(&ping), stall));
        Writer {
            tx,
            ping,
            budget,
            task,
            stall,
        }
    }

    /// Queue a message, waiting at most the stall limit for room.
    async fn send(&self, out: Out) -> bool {
        matches!(
            tokio::time::timeout(self.stall, self.tx.send(out)).await,
            Ok(Ok(()))
        )
    }

    async fn text(&self, message: &ProxyMessage) -> bool {
        self.send(Out::Text(message.to_json())).await
    }

    /// Queue a package (counted in the byte budget until written).
    async fn package(&self, data: Bytes) -> bool {
        let n = data.len();
        self.budget.add(n);
        match tokio::time::timeout(self.stall, self.tx.send(Out::Binary(data))).await {
            Ok(Ok(())) => true,
            _ => {
                self.budget.sub(n);
                false
            }
        }
    }

    /// Send a typed error, close, and wait (briefly) for it to be written.
    async fn fail(self, error: RelayError) {
        if error.kind == RelayErrorKind::Closed {
            // The service closes after every logoff: routine, and "upstream connection
            // closed" is logged anyway.
            tracing::debug!(kind = error.kind.as_str(), message = %error.message, "relay error");
        } else {
            tracing::info!(kind = error.kind.as_str(), message = %error.message, "relay error");
        }
        let code = match error.kind {
            RelayErrorKind::LimitReached => CloseCode::Size,
            RelayErrorKind::Internal => CloseCode::Error,
            RelayErrorKind::Closed => CloseCode::Normal,
            RelayErrorKind::ProtocolViolation => CloseCode::Protocol,
            _ => CloseCode::Policy,
        };
        let deadline = Instant::now() + CLOSE_GRACE.min(self.stall);
        let _ = tokio::time::timeout_at(
            deadline,
            self.tx
                .send(Out::Text(ProxyMessage::Error(error).to_json())),
        )
        .await;
        self.finish(code, deadline).await;
    }

    async fn close(self, code: CloseCode) {
        let deadline = Instant::now() + CLOSE_GRACE.min(self.stall);
        self.finish(code, deadline).await;
    }

    /// Queue the close frame and let the task write what it can until `deadline`; then
    /// abort it (its queue's bytes return to the budget when the task is dropped).
    async fn finish(mut self, code: CloseCode, deadline: Instant) {
        let frame = Out::Close(CloseFrame {
            code,
            reason: "".into(),
        });
        let _ = tokio::time::timeout_at(deadline, self.tx.send(frame)).await;
        drop(self.tx);
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// What an item of a budgeted queue holds against its byte budget.
trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Out {
    fn weight(&self) -> usize {
        match self {
            Out::Binary(d) => d.len(),
            Out::Text(_) | Out::Close(_) => 0,
        }
    }
}

impl Weight for Box<Package> {
    fn weight(&self) -> usize {
        self.encoded_len()
    }
}

/// A writer task's end of its queue (toward the browser or toward the service). Whatever way
/// the task ends (finished, stalled, aborted), dropping it returns every queued or
/// half-written byte to the budget.
#[derive(Debug)]
struct BudgetedQueue<T: Weight> {
    rx: mpsc::Receiver<T>,
    budget: Arc<Budget>,
    /// Bytes of the item being written.
    in_flight: usize,
}

impl<T: Weight> BudgetedQueue<T> {
    fn new(rx: mpsc::Receiver<T>, budget: Arc<Budget>) -> Self {
        BudgetedQueue {
            rx,
            budget,
            in_flight: 0,
        }
    }
}

impl<T: Weight> Drop for BudgetedQueue<T> {
    fn drop(&mut self) {
        self.rx.close();
        let mut n = std::mem::take(&mut self.in_flight);
        while let Ok(item) = self.rx.try_recv() {
            n += item.weight();
        }
        if n > 0 {
            self.budget.sub(n);
        }
    }
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: BudgetedQueue<Out>,
    ping: Arc<Notify>,
    stall: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let out = tokio::select! {
            biased;
            _ = ping.notified() => {
                if !matches!(tokio::time::timeout(stall, sink.send(Message::Ping(Bytes::new()))).await, Ok(Ok(()))) {
                    break;
                }
                continue;
            }
            out = queue.rx.recv() => match out {
                Some(out) => out,
                None => break,
            },
        };
        let result = match out {
            Out::Binary(data) => {
                let n = data.len();
                queue.in_flight = n;
                let r = tokio::time::timeout(stall, sink.send(Message::Binary(data))).await;
                queue.in_flight = 0;
                queue.budget.sub(n);
                r
            }
            Out::Text(t) => tokio::time::timeout(stall, sink.send(Message::Text(t.into()))).await,
            Out::Close(frame) => {
                let _ = tokio::time::timeout(stall, sink.send(Message::Close(Some(frame)))).await;
                break;
            }
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(
                    stall_ms = stall.as_millis() as u64,
                    "browser write stalled; treated as gone"
                );
                break;
            }
        }
    }
    // Refuse further hand-offs at once (the relay sees a gone browser), then give the
    // socket a bounded chance to close cleanly.
    drop(queue);
    let _ = tokio::time::timeout(stall.min(CLOSE_GRACE), sink.close()).await;
}

type WsRead<S> = SplitStream<WebSocketStream<S>>;

/// Serve one browser WebSocket.
pub(crate) async fn serve<S>(ws: WebSocketStream<S>, ctx: Context)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let runtime = ctx.shared.runtime();
    let limits = runtime.config.limits.clone();
    let (sink, mut stream) = ws.split();
    let writer = Writer::spawn(sink, &limits, &ctx.shared);
    let first = tokio::time::timeout(
        Duration::from_millis(limits.handshake_timeout_ms),
        next_data(&mut stream),
    )
    .await;
    let message = match first {
        Err(_) => {
            ctx.shared.metrics.reject("handshake_timeout");
            writer
                .fail(err(
                    RelayErrorKind::LimitReached,
                    "no open or resume message before the handshake deadline",
                ))
                .await;
            return;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            writer.fail(ws_read_error(&e, &limits)).await;
            return;
        }
        Ok(Some(Ok(Message::Text(text)))) => match ClientMessage::from_json(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                ctx.shared.metrics.reject("protocol_violation");
                writer
                    .fail(err(RelayErrorKind::ProtocolViolation, e.to_string()))
                    .await;
                return;
            }
        },
        Ok(Some(Ok(_))) => {
            ctx.shared.metrics.reject("protocol_violation");
            writer
                .fail(err(
                    RelayErrorKind::ProtocolViolation,
                    "the first message must be an open or resume control message",
                ))
                .await;
            return;
        }
    };
    let (mut session, replay, resumed) = match message {
        ClientMessage::Open(req) => match open(&ctx, &runtime, req).await {
            Ok(s) => (s, Vec::new(), false),
            Err(e) => {
                ctx.shared.metrics.reject(reason_of(e.kind));
                writer.fail(e).await;
                return;
            }
        },
        ClientMessage::Resume(req) => match resume(&ctx, req).await {
            Ok((s, replay)) => (s, replay, true),
            Err(e) => {
                ctx.shared.metrics.reject(reason_of(e.kind));
                writer.fail(e).await;
                return;
            }
        },
    };
    // Authenticated: this connection no longer counts as pre-auth.
    drop(
        ctx.permits
            .preauth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    );
    session.permits = Arc::clone(&ctx.permits);
    let hello = if !resumed {
        ProxyMessage::Opened(opened_message(&session))
    } else {
        ProxyMessage::Resumed(Resumed {
            version: RELAY_VERSION,
            resume_token: Secret(session.token.expose().to_string()),
            replayed: replay.len() as u64,
        })
    };
    if !writer.text(&hello).await {
        detach_or_close(session);
        return;
    }
    for data in replay {
        if !writer.package(data).await {
            detach_or_close(session);
            return;
        }
    }
    session.sent_mark = session.ring.next_seq - 1;
    ctx.shared.metrics.sessions_active.inc();
    let end = attached(&mut session, &mut stream, &writer).await;
    ctx.shared.metrics.sessions_active.dec();
    match end {
        End::Failed(e) => {
            writer.fail(e).await;
        }
        End::BrowserClosed => {
            writer.close(CloseCode::Normal).await;
        }
        End::BrowserGone => {
            writer.close(CloseCode::Away).await;
            detach_or_close(session);
        }
    }
}

fn reason_of(kind: RelayErrorKind) -> &'static str {
    kind.as_str()
}

async fn next_data<S>(stream: &mut WsRead<S>) -> Option<Result<Message, WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match stream.next().await? {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            other => return Some(other),
        }
    }
}

fn ws_read_error(e: &WsError, limits: &LimitsConfig) -> RelayError {
    match e {
        WsError::Capacity(_) => err(
            RelayErrorKind::LimitReached,
            format!(
                "websocket message or frame too large: limits are {} bytes per message, {} per frame",
                limits.max_message_bytes, limits.max_frame_bytes
            ),
        ),
        WsError::Io(io)
            if io
                .get_ref()
                .is_some_and(|e| e.is::<crate::firstcap::FirstMessageTooLong>()) =>
        {
            err(
                RelayErrorKind::LimitReached,
                format!(
                    "first message too long: the open or resume message is at most {} bytes",
                    prl_protocol::relay::MAX_CONTROL_LEN
                ),
            )
        }
        _ => err(RelayErrorKind::ProtocolViolation, "websocket protocol error"),
    }
}

fn opened_message(s: &Session) -> Opened {
    Opened {
        version: RELAY_VERSION,
        connection_uuid: s.conn_uuid_text.clone(),
        service_protocol: s.facts.service_protocol.clone(),
        service_build: s.facts.service_build.clone(),
        security_level: s.facts.security_level,
        cipher: s.facts.cipher.clone(),
        tls_version: s.facts.tls_version.clone(),
        resume_token: Secret(s.token.expose().to_string()),
        resume_window_ms: u32::try_from(s.resume.window_ms).unwrap_or(u32::MAX),
    }
}

fn ticket_error(e: TicketError) -> RelayError {
    match e {
        TicketError::CacheFull => err(RelayErrorKind::LimitReached, "ticket replay cache full"),
        other => err(RelayErrorKind::TicketInvalid, other.to_string()),
    }
}

/// The ticket claims that authorise this open (if tickets are configured).
fn authorise(
    ctx: &Context,
    runtime: &Runtime,
    req: &OpenRequest,
) -> Result<Option<Claims>, RelayError> {
    let port = req.target.effective_port();
    match (&runtime.tickets, &ctx.header_claims, &req.ticket) {
        (None, _, Some(_)) => Err(err(
            RelayErrorKind::TicketInvalid,
            "tickets are not enabled on this proxy",
        )),
        (None, _, None) => Ok(None),
        (Some(_), Some(_), Some(_)) => Err(ticket_error(TicketError::Conflict)),
        (Some(_), Some(claims), None) => {
            claims
                .check_open(req.mode, &req.target.host, port)
                .map_err(ticket_error)?;
            Ok(Some(claims.clone()))
        }
        (Some(tickets), None, Some(ticket)) => {
            let now = crate::util::unix_now();
            let claims = tickets
                .key
                .verify(ticket.expose(), &ctx.origin, now, tickets.max_ttl_secs)
                .map_err(ticket_error)?;
            claims
                .check_open(req.mode, &req.target.host, port)
                .map_err(ticket_error)?;
            check_ticket(&ctx.shared, tickets, ticket.expose(), &ctx.origin)
                .map_err(ticket_error)?;
            Ok(Some(claims))
        }
        (Some(tickets), None, None) => {
            if tickets.required {
                Err(ticket_error(TicketError::Missing))
            } else {
                Ok(None)
            }
        }
    }
}

/// The browser's view of a refused target. For a host given as a DNS name, the message is
/// fixed per error kind: what the name resolved to (which address, which special range,
/// whether it resolved at all beyond `dns_failed`) stays on the proxy, logged at debug, so the
/// proxy is no oracle into the DNS view of its network. Refusals about what the browser itself
/// sent (an IP literal, a malformed host, a configured target's port) keep their detail.
fn policy_error(host: &str, e: PolicyError) -> RelayError {
    let named = matches!(
        crate::policy::parse_host(host),
        Ok(crate::policy::Host::Name(_))
    );
    let kind = if e.is_dns() {
        RelayErrorKind::DnsFailed
    } else {
        RelayErrorKind::PolicyDenied
    };
    let leaks = matches!(
        e,
        PolicyError::AddressDenied(_)
            | PolicyError::SpecialDenied { .. }
            | PolicyError::PortDenied { .. }
            | PolicyError::DnsFailed(_)
            | PolicyError::NoAddress
    );
    if named && leaks {
        tracing::debug!(reason = e.kind(), detail = %e, "target name refused");
        let message = if e.is_dns() {
            "the target name did not resolve"
        } else {
            "the target is not allowed by this proxy's policy"
        };
        return err(kind, message);
    }
    err(kind, e.to_string())
}

fn connect_error(e: &TransportError, budget_ms: u64) -> RelayError {
    let kind = match e {
        TransportError::Timeout { .. } => RelayErrorKind::Timeout,
        TransportError::Resolve { .. } | TransportError::NoAddress { .. } => {
            RelayErrorKind::DnsFailed
        }
        TransportError::Connect { .. } => RelayErrorKind::ConnectionRefused,
        TransportError::Handshake(h) if h.prl_code() == ErrorCode::WRONG_PROTOCOL_VERSION => {
            RelayErrorKind::WrongProtocolVersion
        }
        other => match other.stage() {
            prl_transport::Stage::Resolve => RelayErrorKind::DnsFailed,
            prl_transport::Stage::Connect => RelayErrorKind::ConnectionRefused,
            prl_transport::Stage::Handshake => RelayErrorKind::HandshakeFailed,
            prl_transport::Stage::Tls => RelayErrorKind::TlsFailed,
            prl_transport::Stage::Established => RelayErrorKind::Closed,
        },
    };
    let mut e2 = match (kind, e) {
        (RelayErrorKind::Timeout, _) => {
            err(kind, format!("connect budget of {budget_ms} ms expired"))
        }
        // The address is the resolved one: not the browser's business.
        (_, TransportError::Connect { source, .. }) => err(
            kind,
            format!(
                "cannot connect to the target: {}",
                source.to_string().to_lowercase()
            ),
        ),
        _ => err(kind, e.to_string().to_lowercase()),
    };
    tracing::debug!(kind = kind.as_str(), detail = %e, "upstream connect failed");
    if matches!(kind, RelayErrorKind::HandshakeFailed) {
        // Keeps WRONG_CONNECTION_SECURITY_LEVEL where the transport can tell.
        e2.code = Some(e.prl_code().0);
    }
    e2
}

async fn open(
    ctx: &Context,
    runtime: &Runtime,
    req: OpenRequest,
) -> Result<Box<Session>, RelayError> {
    let claims = authorise(ctx, runtime, &req)?;
    let limits = runtime.config.limits.clone();
    let ceiling = limits.connect_timeout_ms;
    let budget_ms = if req.timeout_ms == 0 {
        ceiling
    } else {
        u64::from(req.timeout_ms).min(ceiling)
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(budget_ms);
    let timeout = || {
        err(
            RelayErrorKind::Timeout,
            format!("connect budget of {budget_ms} ms expired"),
        )
    };
    let endpoint = match req.mode {
        ConnectMode::Local => {
            let policy = &runtime.config.policy;
            if !policy.local_login {
                return Err(err(
                    RelayErrorKind::PolicyDenied,
                    "local login is disabled on this proxy",
                ));
            }
            match &policy.local_socket {
                // The service identifies the proxy's OS user by SO_PEERCRED.
                Some(path) => Endpoint::Unix(path.clone()),
                None => Endpoint::Addrs(vec![policy.local_target]),
            }
        }
        ConnectMode::Remote => {
            match tokio::time::timeout_at(
                deadline,
                runtime.policy.resolve(&req.target.host, req.target.port),
            )
            .await
            {
                Ok(r) => Endpoint::Addrs(r.map_err(|e| policy_error(&req.target.host, e))?),
                Err(_) => return Err(timeout()),
            }
        }
    };
    let conn_uuid = random_uuid();
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(timeout());
    }
    let mut config = ClientConfig::new(req.security_level)
        .with_budget(Some(remaining))
        .with_connection_uuid(conn_uuid);
    config.stream.limits = Limits {
        max_package_len: limits.max_package_bytes,
        max_buffers: MAX_BUFFERS,
    };
    config.stream.receive_capacity = 4;
    config.stream.send_capacity = 4;
    let conn = prl_transport::connect(&endpoint, &config)
        .await
        .map_err(|e| match (&endpoint, &e) {
            // The socket path is the operator's business, not the browser's.
            (Endpoint::Unix(_), TransportError::Connect { source, .. }) => err(
                RelayErrorKind::ConnectionRefused,
                format!(
                    "cannot connect to the local service socket: {}",
                    source.to_string().to_lowercase()
                ),
            ),
            _ => connect_error(&e, budget_ms),
        })?;
    ctx.shared
        .metrics
        .connect_seconds
        .observe(started.elapsed().as_secs_f64());
    ctx.shared.metrics.sessions_opened.inc();
    let info = conn.info_arc();
    let facts = Facts {
        service_protocol: format!("{}.{}", info.peer_version.major, info.peer_version.minor),
        service_build: info.peer_version.text.clone(),
        security_level: info.security_level,
        cipher: info.cipher.clone(),
        tls_version: info.tls_version.clone(),
        base64_password: info.peer_version.supports_base64_password(),
    };
    let to_service = Budget::new(limits.queue_bytes, ctx.shared.metrics.queued_bytes.clone());
    let (up_tx, up_rx, upstream) = spawn_upstream(conn, Arc::clone(&to_service));
    let mut lineage_bytes = [0u8; 8];
    crate::util::fill_random(&mut lineage_bytes);
    let lineage = u64::from_le_bytes(lineage_bytes);
    tracing::info!(
        peer = %ctx.peer.ip(),
        lineage,
        level = ?facts.security_level,
        cipher = %facts.cipher,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "upstream connection opened"
    );
    let subject = claims.and_then(|c| c.sub);
    let restore = match &req.restore {
        None => Restore::Absent,
        Some(token) => restore_proof(ctx, token.expose(), subject.as_deref(), lineage).await,
    };
    let resume = runtime.config.resume.clone();
    let now = Instant::now();
    Ok(Box::new(Session {
        shared: Arc::clone(&ctx.shared),
        conn_uuid,
        conn_uuid_text: uuid_string(&conn_uuid),
        facts,
        up_tx,
        up_rx,
        upstream,
        to_service,
        ring: Ring::new(resume.buffer_packages, resume.buffer_bytes),
        sent_mark: 0,
        token: Token::generate(),
        prev_token: None,
        origin: ctx.origin.clone(),
        subject,
        lineage,
        client_ip: ctx.peer.ip(),
        lifetime_deadline: now + Duration::from_millis(limits.max_lifetime_ms),
        login_deadline: now + Duration::from_millis(limits.login_deadline_ms),
        last_activity: now,
        pending_logins: VecDeque::new(),
        logged_in: false,
        restore,
        local_login: runtime.config.policy.local_login,
        limits,
        resume,
        permits: Arc::clone(&ctx.permits),
    }))
}

/// Check and consume the `restore` proof of an open (after its upstream connection is up, so
/// a failed connect does not spend it). A token that still names a parked connection ends
/// that connection first (the browser gave up resuming it): closing it turns the token into
/// its restore proof. The proof must match this browser's origin and ticket subject.
async fn restore_proof(ctx: &Context, token: &str, subject: Option<&str>, lineage: u64) -> Restore {
    if let Some(claim) = ctx.shared.sessions.take(token) {
        let (tx, rx) = oneshot::channel();
        if claim.send(tx).is_ok() {
            if let Ok(parked) = rx.await {
                tracing::info!(
                    lineage = parked.lineage,
                    "parked upstream connection ended by a restore"
                );
                drop(parked);
            }
        }
    }
    match ctx
        .shared
        .sessions
        .take_restore_proof(token, &ctx.origin, subject)
    {
        Ok(session) => {
            tracing::info!(lineage, "restore proof accepted");
            Restore::Granted(session)
        }
        Err(r) => {
            ctx.shared.metrics.reject(r.kind());
            tracing::warn!(lineage, reason = r.kind(), "restore proof refused");
            Restore::Refused(r)
        }
    }
}

/// Packages toward the service (boxed: a tokio channel allocates slots for 32 values whatever
/// its bound, and a package is large, so idle sessions should not pay for that).
type ToService = mpsc::Sender<Box<Package>>;
/// Packages (or the failure) from the service.
type FromService = mpsc::Receiver<Result<Box<Package>, RelayError>>;

/// Bridge the transport connection to two bounded channels owned by the session.
fn spawn_upstream(
    conn: prl_transport::Connection,
    budget: Arc<Budget>,
) -> (ToService, FromService, UpstreamTasks) {
    let (sender, mut receiver, _info) = conn.split();
    let (to_tx, to_rx) = mpsc::channel::<Box<Package>>(4);
    let (from_tx, from_rx) = mpsc::channel::<Result<Box<Package>, RelayError>>(4);
    let mut queue = BudgetedQueue::new(to_rx, budget);
    let writer = tokio::spawn(async move {
        while let Some(p) = queue.rx.recv().await {
            let n = p.encoded_len();
            queue.in_flight = n;
            let r = sender.send(*p).await;
            queue.in_flight = 0;
            queue.budget.sub(n);
            if r.is_err() {
                break;
            }
        }
        drop(queue);
        let _ = sender.close().await;
    });
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = from_tx.closed() => break,
                r = receiver.recv() => match r {
                    Some(Ok(p)) => {
                        if from_tx.send(Ok(Box::new(p))).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        let kind = match e {
                            TransportError::Oversize(_) => RelayErrorKind::LimitReached,
                            TransportError::Package(_) | TransportError::Record(_) => RelayErrorKind::ProtocolViolation,
                            _ => RelayErrorKind::Closed,
                        };
                        let _ = from_tx.send(Err(err(kind, format!("service connection failed: {}", e.to_string().to_lowercase())))).await;
                        break;
                    }
                    None => break,
                },
            }
        }
    });
    let tasks = UpstreamTasks {
        writer: writer.abort_handle(),
        reader: reader.abort_handle(),
    };
    (to_tx, from_rx, tasks)
}

/// The two tasks bridging a session to its transport connection.
#[derive(Debug)]
struct UpstreamTasks {
    writer: tokio::task::AbortHandle,
    reader: tokio::task::AbortHandle,
}

impl UpstreamTasks {
    /// The session is gone: the reader stops now; the writer may flush what is queued
    /// (a logoff, say) for at most `grace`, then it is aborted (a service that does not
    /// read cannot keep the task and its queued packages).
    fn end(&self, grace: Duration) {
        self.reader.abort();
        let writer = self.writer.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    writer.abort();
                });
            }
            Err(_) => writer.abort(),
        }
    }
}

async fn resume(
    ctx: &Context,
    req: ResumeRequest,
) -> Result<(Box<Session>, Vec<Bytes>), RelayError> {
    let gone = || {
        err(
            RelayErrorKind::ResumeFailed,
            "unknown, used or expired resume token",
        )
    };
    let claim = ctx
        .shared
        .sessions
        .take(req.token.expose())
        .ok_or_else(gone)?;
    let (tx, rx) = oneshot::channel();
    claim.send(tx).map_err(|_| gone())?;
    let mut session = rx.await.map_err(|_| gone())?;
    if session.origin != ctx.origin {
        // A token presented from another origin was stolen: end the session.
        return Err(err(
            RelayErrorKind::ResumeFailed,
            "resume token presented from another origin",
        ));
    }
    let replay = match session.ring.replay_from(req.received) {
        Ok(r) => r,
        Err(ReplayError::Ahead) => {
            return Err(err(
                RelayErrorKind::ResumeFailed,
                "received count is ahead of what was sent",
            ))
        }
        Err(ReplayError::Lost) => {
            return Err(err(
                RelayErrorKind::ResumeFailed,
                "packages the browser missed are no longer buffered",
            ))
        }
    };
    // The browser holds the token it presented until `resumed` reaches it; if this
    // connection fails before it shows it did, that token still names the session.
    let presented = std::mem::replace(&mut session.token, Token::generate());
    session.prev_token = Some(presented);
    session.last_activity = Instant::now();
    ctx.shared.metrics.sessions_resumed.inc();
    tracing::info!(peer = %ctx.peer.ip(), lineage = session.lineage, replayed = replay.len(), "session resumed");
    Ok((session, replay))
}

/// How an attached session ended.
#[derive(Debug)]
enum End {
    /// A typed failure (policy, limit, upstream gone...): report it and close upstream.
    Failed(RelayError),
    /// The browser closed normally (1000): close upstream.
    BrowserClosed,
    /// The browser vanished: keep upstream for a resume.
    BrowserGone,
}

async fn attached<S>(s: &mut Session, stream: &mut WsRead<S>, writer: &Writer) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ping_every = Duration::from_millis(s.limits.ping_interval_ms);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_seen = Instant::now();
    let idle = Duration::from_millis(s.limits.idle_timeout_ms);
    loop {
        let idle_at = s.last_activity + idle;
        let lifetime_at = s.lifetime_deadline;
        let to_service = Arc::clone(&s.to_service);
        let up_tx = s.up_tx.clone();
        let out_budget = Arc::clone(&writer.budget);
        let out_tx = writer.tx.clone();
        let up_rx = &mut s.up_rx;
        tokio::select! {
            _ = tokio::time::sleep_until(lifetime_at) => {
                return End::Failed(err(RelayErrorKind::LimitReached, "maximum session lifetime reached"));
            }
            _ = tokio::time::sleep_until(idle_at) => {
                return End::Failed(err(RelayErrorKind::LimitReached, "idle timeout: no package either way"));
            }
            _ = async {
                if s.logged_in {
                    std::future::pending().await
                } else {
                    tokio::time::sleep_until(s.login_deadline).await
                }
            } => {
                s.shared.metrics.reject("login_deadline");
                return End::Failed(err(
                    RelayErrorKind::LimitReached,
                    format!("no login within {} ms of opened", s.limits.login_deadline_ms),
                ));
            }
            _ = writer.tx.closed() => {
                // The writer ended: the browser's socket failed or stalled past the limit.
                return End::BrowserGone;
            }
            _ = ping.tick() => {
                if s.to_service.is_full() || s.up_tx.capacity() == 0 {
                    // Backpressure from the service: the browser is not being read, so its
                    // pongs cannot be seen; do not count this interval against it.
                    last_seen = Instant::now();
                } else if last_seen.elapsed() > ping_every.saturating_mul(2) {
                    // Two intervals without a pong (or anything else): the browser is gone.
                    return End::BrowserGone;
                }
                writer.ping.notify_one();
            }
            r = async {
                to_service.room().await;
                let permit = up_tx.reserve_owned().await;
                (permit, stream.next().await)
            } => {
                last_seen = Instant::now();
                let (permit, message) = r;
                let Ok(permit) = permit else {
                    return End::Failed(err(RelayErrorKind::Closed, "service connection closed"));
                };
                match message {
                    Some(Ok(Message::Binary(data))) => {
                        // A package after `resumed`: the browser has the current token.
                        s.prev_token = None;
                        if let Err(e) = browser_package(s, &data, permit) {
                            return End::Failed(e);
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        return End::Failed(err(RelayErrorKind::ProtocolViolation, "control messages are only accepted as the first message"));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return match frame {
                            Some(f) if f.code == CloseCode::Normal => End::BrowserClosed,
                            _ => End::BrowserGone,
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e @ WsError::Capacity(_))) => return End::Failed(ws_read_error(&e, &s.limits)),
                    Some(Err(_)) | None => return End::BrowserGone,
                }
            }
            r = async {
                out_budget.room().await;
                let permit = out_tx.reserve_owned().await;
                (permit, up_rx.recv().await)
            } => {
                let (permit, package) = r;
                let Ok(permit) = permit else { return End::BrowserGone };
                match package {
                    Some(Ok(p)) => {
                        if p.header.package_type != MNG_HEARTBEAT {
                            // Service traffic counts as activity too (heartbeats do not).
                            s.last_activity = Instant::now();
                        }
                        let data = service_package(s, &p);
                        let n = data.len();
                        writer.budget.add(n);
                        permit.send(Out::Binary(data));
                        s.sent_mark = s.ring.next_seq - 1;
                        s.shared.metrics.relayed("to_browser", n);
                    }
                    Some(Err(e)) => return End::Failed(e),
                    None => return End::Failed(err(RelayErrorKind::Closed, "the service closed the connection")),
                }
            }
        }
    }
}

/// A package from the browser: decode, enforce sender and login rules, forward.
fn browser_package(
    s: &mut Session,
    data: &[u8],
    permit: mpsc::OwnedPermit<Box<Package>>,
) -> Result<(), RelayError> {
    let limits = Limits {
        max_package_len: s.limits.max_message_bytes,
        max_buffers: MAX_BUFFERS,
    };
    let mut p = Package::decode(data, &limits).map_err(|e| {
        err(
            RelayErrorKind::ProtocolViolation,
            format!("malformed package from the browser: {e}"),
        )
    })?;
    let t = p.header.package_type;
    if t == MNG_HEARTBEAT {
        // The proxy sends the service its own heartbeats.
        return Ok(());
    }
    if p.header.sender_uuid.is_nil() {
        p.header.sender_uuid = s.conn_uuid;
    } else if p.header.sender_uuid != s.conn_uuid {
        return Err(err(
            RelayErrorKind::ProtocolViolation,
            "package sender is not this connection's uuid",
        ));
    }
    match t {
        cmd::USER_EASY_LOGIN_LOCAL | cmd::USER_LOGIN_LOCAL | cmd::USER_LOGIN_LOCAL_STAGE2
            if !s.local_login =>
        {
            s.shared.metrics.login("refused");
            return Err(err(
                RelayErrorKind::PolicyDenied,
                "local login is disabled on this proxy",
            ));
        }
        cmd::USER_LOGIN | cmd::USER_EASY_LOGIN_LOCAL => check_login(s, &p)?,
        _ => {}
    }
    let n = p.encoded_len();
    s.to_service.add(n);
    permit.send(Box::new(p));
    s.last_activity = Instant::now();
    s.shared.metrics.relayed("to_service", n);
    Ok(())
}

/// The proxy's own checks of a login, in an order that keeps the per-user throttle from
/// becoming a lockout tool: refusals that need no throttle first (malformed, name too long),
/// then the per-IP bucket (bounds probing from one address), then the previous-session
/// rule, and only for a login that will reach the service, the per-user bucket.
fn check_login(s: &mut Session, p: &Package) -> Result<(), RelayError> {
    let (user, prev) = match Command::parse(p, s.facts.base64_password) {
        Ok(Command::Login(l)) => {
            if l.user.len() > MAX_USER_NAME_BYTES {
                s.shared.metrics.login("refused");
                return Err(err(
                    RelayErrorKind::LimitReached,
                    format!(
                        "login user name too long: {} bytes, the limit is {MAX_USER_NAME_BYTES}",
                        l.user.len()
                    ),
                ));
            }
            (Some(user_key(&l.user)), l.prev_session_uuid)
        }
        Ok(Command::LoginLocal(l)) => (None, l.prev_session_uuid),
        Ok(_) | Err(_) => {
            s.shared.metrics.login("refused");
            return Err(err(
                RelayErrorKind::ProtocolViolation,
                "malformed login request",
            ));
        }
    };
    let now = std::time::Instant::now();
    if !s.shared.login_ip.check(&client_key(s.client_ip), now) {
        s.shared.metrics.login("throttled");
        return Err(err(
            RelayErrorKind::LimitReached,
            "too many login attempts from this address; try again later",
        ));
    }
    if !prev.trim().is_empty() {
        if let Err(why) = previous_session_allowed(s, &prev) {
            s.shared.metrics.login("refused");
            s.shared.metrics.reject("previous_session");
            tracing::warn!(
                lineage = s.lineage,
                reason = why,
                "login naming a previous session refused"
            );
            return Err(err(
                RelayErrorKind::RestoreRefused,
                format!(
                    "login names a previous session this browser session cannot restore: {why}"
                ),
            ));
        }
    }
    // Charged only for a login the service will see: the proxy's own refusals above (name
    // length, malformed request, previous session) must not let anyone spend another
    // user's bucket and lock that user out without reaching the service.
    if let Some(u) = &user {
        if !s.shared.login_user.check(u, now) {
            s.shared.metrics.login("throttled");
            return Err(err(
                RelayErrorKind::LimitReached,
                "too many login attempts for this user; try again later",
            ));
        }
    }
    if !p.header.uuid.is_nil() {
        if s.pending_logins.len() >= 8 {
            s.pending_logins.pop_front();
        }
        s.pending_logins.push_back((p.header.uuid, Instant::now()));
    }
    Ok(())
}

/// The service lets a login naming a live session take it over without a password (and one
/// naming a dead session inherit its lost tasks). Through the proxy a login may name only
/// this connection's own session (the public-key login's second step, a relogin), or the
/// session whose restore proof this connection's `open` presented (see `crate::session`).
fn previous_session_allowed(s: &Session, prev: &str) -> Result<(), &'static str> {
    let uuid = parse_uuid(prev).ok_or("the previous session id is not a uuid")?;
    if uuid == s.conn_uuid {
        return Ok(());
    }
    match s.restore {
        Restore::Granted(granted) if granted == uuid => Ok(()),
        Restore::Granted(_) => Err("the restore proof of this connection is for another session"),
        Restore::Used => Err("the restore proof of this connection was already used"),
        Restore::Absent => Err("the open carried no restore proof"),
        Restore::Refused(_) => Err(
            "the restore proof is unknown, used, superseded, expired or bound to another origin",
        ),
    }
}

/// A package from the service: login bookkeeping, replay ring, encoded bytes.
fn service_package(s: &mut Session, p: &Package) -> Bytes {
    if p.header.is_response() {
        if let Some(i) = s
            .pending_logins
            .iter()
            .position(|(u, _)| *u == p.header.parent_uuid)
        {
            if let Some((_, t0)) = s.pending_logins.remove(i) {
                s.shared
                    .metrics
                    .login_seconds
                    .observe(t0.elapsed().as_secs_f64());
            }
            match crate::login::login_outcome(p) {
                LoginOutcome::Success => {
                    s.shared.metrics.login("success");
                    s.logged_in = true;
                    if matches!(s.restore, Restore::Granted(_)) {
                        // Consumed on use.
                        s.restore = Restore::Used;
                    }
                    tracing::info!(lineage = s.lineage, "login succeeded");
                }
                LoginOutcome::Intermediate => {}
                LoginOutcome::Failure => {
                    s.shared.metrics.login("failure");
                    tracing::info!(lineage = s.lineage, "login failed");
                }
            }
        }
    }
    let data = Bytes::from(p.encode());
    s.ring.push(data.clone());
    data
}

/// Keep the upstream connection for the resume window, or close it. Only a session with a
/// successful login is kept: the client resumes nothing else, and parking unauthenticated
/// connections would let anyone fill `resume.max_detached` and hold service connections.
fn detach_or_close(session: Box<Session>) {
    if session.resume.window_ms == 0 {
        return;
    }
    if !session.logged_in {
        tracing::info!(
            lineage = session.lineage,
            "browser gone before any login; upstream closed, not kept for resume"
        );
        return;
    }
    let shared = Arc::clone(&session.shared);
    let (claim_tx, claim_rx) = oneshot::channel();
    if !shared
        .sessions
        .park(session.token_keys(), claim_tx, session.resume.max_detached)
    {
        shared.metrics.reject("max_detached");
        return;
    }
    shared.metrics.sessions_detached.inc();
    tracing::info!(
        lineage = session.lineage,
        window_ms = session.resume.window_ms,
        "browser gone; upstream kept for resume"
    );
    tokio::spawn(detached(session, claim_rx));
}

async fn detached(
    mut session: Box<Session>,
    mut claim_rx: oneshot::Receiver<oneshot::Sender<Box<Session>>>,
) {
    let shared = Arc::clone(&session.shared);
    let deadline = Instant::now() + Duration::from_millis(session.resume.window_ms);
    let lifetime = session.lifetime_deadline;
    let outcome = loop {
        let accept = session.ring.can_accept_detached(session.sent_mark);
        let up_rx = &mut session.up_rx;
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break "resume window expired",
            _ = tokio::time::sleep_until(lifetime) => break "maximum session lifetime reached",
            claim = &mut claim_rx => match claim {
                Ok(reply) => {
                    shared.metrics.sessions_detached.dec();
                    // If the resumer vanished meanwhile, the session is dropped (closed).
                    let _ = reply.send(session);
                    return;
                }
                Err(_) => break "claim dropped",
            },
            r = async { if accept { up_rx.recv().await } else { std::future::pending().await } } => match r {
                Some(Ok(p)) => {
                    let _ = service_package(&mut session, &p);
                }
                Some(Err(_)) | None => break "service connection closed",
            },
        }
    };
    // Not claimed: the session still holds the tokens it was parked under.
    shared.sessions.unpark(session.token_keys());
    shared.metrics.sessions_detached.dec();
    tracing::info!(
        lineage = session.lineage,
        reason = outcome,
        "detached session closed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn ring_replays_in_order_and_knows_what_it_lost() {
        let mut r = Ring::new(3, 1000);
        for i in 1..=5u8 {
            assert_eq!(r.push(b(i, 10)), u64::from(i));
        }
        // Holds 3, 4, 5.
        assert_eq!(
            r.replay_from(2).unwrap(),
            vec![b(3, 10), b(4, 10), b(5, 10)]
        );
        assert_eq!(r.replay_from(4).unwrap(), vec![b(5, 10)]);
        assert!(r.replay_from(5).unwrap().is_empty());
        assert_eq!(r.replay_from(1), Err(ReplayError::Lost));
        assert_eq!(r.replay_from(6), Err(ReplayError::Ahead));
    }

    #[test]
    fn ring_is_bounded_by_bytes() {
        let mut r = Ring::new(100, 25);
        r.push(b(1, 10));
        r.push(b(2, 10));
        r.push(b(3, 10));
        assert_eq!(r.bytes, 20);
        assert_eq!(r.front_seq(), 2);
        // A single oversized package is kept alone.
        r.push(b(4, 100));
        assert_eq!(r.items.len(), 1);
    }

    #[test]
    fn detached_ring_never_drops_unsent_packages() {
        let mut r = Ring::new(2, 1000);
        r.push(b(1, 1));
        r.push(b(2, 1));
        // Both were sent to the old socket: room by dropping the oldest.
        assert!(r.can_accept_detached(2));
        r.push(b(3, 1));
        // 2 was sent: it may still go.
        assert!(r.can_accept_detached(2));
        r.push(b(4, 1));
        // 3 and 4 were never sent: the ring is full of packages the browser needs.
        assert!(!r.can_accept_detached(2));
    }

    #[tokio::test]
    async fn budget_waits_for_room() {
        let b = Budget::new(10, Gauge::default());
        b.add(10);
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.room().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        b.sub(5);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.used(), 5);
    }
}

#[cfg(test)]
mod global_tests {
    use super::*;

    #[tokio::test]
    async fn the_global_budget_holds_every_session() {
        let global = GlobalBudget::new(100);
        let a = Budget::with_global(1000, Gauge::default(), Some(Arc::clone(&global)));
        let b = Budget::with_global(1000, Gauge::default(), Some(Arc::clone(&global)));
        a.add(100);
        assert_eq!(global.used(), 100);
        // b is empty, but all browsers together are at the limit.
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.room().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        a.sub(50);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(global.used(), 50);
    }
}
