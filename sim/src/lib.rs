//! prl-sim: a Parallels Service simulator that speaks the real IOService wire protocol.
//!
//! It listens on TCP and/or a unix socket, runs the service side of the plaintext handshake and
//! the anonymous-DH TLS handshake (through `prl-transport`), and answers the commands around
//! login exactly as `prl_disp_service` does: login 2039, easy local login 2186, logoff 2042,
//! cancel 2053, attach to lost task 2090, with the service's error codes. See `README.md` for
//! the behaviour, the sim-only task command and the fault injection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), prl_sim::ConfigError> {
//! use prl_sim::{SimConfig, Simulator, UserDb};
//! let mut config = SimConfig::new();
//! config.tcp = Some("127.0.0.1:0".parse().unwrap());
//! config.users.add(UserDb::parse_spec("testuser:testpass")?)?;
//! let sim = Simulator::start(config).await?;
//! println!("listening on {:?}", sim.tcp_addr());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod faults;
pub mod inventory;
mod service;
pub mod users;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prl_protocol::package::Limits;
use prl_protocol::Uuid;
use prl_transport::{accept_tcp, accept_unix, ServerConfig, StreamOptions};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

pub use config::{Mode, SimConfig, TaskSpec, VmBehaviour, VmTiming};
pub use error::ConfigError;
pub use faults::Faults;
pub use inventory::{Access, HostSpec, Inventory, InventoryError, VmSpec};
pub use service::{
    start_long_task_command, PACF_CANCEL_TASK_ON_END_SESSION, SIM_CMD_START_LONG_TASK,
    SIM_TASK_INTERVAL_MS, SIM_TASK_STEPS,
};
pub use users::{User, UserDb};

use service::{serve, FaultPolicy, SimService};

/// A running simulator. Dropping it stops the listeners (connections already accepted run
/// until they close); [`Simulator::shutdown`] also waits for the listeners to stop.
pub struct Simulator {
    service: Arc<SimService>,
    tcp_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    /// Close (`false`) or reopen (`true`) each listener; acknowledged once done.
    gates: Vec<mpsc::Sender<(bool, oneshot::Sender<()>)>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("tcp_addr", &self.tcp_addr)
            .field("unix_path", &self.unix_path)
            .field("mode", &self.service.config.mode)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Validates the configuration, binds the listeners and starts serving.
    pub async fn start(config: SimConfig) -> Result<Simulator, ConfigError> {
        config.validate()?;
        let tcp = match config.tcp {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ConfigError::Listen {
                            what: format!("tcp://{addr}"),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let unix = match &config.unix {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let tcp_addr = match &tcp {
            Some(l) => Some(l.local_addr().map_err(|source| ConfigError::Listen {
                what: "tcp".into(),
                source,
            })?),
            None => None,
        };
        let unix_path = config.unix.clone();
        let open = !config.faults.refuse;
        let service = Arc::new(SimService::new(config));
        let (stop, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(service.config.max_connections.max(1)));
        let mut listeners = Vec::new();
        let mut gates = Vec::new();
        let mut spawn = |bound: Bound, spot: Spot| -> Result<(), ConfigError> {
            let (gate, gate_rx) = mpsc::channel(4);
            gates.push(gate);
            let task = Listener {
                spot,
                bound: open.then_some(bound),
                want_open: open,
                service: service.clone(),
                server: server_config(&service)?,
                slots: slots.clone(),
                stop: stop_rx.clone(),
                gate: gate_rx,
            };
            listeners.push(tokio::spawn(task.run()));
            Ok(())
        };
        if let (Some(listener), Some(addr)) = (tcp, tcp_addr) {
            spawn(Bound::Tcp(listener), Spot::Tcp(addr))?;
        }
        if let (Some(listener), Some(path)) = (unix, &unix_path) {
            spawn(Bound::Unix(listener), Spot::Unix(path.clone()))?;
        }
        Ok(Simulator {
            service,
            tcp_addr,
            unix_path,
            stop,
            listeners,
            gates,
        })
    }

    /// The bound TCP address (with the real port when 0 was asked for).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The unix socket path.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The server UUID reported in login replies.
    pub fn server_uuid(&self) -> Uuid {
        self.service.config.server_uuid
    }

    /// Replaces the faults applied to new connections (and to replies on connections
    /// accepted later). With `refuse` the listeners are closed before this returns, so
    /// connecting is refused by the OS; without it they are listening again (same address)
    /// when this returns.
    pub async fn set_faults(&self, faults: Faults) {
        let open = !faults.refuse;
        self.service.set_faults(faults);
        for gate in &self.gates {
            let (done, wait) = oneshot::channel();
            if gate.send((open, done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Faults for the one connection whose client connection UUID is `client` (the UUID in
    /// its handshake header, i.e. its future session id). Applies from the handshake on and
    /// replaces the run's faults for that connection.
    pub fn set_connection_faults(&self, client: Uuid, faults: Faults) {
        self.service.set_connection_faults(client, faults);
    }

    /// Logged-in connections.
    pub fn session_count(&self) -> usize {
        self.service.session_count()
    }

    /// Sim tasks still running.
    pub fn task_count(&self) -> usize {
        self.service.task_count()
    }

    /// The state the service reports for a VM now (`None`: no such VM).
    pub fn vm_state(&self, uuid: &Uuid) -> Option<prl_protocol::codes::VmState> {
        self.service.vm_state(uuid)
    }

    /// Adds a VM, as a registration would: `PET_DSP_EVT_VM_ADDED` goes to the sessions that
    /// may read it. `false` when its name or uuid is taken.
    pub async fn add_vm(&self, spec: VmSpec) -> bool {
        self.service.add_vm(spec).await
    }

    /// Deletes a VM: `PET_DSP_EVT_VM_DELETED` goes to every session. `false` when there is
    /// no such VM.
    pub async fn delete_vm(&self, uuid: &Uuid) -> bool {
        self.service.delete_vm(uuid).await
    }

    /// Edits a VM's configuration (its uuid stays): `PET_DSP_EVT_VM_CONFIG_CHANGED` goes to
    /// the sessions that may read it. `false` when there is no such VM.
    pub async fn update_vm(&self, uuid: &Uuid, edit: impl FnOnce(&mut VmSpec)) -> bool {
        self.service.update_vm(uuid, edit).await
    }

    /// Changes a VM's state from outside (its guest shut down, say): the state event goes to
    /// the sessions that may read it. `false` when there is no such VM.
    pub async fn set_vm_state(&self, uuid: &Uuid, state: prl_protocol::codes::VmState) -> bool {
        self.service.set_vm_state(uuid, state).await
    }

    /// Stops accepting connections and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for l in self.listeners.drain(..) {
            let _ = l.await;
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for l in &self.listeners {
            l.abort();
        }
    }
}

fn server_config(service: &Arc<SimService>) -> Result<ServerConfig, ConfigError> {
    let mut server = ServerConfig::new()?;
    if let Some(creds) = &service.config.tls_credentials {
        server.tls = prl_transport::TlsConfig::server_with_credentials(creds)
            .map_err(|e| ConfigError::Invalid(format!("--tls-cert/--tls-key: {e}")))?;
    }
    server.min_security = service.config.min_security;
    server.stream = StreamOptions {
        heartbeat_interval: Some(service.config.heartbeat_interval),
        limits: Limits {
            max_package_len: service.config.max_package_len,
            ..Limits::default()
        },
        // One package waits while one is handled: with the 1 MiB package limit, the 256 KiB
        // write backlog and 32 queued replies this bounds a connection's buffers (README).
        receive_capacity: 1,
        send_capacity: 32,
    };
    server.policy = Arc::new(FaultPolicy {
        service: service.clone(),
    });
    Ok(server)
}

/// Binds a unix socket, replacing a stale socket file (never any other kind of file).
fn bind_unix(path: &Path) -> Result<UnixListener, ConfigError> {
    bind_unix_io(path).map_err(|source| ConfigError::Listen {
        what: format!("unix://{}", path.display()),
        source,
    })
}

fn bind_unix_io(path: &Path) -> std::io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// Where a listener listens, to open it again after a `refuse` fault closed it.
enum Spot {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Spot {
    async fn bind(&self) -> std::io::Result<Bound> {
        match self {
            Spot::Tcp(addr) => TcpListener::bind(addr).await.map(Bound::Tcp),
            Spot::Unix(path) => bind_unix_io(path).map(Bound::Unix),
        }
    }
}

impl std::fmt::Display for Spot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spot::Tcp(addr) => write!(f, "tcp://{addr}"),
            Spot::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// An open listening socket.
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Bound {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Bound::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
            Bound::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// Accepts on `bound`; never completes without one.
async fn accept_on(bound: Option<&Bound>) -> std::io::Result<Accepted> {
    match bound {
        Some(b) => b.accept().await,
        None => std::future::pending().await,
    }
}

/// What woke the listener loop.
enum Wake {
    Stop,
    Gate(Option<(bool, oneshot::Sender<()>)>),
    Accepted(std::io::Result<Accepted>),
    Retry,
}

/// One listener's accept loop. A `refuse` fault closes the listening socket (connecting is
/// then refused by the OS, as when no service runs); clearing it binds the same address again.
struct Listener {
    spot: Spot,
    bound: Option<Bound>,
    want_open: bool,
    service: Arc<SimService>,
    server: ServerConfig,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    gate: mpsc::Receiver<(bool, oneshot::Sender<()>)>,
}

impl Listener {
    async fn run(mut self) {
        if !self.want_open {
            tracing::info!(listener = %self.spot, "fault refuse: not listening");
        }
        let mut gate_open = true;
        loop {
            if self.want_open && self.bound.is_none() {
                match self.spot.bind().await {
                    Ok(b) => {
                        tracing::info!(listener = %self.spot, "listening again");
                        self.bound = Some(b);
                    }
                    Err(e) => {
                        tracing::warn!(listener = %self.spot, error = %e, "cannot listen again")
                    }
                }
            }
            let wake = {
                let bound = self.bound.as_ref();
                let retry = self.want_open && bound.is_none();
                tokio::select! {
                    _ = self.stop.changed() => Wake::Stop,
                    g = self.gate.recv(), if gate_open => Wake::Gate(g),
                    a = accept_on(bound), if bound.is_some() => Wake::Accepted(a),
                    _ = tokio::time::sleep(Duration::from_millis(100)), if retry => Wake::Retry,
                }
            };
            match wake {
                Wake::Stop => return,
                Wake::Retry => {}
                Wake::Gate(None) => gate_open = false,
                Wake::Gate(Some((open, done))) => {
                    self.want_open = open;
                    if open {
                        if self.bound.is_none() {
                            match self.spot.bind().await {
                                Ok(b) => self.bound = Some(b),
                                Err(e) => {
                                    tracing::warn!(listener = %self.spot, error = %e, "cannot listen again")
                                }
                            }
                        }
                    } else if self.bound.take().is_some() {
                        tracing::info!(listener = %self.spot, "fault refuse: listener closed");
                    }
                    let _ = done.send(());
                }
                Wake::Accepted(Err(e)) => {
                    tracing::warn!(listener = %self.spot, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Wake::Accepted(Ok(accepted)) => self.serve(accepted),
            }
        }
    }

    fn serve(&self, accepted: Accepted) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(listener = %self.spot, "connection limit reached: closing");
            return;
        };
        let (service, server) = (self.service.clone(), self.server.clone());
        tokio::spawn(async move {
            match accepted {
                Accepted::Tcp(stream, peer) => match accept_tcp(stream, &server).await {
                    Ok(conn) => serve(service, conn).await,
                    Err(e) => tracing::info!(%peer, error = %e, "tcp client not accepted"),
                },
                Accepted::Unix(stream) => match accept_unix(stream, &server).await {
                    Ok(conn) => serve(service, conn).await,
                    Err(e) => tracing::info!(error = %e, "unix client not accepted"),
                },
            }
            drop(slot);
        });
    }
}
