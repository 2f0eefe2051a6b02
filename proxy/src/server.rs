//! The listener: TLS, HTTP/1.1 (hyper), the checked WebSocket upgrade, static files,
//! health, readiness and metrics endpoints, connection caps, and reload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::config::{Config, LimitsConfig};
use crate::forwarded::{ClientAddr, Outcome};
use crate::origin::normalize_origin;
use crate::relay::RelayHub;
use crate::shared_state::{MemoryState, RedisState, SharedState};
use crate::state::{ActiveConfig, Admission, ConnSlots, ProxyState};
use crate::static_files::{StaticFile, StaticResult, SECURITY_HEADERS};
use crate::ticket::{check_ticket, Claims};
use crate::tls::TlsState;
use crate::util::unix_now;

pub use crate::state::StartError;
pub use prl_protocol::relay::{SUBPROTOCOL, SUBPROTOCOL_V1, TICKET_SUBPROTOCOL_PREFIX};

/// A running proxy's control handle.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    state: Arc<ProxyState>,
}

impl ProxyHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// `ws://ADDR` or `wss://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.state.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.state.local_addr)
    }

    /// The configuration in force (after the last successful reload).
    pub fn config(&self) -> Config {
        self.state.active().config.clone()
    }

    /// The Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.state.metrics.render()
    }

    /// Whether the shared state answers (always for a single proxy; a cluster's Redis may
    /// not: then `/readyz` says `degraded`).
    pub fn shared_state_available(&self) -> bool {
        self.state.shared.available()
    }

    /// PEM of the self-signed certificate, if one was generated.
    pub fn self_signed_pem(&self) -> Option<String> {
        self.state
            .tls
            .as_ref()
            .and_then(|t| t.self_signed_pem.clone())
    }

    /// Reload the config file: policy, origins, tickets, static files, limits of new
    /// sessions, and the certificate. Open sessions are untouched.
    pub fn reload(&self) -> Result<(), StartError> {
        let path = self
            .state
            .config_path
            .as_ref()
            .ok_or(StartError::NoConfigFile)?;
        let config = Config::load(path)?;
        self.reload_with(config)
    }

    /// Apply a new configuration (see [`ProxyHandle::reload`]).
    pub fn reload_with(&self, config: Config) -> Result<(), StartError> {
        let old = self.state.active();
        if config.server.listen != old.config.server.listen {
            tracing::warn!("server.listen changed: applied at the next start only");
        }
        if format!("{:?}", config.cluster) != format!("{:?}", old.config.cluster) {
            tracing::warn!("[cluster] changed: applied at the next start only");
        }
        // Build and check everything first; swap only when all of it is good, so a bad
        // reload leaves the certificate and the configuration as they were.
        let cert = match (&self.state.tls, &config.tls) {
            (Some(_), Some(tls)) => Some(TlsState::prepare(tls, self.state.local_addr.ip())?),
            _ => {
                if config.tls.is_some() != self.state.tls.is_some() {
                    tracing::warn!("[tls] added or removed: applied at the next start only");
                }
                None
            }
        };
        let active = ActiveConfig::build(config, self.state.local_addr, self.state.tls.is_some())?;
        if let (Some(tls), Some(cert)) = (&self.state.tls, cert) {
            tls.install(cert);
        }
        self.state.install(active);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Stop accepting; readiness turns false. A cluster instance withdraws its registration
    /// (resumes of its links are no longer sent here) once the listener has stopped.
    pub fn shutdown(&self) {
        self.state.ready.store(false, Ordering::SeqCst);
        let _ = self.state.shutdown.send(true);
    }

    /// Reload on every SIGHUP (unix), logging failures; runs until shutdown.
    #[cfg(unix)]
    pub fn spawn_sighup_reloader(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        let mut stop = self.state.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    s = hup.recv() => {
                        if s.is_none() { break; }
                        // Under systemd (Type=notify) the unit shows "reloading" until READY=1.
                        use sd_notify::{notify, NotifyState};
                        if let Ok(now) = NotifyState::monotonic_usec_now() {
                            let _ = notify(&[NotifyState::Reloading, now]);
                        }
                        if let Err(e) = handle.reload() {
                            tracing::error!(error = %e, kind = e.kind(), "reload failed; keeping the previous configuration");
                        }
                        let _ = notify(&[NotifyState::Ready]);
                    }
                    _ = stop.changed() => break,
                }
            }
        });
        Ok(())
    }
}

/// A bound, not yet running proxy.
#[derive(Debug)]
pub struct Proxy {
    state: Arc<ProxyState>,
    hub: Arc<RelayHub>,
    listener: TcpListener,
}

impl Proxy {
    /// Bind the listener and build every component. `config_path` enables [`ProxyHandle::reload`].
    pub async fn bind(config: Config, config_path: Option<PathBuf>) -> Result<Proxy, StartError> {
        config.validate()?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let tls = match &config.tls {
            Some(t) => Some(TlsState::new(t, local_addr.ip())?),
            None => None,
        };
        let replay_size = config
            .tickets
            .as_ref()
            .map(|t| t.replay_cache_size)
            .unwrap_or(100_000);
        let hub = RelayHub::new(&config.limits);
        let metrics = crate::metrics::Metrics::new();
        let shared: Arc<dyn SharedState> = match &config.cluster {
            None => Arc::new(MemoryState::new(&config.limits, replay_size, unix_now())),
            Some(cluster) => RedisState::start(cluster, &config.limits, &config.resume, &metrics)
                .map_err(StartError::Cluster)?,
        };
        let active = ActiveConfig::build(config, local_addr, tls.is_some())?;
        let state = Arc::new(ProxyState::new(
            active,
            tls,
            local_addr,
            config_path,
            metrics,
            shared,
        ));
        Ok(Proxy {
            state,
            hub,
            listener,
        })
    }

    /// The control handle.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// Accept connections until [`ProxyHandle::shutdown`].
    pub async fn run(self) {
        let Proxy {
            state,
            hub,
            listener,
        } = self;
        state.ready.store(true, Ordering::SeqCst);
        let mut stop = state.shutdown.subscribe();
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let trusted = state.active().trusted.trusts(peer.ip());
            match state.caps.admit(peer.ip(), trusted, &state.metrics) {
                Ok(Admission::Ready(slots)) => {
                    let (state, hub) = (Arc::clone(&state), Arc::clone(&hub));
                    tokio::spawn(handle_connection(state, hub, tcp, peer, slots));
                }
                Ok(Admission::Busy { slots, reason }) => {
                    state.metrics.reject(reason);
                    tokio::spawn(refuse_busy(Arc::clone(&state), tcp, slots));
                }
                Err(reason) => state.metrics.reject(reason),
            }
        }
        state.ready.store(false, Ordering::SeqCst);
        state.shared.shutdown().await;
    }
}

impl Proxy {
    /// Checks a configuration with the same loaders [`Proxy::bind`] and [`ProxyHandle::reload`]
    /// use, without binding or serving: [`Config::validate`], the certificate and key (or the
    /// self-signed one), the ticket key, the target policy and the static directories
    /// (`prl-proxy check-config`).
    pub fn check(config: Config) -> Result<(), StartError> {
        config.validate()?;
        let listen = config.server.listen;
        let tls = match &config.tls {
            Some(t) => Some(TlsState::new(t, listen.ip())?),
            None => None,
        };
        if let Some(cluster) = &config.cluster {
            RedisState::check(cluster).map_err(StartError::Cluster)?;
        }
        ActiveConfig::build(config, listen, tls.is_some()).map(drop)
    }
}

/// How long a connection refused for want of a pre-auth slot may take to get its 503.
const BUSY_GRACE: Duration = Duration::from_secs(2);

/// `Retry-After` of a 503 for want of a pre-auth slot: by then the first-message deadline
/// has turned every pre-auth slot over.
fn retry_after(limits: &LimitsConfig) -> u64 {
    limits.first_message_timeout_ms.div_ceil(1000).max(1)
}

/// Answer a connection that found no pre-auth slot with HTTP 503 and `Retry-After` (over
/// TLS if configured), within [`BUSY_GRACE`], and close it. Its connection slots are held
/// meanwhile, so these answers are bounded by the connection caps too.
async fn refuse_busy(state: Arc<ProxyState>, tcp: TcpStream, slots: Arc<ConnSlots>) {
    let _ = tcp.set_nodelay(true);
    let body = "too many connections\n";
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {}\r\ncontent-type: text/plain; \
         charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        retry_after(&state.active().config.limits),
        body.len()
    );
    for (k, v) in SECURITY_HEADERS {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    let answer = async {
        match &state.tls {
            Some(tls) => {
                if let Ok(mut s) = tls.acceptor.accept(tcp).await {
                    write_and_close(&mut s, response.as_bytes()).await;
                }
            }
            None => {
                let mut tcp = tcp;
                write_and_close(&mut tcp, response.as_bytes()).await;
            }
        }
    };
    let _ = tokio::time::timeout(BUSY_GRACE, answer).await;
    drop(slots);
}

/// Write `bytes`, shut down the sending side, and read until the peer closes (so that
/// closing with unread request bytes does not reset the connection before the peer has
/// read the answer).
async fn write_and_close<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(bytes).await.is_err() || s.shutdown().await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn handle_connection(
    state: Arc<ProxyState>,
    hub: Arc<RelayHub>,
    tcp: TcpStream,
    peer: SocketAddr,
    slots: Arc<ConnSlots>,
) {
    let _ = tcp.set_nodelay(true);
    let limits = state.active().config.limits.clone();
    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
    let conn = Arc::clone(&slots);
    let serve = async move {
        match &state.tls {
            Some(tls) => match tokio::time::timeout(deadline, tls.acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_http(state, hub, stream, peer, slots, &limits).await,
                Ok(Err(_)) => state.metrics.reject("tls_handshake"),
                Err(_) => state.metrics.reject("handshake_timeout"),
            },
            None => serve_http(state, hub, tcp, peer, slots, &limits).await,
        }
    };
    // A full pre-auth pool may give this connection's slot to another client before its
    // upgrade (TLS handshake, request head): it is closed (counted when evicted). After the
    // upgrade the relay watches for it and answers with a relay error.
    tokio::select! {
        () = serve => {}
        () = conn.preauth_evicted() => {}
    }
}

async fn serve_http<S>(
    state: Arc<ProxyState>,
    hub: Arc<RelayHub>,
    io: S,
    peer: SocketAddr,
    slots: Arc<ConnSlots>,
    limits: &LimitsConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_state = Arc::clone(&state);
    let svc = service_fn(move |req| {
        let state = Arc::clone(&svc_state);
        let hub = Arc::clone(&hub);
        let slots = Arc::clone(&slots);
        async move {
            let tls = state.tls.is_some();
            let mut response = route(state, hub, peer, slots, req).await;
            if tls {
                // Served over https: browsers keep to https for this host for a year.
                response.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(HSTS),
                );
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.handshake_timeout_ms))
        .max_buf_size(16 * 1024)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if tokio::time::timeout(Duration::from_millis(limits.http_connection_ms), conn)
        .await
        .is_err()
    {
        state.metrics.reject("http_connection_timeout");
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A static file, streamed in 64 KiB chunks (never read whole into memory).
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    use tokio::io::AsyncReadExt;
    let chunks = futures_util::stream::try_unfold((file, len), |(mut f, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; usize::try_from(left.min(64 * 1024)).unwrap_or(64 * 1024)];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.truncate(n);
        Ok(Some((Frame::data(Bytes::from(buf)), (f, left - n as u64))))
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// The client of `req` from `peer` (the forwarding header of a trusted proxy, see
/// [`crate::forwarded`]), counted in `prl_proxy_forwarded_total` and, when a trusted proxy's
/// header could not be used, logged.
fn client_of(
    state: &ProxyState,
    active: &ActiveConfig,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> ClientAddr {
    let (client, outcome) = active.trusted.resolve(peer.ip(), req.headers());
    if let Some(label) = outcome.label() {
        state.metrics.forwarded(label);
    }
    match outcome {
        Outcome::Malformed(why) => tracing::info!(
            peer = %peer.ip(),
            why,
            "malformed forwarding header from a trusted proxy; the client is the proxy"
        ),
        Outcome::Unknown | Outcome::Missing => tracing::debug!(
            peer = %peer.ip(),
            outcome = outcome.label().unwrap_or_default(),
            "a trusted proxy did not name the client; the client is the proxy"
        ),
        Outcome::Direct | Outcome::Ignored | Outcome::Forwarded => {}
    }
    client
}

/// Whether a reverse proxy passed `req` on: its loopback peer address then says nothing about
/// the real client, so loopback-only endpoints refuse it.
fn forwarded(req: &Request<Incoming>) -> bool {
    ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h))
}

/// `Strict-Transport-Security` of every response over TLS (not `includeSubDomains`: the
/// proxy's operator may not own every subdomain).
const HSTS: &str = "max-age=31536000";

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    respond_body(status, content_type, full(body))
}

fn respond_body(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

async fn route(
    state: Arc<ProxyState>,
    hub: Arc<RelayHub>,
    peer: SocketAddr,
    slots: Arc<ConnSlots>,
    req: Request<Incoming>,
) -> Response<Body> {
    let active = state.active();
    let client = client_of(&state, &active, peer, &req);
    // Behind a trusted proxy the connection counts against the share of the client this
    // request names (its peer's otherwise, which it already does).
    if let Err(reason) = state.caps.bind_client(&slots, client.ip) {
        state.metrics.reject(reason);
        tracing::info!(client = %client, reason, "request refused");
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let path = req.uri().path().to_string();
    if path == active.config.server.ws_path {
        // A keep-alive connection that served plain requests gave its pre-auth slot back,
        // and a trusted proxy's connection has no client share yet: an upgrade needs both.
        if let Err(reason) = state
            .caps
            .reacquire_preauth(&slots, client.ip, &state.metrics)
        {
            state.metrics.reject(reason);
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after(&active.config.limits)),
            );
            if active.trusted.trusts(peer.ip()) {
                // The front end's connection: closed, so it gives back the total slot too.
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return r;
        }
        return websocket(state, hub, active, client, slots, req).await;
    }
    // A plain HTTP request (static file, health, metrics) is not a relay waiting to
    // authenticate: the connection stops counting against the pre-auth cap (it still counts
    // against the total and per-IP caps).
    slots.release_preauth();
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let mut resp = match path.as_str() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if !state.ready.load(Ordering::SeqCst) {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            } else if !state.shared.available() {
                // A cluster instance that cannot reach Redis refuses new logins: a balancer
                // should send them elsewhere. Attached sessions go on.
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "degraded: shared state unavailable\n",
                )
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/metrics" => {
            let m = &active.config.metrics;
            if !m.enabled {
                text(StatusCode::NOT_FOUND, "not found\n")
            } else if !m.allow_remote
                && (!crate::policy::canonical(peer.ip()).is_loopback()
                    || forwarded(&req)
                    || active.trusted.trusts(peer.ip()))
            {
                text(StatusCode::FORBIDDEN, "forbidden\n")
            } else {
                respond(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    state.metrics.render(),
                )
            }
        }
        _ => match active
            .static_files
            .lookup(&path, header_str(req.headers(), header::ACCEPT_ENCODING))
            .await
        {
            StaticResult::File(f) => return static_response(f, head, req.headers()),
            StaticResult::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
            StaticResult::BadPath => text(StatusCode::BAD_REQUEST, "bad path\n"),
            StaticResult::TooLarge => text(StatusCode::PAYLOAD_TOO_LARGE, "too large\n"),
        },
    };
    if head {
        *resp.body_mut() = full(Bytes::new());
    }
    resp
}

/// A static file's response: `304 Not Modified` when `If-None-Match` names it, else the file
/// (its body unless `head`), with its validator, encoding and `Vary`.
fn static_response(f: StaticFile, head: bool, request: &HeaderMap) -> Response<Body> {
    let not_modified =
        header_str(request, header::IF_NONE_MATCH).is_some_and(|tags| f.matches(tags));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, full(Bytes::new()))
    } else if head {
        (StatusCode::OK, full(Bytes::new()))
    } else {
        (StatusCode::OK, file_body(f.file, f.len))
    };
    let mut r = respond_body(status, f.mime, body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&f.etag) {
        h.insert(header::ETAG, v);
    }
    if f.varies {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified {
        // A 304 carries the validators, not the representation's length or encoding.
        h.remove(header::CONTENT_TYPE);
        return r;
    }
    if let Some(coding) = f.encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(f.len));
    r
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The offered subprotocols: the newest relay version among them (if any), and the ticket
/// entry.
fn offered_protocols(h: &HeaderMap) -> Result<(Option<u32>, Option<String>), &'static str> {
    let mut relay: Option<u32> = None;
    let mut ticket = None;
    for entry in h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let entry = entry.trim();
        if let Some(v) = prl_protocol::relay::subprotocol_version(entry) {
            relay = relay.max(Some(v));
        } else if let Some(t) = entry.strip_prefix(TICKET_SUBPROTOCOL_PREFIX) {
            if ticket.is_some() {
                return Err("more than one ticket offered");
            }
            ticket = Some(t.to_string());
        }
    }
    Ok((relay, ticket))
}

/// Validate the upgrade request completely, then switch protocols.
async fn websocket(
    state: Arc<ProxyState>,
    hub: Arc<RelayHub>,
    active: Arc<ActiveConfig>,
    client: ClientAddr,
    slots: Arc<ConnSlots>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let reject = |reason: &'static str, status: StatusCode, body: &'static str| {
        state.metrics.reject(reason);
        tracing::info!(client = %client, reason, "websocket upgrade refused");
        text(status, body)
    };
    let h = req.headers();
    if req.method() != Method::GET {
        return reject(
            "bad_upgrade",
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
        );
    }
    // Nothing secret ever travels in the URL; a query string is refused outright.
    if req.uri().query().is_some() {
        return reject(
            "query_in_url",
            StatusCode::BAD_REQUEST,
            "query strings are not accepted\n",
        );
    }
    if !has_token(h, header::UPGRADE, "websocket")
        || !has_token(h, header::CONNECTION, "upgrade")
        || header_str(h, header::SEC_WEBSOCKET_VERSION) != Some("13")
    {
        return reject(
            "bad_upgrade",
            StatusCode::BAD_REQUEST,
            "websocket upgrade required\n",
        );
    }
    let Some(key) = header_str(h, header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
        return reject(
            "bad_upgrade",
            StatusCode::BAD_REQUEST,
            "missing sec-websocket-key\n",
        );
    };
    // Origin: exact allow-list, before anything else is looked at.
    let origin_header = header_str(h, header::ORIGIN);
    if !active.origins.allows(origin_header) {
        return reject(
            "origin_denied",
            StatusCode::FORBIDDEN,
            "origin not allowed\n",
        );
    }
    let origin = origin_header.and_then(normalize_origin).unwrap_or_default();
    let (relay, ticket) = match offered_protocols(h) {
        Ok(x) => x,
        Err(_) => {
            return reject(
                "ticket_invalid",
                StatusCode::BAD_REQUEST,
                "more than one ticket offered\n",
            )
        }
    };
    let Some(version) = relay else {
        return reject(
            "bad_subprotocol",
            StatusCode::BAD_REQUEST,
            "subprotocol prl-relay.v2 or prl-relay.v1 required\n",
        );
    };
    // A ticket in the header is verified and consumed now; its target binding is checked
    // when the open message names the target.
    let header_claims: Option<Claims> = match (ticket, &active.tickets) {
        (Some(t), Some(tickets)) => {
            let checked =
                check_ticket(tickets, &*state.shared, &t, &origin, unix_now(), |_| Ok(())).await;
            match checked {
                Ok(c) => Some(c),
                Err(crate::ticket::TicketError::Unavailable) => {
                    tracing::info!(client = %client, "ticket not checked: shared state unavailable");
                    return reject(
                        "state_unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        "shared state unavailable; try again later\n",
                    );
                }
                Err(e) => {
                    state.metrics.ticket_refused(e.kind());
                    tracing::info!(client = %client, reason = e.kind(), "ticket refused");
                    return reject("ticket_invalid", StatusCode::FORBIDDEN, "ticket invalid\n");
                }
            }
        }
        (Some(_), None) => {
            return reject(
                "ticket_invalid",
                StatusCode::FORBIDDEN,
                "tickets are not enabled\n",
            );
        }
        (None, _) => None,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let ws_config = ActiveConfig::ws_config(&active.config.limits);
    let ctx = crate::relay::Context {
        state: Arc::clone(&state),
        hub,
        client,
        origin,
        header_claims,
        slots,
        version,
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    crate::batch::BatchWriter::new(crate::firstcap::FirstMessageCap::new(
                        crate::readahead::ReadAhead::new(TokioIo::new(upgraded)),
                    )),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                crate::relay::serve(ws, ctx).await;
            }
            Err(_) => ctx.state.metrics.reject("upgrade_failed"),
        }
    });
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = resp.headers_mut();
    rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    rh.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(prl_protocol::relay::subprotocol_name(version)),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    fn write_cert(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key, ck.cert.der().to_vec())
    }

    fn config(cert: &std::path::Path, key: &std::path::Path, extra: &str) -> Config {
        let mut c = Config::from_toml_str(&format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
            cert.display().to_string(),
            key.display().to_string()
        ))
        .unwrap();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c
    }

    fn leaf(h: &ProxyHandle) -> Vec<u8> {
        h.state.tls.as_ref().unwrap().current_leaf().unwrap()
    }

    #[tokio::test]
    async fn a_failed_reload_changes_neither_certificate_nor_config() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1, der1) = write_cert(dir.path(), "one.test");
        let (c2, k2, der2) = write_cert(dir.path(), "two.test");
        let proxy = Proxy::bind(config(&c1, &k1, ""), None).await.unwrap();
        let h = proxy.handle();
        assert_eq!(leaf(&h), der1);
        // A new, valid certificate with a ticket key that cannot be loaded: refused whole.
        let missing = dir.path().join("missing.key");
        let bad = config(
            &c2,
            &k2,
            &format!(
                "[tickets]\nkey_file = {:?}\n",
                missing.display().to_string()
            ),
        );
        assert!(h.reload_with(bad).is_err());
        assert!(
            leaf(&h) == der1,
            "the certificate changed before the config was checked"
        );
        assert!(h.state.active().tickets.is_none());
        // The same certificate with a good config goes in.
        h.reload_with(config(&c2, &k2, "")).unwrap();
        assert_eq!(leaf(&h), der2);
    }

    #[tokio::test]
    async fn a_missing_static_directory_is_refused_at_start_and_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = write_cert(dir.path(), "one.test");
        let web = dir.path().join("web");
        std::fs::create_dir(&web).unwrap();
        std::fs::write(web.join("index.html"), "hi").unwrap();
        let root =
            |p: &std::path::Path| format!("[static]\nroot = {:?}\n", p.display().to_string());
        let missing = dir.path().join("missing");
        // Start-up refuses it, naming the key.
        match Proxy::bind(config(&c, &k, &root(&missing)), None).await {
            Err(StartError::Config(ConfigError::Invalid { key, .. })) => {
                assert_eq!(key, "static.root")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let proxy = Proxy::bind(config(&c, &k, &root(&web)), None)
            .await
            .unwrap();
        let h = proxy.handle();
        // So does a reload; the previous static files stay in force.
        match h.reload_with(config(&c, &k, &root(&missing))) {
            Err(StartError::Config(ConfigError::Invalid { key, .. })) => {
                assert_eq!(key, "static.root")
            }
            other => panic!("{other:?}"),
        }
        let rt = h.state.active();
        assert_eq!(rt.config.static_files.root.as_deref(), Some(web.as_path()));
        assert!(matches!(
            rt.static_files.lookup("/index.html", None).await,
            StaticResult::File(..)
        ));
    }
}
