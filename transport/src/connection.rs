//! An established IOService connection: one task owns the socket, the record layer and the
//! package codec; callers talk to it through a bounded package sender/receiver pair.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prl_protocol::codes::cmd;
use prl_protocol::handshake::{
    Handshake, HandshakeHeader, ProtocolVersion, RouteName, RoutingTable, SecurityLevel, SenderType,
};
use prl_protocol::package::{Limits, Package, PackageDecoder, MNG_HEARTBEAT};
use prl_protocol::record::RecordLayer;
use prl_protocol::Uuid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::error::{Stage, TransportError};
use crate::tls::{KeyExchange, OpenSslEngine};

/// Which side of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We connected (the SDK's side).
    Client,
    /// We accepted (the service's side).
    Server,
}

/// The address of the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A unix-socket peer (the path we connected to, or none for an accepted peer).
    Unix(Option<PathBuf>),
    /// A stream of another kind (tests, in-memory pipes).
    Other,
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddress::Tcp(a) => write!(f, "tcp://{a}"),
            PeerAddress::Unix(Some(p)) => write!(f, "unix://{}", p.display()),
            PeerAddress::Unix(None) => f.write_str("unix:"),
            PeerAddress::Other => f.write_str("stream"),
        }
    }
}

/// The unix peer's credentials (`SO_PEERCRED`), as the service reads them on accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer process's user id.
    pub uid: u32,
    /// The peer process's group id.
    pub gid: u32,
    /// The peer process id, when the OS reports it.
    pub pid: Option<i32>,
}

/// Numbers connections within this process, for logs.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh per-process connection number (1, 2, 3, ...).
pub(crate) fn next_connection_id() -> u64 {
    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed)
}

/// What the two handshakes established. `Debug` redacts both connection UUIDs (a client's is
/// its session id).
#[derive(Clone)]
pub struct ConnectionInfo {
    /// A per-process number naming this connection in logs (`conn = N`). Log this, never the
    /// connection UUIDs: the client's connection UUID is its session id, and naming a live
    /// session logs in without a password.
    pub connection_id: u64,
    /// Our side.
    pub role: Role,
    /// Our connection UUID (for a client: the session id the service will hand out).
    pub local_connection_uuid: Uuid,
    /// The peer's connection UUID (for a server: the client's session id).
    pub peer_connection_uuid: Uuid,
    /// The peer's sender type (`Client` = 3, `Dispatcher` = 2, ...).
    pub peer_sender_type: SenderType,
    /// The peer's protocol version (major, minor and build text).
    pub peer_version: ProtocolVersion,
    /// The routing table both sides route by.
    pub accepted_table: RoutingTable,
    /// The security level the accepted table amounts to.
    pub security_level: SecurityLevel,
    /// The negotiated cipher (OpenSSL name, e.g. `ADH-AES256-GCM-SHA384`).
    pub cipher: String,
    /// The negotiated cipher's IANA name, when known.
    pub cipher_standard_name: Option<String>,
    /// The TLS version (e.g. `TLSv1.2`).
    pub tls_version: String,
    /// The key exchange (DH for the anonymous suites, RSA with certificates).
    pub key_exchange: Option<KeyExchange>,
    /// The peer's certificate common name (certificate mode only).
    pub peer_certificate_cn: Option<String>,
    /// The peer's address.
    pub peer_address: PeerAddress,
    /// The peer's credentials (accepted unix-socket connections only).
    pub peer_credentials: Option<PeerCredentials>,
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("connection_id", &self.connection_id)
            .field("role", &self.role)
            .field("local_connection_uuid", &"<redacted>")
            .field("peer_connection_uuid", &"<redacted>")
            .field("peer_sender_type", &self.peer_sender_type)
            .field("peer_version", &self.peer_version)
            .field("accepted_table", &self.accepted_table)
            .field("security_level", &self.security_level)
            .field("cipher", &self.cipher)
            .field("cipher_standard_name", &self.cipher_standard_name)
            .field("tls_version", &self.tls_version)
            .field("key_exchange", &self.key_exchange)
            .field("peer_certificate_cn", &self.peer_certificate_cn)
            .field("peer_address", &self.peer_address)
            .field("peer_credentials", &self.peer_credentials)
            .finish()
    }
}

impl ConnectionInfo {
    /// The peer's uid (accepted unix-socket connections only).
    pub fn peer_uid(&self) -> Option<u32> {
        self.peer_credentials.map(|c| c.uid)
    }

    /// True when the peer sends heartbeats and expects them (protocol >= 6.1).
    pub fn peer_supports_heartbeat(&self) -> bool {
        self.peer_version.supports_heartbeat()
    }

    /// The route a package type takes on this connection.
    pub fn route_for(&self, package_type: u32) -> RouteName {
        self.accepted_table.route_for(package_type)
    }
}

/// The security level an accepted routing table amounts to: everything through TLS is HIGH,
/// commands through TLS is NORMAL, else LOW.
pub fn security_level_of(table: &RoutingTable) -> SecurityLevel {
    let login = table.route_for(cmd::USER_LOGIN).is_ssl();
    let heartbeat = table.route_for(MNG_HEARTBEAT).is_ssl();
    match (login, heartbeat) {
        (true, true) => SecurityLevel::High,
        (true, false) => SecurityLevel::Normal,
        _ => SecurityLevel::Low,
    }
}

/// Whether a routing table sends any package type through TLS (NORMAL and HIGH do; LOW
/// routes everything plain).
pub fn sends_through_tls(table: &RoutingTable) -> bool {
    table.default_name.is_ssl() || table.routes.iter().any(|r| r.name.is_ssl())
}

/// Per-connection settings of the owning task.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Heartbeat period (the service and the SDK use 10 s); `None` sends none. Heartbeats
    /// are sent only to peers of protocol >= 6.1.
    pub heartbeat_interval: Option<Duration>,
    /// Decoder limits for received packages: the memory bound of what a peer can make us
    /// buffer. What we send is checked against what the IO protocol accepts
    /// ([`Limits::protocol`]: 1 GiB, 1024 buffers), not against these: a service answers a
    /// VM list of many VMs with one package of many MiB while it accepts only small requests.
    pub limits: Limits,
    /// Packages buffered towards the caller before the task stops reading the socket.
    pub receive_capacity: usize,
    /// Packages buffered from the caller before `send` waits.
    pub send_capacity: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            heartbeat_interval: Some(Duration::from_secs(10)),
            limits: Limits::default(),
            receive_capacity: 64,
            send_capacity: 64,
        }
    }
}

/// Bytes queued for the socket above which the task stops taking packages from senders (and
/// stops reading a peer that does not read).
pub const WRITE_HIGH_WATER: usize = 256 * 1024;
/// How often a connection whose peer stopped reading checks whether its owner dropped it.
const STALL_RECHECK: Duration = Duration::from_millis(500);
/// `IOGracefulShutdownTimeout`: how long a local close may spend flushing.
pub(crate) const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(5);
/// Socket read size: the largest TLS record, so one read takes a whole record.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The socket read buffer of every connection task polled on this thread: a read fills
    /// it and its bytes are consumed (framed, decrypted, decoded) before the task next
    /// yields, so an idle connection holds no read buffer of its own.
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// Reads once into this thread's [`READ_SCRATCH`]; resolves to the number of bytes read,
/// which the caller must consume from the scratch before it awaits anything else.
pub(crate) struct ReadScratch<'a, R> {
    pub(crate) rd: &'a mut R,
}

impl<R: AsyncRead + Unpin> Future for ReadScratch<'_, R> {
    type Output = std::io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let rd = &mut *self.get_mut().rd;
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(rd).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

/// The first `n` bytes of this thread's read scratch, for `f`.
pub(crate) fn with_scratch<T>(n: usize, f: impl FnOnce(&[u8]) -> T) -> T {
    READ_SCRATCH.with(|scratch| f(scratch.borrow().get(..n).unwrap_or_default()))
}

/// Items of the send queue. Packages are boxed: a tokio channel allocates its slots 32 at a
/// time whatever its bound, so an idle connection's queue should hold pointers, not packages.
enum Outgoing {
    Package(Box<Package>),
    Parts {
        package_type: u32,
        parts: Vec<Vec<u8>>,
    },
    RawWire(Vec<u8>),
    Close,
}

/// Sends packages on a connection. Cheap to clone; the connection stays open while a sender
/// or the receiver exists (or until either side closes it).
#[derive(Clone)]
pub struct PackageSender {
    tx: mpsc::Sender<Outgoing>,
    limits: Limits,
}

impl fmt::Debug for PackageSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageSender")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl PackageSender {
    /// Queues a package; waits while the connection's send queue is full (backpressure).
    /// The package travels plain or through TLS as the accepted routing table says for its
    /// type. Like the real IO layer, a nil `sender_uuid` is filled with our connection UUID
    /// and a nil `uuid` with a fresh one. `Ok` means queued, not yet written.
    pub async fn send(&self, package: Package) -> Result<(), TransportError> {
        package
            .check_limits(&self.limits)
            .map_err(TransportError::Oversize)?;
        self.tx
            .send(Outgoing::Package(Box::new(package)))
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// Queues a package without waiting; `Err(Closed)` if the connection is gone and
    /// `Ok(false)` if the queue is full.
    pub fn try_send(&self, package: Package) -> Result<bool, TransportError> {
        package
            .check_limits(&self.limits)
            .map_err(TransportError::Oversize)?;
        match self.tx.try_send(Outgoing::Package(Box::new(package))) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TransportError::Closed),
        }
    }

    /// Closes the connection after everything queued before has been written (the write
    /// side is shut down; no TLS close_notify is sent, like the service).
    pub async fn close(&self) -> Result<(), TransportError> {
        self.tx
            .send(Outgoing::Close)
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// True once the connection's task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Fault injection: sends `parts` as they are (no encoding, no checks), each as one
    /// write on the route of `package_type`, e.g. a package with a corrupted header.
    pub async fn send_raw_parts(
        &self,
        package_type: u32,
        parts: Vec<Vec<u8>>,
    ) -> Result<(), TransportError> {
        self.tx
            .send(Outgoing::Parts {
                package_type,
                parts,
            })
            .await
            .map_err(|_| TransportError::Closed)
    }

    /// Fault injection: writes `bytes` raw on the socket, below the record layer.
    pub async fn send_raw_wire(&self, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.tx
            .send(Outgoing::RawWire(bytes))
            .await
            .map_err(|_| TransportError::Closed)
    }
}

/// What the receive queue carries: boxed, like the send queue (see [`Outgoing`]).
type Incoming = Result<Box<Package>, Box<TransportError>>;

/// Receives packages from a connection. Heartbeats are consumed by the connection and never
/// show up here.
pub struct PackageReceiver {
    rx: mpsc::Receiver<Incoming>,
}

impl fmt::Debug for PackageReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageReceiver").finish_non_exhaustive()
    }
}

impl PackageReceiver {
    /// The next package. `None` once the connection has ended cleanly (the peer closed it
    /// or it was closed locally); a failure is reported once as `Some(Err(..))`, then `None`.
    pub async fn recv(&mut self) -> Option<Result<Package, TransportError>> {
        self.rx.recv().await.map(|r| r.map(|p| *p).map_err(|e| *e))
    }
}

/// An established connection.
#[derive(Debug)]
pub struct Connection {
    sender: PackageSender,
    receiver: PackageReceiver,
    info: Arc<ConnectionInfo>,
}

impl Connection {
    /// What the handshakes established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A shared handle to the connection info.
    pub fn info_arc(&self) -> Arc<ConnectionInfo> {
        self.info.clone()
    }

    /// Queues a package (see [`PackageSender::send`]).
    pub async fn send(&self, package: Package) -> Result<(), TransportError> {
        self.sender.send(package).await
    }

    /// The next package (see [`PackageReceiver::recv`]).
    pub async fn recv(&mut self) -> Option<Result<Package, TransportError>> {
        self.receiver.recv().await
    }

    /// A sender for this connection.
    pub fn sender(&self) -> PackageSender {
        self.sender.clone()
    }

    /// Closes the connection after the queued packages are written.
    pub async fn close(self) {
        let _ = self.sender.close().await;
    }

    /// Splits into the sender, the receiver and the info.
    pub fn split(self) -> (PackageSender, PackageReceiver, Arc<ConnectionInfo>) {
        (self.sender, self.receiver, self.info)
    }
}

/// What the handshake phase hands to the connection task.
pub(crate) struct Established<S> {
    pub connection_id: u64,
    pub stream: S,
    pub layer: RecordLayer<OpenSslEngine>,
    pub role: Role,
    pub local_uuid: Uuid,
    pub peer_header: HandshakeHeader,
    pub peer_version: ProtocolVersion,
    pub peer_address: PeerAddress,
    pub peer_credentials: Option<PeerCredentials>,
}

impl<S> Established<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    /// The connection's state machine (record layer, codec, buffers) and what the
    /// handshakes established.
    fn core(self, options: &StreamOptions) -> (Driver, S, Arc<ConnectionInfo>) {
        let engine = self.layer.engine();
        let table = self.layer.routing_table().clone();
        let info = Arc::new(ConnectionInfo {
            connection_id: self.connection_id,
            role: self.role,
            local_connection_uuid: self.local_uuid,
            peer_connection_uuid: self.peer_header.connection_uuid,
            peer_sender_type: self.peer_header.sender_type,
            peer_version: self.peer_version.clone(),
            security_level: security_level_of(&table),
            accepted_table: table,
            cipher: engine.cipher_name().unwrap_or_default().to_owned(),
            cipher_standard_name: engine.cipher_standard_name().map(str::to_owned),
            tls_version: engine.tls_version().to_owned(),
            key_exchange: engine.key_exchange(),
            peer_certificate_cn: engine.peer_common_name(),
            peer_address: self.peer_address.clone(),
            peer_credentials: self.peer_credentials,
        });
        let heartbeat = if info.peer_supports_heartbeat() {
            options.heartbeat_interval
        } else {
            None
        };
        let mut layer = self.layer;
        if !sends_through_tls(&info.accepted_table) {
            // LOW: both sides route every package plain, so the TLS session negotiated in the
            // handshake is never used again: free it (about 12 KiB per connection).
            layer.engine_mut().release();
        }
        let core = Driver {
            layer,
            decoder: PackageDecoder::new(options.limits),
            pending: VecDeque::new(),
            wbuf: Vec::new(),
            wpos: 0,
            heartbeat,
            limits: options.limits,
            peer: info.peer_address.to_string(),
            id: info.connection_id,
            local_uuid: info.local_connection_uuid,
            stamp_numeric_ids: info.role == Role::Server,
        };
        (core, self.stream, info)
    }

    /// Spawns the connection task.
    pub(crate) fn spawn(self, options: &StreamOptions) -> Connection {
        let (task, stream, info) = self.core(options);
        let (out_tx, out_rx) = mpsc::channel(options.send_capacity.max(1));
        let (in_tx, in_rx) = mpsc::channel::<Incoming>(options.receive_capacity.max(1));
        tokio::spawn(task.run(stream, out_rx, in_tx));
        Connection {
            sender: PackageSender {
                tx: out_tx,
                limits: Limits::protocol(),
            },
            receiver: PackageReceiver { rx: in_rx },
            info,
        }
    }
}

impl Established<Box<dyn crate::inline::Io>> {
    /// The connection without a task of its own: its owner drives it.
    pub(crate) fn inline(self, options: &StreamOptions) -> crate::inline::InlineConnection {
        let (core, stream, info) = self.core(options);
        crate::inline::InlineConnection::new(core, stream, info)
    }
}

/// A connection's state machine: the record layer, the package codec and the buffers, driven
/// by its own task ([`Driver::run`], behind a [`Connection`]) or by its owner's
/// ([`crate::InlineConnection`]).
pub(crate) struct Driver {
    pub(crate) layer: RecordLayer<OpenSslEngine>,
    pub(crate) decoder: PackageDecoder,
    /// Decoded packages not yet handed to the receiver (the socket is not read meanwhile).
    pub(crate) pending: VecDeque<Package>,
    /// Bytes to write; `wpos` is how far they are written. Released once written.
    pub(crate) wbuf: Vec<u8>,
    pub(crate) wpos: usize,
    pub(crate) heartbeat: Option<Duration>,
    /// Checked on every package sent.
    pub(crate) limits: Limits,
    pub(crate) peer: String,
    /// [`ConnectionInfo::connection_id`], for logs.
    pub(crate) id: u64,
    local_uuid: Uuid,
    /// Server role: stamp [`next_numeric_id`] on packages that carry none.
    stamp_numeric_ids: bool,
}

/// The process-wide numeric id counter of a serving IO layer (`g_eventId`, starting at 1).
static NUMERIC_IDS: AtomicU64 = AtomicU64::new(1);

/// `IOPackage::generateNumericId`: the next value of the process-wide counter.
fn next_numeric_id() -> u64 {
    NUMERIC_IDS.fetch_add(1, Ordering::Relaxed)
}

/// Why the loop ended.
enum End {
    /// The peer closed its side.
    PeerClosed,
    /// We close (requested, or nobody holds the connection any more).
    Local,
    /// A failure to report.
    Failed(TransportError),
}

impl Driver {
    async fn run<S: AsyncRead + AsyncWrite + Send + 'static>(
        mut self,
        stream: S,
        mut out_rx: mpsc::Receiver<Outgoing>,
        in_tx: mpsc::Sender<Incoming>,
    ) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let period = self.heartbeat.unwrap_or(Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut senders_gone = false;
        let mut closing = false;
        // Records that arrived with the end of the TLS handshake.
        let mut end = match self.on_bytes(&[]) {
            Ok(()) => None,
            Err(e) => Some(End::Failed(e)),
        };
        while end.is_none() {
            if closing && self.wpos >= self.wbuf.len() {
                end = Some(End::Local);
                break;
            }
            if senders_gone && in_tx.is_closed() {
                end = Some(End::Local);
                break;
            }
            let backlog = self.wbuf.len() - self.wpos;
            // Abandoned while the peer does not read: the owner dropped every handle, so what
            // is still queued will never be answered to anyone. End (the flush below is bounded)
            // instead of waiting on the stalled write forever.
            if backlog >= WRITE_HIGH_WATER && in_tx.is_closed() && out_rx.is_closed() {
                end = Some(End::Local);
                break;
            }
            // A peer that does not read stops being read: whatever it sends may make us write
            // (TLS alerts, renegotiation), so the write backlog stays bounded.
            let can_read = self.pending.is_empty() && !closing && backlog < WRITE_HIGH_WATER;
            let want_write = backlog > 0;
            let take_out = !senders_gone && !closing && backlog < WRITE_HIGH_WATER;
            tokio::select! {
                permit = in_tx.reserve(), if !self.pending.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(p) = self.pending.pop_front() {
                                permit.send(Ok(Box::new(p)));
                            }
                            // Hand over whatever else fits now, without another round.
                            while !self.pending.is_empty() {
                                let Ok(permit) = in_tx.try_reserve() else { break };
                                if let Some(p) = self.pending.pop_front() {
                                    permit.send(Ok(Box::new(p)));
                                }
                            }
                            if self.pending.is_empty() && self.pending.capacity() > 8 {
                                self.pending = VecDeque::new();
                            }
                        }
                        // Nobody listens: drop what was received.
                        Err(_) => self.pending = VecDeque::new(),
                    }
                }
                n = ReadScratch { rd: &mut rd }, if can_read => {
                    match n {
                        Ok(0) => end = Some(End::PeerClosed),
                        Ok(n) => {
                            // Consumed before anything else runs on this thread.
                            if let Err(e) = with_scratch(n, |bytes| self.on_bytes(bytes)) {
                                end = Some(End::Failed(e));
                            }
                        }
                        Err(e) => end = Some(End::Failed(TransportError::io(Stage::Established, e))),
                    }
                }
                w = wr.write(self.wbuf.get(self.wpos..).unwrap_or_default()), if want_write => {
                    match w {
                        Ok(0) => end = Some(End::Failed(TransportError::io(
                            Stage::Established,
                            std::io::ErrorKind::WriteZero.into(),
                        ))),
                        Ok(n) => {
                            self.wpos += n;
                            if self.wpos >= self.wbuf.len() {
                                // Written: an idle connection keeps no write buffer.
                                self.wbuf = Vec::new();
                                self.wpos = 0;
                            }
                        }
                        Err(e) => end = Some(End::Failed(TransportError::io(Stage::Established, e))),
                    }
                }
                msg = out_rx.recv(), if take_out => {
                    match msg {
                        Some(first) => {
                            // This and whatever else is queued now, up to the high-water mark,
                            // encoded into one write.
                            let mut next = Some(first);
                            while let Some(msg) = next.take() {
                                match self.take(msg) {
                                    Ok(true) => closing = true,
                                    Ok(false) => {}
                                    Err(e) => {
                                        end = Some(End::Failed(e));
                                        break;
                                    }
                                }
                                if closing || self.wbuf.len() - self.wpos >= WRITE_HIGH_WATER {
                                    break;
                                }
                                next = out_rx.try_recv().ok();
                            }
                        }
                        None => senders_gone = true,
                    }
                }
                // While the write is stalled, look again now and then whether the owner is gone.
                _ = tokio::time::sleep(STALL_RECHECK), if backlog >= WRITE_HIGH_WATER => {}
                _ = ticker.tick(), if self.heartbeat.is_some() && !closing => {
                    // A heartbeat only says "alive" on an idle link: skipped while earlier
                    // bytes are unwritten, so a peer that stops reading does not pile them up.
                    if self.wpos >= self.wbuf.len() {
                        if let Err(e) = self.encode(&Package::heartbeat()) {
                            end = Some(End::Failed(e));
                        }
                    }
                }
            }
        }
        match end {
            Some(End::Local) => {
                // Flush what is queued, then FIN (`__gracefulShutdown`), within the IO
                // layer's graceful-shutdown time.
                let rest = self.wbuf.get(self.wpos..).unwrap_or_default();
                let _ = tokio::time::timeout(GRACEFUL_SHUTDOWN, async {
                    if !rest.is_empty() {
                        wr.write_all(rest).await?;
                    }
                    wr.shutdown().await
                })
                .await;
                tracing::debug!(conn = self.id, peer = %self.peer, "connection closed locally");
            }
            Some(End::PeerClosed) => {
                tracing::debug!(conn = self.id, peer = %self.peer, "connection closed by the peer");
                self.deliver_pending(&in_tx).await;
            }
            Some(End::Failed(e)) => {
                tracing::debug!(conn = self.id, peer = %self.peer, error = %e, kind = e.kind(), "connection failed");
                self.deliver_pending(&in_tx).await;
                let _ = in_tx.send(Err(Box::new(e))).await;
            }
            None => {}
        }
    }

    /// One item of the send queue into the write buffer; `Ok(true)` for a close request.
    fn take(&mut self, msg: Outgoing) -> Result<bool, TransportError> {
        match msg {
            Outgoing::Package(mut p) => {
                self.fill_ids(&mut p);
                self.encode(&p)?;
            }
            Outgoing::Parts {
                package_type,
                parts,
            } => {
                for part in &parts {
                    self.layer
                        .send_for_type(package_type, part, &mut self.wbuf)
                        .map_err(TransportError::Record)?;
                }
            }
            Outgoing::RawWire(bytes) => self.wbuf.extend_from_slice(&bytes),
            Outgoing::Close => return Ok(true),
        }
        Ok(false)
    }

    /// Hands the packages received before the end to the receiver.
    async fn deliver_pending(&mut self, in_tx: &mpsc::Sender<Incoming>) {
        while let Some(p) = self.pending.pop_front() {
            if in_tx.send(Ok(Box::new(p))).await.is_err() {
                break;
            }
        }
    }

    /// `setUuidsToPkgHeaderAndRegisterJob`: a nil sender becomes our connection UUID and a
    /// nil package uuid a fresh one (heartbeats, sent by another path, keep all zeros). A
    /// server also numbers every package it sends whose `numericId` is 0 from one
    /// process-wide counter (`SocketServerPrivate::sendPackage` -> `generateNumericId`); the
    /// SDK takes event ids from it.
    pub(crate) fn fill_ids(&self, package: &mut Package) {
        if self.stamp_numeric_ids && package.header.numeric_id == 0 {
            package.header.numeric_id = next_numeric_id();
        }
        if package.header.sender_uuid.is_nil() {
            package.header.sender_uuid = self.local_uuid;
        }
        if package.header.uuid.is_nil() {
            package.header.uuid = Uuid::new_v4();
        }
    }

    pub(crate) fn encode(&mut self, package: &Package) -> Result<(), TransportError> {
        // One write per part, as the real sender (header, descriptors, each buffer).
        self.layer
            .send_package(package, &mut self.wbuf)
            .map_err(TransportError::Record)
    }

    pub(crate) fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        // Application bytes out of the record layer, before the package decoder (a
        // temporary: an idle connection keeps none).
        let mut app = Vec::new();
        let received = self.layer.receive(bytes, &mut app);
        // Whatever the engine answers (alerts) goes out.
        self.layer.take_outgoing(&mut self.wbuf);
        if !app.is_empty() {
            self.decoder.push(&app);
        }
        // Packages decoded before a bad record still count.
        while let Some(p) = self
            .decoder
            .next_package()
            .map_err(TransportError::Package)?
        {
            if p.header.package_type == MNG_HEARTBEAT && p.buffers.is_empty() {
                tracing::trace!(conn = self.id, "heartbeat received");
                continue;
            }
            self.pending.push_back(p);
        }
        received.map_err(TransportError::Record)
    }
}

/// Runs the plaintext IOService handshake of either role over `stream`: sends our hello, then
/// feeds what arrives until the state machine completes (a peer that closes first gets the
/// state machine's own error for that point).
pub(crate) async fn exchange_hellos<S, H>(
    stream: &mut S,
    hs: &mut H,
) -> Result<H::Outcome, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handshake,
{
    stream
        .write_all(&hs.hello())
        .await
        .map_err(|e| TransportError::io(Stage::Handshake, e))?;
    // The largest hello is 421 bytes.
    let mut buf = vec![0u8; 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| TransportError::io(Stage::Handshake, e))?;
        if n == 0 {
            return Err(TransportError::Handshake(hs.eof()));
        }
        if let Some(outcome) = hs
            .feed(buf.get(..n).unwrap_or_default())
            .map_err(TransportError::Handshake)?
        {
            return Ok(outcome);
        }
    }
}
