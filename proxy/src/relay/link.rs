//! A link: one upstream connection and its state, attached to a browser WebSocket or
//! detached waiting for a resume; and the tokio shell that drives its [`RelayRules`] — the
//! attached loop (browser ↔ service, pings, backpressure), the detached loop (the resume
//! window) and the choice between parking and closing when a browser goes.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::Package;
use prl_protocol::relay::{ProxyMessage, RelayError, RelayErrorKind};
use prl_protocol::Uuid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::budget::ByteBudget;
use crate::config::{LimitsConfig, ResumeConfig};
use crate::login::LoginOutcome;
use crate::registry::TokenKeys;
use crate::shared_state::{Lease, ProofFacts};
use crate::state::{ConnSlots, ProxyState, Slot};
use crate::util::Token;
use prl_transport::{Event as ConnEvent, InlineConnection, TransportError};

use super::open::{transport_error, During};
use super::ring::ReplayRing;
use super::rules::{Event, Expired, RelayRules, Verdict};
use super::serve::ws_read_error;
use super::writer::Writer;
use super::{err, evicted, Pool, RelayHub};

pub(super) type WsRead<S> = SplitStream<WebSocketStream<S>>;

/// The rules' clock: tokio's (virtual under `tokio::time::pause`), as a std instant.
pub(super) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Sleep until a deadline of the rules (forever without one).
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the unauthenticated pool took `slot` back (never without a slot).
async fn unauthenticated_evicted(slot: Option<&Slot>) {
    match slot {
        Some(slot) => slot.evicted().await,
        None => std::future::pending().await,
    }
}

/// What the handshakes told us, for `opened`.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub(super) service_protocol: String,
    pub(super) service_build: String,
    pub(super) security_level: SecurityLevel,
    pub(super) cipher: String,
    pub(super) tls_version: String,
}

/// One upstream connection and its state, attached to a browser or detached waiting for a
/// resume.
pub(crate) struct ServiceLink {
    pub(super) state: Arc<ProxyState>,
    pub(super) hub: Arc<RelayHub>,
    pub(super) conn_uuid: Uuid,
    pub(super) conn_uuid_text: String,
    pub(super) facts: Facts,
    /// The upstream connection, driven by whichever task holds the link (the browser's, or
    /// the detached one). Dropping it writes what is queued (a logoff) within the close grace,
    /// then closes it.
    pub(super) conn: InlineConnection,
    /// Counts the bytes queued toward the service (`queued_to_service` of them now).
    pub(super) to_service: Arc<ByteBudget>,
    pub(super) queued_to_service: usize,
    pub(super) ring: ReplayRing,
    /// The highest sequence number handed to the current (or last) WebSocket.
    pub(super) sent_mark: u64,
    pub(super) token: Token,
    /// The token the browser presented to resume, still accepted (for a resume or as restore
    /// proof) until the browser sends a package on the resumed connection, which shows that it
    /// got `token` in the `resumed` message.
    pub(super) prev_token: Option<Token>,
    pub(super) origin: String,
    pub(super) subject: Option<String>,
    pub(super) lineage: u64,
    pub(super) client_ip: IpAddr,
    pub(super) rules: RelayRules,
    pub(super) limits: LimitsConfig,
    pub(super) resume: ResumeConfig,
    /// The cap slots of the browser connection currently (or last) attached.
    pub(super) slots: Arc<ConnSlots>,
    /// A slot of the unauthenticated-upstream pool, held until the first successful login.
    pub(super) unauthenticated: Option<Slot>,
    /// ... and its cluster-wide lease (nothing held for a single proxy).
    pub(super) lease: Option<Lease>,
}

impl fmt::Debug for ServiceLink {
    /// The connection UUID is the service session UUID, a secret: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceLink")
            .field("lineage", &self.lineage)
            .field("origin", &self.origin)
            .field("client_ip", &self.client_ip)
            .field("facts", &self.facts)
            .field("logged_in", &self.rules.logged_in())
            .field("sent_mark", &self.sent_mark)
            .finish_non_exhaustive()
    }
}

impl ServiceLink {
    pub(super) fn token_keys(&self) -> TokenKeys<'_> {
        TokenKeys {
            current: &self.token,
            previous: self.prev_token.as_ref(),
        }
    }

    pub(super) fn proof_facts(&self) -> ProofFacts<'_> {
        ProofFacts {
            session: self.conn_uuid,
            origin: &self.origin,
            subject: self.subject.as_deref(),
        }
    }

    /// The tokens now name this logged-in session: a cluster records the restore proof as
    /// held here, so it outlives this instance (bookkeeping in the background).
    pub(super) fn hold_proof(&self) {
        if self.rules.logged_in() {
            tokio::spawn(
                self.state
                    .shared
                    .hold_restore_proof(self.token_keys(), self.proof_facts()),
            );
        }
    }

    /// Count and log what the rules report.
    fn drain_events(&mut self) {
        while let Some(event) = self.rules.poll_event() {
            let m = &self.state.metrics;
            match event {
                Event::LoginRefused => m.login("refused"),
                Event::LoginThrottled => m.login("throttled"),
                Event::LoginUnavailable => m.login("unavailable"),
                Event::PreviousSessionRefused(why) => {
                    m.reject("previous_session");
                    tracing::warn!(
                        lineage = self.lineage,
                        reason = why,
                        "login naming a previous session refused"
                    );
                }
                Event::LoginReplied { outcome, elapsed } => {
                    m.login_seconds.observe(elapsed.as_secs_f64());
                    match outcome {
                        LoginOutcome::Success => {
                            m.login("success");
                            tracing::info!(lineage = self.lineage, "login succeeded");
                        }
                        LoginOutcome::Intermediate => {}
                        LoginOutcome::Failure => {
                            m.login("failure");
                            tracing::info!(lineage = self.lineage, "login failed");
                        }
                    }
                }
                Event::LoggedIn => {
                    // Logged in: no longer counted against the unauthenticated pool.
                    self.unauthenticated = None;
                    self.lease = None;
                    self.hold_proof();
                }
                Event::CommandRefused(package_type) => {
                    m.reject("command_refused");
                    tracing::info!(
                        lineage = self.lineage,
                        package_type,
                        "command outside the connection's scope refused"
                    );
                }
            }
        }
    }

    /// Brings the `queued_bytes` count of what waits for the service up to date.
    fn count_to_service(&mut self) {
        let now = self.conn.backlog();
        match now.cmp(&self.queued_to_service) {
            std::cmp::Ordering::Greater => self.to_service.add(now - self.queued_to_service),
            std::cmp::Ordering::Less => self.to_service.sub(self.queued_to_service - now),
            std::cmp::Ordering::Equal => {}
        }
        self.queued_to_service = now;
    }

    /// A package from the service: the rules' bookkeeping, the replay ring; the bytes to send.
    fn service_package(&mut self, p: &Package) -> Bytes {
        let data = self.rules.handle_service_package(now(), p);
        self.drain_events();
        self.ring.push(data.clone());
        data
    }
}

impl Drop for ServiceLink {
    fn drop(&mut self) {
        // The connection writes what is queued after this, for at most the close grace.
        self.to_service
            .sub(std::mem::take(&mut self.queued_to_service));
        if self.rules.logged_in() {
            // The browser's last resume token now proves ownership of the dead session. Kept
            // before the upstream connection ends (in memory at once; a cluster's Redis
            // record turns from held to closed in the background), so the proof exists once
            // the service sees the close.
            let keep = self.state.shared.keep_restore_proof(
                self.token_keys(),
                self.proof_facts(),
                Duration::from_millis(self.resume.restore_ttl_ms),
                self.resume.restore_max,
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(keep);
            }
        }
        tracing::info!(lineage = self.lineage, "upstream connection closed");
    }
}

/// How an attached link ended.
#[derive(Debug)]
pub(super) enum End {
    /// A typed failure (policy, limit, upstream gone...): report it and close upstream.
    Failed(RelayError),
    /// The browser closed normally (1000): close upstream.
    BrowserClosed,
    /// The browser vanished: keep upstream for a resume.
    BrowserGone,
}

/// Most packages relayed toward the browser per wake-up before the loop looks at its other
/// work (pings, timers, the browser).
const SERVICE_BATCH: usize = 64;

/// What the upstream connection reported, for the attached loop.
fn from_service(r: Option<Result<ConnEvent, TransportError>>) -> Result<ConnEvent, End> {
    match r {
        Some(Ok(event)) => Ok(event),
        Some(Err(e)) => Err(End::Failed(transport_error(&e, During::Established))),
        None => Err(End::Failed(err(
            RelayErrorKind::Closed,
            "the service closed the connection",
        ))),
    }
}

impl ServiceLink {
    /// Relay one package from the service to the browser's queue (the caller checked that it
    /// has room).
    fn relay_to_browser<S>(&mut self, writer: &mut Writer<S>, p: &Package)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let data = self.service_package(p);
        let n = data.len();
        writer.push_package(data);
        self.sent_mark = self.ring.last_seq();
        self.state.metrics.relayed("to_browser", n);
    }
}

/// The earlier of two deadlines.
fn earliest(
    a: Option<std::time::Instant>,
    b: Option<std::time::Instant>,
) -> Option<std::time::Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Relay between the browser WebSocket and the service until one side ends or a rule does.
/// One task does it all: the upstream connection is driven here (its reads, writes and
/// heartbeats), the browser is read here, and packages toward the browser are written here
/// (the writer's queue drained in the same wake-up that filled it).
pub(super) async fn attached<S>(
    s: &mut ServiceLink,
    stream: &mut WsRead<S>,
    writer: &mut Writer<S>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ping_every = Duration::from_millis(s.limits.ping_interval_ms);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_seen = Instant::now();
    let out_budget = Arc::clone(&writer.budget);
    // One timer for the session, armed at the earliest deadline seen since it last fired and
    // moved only when a deadline comes earlier: the idle deadline moves with every package,
    // and re-arming a timer (the runtime's timer wheel, under its lock) each time would cost
    // every relayed package. A timer that fires before anything expired is re-armed.
    let mut timer = std::pin::pin!(tokio::time::sleep_until(Instant::now()));
    let mut armed: Option<std::time::Instant> = None;
    loop {
        // The rules' next deadline, or the browser write's stall limit if earlier.
        let timeout_at = earliest(
            s.rules.poll_timeout(),
            writer.stall_deadline().map(Instant::into_std),
        );
        if let Some(at) = timeout_at {
            if armed.is_none_or(|armed| at < armed) {
                timer.as_mut().reset(Instant::from_std(at));
                armed = Some(at);
            }
        }
        // Room toward the browser for one more package (its queue and the byte budgets).
        let room = writer.has_room();
        // Only the byte budget of all browsers together is short: wait for it.
        let wait_budget = !room && !writer.queue_full();
        let writing = writer.busy();
        // The service takes bytes: read the browser.
        let can_send = s.conn.can_send();
        tokio::select! {
            () = timer.as_mut(), if armed.is_some() => {
                armed = None;
                if writer.is_stalled(Instant::now()) {
                    tracing::info!(
                        stall_ms = writer.stall().as_millis() as u64,
                        "browser write stalled; treated as gone"
                    );
                    writer.give_up();
                    return End::BrowserGone;
                }
                if let Some(expired) = s.rules.handle_timeout(now()) {
                    if expired == Expired::LoginDeadline {
                        s.state.metrics.reject("login_deadline");
                    }
                    return End::Failed(s.rules.expiry_error(expired));
                }
            }
            // Toward the browser: what is queued, written and flushed.
            written = std::future::poll_fn(|cx| writer.poll_write(cx)), if writing => {
                if written.is_err() {
                    // The browser's socket failed.
                    return End::BrowserGone;
                }
            }
            () = unauthenticated_evicted(s.unauthenticated.as_ref()) => {
                // A full unauthenticated pool gave this slot to another client.
                return End::Failed(evicted(Pool::Unauthenticated));
            }
            _ = ping.tick() => {
                if !s.conn.can_send() {
                    // Backpressure from the service: the browser is not being read, so its
                    // pongs cannot be seen; do not count this interval against it.
                    last_seen = Instant::now();
                } else if last_seen.elapsed() > ping_every.saturating_mul(2) {
                    // Two intervals without a pong (or anything else): the browser is gone.
                    return End::BrowserGone;
                }
                writer.ping();
            }
            message = stream.next(), if can_send => {
                last_seen = Instant::now();
                match message {
                    Some(Ok(Message::Binary(data))) => {
                        // A package after `resumed`: the browser has the current token.
                        if let Some(presented) = s.prev_token.take() {
                            tokio::spawn(s.state.shared.forget_token(&presented));
                        }
                        let mut verdict = s.rules.handle_browser_package(now(), &data);
                        if let Ok(Verdict::Login(p, mut gate)) = verdict {
                            // The buckets are shared state: asked in turn (fail closed).
                            while let Some(key) = gate.next() {
                                gate.record(s.state.shared.login_attempt(key, now()).await);
                            }
                            verdict = s.rules.finish_login(now(), gate).map(|()| Verdict::Forward(p));
                        }
                        s.drain_events();
                        match verdict {
                            Ok(Verdict::Forward(p)) => {
                                let n = p.encoded_len();
                                if let Err(e) = s.conn.send(*p) {
                                    return End::Failed(transport_error(&e, During::Established));
                                }
                                s.count_to_service();
                                s.state.metrics.relayed("to_service", n);
                            }
                            Ok(Verdict::Login(..)) => {
                                return End::Failed(err(RelayErrorKind::Internal, "login not checked"));
                            }
                            Ok(Verdict::Ignore) => {}
                            Ok(Verdict::Refuse(e)) => {
                                // The session stays up: the browser hears why and goes on.
                                // (Boxed: a rare state, kept out of every idle session's task.)
                                if !Box::pin(writer.text(&ProxyMessage::Error(e))).await {
                                    return End::BrowserGone;
                                }
                            }
                            Err(e) => {
                                if e.kind == RelayErrorKind::ProtocolViolation {
                                    s.state.metrics.reject("protocol_violation");
                                }
                                return End::Failed(e);
                            }
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        s.state.metrics.reject("protocol_violation");
                        return End::Failed(err(RelayErrorKind::ProtocolViolation, "control messages are only accepted as the first message"));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return match frame {
                            Some(f) if f.code == CloseCode::Normal => End::BrowserClosed,
                            _ => End::BrowserGone,
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e @ WsError::Capacity(_))) => {
                        s.state.metrics.reject("limit_reached");
                        return End::Failed(ws_read_error(&e, &s.limits));
                    }
                    Some(Err(WsError::Protocol(p)))
                        if !matches!(p, ProtocolError::ResetWithoutClosingHandshake) =>
                    {
                        // A frame no browser sends (bad framing, opcode, masking): counted
                        // like one in the first message, then handled as a browser gone. A
                        // connection that merely ended without a close frame is a lost
                        // browser, not a violation.
                        s.state.metrics.reject("protocol_violation");
                        return End::BrowserGone;
                    }
                    Some(Err(_)) | None => return End::BrowserGone,
                }
            }
            // The service: packages while the browser's queue has room; queued writes and
            // heartbeats always.
            event = s.conn.next(room) => {
                let event = match from_service(event) {
                    Ok(event) => event,
                    Err(end) => return end,
                };
                s.count_to_service();
                if let ConnEvent::Package(p) = event {
                    // Asked for with room in the queue (`room`).
                    s.relay_to_browser(writer, &p);
                    // Whatever else arrived with it, while the queue takes it.
                    for _ in 1..SERVICE_BATCH {
                        if !writer.has_room() {
                            break;
                        }
                        let Some(p) = s.conn.take_ready() else { break };
                        s.relay_to_browser(writer, &p);
                    }
                }
            }
            // The queue has room but the budget of all browsers together is spent: wait for
            // other sessions to write. (A full queue or this session's budget is freed by the
            // writing branch above.)
            _ = out_budget.room(), if wait_budget => {}
        }
    }
}

/// Keep the upstream connection for the resume window, or close it. Only a link with a
/// successful login is kept: the client resumes nothing else, and parking unauthenticated
/// connections would let anyone fill `resume.max_detached` and hold service connections.
pub(super) fn detach_or_close(link: Box<ServiceLink>) {
    if link.resume.window_ms == 0 {
        return;
    }
    if !link.rules.logged_in() {
        tracing::info!(
            lineage = link.lineage,
            "browser gone before any login; upstream closed, not kept for resume"
        );
        return;
    }
    let hub = Arc::clone(&link.hub);
    let (claim_tx, claim_rx) = oneshot::channel();
    if !hub
        .parked
        .park(link.token_keys(), claim_tx, link.resume.max_detached)
    {
        link.state.metrics.reject("max_detached");
        return;
    }
    link.state.metrics.sessions_detached.inc();
    // A resume that reaches another instance of a cluster is sent here.
    tokio::spawn(link.state.shared.parked(
        link.token_keys(),
        Duration::from_millis(link.resume.window_ms),
    ));
    tracing::info!(
        lineage = link.lineage,
        window_ms = link.resume.window_ms,
        "browser gone; upstream kept for resume"
    );
    tokio::spawn(detached(link, claim_rx));
}

/// Wait for a resume (a claim through the registry), reading the service into the replay
/// ring while it has room, until the resume window or the lifetime ends.
async fn detached(
    mut link: Box<ServiceLink>,
    mut claim_rx: oneshot::Receiver<oneshot::Sender<Box<ServiceLink>>>,
) {
    let state = Arc::clone(&link.state);
    let hub = Arc::clone(&link.hub);
    link.rules
        .handle_detached(now(), Duration::from_millis(link.resume.window_ms));
    let outcome = loop {
        let accept = link.ring.can_accept_detached(link.sent_mark);
        let timeout_at = link.rules.poll_timeout();
        tokio::select! {
            _ = sleep_until(timeout_at) => {
                if let Some(expired) = link.rules.handle_timeout(now()) {
                    break expired.reason();
                }
            }
            claim = &mut claim_rx => match claim {
                Ok(reply) => {
                    state.metrics.sessions_detached.dec();
                    // If the resumer vanished meanwhile, the link is dropped (closed).
                    let _ = reply.send(link);
                    return;
                }
                Err(_) => break "claim dropped",
            },
            // Queued writes and heartbeats always; packages while the ring has room.
            r = link.conn.next(accept) => {
                link.count_to_service();
                match r {
                    Some(Ok(ConnEvent::Package(p))) => {
                        let _ = link.service_package(&p);
                    }
                    Some(Ok(ConnEvent::Writable)) => {}
                    Some(Err(_)) | None => break "service connection closed",
                }
            }
        }
    };
    // Not claimed: the link still holds the tokens it was parked under.
    hub.parked.unpark(link.token_keys());
    tokio::spawn(state.shared.unparked(link.token_keys()));
    state.metrics.sessions_detached.dec();
    tracing::info!(
        lineage = link.lineage,
        reason = outcome,
        "detached session closed"
    );
}
