//! The server role (the service's side): accept, plaintext handshake, TLS.
//!
//! Like the real service (`SocketClientPrivate::doJob`, server context), the server sends its
//! protocol version and handshake header right after accept, reads the client's hello, sends
//! the accepted routing table and runs TLS as the accepting side. A client whose routing table
//! the server cannot accept (a security level below the server's minimum) is refused by
//! closing the socket: there is no error message in this protocol.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prl_protocol::handshake::{ProtocolVersion, SecurityLevel, ServerHandshake, ServerOutcome};
use prl_protocol::record::RecordLayer;
use prl_protocol::Uuid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::client::tls_handshake;
use crate::connection::{
    exchange_hellos, Connection, Established, PeerAddress, PeerCredentials, Role, StreamOptions,
};
use crate::error::{Stage, TransportError};
use crate::tls::TlsConfig;

/// What the accept policy decides at a step of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on.
    Continue,
    /// Close the socket now (the service's way of refusing).
    Close,
    /// Stop answering: keep the socket open, read and discard, until the peer gives up.
    Stall,
    /// Finish the plaintext handshake, then never answer the TLS handshake.
    StallTls,
}

/// A peer that connected, before any handshake.
#[derive(Debug, Clone)]
pub struct Peer {
    /// A per-process number naming the connection in logs; it becomes
    /// [`ConnectionInfo::connection_id`](crate::ConnectionInfo::connection_id).
    pub id: u64,
    /// Its address.
    pub address: PeerAddress,
    /// Its credentials (unix sockets).
    pub credentials: Option<PeerCredentials>,
}

impl Peer {
    /// A peer with a fresh connection number.
    pub fn new(address: PeerAddress, credentials: Option<PeerCredentials>) -> Self {
        Peer {
            id: crate::connection::next_connection_id(),
            address,
            credentials,
        }
    }
}

/// Decisions the server takes while accepting (refusal, fault injection). The defaults accept
/// everything.
pub trait AcceptPolicy: Send + Sync + 'static {
    /// Right after accept, before the server's hello is sent.
    fn on_connect(&self, _peer: &Peer) -> Admission {
        Admission::Continue
    }

    /// After the client's hello was read and its routing table accepted, before the accepted
    /// table is sent.
    fn on_client_hello(&self, _peer: &Peer, _hello: &ServerOutcome) -> Admission {
        Admission::Continue
    }
}

/// The policy that accepts everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl AcceptPolicy for AcceptAll {}

/// Server settings, shared by every connection of a listener.
#[derive(Clone)]
pub struct ServerConfig {
    /// The minimum security level: clients offering less are refused during the handshake.
    pub min_security: SecurityLevel,
    /// Our protocol version (6.10 by default).
    pub version: ProtocolVersion,
    /// TLS settings (anonymous DH by default; see [`TlsConfig::server_with_credentials`]).
    pub tls: TlsConfig,
    /// Budget for the plaintext and TLS handshakes of one client; `None` waits forever.
    pub handshake_timeout: Option<Duration>,
    /// How long a stalled connection is kept at most.
    pub stall_limit: Duration,
    /// Heartbeats, limits and queue sizes of established connections.
    pub stream: StreamOptions,
    /// Refusals and fault injection.
    pub policy: Arc<dyn AcceptPolicy>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("min_security", &self.min_security)
            .field("version", &self.version)
            .field("tls", &self.tls)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults: minimum LOW (the service's default), protocol 6.10, anonymous DH, 60 s
    /// handshake budget, 10 s heartbeats.
    pub fn new() -> Result<Self, TransportError> {
        Ok(ServerConfig {
            min_security: SecurityLevel::Low,
            version: ProtocolVersion::current(),
            tls: TlsConfig::server().map_err(TransportError::TlsSetup)?,
            handshake_timeout: Some(Duration::from_secs(60)),
            stall_limit: Duration::from_secs(600),
            stream: StreamOptions::default(),
            policy: Arc::new(AcceptAll),
        })
    }
}

/// Accepts a TCP client.
pub async fn accept_tcp(
    stream: TcpStream,
    config: &ServerConfig,
) -> Result<Connection, TransportError> {
    let address = match stream.peer_addr() {
        Ok(a) => PeerAddress::Tcp(a),
        Err(_) => PeerAddress::Other,
    };
    let _ = stream.set_nodelay(true);
    accept(stream, Peer::new(address, None), config).await
}

/// Accepts a unix-socket client, reading its credentials (`SO_PEERCRED`).
pub async fn accept_unix(
    stream: UnixStream,
    config: &ServerConfig,
) -> Result<Connection, TransportError> {
    let credentials = stream.peer_cred().ok().map(|c| PeerCredentials {
        uid: c.uid(),
        gid: c.gid(),
        pid: c.pid(),
    });
    accept(
        stream,
        Peer::new(PeerAddress::Unix(None), credentials),
        config,
    )
    .await
}

/// Accepts a client on any stream.
pub async fn accept<S>(
    mut stream: S,
    peer: Peer,
    config: &ServerConfig,
) -> Result<Connection, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match config.policy.on_connect(&peer) {
        Admission::Continue => {}
        Admission::Close => return Err(TransportError::Refused),
        Admission::Stall | Admission::StallTls => {
            return stall(stream, peer.id, config.stall_limit, Stage::Handshake).await
        }
    }
    let server_uuid = Uuid::new_v4();
    let mut hs = ServerHandshake::new(config.version.clone(), server_uuid, config.min_security)
        .map_err(TransportError::Handshake)?;
    let engine = config.tls.engine().map_err(TransportError::TlsSetup)?;

    let handshake = exchange_hellos(&mut stream, &mut hs);
    let outcome = with_timeout(config.handshake_timeout, Stage::Handshake, handshake).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(conn = peer.id, peer = %peer.address, error = %e, "handshake refused, closing");
            return Err(e);
        }
    };
    match config.policy.on_client_hello(&peer, &outcome) {
        Admission::Continue => {}
        Admission::Close => return Err(TransportError::Refused),
        Admission::Stall => {
            return stall(stream, peer.id, config.stall_limit, Stage::Handshake).await
        }
        Admission::StallTls => {
            stream
                .write_all(&outcome.reply)
                .await
                .map_err(|e| TransportError::io(Stage::Handshake, e))?;
            return stall(stream, peer.id, config.stall_limit, Stage::Tls).await;
        }
    }
    let leftover = hs.take_leftover();
    let mut layer = RecordLayer::new(engine, outcome.accepted_table.clone());
    let tls = async {
        stream
            .write_all(&outcome.reply)
            .await
            .map_err(|e| TransportError::io(Stage::Handshake, e))?;
        tls_handshake(&mut stream, &mut layer, leftover).await
    };
    with_timeout(config.handshake_timeout, Stage::Tls, tls).await?;
    // Never the client's connection UUID: it is its session id (a credential).
    tracing::debug!(
        conn = peer.id,
        peer = %peer.address,
        cipher = layer.engine().cipher_name().unwrap_or(""),
        "client accepted"
    );
    Ok(Established {
        connection_id: peer.id,
        stream,
        layer,
        role: Role::Server,
        local_uuid: server_uuid,
        peer_header: outcome.client_header,
        peer_version: outcome.client_version,
        peer_address: peer.address,
        peer_credentials: peer.credentials,
    }
    .spawn(&config.stream))
}

async fn with_timeout<T>(
    limit: Option<Duration>,
    stage: Stage,
    fut: impl std::future::Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    match limit {
        None => fut.await,
        Some(budget) => tokio::time::timeout(budget, fut)
            .await
            .unwrap_or(Err(TransportError::Timeout { stage, budget })),
    }
}

/// Keeps the socket open without answering until the peer closes it or `limit` passes.
async fn stall<S>(
    mut stream: S,
    id: u64,
    limit: Duration,
    stage: Stage,
) -> Result<Connection, TransportError>
where
    S: AsyncRead + Unpin,
{
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    tracing::debug!(conn = id, %stage, "stalled connection ended");
    Err(TransportError::Stalled(stage))
}
