//! The client role: connect, plaintext handshake, TLS, then an established [`Connection`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), prl_transport::TransportError> {
//! use prl_transport::{connect, ClientConfig, Endpoint};
//! use prl_protocol::handshake::SecurityLevel;
//!
//! let config = ClientConfig::new(SecurityLevel::High);
//! let mut conn = connect(&Endpoint::tcp("127.0.0.1", 64000), &config).await?;
//! println!("session id will be {}", conn.info().local_connection_uuid);
//! // conn.send(login_package).await?; conn.recv().await ...
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use prl_protocol::handshake::{ClientHandshake, Handshake, ProtocolVersion, SecurityLevel};
use prl_protocol::record::RecordLayer;
use prl_protocol::Uuid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::connection::{
    exchange_hellos, Connection, Established, PeerAddress, Role, StreamOptions,
};
use crate::error::{Stage, TransportError};
use crate::inline::{InlineConnection, Io};
use crate::tls::TlsConfig;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A host name or address and a port; every resolved address is tried in order.
    Tcp {
        /// Name or literal address (IPv6 without brackets).
        host: String,
        /// Port (the service's default is 64000, [`prl_protocol::DEFAULT_PORT`]).
        port: u16,
    },
    /// Already resolved (and, for a relay, already checked) addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// A unix socket (the service's local socket is `/var/run/prl_disp_service.socket`).
    Unix(PathBuf),
}

impl Endpoint {
    /// A TCP endpoint by name or literal address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A unix-socket endpoint.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Endpoint::Unix(path.into())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Addrs(addrs) => match addrs.first() {
                Some(a) => write!(f, "tcp://{a}"),
                None => f.write_str("tcp://(no address)"),
            },
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Client settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// The security level: selects the routing table offered (which packages go through TLS).
    pub security_level: SecurityLevel,
    /// Budget for connect + plaintext handshake + TLS handshake; `None` waits forever. The
    /// SDK maps a timeout argument of 0 to 60 s: do that before calling.
    pub connect_budget: Option<Duration>,
    /// Our protocol version (defaults to the SDK's 6.10 and its build text).
    pub version: ProtocolVersion,
    /// Our connection UUID (the future session id); a fresh random one when `None`.
    pub connection_uuid: Option<Uuid>,
    /// TLS settings (anonymous DH by default, [`TlsConfig::compacting`]).
    pub tls: Option<TlsConfig>,
    /// Heartbeats, limits and queue sizes of the established connection.
    pub stream: StreamOptions,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("security_level", &self.security_level)
            .field("connect_budget", &self.connect_budget)
            .field("version", &self.version)
            .field(
                "connection_uuid",
                &self.connection_uuid.map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .field("stream", &self.stream)
            .finish()
    }
}

impl ClientConfig {
    /// Defaults for `level`: 60 s budget, protocol 6.10, anonymous DH, 10 s heartbeats.
    pub fn new(security_level: SecurityLevel) -> Self {
        ClientConfig {
            security_level,
            connect_budget: Some(Duration::from_secs(60)),
            version: ProtocolVersion::current(),
            connection_uuid: None,
            tls: None,
            stream: StreamOptions::default(),
        }
    }

    /// Sets the connect budget.
    pub fn with_budget(mut self, budget: Option<Duration>) -> Self {
        self.connect_budget = budget;
        self
    }

    /// Sets the connection UUID.
    pub fn with_connection_uuid(mut self, uuid: Uuid) -> Self {
        self.connection_uuid = Some(uuid);
        self
    }

    /// Sets the TLS configuration (must be a client configuration).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the heartbeat period (`None`: send none).
    pub fn with_heartbeat(mut self, interval: Option<Duration>) -> Self {
        self.stream.heartbeat_interval = interval;
        self
    }
}

/// The anonymous-DH client context, built once per process and shared by every connection
/// that does not bring its own (an OpenSSL context costs about 12 KiB). Its established
/// sessions free OpenSSL's per-connection state ([`TlsConfig::compacting`]).
fn default_client_tls() -> Result<TlsConfig, TransportError> {
    static DEFAULT: std::sync::OnceLock<TlsConfig> = std::sync::OnceLock::new();
    if let Some(tls) = DEFAULT.get() {
        return Ok(tls.clone());
    }
    let tls = TlsConfig::client()
        .map_err(TransportError::TlsSetup)?
        .compacting();
    Ok(DEFAULT.get_or_init(|| tls).clone())
}

struct Budget {
    deadline: Option<Instant>,
    budget: Duration,
}

impl Budget {
    fn new(budget: Option<Duration>) -> Self {
        Budget {
            deadline: budget.map(|b| Instant::now() + b),
            budget: budget.unwrap_or_default(),
        }
    }

    async fn run<T>(
        &self,
        stage: Stage,
        fut: impl Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        match self.deadline {
            None => fut.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, fut).await {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout {
                    stage,
                    budget: self.budget,
                }),
            },
        }
    }
}

/// Connects to `endpoint`, runs both handshakes and returns the established connection.
///
/// Errors carry the stage they happened in; [`TransportError::prl_code`] maps them to the
/// code the SDK reports.
pub async fn connect(
    endpoint: &Endpoint,
    config: &ClientConfig,
) -> Result<Connection, TransportError> {
    Ok(connect_endpoint(endpoint, config)
        .await?
        .spawn(&config.stream))
}

/// [`connect`], returning the connection without a task of its own: the caller drives it
/// ([`InlineConnection`]; the queue sizes of `config.stream` do not apply, there are none).
pub async fn connect_inline(
    endpoint: &Endpoint,
    config: &ClientConfig,
) -> Result<InlineConnection, TransportError> {
    Ok(connect_endpoint(endpoint, config)
        .await?
        .inline(&config.stream))
}

async fn connect_endpoint(
    endpoint: &Endpoint,
    config: &ClientConfig,
) -> Result<Established<Box<dyn Io>>, TransportError> {
    let budget = Budget::new(config.connect_budget);
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = budget
                .run(Stage::Connect, async {
                    UnixStream::connect(path)
                        .await
                        .map_err(|source| TransportError::Connect {
                            addr: path.display().to_string(),
                            source,
                        })
                })
                .await?;
            let stream: Box<dyn Io> = Box::new(stream);
            establish(
                stream,
                PeerAddress::Unix(Some(path.clone())),
                config,
                &budget,
            )
            .await
        }
        Endpoint::Tcp { host, port } => {
            let addrs = budget
                .run(Stage::Resolve, async {
                    let found = tokio::net::lookup_host((host.as_str(), *port))
                        .await
                        .map_err(|source| TransportError::Resolve {
                            host: host.clone(),
                            source,
                        })?;
                    Ok(found.collect::<Vec<_>>())
                })
                .await?;
            if addrs.is_empty() {
                return Err(TransportError::NoAddress { host: host.clone() });
            }
            let (stream, addr) = budget.run(Stage::Connect, connect_any(&addrs)).await?;
            let stream: Box<dyn Io> = Box::new(stream);
            establish(stream, PeerAddress::Tcp(addr), config, &budget).await
        }
        Endpoint::Addrs(addrs) => {
            if addrs.is_empty() {
                return Err(TransportError::Config("no address to connect to".into()));
            }
            let (stream, addr) = budget.run(Stage::Connect, connect_any(addrs)).await?;
            let stream: Box<dyn Io> = Box::new(stream);
            establish(stream, PeerAddress::Tcp(addr), config, &budget).await
        }
    }
}

/// Runs both handshakes on a stream the caller connected (e.g. a relay connecting to an
/// address it checked itself). The budget covers the handshakes only.
pub async fn connect_stream<S>(
    stream: S,
    peer_address: PeerAddress,
    config: &ClientConfig,
) -> Result<Connection, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let budget = Budget::new(config.connect_budget);
    Ok(establish(stream, peer_address, config, &budget)
        .await?
        .spawn(&config.stream))
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), TransportError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Packages are written whole; do not let Nagle hold back the last segment.
                let _ = stream.set_nodelay(true);
                return Ok((stream, *addr));
            }
            Err(source) => {
                tracing::debug!(%addr, error = %source, "connect failed");
                last = Some(TransportError::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
        }
    }
    Err(last.unwrap_or_else(|| TransportError::Config("no address to connect to".into())))
}

async fn establish<S>(
    mut stream: S,
    peer_address: PeerAddress,
    config: &ClientConfig,
    budget: &Budget,
) -> Result<Established<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let local_uuid = config.connection_uuid.unwrap_or_else(Uuid::new_v4);
    let tls = match &config.tls {
        Some(t) => t.clone(),
        None => default_client_tls()?,
    };
    let engine = tls.engine().map_err(TransportError::TlsSetup)?;
    let mut hs = ClientHandshake::new(config.version.clone(), local_uuid, config.security_level)
        .map_err(TransportError::Handshake)?;

    let outcome = budget
        .run(Stage::Handshake, exchange_hellos(&mut stream, &mut hs))
        .await?;
    let leftover = hs.take_leftover();

    let mut layer = RecordLayer::new(engine, outcome.accepted_table.clone());
    budget
        .run(Stage::Tls, tls_handshake(&mut stream, &mut layer, leftover))
        .await?;
    let connection_id = crate::connection::next_connection_id();
    tracing::debug!(
        conn = connection_id,
        peer = %peer_address,
        cipher = layer.engine().cipher_name().unwrap_or(""),
        "connected"
    );
    Ok(Established {
        connection_id,
        stream,
        layer,
        role: Role::Client,
        local_uuid,
        peer_header: outcome.server_header,
        peer_version: outcome.server_version,
        peer_address,
        peer_credentials: None,
    })
}

/// Drives the TLS handshake over the socket (either role): whatever the engine produces goes
/// out raw, whatever arrives is framed into records and fed to the engine.
pub(crate) async fn tls_handshake<S>(
    stream: &mut S,
    layer: &mut RecordLayer<crate::tls::OpenSslEngine>,
    first: Vec<u8>,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    let mut incoming = first;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let done = layer
            .drive_handshake(&incoming, &mut out)
            .map_err(TransportError::TlsHandshake);
        if !out.is_empty() {
            stream
                .write_all(&out)
                .await
                .map_err(|e| TransportError::io(Stage::Tls, e))?;
            out.clear();
        }
        if done? {
            return Ok(());
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| TransportError::io(Stage::Tls, e))?;
        if n == 0 {
            return Err(TransportError::TlsHandshakeClosed);
        }
        incoming.clear();
        incoming.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}
