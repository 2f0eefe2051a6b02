//! The listener: TLS, HTTP/1.1 (hyper), the checked WebSocket upgrade, static files,
//! health, readiness and metrics endpoints, connection caps, and reload.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::config::{Config, ConfigError, LimitsConfig};
use crate::limits::{IpGuard, PerIpCounter, RateLimiter};
use crate::metrics::Metrics;
use crate::origin::{normalize_origin, OriginPolicy};
use crate::policy::TargetPolicy;
use crate::session::Registry;
use crate::static_files::{StaticFiles, StaticResult, SECURITY_HEADERS};
use crate::ticket::{Claims, ReplayCache, TicketError, TicketKey};
use crate::tls::{TlsError, TlsState};
use crate::util::unix_now;

pub use prl_protocol::relay::{SUBPROTOCOL, TICKET_SUBPROTOCOL_PREFIX};

/// Failure to start or reload the proxy.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Certificate or key problem.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Ticket key unreadable or too short.
    #[error("invalid config key `tickets.key_file`: {0}")]
    TicketKey(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Reloading needs a config file.
    #[error("no config file to reload from")]
    NoConfigFile,
}

impl StartError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            StartError::Config(e) => e.kind(),
            StartError::Tls(e) => e.kind(),
            StartError::TicketKey(_) => "ticket_key",
            StartError::Bind { .. } => "bind",
            StartError::NoConfigFile => "no_config_file",
        }
    }
}

/// Ticket settings in force.
#[derive(Debug)]
pub struct Tickets {
    /// The HMAC key.
    pub key: TicketKey,
    /// Tickets are mandatory.
    pub required: bool,
    /// Longest lifetime accepted.
    pub max_ttl_secs: u64,
}

/// The reloadable part of the configuration, compiled.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration as loaded.
    pub config: Config,
    /// Compiled target policy.
    pub policy: TargetPolicy,
    /// Allowed origins.
    pub origins: OriginPolicy,
    /// Tickets, if configured.
    pub tickets: Option<Tickets>,
    /// Static mounts.
    pub static_files: StaticFiles,
}

impl Runtime {
    fn build(config: Config, local: SocketAddr, tls: bool) -> Result<Runtime, StartError> {
        config.validate()?;
        let policy = TargetPolicy::from_config(&config.policy)?;
        let origins = OriginPolicy::new(
            &config.server.allowed_origins,
            config.server.public_origin.as_deref(),
            local,
            tls,
        );
        let tickets = match &config.tickets {
            Some(t) => Some(Tickets {
                key: TicketKey::load(&t.key_file).map_err(StartError::TicketKey)?,
                required: t.required,
                max_ttl_secs: t.max_ttl_secs,
            }),
            None => None,
        };
        let static_files = StaticFiles::new(&config.static_files)?;
        Ok(Runtime {
            config,
            policy,
            origins,
            tickets,
            static_files,
        })
    }

    /// tungstenite settings for one browser connection, sized from `[limits]`.
    pub fn ws_config(limits: &LimitsConfig) -> WebSocketConfig {
        WebSocketConfig::default()
            // Eagerly allocated per connection: small, since browser messages are small.
            .read_buffer_size(limits.ws_read_buffer_bytes)
            // 0: every message goes straight to the socket (the writer task batches nothing).
            .write_buffer_size(limits.ws_write_buffer_bytes)
            // The writer sends one message at a time, so one package plus framing bounds it.
            .max_write_buffer_size(
                limits
                    .ws_write_buffer_bytes
                    .saturating_add(limits.max_package_bytes)
                    .saturating_add(64 * 1024),
            )
            .max_message_size(Some(limits.max_message_bytes))
            .max_frame_size(Some(limits.max_frame_bytes))
            .accept_unmasked_frames(false)
    }
}

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    /// Metrics.
    pub metrics: Metrics,
    pub(crate) per_ip: Arc<PerIpCounter>,
    pub(crate) preauth: Arc<Semaphore>,
    pub(crate) total: Arc<Semaphore>,
    pub(crate) replay: ReplayCache,
    pub(crate) login_ip: RateLimiter<IpAddr>,
    pub(crate) login_user: RateLimiter<[u8; 16]>,
    /// Bytes queued toward all browsers (`limits.max_queued_bytes_total`).
    pub(crate) to_browsers: Arc<crate::relay::GlobalBudget>,
    pub(crate) sessions: Registry,
    tls: Option<TlsState>,
    local_addr: SocketAddr,
    ready: AtomicBool,
    shutdown: watch::Sender<bool>,
    config_path: Option<PathBuf>,
}

impl Shared {
    /// The configuration in force (a snapshot; reload swaps it).
    pub fn runtime(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A running proxy's control handle.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl ProxyHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// `ws://ADDR` or `wss://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.shared.local_addr)
    }

    /// The Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }

    /// Shared state (metrics, registry).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// PEM of the self-signed certificate, if one was generated.
    pub fn self_signed_pem(&self) -> Option<String> {
        self.shared
            .tls
            .as_ref()
            .and_then(|t| t.self_signed_pem.clone())
    }

    /// Reload the config file: policy, origins, tickets, static files, limits of new
    /// sessions, and the certificate. Open sessions are untouched.
    pub fn reload(&self) -> Result<(), StartError> {
        let path = self
            .shared
            .config_path
            .as_ref()
            .ok_or(StartError::NoConfigFile)?;
        let config = Config::load(path)?;
        self.reload_with(config)
    }

    /// Apply a new configuration (see [`ProxyHandle::reload`]).
    pub fn reload_with(&self, config: Config) -> Result<(), StartError> {
        let old = self.shared.runtime();
        if config.server.listen != old.config.server.listen {
            tracing::warn!("server.listen changed: applied at the next start only");
        }
        // Build and check everything first; swap only when all of it is good, so a bad
        // reload leaves the certificate and the configuration as they were.
        let cert = match (&self.shared.tls, &config.tls) {
            (Some(_), Some(tls)) => Some(TlsState::prepare(tls, self.shared.local_addr.ip())?),
            _ => {
                if config.tls.is_some() != self.shared.tls.is_some() {
                    tracing::warn!("[tls] added or removed: applied at the next start only");
                }
                None
            }
        };
        let runtime = Runtime::build(config, self.shared.local_addr, self.shared.tls.is_some())?;
        if let (Some(state), Some(cert)) = (&self.shared.tls, cert) {
            state.install(cert);
        }
        *self
            .shared
            .runtime
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(runtime);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// Stop accepting; readiness turns false.
    pub fn shutdown(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        let _ = self.shared.shutdown.send(true);
    }

    /// Reload on every SIGHUP (unix), logging failures; runs until shutdown.
    #[cfg(unix)]
    pub fn spawn_sighup_reloader(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        let mut stop = self.shared.shutdown.subscribe();
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
    shared: Arc<Shared>,
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
        let l = config.limits.clone();
        let replay_size = config
            .tickets
            .as_ref()
            .map(|t| t.replay_cache_size)
            .unwrap_or(100_000);
        let runtime = Runtime::build(config, local_addr, tls.is_some())?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            runtime: RwLock::new(Arc::new(runtime)),
            metrics: Metrics::new(),
            per_ip: PerIpCounter::new(l.max_connections_per_ip.max(1)),
            preauth: Arc::new(Semaphore::new(l.max_preauth_connections)),
            total: Arc::new(Semaphore::new(l.max_connections)),
            replay: ReplayCache::new(replay_size, unix_now()),
            login_ip: RateLimiter::new(l.login_burst_per_ip, l.login_per_minute_per_ip, 100_000),
            login_user: RateLimiter::new(
                l.login_burst_per_user,
                l.login_per_minute_per_user,
                100_000,
            ),
            to_browsers: crate::relay::GlobalBudget::new(l.max_queued_bytes_total),
            sessions: Registry::new(),
            tls,
            local_addr,
            ready: AtomicBool::new(false),
            shutdown,
            config_path,
        });
        Ok(Proxy { shared, listener })
    }

    /// The control handle.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accept connections until [`ProxyHandle::shutdown`].
    pub async fn run(self) {
        let Proxy { shared, listener } = self;
        shared.ready.store(true, Ordering::SeqCst);
        let mut stop = shared.shutdown.subscribe();
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
            if let Some(permits) = admit(&shared, peer) {
                let shared = Arc::clone(&shared);
                tokio::spawn(handle_connection(shared, tcp, peer, permits));
            }
        }
        shared.ready.store(false, Ordering::SeqCst);
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
        Runtime::build(config, listen, tls.is_some()).map(drop)
    }
}

/// What a connection holds while it lives.
#[derive(Debug)]
pub(crate) struct ConnPermits {
    _total: OwnedSemaphorePermit,
    _ip: IpGuard,
    _gauge: GaugeGuard,
    /// Released once the relay has opened or resumed (moved into the relay task).
    pub(crate) preauth: Mutex<Option<OwnedSemaphorePermit>>,
}

#[derive(Debug)]
struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn admit(shared: &Arc<Shared>, peer: SocketAddr) -> Option<Arc<ConnPermits>> {
    let Ok(total) = Arc::clone(&shared.total).try_acquire_owned() else {
        shared.metrics.reject("max_connections");
        return None;
    };
    let Some(ip) = shared.per_ip.try_acquire(peer.ip()) else {
        shared.metrics.reject("per_ip_connections");
        return None;
    };
    let Ok(pre) = Arc::clone(&shared.preauth).try_acquire_owned() else {
        shared.metrics.reject("preauth_connections");
        return None;
    };
    shared.metrics.connections.inc();
    Some(Arc::new(ConnPermits {
        _total: total,
        _ip: ip,
        _gauge: GaugeGuard(shared.metrics.connections.clone()),
        preauth: Mutex::new(Some(pre)),
    }))
}

async fn handle_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permits: Arc<ConnPermits>,
) {
    let _ = tcp.set_nodelay(true);
    let limits = shared.runtime().config.limits.clone();
    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
    match &shared.tls {
        Some(tls) => match tokio::time::timeout(deadline, tls.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => serve_http(shared, stream, peer, permits, &limits).await,
            Ok(Err(_)) => shared.metrics.reject("tls_handshake"),
            Err(_) => shared.metrics.reject("handshake_timeout"),
        },
        None => serve_http(shared, tcp, peer, permits, &limits).await,
    }
}

async fn serve_http<S>(
    shared: Arc<Shared>,
    io: S,
    peer: SocketAddr,
    permits: Arc<ConnPermits>,
    limits: &LimitsConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = Arc::clone(&shared);
    let svc = service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        let permits = Arc::clone(&permits);
        async move {
            let tls = shared.tls.is_some();
            let mut response = route(shared, peer, permits, req).await;
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
        shared.metrics.reject("http_connection_timeout");
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
    shared: Arc<Shared>,
    peer: SocketAddr,
    permits: Arc<ConnPermits>,
    req: Request<Incoming>,
) -> Response<Body> {
    let runtime = shared.runtime();
    let path = req.uri().path().to_string();
    if path == runtime.config.server.ws_path {
        // A keep-alive connection that served plain requests gave its pre-auth slot back:
        // an upgrade on it needs one again.
        let mut pre = permits.preauth.lock().unwrap_or_else(|p| p.into_inner());
        if pre.is_none() {
            match Arc::clone(&shared.preauth).try_acquire_owned() {
                Ok(p) => *pre = Some(p),
                Err(_) => {
                    drop(pre);
                    shared.metrics.reject("preauth_connections");
                    return text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n");
                }
            }
        }
        drop(pre);
        return websocket(shared, runtime, peer, permits, req);
    }
    // A plain HTTP request (static file, health, metrics) is not a relay waiting to
    // authenticate: the connection stops counting against the pre-auth cap (it still counts
    // against the total and per-IP caps).
    drop(
        permits
            .preauth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    );
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let mut resp = match path.as_str() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if shared.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let m = &runtime.config.metrics;
            if !m.enabled {
                text(StatusCode::NOT_FOUND, "not found\n")
            } else if !m.allow_remote
                && (!crate::policy::canonical(peer.ip()).is_loopback() || forwarded(&req))
            {
                text(StatusCode::FORBIDDEN, "forbidden\n")
            } else {
                respond(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    shared.metrics.render(),
                )
            }
        }
        _ => match runtime.static_files.lookup(&path).await {
            StaticResult::File(mime, file, len) => {
                let body = if head {
                    full(Bytes::new())
                } else {
                    file_body(file, len)
                };
                let mut r = respond_body(StatusCode::OK, mime, body);
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                return r;
            }
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

/// The offered subprotocols: whether `prl-relay.v1` is among them, and the ticket entry.
fn offered_protocols(h: &HeaderMap) -> Result<(bool, Option<String>), &'static str> {
    let mut relay = false;
    let mut ticket = None;
    for entry in h
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let entry = entry.trim();
        if entry == SUBPROTOCOL {
            relay = true;
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
fn websocket(
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    peer: SocketAddr,
    permits: Arc<ConnPermits>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let reject = |reason: &'static str, status: StatusCode, body: &'static str| {
        shared.metrics.reject(reason);
        tracing::info!(peer = %peer.ip(), reason, "websocket upgrade refused");
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
    if !runtime.origins.allows(origin_header) {
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
    if !relay {
        return reject(
            "bad_subprotocol",
            StatusCode::BAD_REQUEST,
            "subprotocol prl-relay.v1 required\n",
        );
    }
    // A ticket in the header is verified and consumed now; its target binding is checked
    // when the open message names the target.
    let header_claims: Option<Claims> = match (ticket, &runtime.tickets) {
        (Some(t), Some(tickets)) => match check_ticket(&shared, tickets, &t, &origin) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(peer = %peer.ip(), reason = e.kind(), "ticket refused");
                return reject("ticket_invalid", StatusCode::FORBIDDEN, "ticket invalid\n");
            }
        },
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
    let ws_config = Runtime::ws_config(&runtime.config.limits);
    let ctx = crate::relay::Context {
        shared: Arc::clone(&shared),
        peer,
        origin,
        header_claims,
        permits,
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    crate::firstcap::FirstMessageCap::new(TokioIo::new(upgraded)),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                crate::relay::serve(ws, ctx).await;
            }
            Err(_) => ctx.shared.metrics.reject("upgrade_failed"),
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
        HeaderValue::from_static(SUBPROTOCOL),
    );
    resp
}

/// Verify a ticket's signature, lifetime and origin, and consume it (single use).
pub(crate) fn check_ticket(
    shared: &Shared,
    tickets: &Tickets,
    ticket: &str,
    origin: &str,
) -> Result<Claims, TicketError> {
    let now = unix_now();
    let claims = tickets
        .key
        .verify(ticket, origin, now, tickets.max_ttl_secs)?;
    shared.replay.consume(&claims, now)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        h.shared.tls.as_ref().unwrap().current_leaf().unwrap()
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
        assert!(h.shared.runtime().tickets.is_none());
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
        let rt = h.shared.runtime();
        assert_eq!(rt.config.static_files.root.as_deref(), Some(web.as_path()));
        assert!(matches!(
            rt.static_files.lookup("/index.html").await,
            StaticResult::File(..)
        ));
    }
}
