//! prl-bench: what `cargo bench -p prl-bench` (and `cargo xtask bench`) measures, and the
//! pieces it measures with.
//!
//! Every benchmark group pairs the thing measured with a baseline measured in the same run, so
//! results are read as ratios, not as absolute times of a shared machine ([`summary`] prints
//! them at the end of a run):
//!
//! | group | baseline | measured |
//! |---|---|---|
//! | `codec_*` | `baseline_memcpy`: copying the same bytes | package encode / incremental decode, CVmEvent XML parse / serialise, binary 5003 decode ([`fixtures`]) |
//! | `connection_setup` | `baseline_direct`: [`direct_login_cycle`] with prl-transport's client | `proxy_ws`, `proxy_wss`: [`proxy_login_cycle`], the browser's way through prl-proxy over `ws://` and `wss://` |
//! | `relay_throughput` | `baseline_direct`: a [`DirectSession`] receiving a task's events | `proxy_ws`, `proxy_wss`: a [`BrowserSession`] receiving them through prl-proxy |
//! | `vm_list` | `baseline_direct`: a [`DirectSession`]'s VM list of 10 and 1000 VMs, every configuration read ([`vms`]) | `proxy_ws`: a [`BrowserSession`]'s, through prl-proxy |
//!
//! Everything runs in one process over loopback: [`start_sim`] (prl-sim: the logins, and the
//! unpaced task 9001 whose events the throughput benchmark relays) and [`start_proxy`]
//! (prl-proxy in front of it). Every wait is bounded by [`WAIT`] and every loop by a count,
//! so a broken component fails a benchmark instead of hanging it. The tests of this crate
//! check that each measured path does what it claims (logins succeed, every event arrives);
//! they time nothing (speed is what the benchmarks measure, against same-run baselines).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fixtures;
pub mod load;
pub mod peers;
pub mod profile;
pub mod report;
pub mod summary;
pub mod vms;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use prl_protocol::codes::cmd;
use prl_protocol::codes::VmState;
use prl_protocol::commands::{self, vm_info_request, LoginRequest, Password, Reply, VmInfo};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, ProxyMessage, RelayError, RelayErrorKind, Target,
    RELAY_VERSION, SUBPROTOCOL,
};
use prl_protocol::{parse_uuid, ErrorCode, Uuid};
use prl_proxy::{Config, Proxy, ProxyHandle};
use prl_sim::{Inventory, SimConfig, Simulator, UserDb, VmSpec};
use prl_transport::{connect, ClientConfig, Connection, Endpoint};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The user the simulator knows.
pub const USER: &str = "benchuser";
/// Its password.
pub const PASSWORD: &str = "bench-Passw0rd";
/// The proxy's name for the simulator (`[[policy.target]]`).
pub const SIM_TARGET: &str = "sim";
/// Longest wait for any single step (connect, a reply, the next event, a close).
pub const WAIT: Duration = Duration::from_secs(10);
/// Most control frames (ping/pong) skipped while waiting for one message.
const MAX_SKIPPED_FRAMES: usize = 1000;
/// Bytes a browser session asks its socket for per read: prl-transport's read chunk, which
/// the baseline's client reads with.
const CLIENT_READ_CHUNK: usize = 16 * 1024;

/// A benchmark step that did not do what it should.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The simulator did not start.
    #[error("simulator: {0}")]
    Sim(#[from] prl_sim::ConfigError),
    /// The proxy did not start.
    #[error("proxy: {0}")]
    Proxy(#[from] prl_proxy::StartError),
    /// The proxy configuration was refused.
    #[error("proxy configuration: {0}")]
    ProxyConfig(#[from] prl_proxy::config::ConfigError),
    /// The direct connection failed.
    #[error("transport: {0}")]
    Transport(#[from] prl_transport::TransportError),
    /// The browser's TLS to the proxy could not be set up.
    #[error("wss: {0}")]
    Tls(String),
    /// The WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// A socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy reported an error.
    #[error("relay error {0}")]
    Relay(RelayError),
    /// A step took longer than [`WAIT`].
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The peer closed while a reply was still due.
    #[error("connection closed while waiting for {0}")]
    Closed(&'static str),
    /// A message that is not what the step expects.
    #[error("unexpected {what}: {detail}")]
    Unexpected {
        /// What was expected.
        what: &'static str,
        /// What came instead.
        detail: String,
    },
    /// The service answered with an error code.
    #[error("{what} failed: {code}")]
    Failed {
        /// The command.
        what: &'static str,
        /// The service's answer.
        code: ErrorCode,
    },
}

impl BenchError {
    /// Stable snake_case name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            BenchError::Sim(_) => "sim",
            BenchError::Proxy(_) => "proxy",
            BenchError::ProxyConfig(_) => "proxy_config",
            BenchError::Transport(_) => "transport",
            BenchError::Tls(_) => "tls",
            BenchError::WebSocket(_) => "websocket",
            BenchError::Io(_) => "io",
            BenchError::Relay(_) => "relay",
            BenchError::Timeout(..) => "timeout",
            BenchError::Closed(_) => "closed",
            BenchError::Unexpected { .. } => "unexpected",
            BenchError::Failed { .. } => "failed",
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BenchError::WebSocket(Box::new(e))
    }
}

/// `fut`, or [`BenchError::Timeout`] after [`WAIT`].
async fn bounded<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, BenchError> {
    tokio::time::timeout(WAIT, fut)
        .await
        .map_err(|_| BenchError::Timeout(WAIT, what))
}

/// The simulator's configuration: an ephemeral loopback port, [`USER`], hourly heartbeats so
/// that none lands inside a measurement, an inventory of the demo host and one running VM
/// ([`round_trip_vm`], asked about by the round trip); everything else is the simulator's
/// default.
pub fn sim_config() -> Result<SimConfig, BenchError> {
    let mut config = SimConfig::new();
    config.tcp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config
        .users
        .add(UserDb::parse_spec(&format!("{USER}:{PASSWORD}"))?)?;
    config.heartbeat_interval = Duration::from_secs(3600);
    config.inventory = Inventory {
        vms: vec![round_trip_vm()],
        ..Inventory::demo()
    };
    Ok(config)
}

/// Starts prl-sim with [`sim_config`].
pub async fn start_sim() -> Result<Simulator, BenchError> {
    Ok(Simulator::start(sim_config()?).await?)
}

/// The proxy configuration used: each `(name, address)` of `targets` as a named target, the
/// login throttles opened wide (a benchmark logs in thousands of times a minute from one
/// address) and, with `wss`, a self-signed certificate. Everything else is the proxy's
/// default, the resume ring included.
pub fn proxy_config(targets: &[(&str, SocketAddr)], wss: bool) -> Result<Config, BenchError> {
    Ok(Config::from_toml_str(&proxy_toml(targets, wss))?)
}

/// [`proxy_config`] as TOML text.
fn proxy_toml(targets: &[(&str, SocketAddr)], wss: bool) -> String {
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [limits]\nlogin_burst_per_ip = 1000000\nlogin_per_minute_per_ip = 1000000\n\
         login_burst_per_user = 1000000\nlogin_per_minute_per_user = 1000000\n",
    );
    if wss {
        toml.push_str("[tls]\nself_signed = true\n");
    }
    for (name, addr) in targets {
        toml.push_str(&format!(
            "[[policy.target]]\nname = \"{name}\"\nhost = \"{}\"\nport = {}\n",
            addr.ip(),
            addr.port()
        ));
    }
    toml
}

/// [`proxy_config`] (`ws://`) plus `[cluster]`: one instance of a cluster whose shared state
/// is the Redis at `redis_url`, keyed by the secret in `secret_file`.
pub fn cluster_config(
    targets: &[(&str, SocketAddr)],
    redis_url: &str,
    secret_file: &std::path::Path,
) -> Result<Config, BenchError> {
    let mut toml = proxy_toml(targets, false);
    toml.push_str(&format!(
        "[cluster]\nredis_url = \"{redis_url}\"\ninstance_id = \"bench\"\n\
         public_url = \"ws://127.0.0.1/ws\"\nsecret_file = {:?}\n",
        secret_file.display().to_string()
    ));
    Ok(Config::from_toml_str(&toml)?)
}

/// Binds prl-proxy on an ephemeral loopback port in front of `targets` (see [`proxy_config`])
/// and runs it on the current runtime.
pub async fn start_proxy(
    targets: &[(&str, SocketAddr)],
    wss: bool,
) -> Result<ProxyHandle, BenchError> {
    run_proxy(proxy_config(targets, wss)?).await
}

/// Binds prl-proxy with `config` and runs it on the current runtime; with `[cluster]`, returns
/// once it reaches its Redis (or [`BenchError::Timeout`] after [`WAIT`]).
pub async fn run_proxy(config: Config) -> Result<ProxyHandle, BenchError> {
    let proxy = Proxy::bind(config, None).await?;
    let handle = proxy.handle();
    tokio::spawn(proxy.run());
    bounded("the shared state", async {
        while !handle.shared_state_available() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    Ok(handle)
}

/// Where and how a browser reaches a proxy: `ws://` or, for a proxy with a self-signed
/// certificate, `wss://` trusting exactly that certificate (rustls with ring, the proxy's
/// own TLS stack, standing in for the browser's).
#[derive(Clone)]
pub struct ProxyEndpoint {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
    /// The loopback address browsers connect from (any when `None`).
    source: Option<IpAddr>,
}

impl std::fmt::Debug for ProxyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEndpoint")
            .field("addr", &self.addr)
            .field("wss", &self.tls.is_some())
            .field("source", &self.source)
            .finish()
    }
}

impl ProxyEndpoint {
    /// The endpoint of a running proxy.
    pub fn of(proxy: &ProxyHandle) -> Result<Self, BenchError> {
        let tls = proxy
            .self_signed_pem()
            .map(|pem| trusting(&pem))
            .transpose()?;
        Ok(Self::at(proxy.local_addr(), tls))
    }

    fn at(addr: SocketAddr, tls: Option<TlsConnector>) -> Self {
        ProxyEndpoint {
            addr,
            tls,
            source: None,
        }
    }

    /// A `ws://` endpoint at `addr` (a proxy in another process).
    pub fn ws(addr: SocketAddr) -> Self {
        Self::at(addr, None)
    }

    /// A `wss://` endpoint at `addr` trusting exactly the certificate `pem`.
    pub fn wss(addr: SocketAddr, pem: &str) -> Result<Self, BenchError> {
        Ok(Self::at(addr, Some(trusting(pem)?)))
    }

    /// The same endpoint, connecting from loopback address `source` (one machine, many
    /// client addresses: the proxy's per-address limits stay as configured).
    pub fn from_source(&self, source: IpAddr) -> Self {
        ProxyEndpoint {
            source: Some(source),
            ..self.clone()
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this is `wss://`.
    pub fn is_wss(&self) -> bool {
        self.tls.is_some()
    }

    /// TCP connect (and TLS for wss); returns the stream and the page origin to send.
    async fn connect(&self) -> Result<(Box<dyn Io>, String), BenchError> {
        let tcp = tcp_connect(self.addr, self.source).await?;
        match &self.tls {
            None => Ok((Box::new(tcp), format!("http://{}", self.addr))),
            Some(connector) => {
                let name = ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, tcp).await?;
                Ok((Box::new(tls), format!("https://{}", self.addr)))
            }
        }
    }
}

/// A rustls client trusting exactly the certificate `pem` (the browser's TLS, standing in).
fn trusting(pem: &str) -> Result<TlsConnector, BenchError> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| BenchError::Tls(format!("proxy certificate: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert)
        .map_err(|e| BenchError::Tls(format!("proxy certificate: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| BenchError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TCP connection to `addr` from loopback address `from` (any when `None`), with
/// TCP_NODELAY as browsers and the SDK set it.
pub async fn tcp_connect(addr: SocketAddr, from: Option<IpAddr>) -> Result<TcpStream, BenchError> {
    let tcp = match from {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = match ip {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The browser's byte stream to the proxy: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A package link: the direct connection or the browser's WebSocket.
trait Link {
    /// Our IO connection UUID (packages carry it as `senderUuid`).
    fn connection_uuid(&self) -> Uuid;
    /// Sends one package.
    fn send(&mut self, p: Package) -> impl std::future::Future<Output = Result<(), BenchError>>;
    /// The next package; `None` once the service has closed the connection.
    fn recv(&mut self) -> impl std::future::Future<Output = Result<Option<Package>, BenchError>>;
}

fn is_reply_to(p: &Package, job: Uuid) -> bool {
    p.header.parent_uuid == job
        && matches!(
            p.header.package_type,
            cmd::WS_RESPONSE | cmd::WS_BINARY_RESPONSE
        )
}

/// Waits for the reply to `job`, skipping at most `skip` other packages.
async fn reply_to(
    link: &mut impl Link,
    job: Uuid,
    what: &'static str,
    skip: usize,
) -> Result<Reply, BenchError> {
    for _ in 0..=skip {
        let p = bounded(what, link.recv())
            .await??
            .ok_or(BenchError::Closed(what))?;
        if is_reply_to(&p, job) {
            return Reply::parse(&p).map_err(|e| BenchError::Unexpected {
                what,
                detail: e.to_string(),
            });
        }
    }
    Err(BenchError::Unexpected {
        what,
        detail: format!("no reply within {skip} packages"),
    })
}

fn check(what: &'static str, reply: &Reply) -> Result<(), BenchError> {
    if reply.code == ErrorCode::SUCCESS {
        Ok(())
    } else {
        Err(BenchError::Failed {
            what,
            code: reply.code,
        })
    }
}

/// Logs in as the SDK does (2039, base64 password, `PCF_ORIGINAL_CLIENT`); checks that the
/// session UUID is our connection UUID.
async fn login(link: &mut impl Link) -> Result<(), BenchError> {
    let job = Uuid::new_v4();
    let request = LoginRequest {
        user: USER.into(),
        password: Password::new(PASSWORD),
        prev_session_uuid: String::new(),
        flags: commands::PCF_ORIGINAL_CLIENT,
    };
    let me = link.connection_uuid();
    link.send(request.to_package(job, me, true, &mut Uuid::new_v4))
        .await?;
    let reply = reply_to(link, job, "login reply", 8).await?;
    check("login", &reply)?;
    let session = reply
        .login_response()
        .map_err(|e| BenchError::Unexpected {
            what: "login response",
            detail: e.to_string(),
        })?
        .session_uuid;
    if parse_uuid(&session) != Some(me) {
        return Err(BenchError::Unexpected {
            what: "session uuid",
            detail: "not our connection uuid".into(),
        });
    }
    Ok(())
}

/// Logs off (2042) and waits for the reply.
async fn logoff(link: &mut impl Link) -> Result<(), BenchError> {
    let job = Uuid::new_v4();
    let me = link.connection_uuid();
    link.send(commands::simple_command(
        cmd::USER_LOGOFF,
        job,
        me,
        &mut Uuid::new_v4,
    ))
    .await?;
    check("logoff", &reply_to(link, job, "logoff reply", 8).await?)
}

/// The VM the round-trip benchmark asks about: one of the simulator's inventory
/// ([`sim_config`]), running.
pub const ROUND_TRIP_VM: &str = "bench-round-trip";

/// The round-trip VM as the simulator holds it.
pub fn round_trip_vm() -> VmSpec {
    VmSpec {
        state: VmState::RUNNING,
        description: "the round-trip benchmark's VM".into(),
        ..VmSpec::new(ROUND_TRIP_VM)
    }
}

/// The small request of the round-trip benchmark, sent after login: `getVmState`
/// (`PrlVm_GetState`, 2062, `DspCmdGetVmInfo`) of [`ROUND_TRIP_VM`], as `@prl-web/client`
/// sends it; the service answers with `PRL_ERR_SUCCESS` and the VM's info event, and changes
/// nothing.
pub const ROUND_TRIP_COMMAND: u32 = cmd::GET_VM_INFO;
/// The answer [`ROUND_TRIP_COMMAND`] gets from a logged-in session.
pub const ROUND_TRIP_ANSWER: ErrorCode = ErrorCode::SUCCESS;

/// One [`ROUND_TRIP_COMMAND`] and its reply; returns the time from handing the request to the
/// link until the reply package is decoded. The reply is then checked (outside the time): its
/// code, and the VM info read as the client reads it, with the VM's state (running).
async fn round_trip(link: &mut impl Link) -> Result<Duration, BenchError> {
    let job = Uuid::new_v4();
    let me = link.connection_uuid();
    let request = vm_info_request(&round_trip_vm().uuid_text())
        .to_package(job, me, &mut Uuid::new_v4)
        .map_err(|e| BenchError::Unexpected {
            what: "round-trip request",
            detail: e.to_string(),
        })?;
    let start = Instant::now();
    link.send(request).await?;
    let reply = reply_to(link, job, "round-trip reply", 8).await?;
    let elapsed = start.elapsed();
    if reply.code != ROUND_TRIP_ANSWER {
        return Err(BenchError::Failed {
            what: "round trip",
            code: reply.code,
        });
    }
    let info = VmInfo::from_reply(&reply).map_err(|e| BenchError::Unexpected {
        what: "round-trip reply",
        detail: e.to_string(),
    })?;
    if info.state != Some(VmState::RUNNING) {
        return Err(BenchError::Unexpected {
            what: "round-trip reply",
            detail: format!("VM state {:?}, expected running", info.state),
        });
    }
    Ok(elapsed)
}

/// Waits until the service has closed the connection (it does after a logoff reply).
async fn await_close(link: &mut impl Link) -> Result<(), BenchError> {
    for _ in 0..8 {
        if bounded("close after logoff", link.recv()).await??.is_none() {
            return Ok(());
        }
    }
    Err(BenchError::Unexpected {
        what: "close after logoff",
        detail: "packages kept coming".into(),
    })
}

/// Starts prl-sim's task 9001 with `steps` progress events at interval `interval_ms` (0: no
/// pacing, the events streamed back to back) and receives every event and the final reply.
/// Returns the number of packages received.
async fn run_task(link: &mut impl Link, steps: u32, interval_ms: u32) -> Result<u64, BenchError> {
    let job = Uuid::new_v4();
    let me = link.connection_uuid();
    link.send(prl_sim::start_long_task_command(
        steps,
        interval_ms,
        0,
        job,
        me,
    ))
    .await?;
    let mut events = 0u64;
    // Every step's event, the reply, and a few heartbeats or strays at most.
    for _ in 0..u64::from(steps) + 16 {
        let p = bounded("task event", link.recv())
            .await??
            .ok_or(BenchError::Closed("task event"))?;
        if p.header.parent_uuid != job {
            continue;
        }
        if p.header.package_type == cmd::VM_EVENT {
            events += 1;
        } else if is_reply_to(&p, job) {
            let reply = Reply::parse(&p).map_err(|e| BenchError::Unexpected {
                what: "task reply",
                detail: e.to_string(),
            })?;
            check("task", &reply)?;
            if events != u64::from(steps) {
                return Err(BenchError::Unexpected {
                    what: "task events",
                    detail: format!("{events} of {steps}"),
                });
            }
            return Ok(events + 1);
        }
    }
    Err(BenchError::Unexpected {
        what: "task reply",
        detail: "not received".into(),
    })
}

/// prl-transport's client connection (the baseline path).
#[derive(Debug)]
pub struct DirectSession {
    conn: Connection,
}

impl Link for DirectSession {
    fn connection_uuid(&self) -> Uuid {
        self.conn.info().local_connection_uuid
    }

    async fn send(&mut self, p: Package) -> Result<(), BenchError> {
        Ok(self.conn.send(p).await?)
    }

    async fn recv(&mut self) -> Result<Option<Package>, BenchError> {
        self.conn.recv().await.transpose().map_err(BenchError::from)
    }
}

impl DirectSession {
    fn client_config(level: SecurityLevel) -> ClientConfig {
        let mut config = ClientConfig::new(level)
            .with_budget(Some(WAIT))
            .with_heartbeat(None);
        // As the SDK's IO layer: packages up to 1 GiB (a VM list of 1000 VMs is ~20 MB).
        config.stream.limits = Limits::protocol();
        config
    }

    /// Connects (TCP, handshake, TLS) to the simulator at `level`.
    pub async fn connect(sim: SocketAddr, level: SecurityLevel) -> Result<Self, BenchError> {
        let endpoint = Endpoint::tcp(sim.ip().to_string(), sim.port());
        Ok(DirectSession {
            conn: connect(&endpoint, &Self::client_config(level)).await?,
        })
    }

    /// Connects through a WebSocket tunnel (websockify, wstunnel): the WebSocket from loopback
    /// address `from`, then the IOService handshake and TLS inside it. With `heartbeats`, the
    /// SDK's 10 s heartbeats flow (idle-memory runs); without, none lands in a measurement.
    pub async fn over_tunnel(
        peer: &peers::Peer,
        from: Option<IpAddr>,
        level: SecurityLevel,
        heartbeats: bool,
    ) -> Result<Self, BenchError> {
        let stream = bounded("tunnel websocket", peer.connect_from(from)).await??;
        let mut config = Self::client_config(level);
        if heartbeats {
            config = config.with_heartbeat(Some(Duration::from_secs(10)));
        }
        let conn =
            prl_transport::connect_stream(stream, prl_transport::PeerAddress::Other, &config)
                .await?;
        Ok(DirectSession { conn })
    }

    /// One small command and its reply ([`ROUND_TRIP_COMMAND`]); the time it took.
    pub async fn round_trip(&mut self) -> Result<Duration, BenchError> {
        round_trip(self).await
    }

    /// Logs in.
    pub async fn login(&mut self) -> Result<(), BenchError> {
        login(self).await
    }

    /// Logs off and waits for the service to close the connection.
    pub async fn logoff(mut self) -> Result<(), BenchError> {
        logoff(&mut self).await?;
        await_close(&mut self).await
    }

    /// Runs task 9001 (see [`BrowserSession::run_task`]); returns the packages received.
    pub async fn run_task(&mut self, steps: u32, interval_ms: u32) -> Result<u64, BenchError> {
        run_task(self, steps, interval_ms).await
    }
}

/// A browser's relay WebSocket to prl-proxy (the measured path).
pub struct BrowserSession {
    ws: WebSocketStream<Box<dyn Io>>,
    connection_uuid: Uuid,
}

impl std::fmt::Debug for BrowserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSession").finish_non_exhaustive()
    }
}

impl BrowserSession {
    /// Opens the WebSocket as a page of the proxy's own origin would (Origin header,
    /// `prl-relay.v1` subprotocol, TCP_NODELAY as browsers set it), sends `open` for the named
    /// `target` at `level` and waits for `opened` (the proxy has then connected to the
    /// service: handshake and TLS done).
    pub async fn open(
        proxy: &ProxyEndpoint,
        target: &str,
        level: SecurityLevel,
    ) -> Result<Self, BenchError> {
        let (stream, origin) = proxy.connect().await?;
        let scheme = if proxy.is_wss() { "wss" } else { "ws" };
        let mut request = format!("{scheme}://{}/ws", proxy.addr).into_client_request()?;
        let origin = HeaderValue::from_str(&origin).map_err(|e| BenchError::Unexpected {
            what: "origin header",
            detail: e.to_string(),
        })?;
        request.headers_mut().insert("origin", origin);
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        // A browser's WebSocket has no message or frame size limit: the proxy bounds what it
        // forwards (`limits.max_package_bytes`). Reads of [`CLIENT_READ_CHUNK`], as the
        // baseline's client reads: tungstenite zero-fills the free part of its read buffer
        // before every read, which at its default size (128 KiB) was up to 128 KiB of memset
        // per message received: client work that neither the baseline nor a browser does.
        let unlimited = WebSocketConfig::default()
            .read_buffer_size(CLIENT_READ_CHUNK)
            .max_message_size(None)
            .max_frame_size(None);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(unlimited)).await?;
        let open = ClientMessage::Open(OpenRequest {
            version: RELAY_VERSION,
            target: Target {
                host: target.into(),
                port: 0,
            },
            security_level: level,
            timeout_ms: u32::try_from(WAIT.as_millis()).unwrap_or(u32::MAX),
            mode: ConnectMode::Remote,
            ticket: None,
            restore: None,
        });
        ws.send(Message::Text(open.to_json().into())).await?;
        let mut session = BrowserSession {
            ws,
            connection_uuid: Uuid::nil(),
        };
        match bounded("opened", session.next_message()).await?? {
            Some(Incoming::Control(ProxyMessage::Opened(o))) => {
                session.connection_uuid =
                    parse_uuid(&o.connection_uuid).ok_or_else(|| BenchError::Unexpected {
                        what: "opened",
                        detail: "connection uuid is not a uuid".into(),
                    })?;
                Ok(session)
            }
            Some(Incoming::Control(ProxyMessage::Error(e))) => Err(BenchError::Relay(e)),
            Some(other) => Err(BenchError::Unexpected {
                what: "opened",
                detail: format!("{other:?}"),
            }),
            None => Err(BenchError::Closed("opened")),
        }
    }

    /// Logs in through the proxy.
    pub async fn login(&mut self) -> Result<(), BenchError> {
        login(self).await
    }

    /// Logs off and waits for the proxy to report the service's close; then closes the
    /// WebSocket.
    pub async fn logoff(mut self) -> Result<(), BenchError> {
        logoff(&mut self).await?;
        await_close(&mut self).await?;
        // The proxy closes after its `closed` error: finish the close handshake, bounded.
        let _ = bounded("websocket close", self.ws.close(None)).await;
        Ok(())
    }

    /// Runs task 9001 with `steps` progress events, `interval_ms` apart (0: unpaced), and
    /// receives all of them and the final reply; returns the packages received (`steps + 1`).
    pub async fn run_task(&mut self, steps: u32, interval_ms: u32) -> Result<u64, BenchError> {
        run_task(self, steps, interval_ms).await
    }

    /// One small command and its reply ([`ROUND_TRIP_COMMAND`]); the time it took.
    pub async fn round_trip(&mut self) -> Result<Duration, BenchError> {
        round_trip(self).await
    }

    /// Starts task 9001 with `steps` unpaced events and then never reads again: a browser
    /// that stopped taking data (the slow-consumer run).
    pub async fn start_task_and_stall(&mut self, steps: u32) -> Result<(), BenchError> {
        let me = self.connection_uuid;
        self.send(prl_sim::start_long_task_command(
            steps,
            0,
            0,
            Uuid::new_v4(),
            me,
        ))
        .await
    }

    /// Reads (and so answers the proxy's pings) until `stop` resolves; `Err` if the proxy
    /// closed the session or sent anything but a ping meanwhile.
    pub async fn idle_until(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), BenchError> {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                m = self.ws.next() => match m {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    None | Some(Ok(Message::Close(_))) => return Err(BenchError::Closed("idle session")),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(other)) => return Err(BenchError::Unexpected {
                        what: "idle session",
                        detail: format!("{} byte message", other.len()),
                    }),
                },
            }
        }
    }

    async fn next_message(&mut self) -> Result<Option<Incoming>, BenchError> {
        for _ in 0..MAX_SKIPPED_FRAMES {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Binary(b))) => {
                    // The browser client decodes what the proxy forwarded (the proxy bounds it).
                    let p = Package::decode(&b, &Limits::protocol()).map_err(|e| {
                        BenchError::Unexpected {
                            what: "package",
                            detail: e.to_string(),
                        }
                    })?;
                    return Ok(Some(Incoming::Package(p)));
                }
                Some(Ok(Message::Text(t))) => {
                    let m = ProxyMessage::from_json(&t).map_err(|e| BenchError::Unexpected {
                        what: "control message",
                        detail: e.to_string(),
                    })?;
                    return Ok(Some(Incoming::Control(m)));
                }
                Some(Ok(_)) => continue, // ping, pong, raw frame
            }
        }
        Err(BenchError::Unexpected {
            what: "message",
            detail: format!("more than {MAX_SKIPPED_FRAMES} control frames"),
        })
    }
}

#[derive(Debug)]
enum Incoming {
    Package(Package),
    Control(ProxyMessage),
}

impl Link for BrowserSession {
    fn connection_uuid(&self) -> Uuid {
        self.connection_uuid
    }

    async fn send(&mut self, p: Package) -> Result<(), BenchError> {
        Ok(self.ws.send(Message::Binary(p.encode().into())).await?)
    }

    async fn recv(&mut self) -> Result<Option<Package>, BenchError> {
        match self.next_message().await? {
            Some(Incoming::Package(p)) => Ok(Some(p)),
            Some(Incoming::Control(ProxyMessage::Error(e))) if e.kind == RelayErrorKind::Closed => {
                Ok(None)
            }
            Some(Incoming::Control(ProxyMessage::Error(e))) => Err(BenchError::Relay(e)),
            Some(Incoming::Control(other)) => Err(BenchError::Unexpected {
                what: "package",
                detail: format!("{other:?}"),
            }),
            None => Ok(None),
        }
    }
}

/// One SDK login cycle straight to the simulator: TCP connect, handshake, TLS, login, logoff.
/// Returns the time from connect to the logoff reply; waiting for the service's close after
/// it is not counted.
pub async fn direct_login_cycle(
    sim: SocketAddr,
    level: SecurityLevel,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let mut s = bounded("connect", DirectSession::connect(sim, level)).await??;
    s.login().await?;
    logoff(&mut s).await?;
    let elapsed = start.elapsed();
    await_close(&mut s).await?;
    Ok(elapsed)
}

/// The same cycle as a browser does it through the proxy: WebSocket upgrade, `open` (the proxy
/// connects, handshakes and runs TLS), login, logoff. Returns the time from the WebSocket's TCP
/// connect to the logoff reply; the closes after it are not counted.
pub async fn proxy_login_cycle(
    proxy: &ProxyEndpoint,
    level: SecurityLevel,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let mut s = bounded("open", BrowserSession::open(proxy, SIM_TARGET, level)).await??;
    s.login().await?;
    logoff(&mut s).await?;
    let elapsed = start.elapsed();
    await_close(&mut s).await?;
    let _ = bounded("websocket close", s.ws.close(None)).await;
    Ok(elapsed)
}

/// The same cycle through a WebSocket tunnel (websockify, wstunnel) with the client speaking
/// IOService inside it: WebSocket upgrade (the tunnel connects to the service), handshake,
/// TLS, login, logoff. Returns the time from the WebSocket's TCP connect to the logoff reply.
pub async fn tunnel_login_cycle(
    peer: &peers::Peer,
    level: SecurityLevel,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let mut s = bounded(
        "tunnel connect",
        DirectSession::over_tunnel(peer, None, level, false),
    )
    .await??;
    s.login().await?;
    logoff(&mut s).await?;
    let elapsed = start.elapsed();
    await_close(&mut s).await?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rig {
        sim: Simulator,
        proxy: ProxyHandle,
        ws: ProxyEndpoint,
        wss: ProxyEndpoint,
    }

    /// One logged-in session on each path: direct, through the proxy over ws and over wss.
    async fn logged_in(
        r: &Rig,
        level: SecurityLevel,
    ) -> (DirectSession, BrowserSession, BrowserSession) {
        let mut direct = DirectSession::connect(r.sim.tcp_addr().unwrap(), level)
            .await
            .unwrap();
        direct.login().await.unwrap();
        let mut browser = BrowserSession::open(&r.ws, SIM_TARGET, level)
            .await
            .unwrap();
        browser.login().await.unwrap();
        let mut secure = BrowserSession::open(&r.wss, SIM_TARGET, level)
            .await
            .unwrap();
        secure.login().await.unwrap();
        (direct, browser, secure)
    }

    async fn rig() -> Rig {
        let sim = start_sim().await.unwrap();
        let targets = [(SIM_TARGET, sim.tcp_addr().unwrap())];
        let proxy = start_proxy(&targets, false).await.unwrap();
        let secure = start_proxy(&targets, true).await.unwrap();
        let ws = ProxyEndpoint::of(&proxy).unwrap();
        let wss = ProxyEndpoint::of(&secure).unwrap();
        assert!(!ws.is_wss() && wss.is_wss());
        Rig {
            sim,
            proxy,
            ws,
            wss,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_login_cycles_succeed_at_low_and_high_and_leave_no_session() {
        let r = rig().await;
        let sim = r.sim.tcp_addr().unwrap();
        for level in [SecurityLevel::Low, SecurityLevel::High] {
            for _ in 0..3 {
                direct_login_cycle(sim, level).await.unwrap();
                proxy_login_cycle(&r.ws, level).await.unwrap();
                proxy_login_cycle(&r.wss, level).await.unwrap();
            }
        }
        assert_eq!(r.sim.session_count(), 0);
        let m = r.proxy.metrics_text();
        assert!(
            m.contains("prl_proxy_logins_total{outcome=\"success\"} 6\n"),
            "{m}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unpaced_sim_tasks_deliver_every_event_on_every_path_at_each_level() {
        let r = rig().await;
        for level in [SecurityLevel::Low, SecurityLevel::High] {
            let (mut direct, mut browser, mut secure) = logged_in(&r, level).await;
            for _ in 0..2 {
                assert_eq!(direct.run_task(1000, 0).await.unwrap(), 1001);
                assert_eq!(browser.run_task(1000, 0).await.unwrap(), 1001);
                assert_eq!(secure.run_task(1000, 0).await.unwrap(), 1001);
            }
            direct.logoff().await.unwrap();
            browser.logoff().await.unwrap();
            secure.logoff().await.unwrap();
        }
        assert_eq!(r.sim.session_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_round_trip_reads_a_running_vms_state_on_every_path() {
        let r = rig().await;
        let level = SecurityLevel::High;
        let (mut direct, mut browser, mut secure) = logged_in(&r, level).await;
        for _ in 0..3 {
            assert!(direct.round_trip().await.unwrap() > Duration::ZERO);
            assert!(browser.round_trip().await.unwrap() > Duration::ZERO);
            assert!(secure.round_trip().await.unwrap() > Duration::ZERO);
        }
        // The request names the simulator's VM: another uuid is the service's typed refusal.
        let job = Uuid::new_v4();
        let me = direct.connection_uuid();
        direct
            .send(
                vm_info_request(&VmSpec::new("not-in-the-inventory").uuid_text())
                    .to_package(job, me, &mut Uuid::new_v4)
                    .unwrap(),
            )
            .await
            .unwrap();
        let reply = reply_to(&mut direct, job, "vm info", 8).await.unwrap();
        assert_eq!(reply.code, ErrorCode::VM_UUID_NOT_FOUND);
        direct.logoff().await.unwrap();
        browser.logoff().await.unwrap();
        secure.logoff().await.unwrap();
    }

    #[tokio::test]
    async fn sim_task_events_are_a_few_hundred_bytes_on_the_wire() {
        let r = rig().await;
        let mut s = DirectSession::connect(r.sim.tcp_addr().unwrap(), SecurityLevel::Low)
            .await
            .unwrap();
        s.login().await.unwrap();
        let job = Uuid::new_v4();
        let me = s.connection_uuid();
        s.send(prl_sim::start_long_task_command(4, 0, 0, job, me))
            .await
            .unwrap();
        let mut sizes = Vec::new();
        while sizes.len() < 4 {
            let p = s.recv().await.unwrap().unwrap();
            if p.header.parent_uuid == job && p.header.package_type == cmd::VM_EVENT {
                sizes.push(p.encoded_len());
            }
        }
        println!("progress events at 25, 50, 75, 100 %: {sizes:?} bytes");
        assert!(sizes.iter().all(|n| (200..1000).contains(n)), "{sizes:?}");
        check(
            "task",
            &reply_to(&mut s, job, "task reply", 0).await.unwrap(),
        )
        .unwrap();
        s.logoff().await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_password_is_the_services_typed_failure() {
        let r = rig().await;
        let mut s = DirectSession::connect(r.sim.tcp_addr().unwrap(), SecurityLevel::Low)
            .await
            .unwrap();
        let job = Uuid::new_v4();
        let request = LoginRequest {
            user: USER.into(),
            password: Password::new("wrong"),
            prev_session_uuid: String::new(),
            flags: commands::PCF_ORIGINAL_CLIENT,
        };
        let me = s.connection_uuid();
        s.send(request.to_package(job, me, true, &mut Uuid::new_v4))
            .await
            .unwrap();
        let reply = reply_to(&mut s, job, "login reply", 0).await.unwrap();
        assert_eq!(reply.code, ErrorCode::AUTHENTICATION_FAILED);
        let e = check("login", &reply).unwrap_err();
        assert_eq!(e.kind(), "failed");
        assert!(e.to_string().contains("0x80000330"), "{e}");
    }

    #[tokio::test]
    async fn the_proxy_refuses_a_foreign_origin_and_reports_the_services_close() {
        let r = rig().await;
        let tcp = TcpStream::connect(r.proxy.local_addr()).await.unwrap();
        let mut req = format!("ws://{}/ws", r.proxy.local_addr())
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("origin", HeaderValue::from_static("http://evil.example"));
        let e = tokio_tungstenite::client_async(req, tcp).await.unwrap_err();
        assert!(e.to_string().contains("403"), "{e}");
        // After logoff the service closes; the browser sees the proxy's `closed` as the end.
        let mut b = BrowserSession::open(&r.ws, SIM_TARGET, SecurityLevel::Low)
            .await
            .unwrap();
        b.login().await.unwrap();
        logoff(&mut b).await.unwrap();
        assert!(b.recv().await.unwrap().is_none());
        // An unknown target is the proxy's typed refusal.
        let e = BrowserSession::open(&r.ws, "nowhere", SecurityLevel::Low)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "relay", "{e}");
        // wss trusts exactly the proxy's certificate: not another proxy's.
        let another = start_proxy(&[(SIM_TARGET, r.sim.tcp_addr().unwrap())], true)
            .await
            .unwrap();
        let mut other = r.wss.clone();
        other.addr = another.local_addr();
        let e = BrowserSession::open(&other, SIM_TARGET, SecurityLevel::Low)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "io", "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    }
}
