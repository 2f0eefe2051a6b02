//! One connection to the service through the proxy: the relay exchange (`open` / `resume`),
//! installing an answered connection and its reader, and [`establish`] (open, then log in)
//! under the one connect clock.
//!
//! The connect clock: a connect is bounded on the client by one deadline, the core session's
//! (`ClientSession::connecting` sets it, `poll_timeout` names it, `handle_timeout` expires it),
//! driven by one timer while the client waits for the proxy's answer. The client gives the
//! session its own deadline ([`ConnectDeadline`]): the caller's budget plus a grace, so the
//! proxy's typed `timeout` for the same budget normally arrives first, or with no budget of
//! the caller's the backstop past the proxy's ceiling.

use futures_channel::mpsc;
use futures_util::StreamExt;
use gloo_timers::future::TimeoutFuture;
use prl_protocol::commands::{
    LoginLocalRequest, LoginRequest, LoginResponse, PAM_SERVER, PCF_ORIGINAL_CLIENT,
};
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    subprotocol_version, ClientMessage, OpenRequest, ProxyMessage, RelayError, RelayMessageError,
    Secret, Target, RELAY_VERSION, SUBPROTOCOL, SUBPROTOCOL_V1,
};
use prl_protocol::{parse_uuid, ErrorCode};
use wasm_bindgen::{JsCast, JsValue};
use zeroize::{Zeroize, Zeroizing};

use super::jobs;
use super::state::{new_id, now_ms, Client, Conn, ConnectParams, Credentials, TicketSource, Token};
use crate::abort::{guarded, AbortWatch, Interrupt};
use crate::error::{ClientError, Op};
use crate::relay_json::{self, CodecError};
use crate::ws::{Socket, WsEvent};

/// Extra time the client waits past the caller's connect budget before giving up on its own,
/// so the proxy's typed `timeout` error (same budget) normally arrives first.
pub(super) const CONNECT_GRACE_MS: u32 = 1_500;

/// With no budget of the caller's (`timeoutMs` 0), the proxy's ceiling bounds the connect
/// (60 s by default); this backstop (that ceiling plus a grace) bounds it on the client too, so
/// a proxy that accepts the WebSocket and then never answers cannot hold a login or an
/// automatic restore forever.
pub(super) const NO_BUDGET_BACKSTOP_MS: u32 = 75_000;

/// When the client gives up on a connect of its own accord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnectDeadline {
    /// The budget a `timeout` error reports.
    pub(super) budget_ms: u32,
    /// The session's deadline, from the start of the connect.
    pub(super) after_ms: u32,
}

impl ConnectDeadline {
    /// The deadline for the caller's `timeoutMs` (0: none of the caller's).
    pub(super) fn for_budget(timeout_ms: u32) -> Self {
        if timeout_ms > 0 {
            ConnectDeadline {
                budget_ms: timeout_ms,
                after_ms: timeout_ms.saturating_add(CONNECT_GRACE_MS),
            }
        } else {
            ConnectDeadline {
                budget_ms: NO_BUDGET_BACKSTOP_MS,
                after_ms: NO_BUDGET_BACKSTOP_MS,
            }
        }
    }
}

/// What to do when an installed connection ends: `(client, generation, why)`.
pub(super) type OnLost = fn(&Client, u64, ClientError);

/// `base64_password` is "service protocol >= 6.9"; unparseable text counts as current.
pub(super) fn base64_password(service_protocol: &str) -> bool {
    let mut parts = service_protocol.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 9),
        _ => true,
    }
}

/// Resolves when the session's connect deadline has passed: one timer armed at the session's
/// `poll_timeout`, re-armed until `handle_timeout` reports the expiry.
async fn connect_deadline(client: &Client) {
    loop {
        let next = client.borrow().session.poll_timeout();
        let Some(at) = next else {
            return std::future::pending().await;
        };
        // A deadline already past waits 0 ms (`as` saturates); a far one is waited for in
        // steps a browser timer can hold (it takes an i32: more fires at once).
        let wait = (at as f64 - now_ms()).min(f64::from(i32::MAX)) as u32;
        TimeoutFuture::new(wait).await;
        let expired = client.with(|state| {
            state.session.handle_timeout(now_ms() as u64);
            state.drain()
        });
        if expired {
            return;
        }
    }
}

async fn resolve_ticket(client: &Client, op: Op) -> Result<Option<Zeroizing<String>>, ClientError> {
    let provider = match &client.borrow().opts.ticket {
        TicketSource::None => return Ok(None),
        TicketSource::Fixed(t) => return Ok(Some(t.clone())),
        TicketSource::Provider(f) => f.clone(),
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
pub(super) fn take_token(secret: &mut Secret) -> Token {
    Zeroizing::new(std::mem::take(&mut secret.0))
}

/// An answered relay request: the socket, its events and the proxy's first message.
pub(super) type Exchange = (Socket, mpsc::UnboundedReceiver<WsEvent>, ProxyMessage);

/// What ends a relay exchange the proxy does not answer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bound {
    /// The session's connect deadline (an `open`); a timeout reports the caller's budget.
    Connect(ConnectDeadline),
    /// A fixed wait in ms (a `resume`).
    Fixed(u32),
}

/// Opens a WebSocket to `url` (the proxy's, unless another instance of a cluster is named),
/// sends `message`, and returns the socket, its events and the proxy's answer, unless `bound`
/// ends first (`timeout`) or `abort` fires (`canceled`).
pub(super) async fn relay_exchange(
    client: &Client,
    message: ClientMessage,
    op: Op,
    bound: Bound,
    abort: &mut Option<AbortWatch>,
    url: Option<&str>,
) -> Result<Exchange, ClientError> {
    let timer = async {
        match bound {
            Bound::Connect(_) => connect_deadline(client).await,
            Bound::Fixed(ms) => TimeoutFuture::new(ms).await,
        }
    };
    match guarded(exchange(client, message, op, url), timer, abort).await {
        Ok(answered) => answered,
        Err(Interrupt::Aborted) => Err(ClientError::canceled(op)),
        Err(Interrupt::TimedOut) => Err(ClientError::Timeout {
            op,
            ms: match bound {
                Bound::Connect(deadline) => deadline.budget_ms,
                Bound::Fixed(ms) => ms,
            },
        }),
    }
}

async fn exchange(
    client: &Client,
    mut message: ClientMessage,
    op: Op,
    url: Option<&str>,
) -> Result<Exchange, ClientError> {
    let url = url.map_or_else(|| client.borrow().opts.proxy_url.clone(), str::to_owned);
    // The URL was checked when the Server was made (another instance's came from the proxy):
    // a throwing constructor means no usable WebSocket here (none in this runtime, or one the
    // page's policy forbids). Both relay versions are offered, the newest first.
    let (socket, mut rx) = Socket::connect(&url, &[SUBPROTOCOL, SUBPROTOCOL_V1]).map_err(|_| {
        ClientError::ProxyUnreachable {
            op,
            url: url.clone(),
        }
    })?;
    wait_open(&socket, &mut rx, op, &url).await?;
    let protocol = socket.protocol();
    let Some(version) = subprotocol_version(&protocol) else {
        return Err(ClientError::protocol(
            op,
            format!("proxy selected subprotocol \"{protocol}\", expected \"{SUBPROTOCOL}\""),
        ));
    };
    message.set_version(version);
    let encoded = relay_json::encode(&message);
    wipe(message);
    let json = encoded.map_err(|e| match e {
        CodecError::Relay(RelayMessageError::TooLong { .. }) => ClientError::InvalidArgument(
            format!("{} failed: {e} (is the ticket too long?)", op.as_str()),
        ),
        e => ClientError::protocol(op, e.to_string()),
    })?;
    socket
        .send_text(&json)
        .map_err(|_| ClientError::closed(op, "websocket closed before the request was sent"))?;
    let answer = next_control(&mut rx, op).await?;
    Ok((socket, rx, answer))
}

/// The proxy's typed error as the client's.
pub(super) fn relay_error(op: Op, e: RelayError) -> ClientError {
    ClientError::Relay {
        op,
        kind: e.kind,
        code: e.code,
        message: e.message,
    }
}

/// Installs an answered connection and starts its reader; `on_lost` runs when it ends.
/// `instance`: the public URL of the cluster instance that holds it, if the proxy said.
#[allow(clippy::too_many_arguments)]
pub(super) fn install(
    client: &Client,
    socket: Socket,
    rx: mpsc::UnboundedReceiver<WsEvent>,
    received: u64,
    resume_token: Token,
    resume_window_ms: u32,
    instance: Option<String>,
    on_lost: OnLost,
) {
    let generation = {
        let mut state = client.borrow_mut();
        state.generation = state.generation.wrapping_add(1);
        let generation = state.generation;
        state.conn = Some(Conn {
            socket,
            generation,
            received,
            resume_token,
            resume_window_ms,
            instance,
            relay_error: None,
        });
        generation
    };
    wasm_bindgen_futures::spawn_local(pump(client.clone(), generation, rx, on_lost));
}

/// Reads one connection's events until it ends or is replaced.
async fn pump(
    client: Client,
    generation: u64,
    mut rx: mpsc::UnboundedReceiver<WsEvent>,
    on_lost: OnLost,
) {
    while let Some(event) = rx.next().await {
        let current = {
            let state = client.borrow();
            state.generation == generation
                && state
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
        };
        if !current {
            return;
        }
        match event {
            WsEvent::Binary(bytes) => {
                let bad = client.with(|state| {
                    if let Some(conn) = state.conn.as_mut() {
                        conn.received = conn.received.saturating_add(1);
                    }
                    // The proxy bounds what it forwards (`limits.max_package_bytes`); the
                    // message is already in memory, so the client takes what the real IO
                    // layer takes (a VM list is ~20 KB per VM: 1000 VMs are ~20 MB).
                    match Package::decode(&bytes, &Limits::protocol()) {
                        Ok(package) => {
                            // A reply that does not parse fails its job (FAILURE) inside the
                            // session; nothing else to do here.
                            let _ = state.session.handle_package(package);
                            state.drain();
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    }
                });
                if let Some(detail) = bad {
                    let e = ClientError::protocol(
                        Op::Connect,
                        format!("bad package from the proxy: {detail}"),
                    );
                    on_lost(&client, generation, e);
                    return;
                }
            }
            WsEvent::Text(text) => match relay_json::decode(&text) {
                // A request the relay's command scope refused: its job fails, the connection
                // stays.
                Ok(ProxyMessage::Error(e)) if !e.kind.is_fatal() => refused(&client, e),
                Ok(ProxyMessage::Error(e)) => {
                    if let Some(conn) = client.borrow_mut().conn.as_mut() {
                        conn.relay_error = Some(e);
                    }
                }
                _ => {}
            },
            WsEvent::Open | WsEvent::Error => {}
            WsEvent::Close { code, reason } => {
                let relay = client
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
                on_lost(&client, generation, err);
                return;
            }
        }
    }
}

/// The relay refused the request it names (`command_refused`): that job fails with the relay's
/// error; the core session forgets it (a reply cannot come: the request never reached the
/// service).
fn refused(client: &Client, e: RelayError) {
    let Some(job) = e.refused_request() else {
        return;
    };
    client.with(|state| {
        let code = ErrorCode(e.code.unwrap_or(ErrorCode::ACCESS_DENIED.0));
        if let Some(pending) = state.jobs.remove(&job) {
            let _ = pending.waiter.send(Err(relay_error(Op::Connect, e)));
        }
        let _ = state.session.refused_by_relay(job, code);
        state.drain();
    });
}

/// A login on a new connection (by `login` / `loginLocal` and by restore).
#[derive(Debug)]
pub(super) struct LoginPlan<'a> {
    /// The operation errors name.
    pub(super) op: Op,
    /// Where and how to connect.
    pub(super) params: &'a ConnectParams,
    /// Who logs in.
    pub(super) credentials: &'a Credentials,
    /// The previous session to name ("" for none).
    pub(super) prev_session: &'a str,
    /// The proof for `prev_session`, when this object had that session.
    pub(super) proof: Option<Token>,
}

/// Opens a new upstream connection and logs in. On failure the connection is torn down; the
/// caller sets the phase. `on_lost` runs when the installed connection ends later.
pub(super) async fn establish(
    client: &Client,
    plan: LoginPlan<'_>,
    abort: &mut Option<AbortWatch>,
    on_lost: OnLost,
) -> Result<LoginResponse, ClientError> {
    let op = plan.op;
    let result = open_and_log_in(client, plan, abort, on_lost).await;
    if result.is_err() {
        client.with(|state| state.teardown(ClientError::closed(op, "login failed")));
    }
    result
}

async fn open_and_log_in(
    client: &Client,
    plan: LoginPlan<'_>,
    abort: &mut Option<AbortWatch>,
    on_lost: OnLost,
) -> Result<LoginResponse, ClientError> {
    let LoginPlan {
        op,
        params,
        credentials,
        prev_session,
        proof,
    } = plan;
    if abort.as_ref().is_some_and(AbortWatch::aborted) {
        return Err(ClientError::canceled(op));
    }
    let ticket = resolve_ticket(client, op).await?;
    let deadline = ConnectDeadline::for_budget(params.timeout_ms);
    client
        .borrow_mut()
        .session
        .connecting(now_ms() as u64, u64::from(deadline.after_ms))
        .map_err(|_| ClientError::InvalidState {
            op,
            detail: "a connection is already being established",
            code: ErrorCode::ALREADY_CONNECTED_TO_DISPATCHER,
        })?;
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
        restore: proof.as_ref().map(|t| Secret(t.to_string())),
    });
    drop(ticket);
    drop(proof);
    let (socket, rx, answer) =
        relay_exchange(client, open, op, Bound::Connect(deadline), abort, None).await?;
    let mut opened = match answer {
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
        client,
        socket,
        rx,
        0,
        take_token(&mut opened.resume_token),
        opened.resume_window_ms,
        opened.instance.take(),
        on_lost,
    );
    let base64 = base64_password(&opened.service_protocol);
    let job = jobs::start(client, op, None, |state, job| {
        let session = &mut state.session;
        session
            .connected(now_ms() as u64, connection_uuid, base64)
            .map_err(|_| ClientError::protocol(op, "session not connecting"))?;
        let sent = match credentials {
            Credentials::Remote { user, password } => {
                let request = LoginRequest {
                    user: user.to_string(),
                    password: password.clone(),
                    prev_session_uuid: prev_session.to_owned(),
                    flags: PCF_ORIGINAL_CLIENT,
                };
                session.login(job, &request, &mut new_id)
            }
            Credentials::Local => {
                let request = LoginLocalRequest {
                    application_mode: PAM_SERVER,
                    prev_session_uuid: prev_session.to_owned(),
                    flags: PCF_ORIGINAL_CLIENT,
                };
                session.login_local(job, &request, &mut new_id)
            }
        };
        sent.map(drop)
            .map_err(|_| ClientError::protocol(op, "session refused the login"))
    })?;
    // The SDK puts no timer on the login reply (only the connect budget above).
    job.outcome(client, abort).await?.into_login(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::session::{ClientSession, SessionConfig, SessionEvent, SessionState};

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

    /// The client's deadline in the core session, driven in virtual time as `connect_deadline`
    /// drives it: nothing before the deadline, `ConnectTimedOut` at it.
    fn expires_at(timeout_ms: u32) -> u64 {
        let deadline = ConnectDeadline::for_budget(timeout_ms);
        let mut session = ClientSession::new(SessionConfig {
            heartbeat_interval_ms: None,
        });
        let start = 1_000_000;
        session
            .connecting(start, u64::from(deadline.after_ms))
            .expect("connecting");
        let at = session.poll_timeout().expect("a deadline");
        session.handle_timeout(at - 1);
        assert_eq!(session.state(), SessionState::Connecting);
        assert!(!std::iter::from_fn(|| session.poll_event())
            .any(|e| e == SessionEvent::ConnectTimedOut));
        session.handle_timeout(at);
        assert!(
            std::iter::from_fn(|| session.poll_event()).any(|e| e == SessionEvent::ConnectTimedOut)
        );
        assert_eq!(session.poll_timeout(), None);
        at - start
    }

    #[test]
    fn a_budget_gets_the_grace_and_no_budget_the_backstop() {
        assert_eq!(expires_at(2_000), 3_500);
        assert_eq!(expires_at(1), 1_501);
        assert_eq!(expires_at(0), 75_000);
        assert_eq!(expires_at(u32::MAX), u64::from(u32::MAX));
        assert_eq!(ConnectDeadline::for_budget(0).budget_ms, 75_000);
        assert_eq!(ConnectDeadline::for_budget(2_000).budget_ms, 2_000);
    }
}
