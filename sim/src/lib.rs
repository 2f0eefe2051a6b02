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
pub mod faults;
mod service;
pub mod users;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prl_protocol::package::Limits;
use prl_protocol::Uuid;
use prl_transport::{accept_tcp, accept_unix, ServerConfig, StreamOptions};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use config::{ConfigError, Mode, SimConfig, TaskSpec};
pub use faults::Faults;
pub use service::{
    start_long_task_command, PACF_CANCEL_TASK_ON_END_SESSION, SIM_CMD_START_LONG_TASK,
    SIM_TASK_INTERVAL_MS, SIM_TASK_STEPS,
};
pub use users::{User, UserDb};

use service::{Policy, Shared};

/// A running simulator. Dropping it stops the listeners (connections already accepted run
/// until they close); [`Simulator::shutdown`] also waits for the listeners to stop.
pub struct Simulator {
    shared: Arc<Shared>,
    tcp_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("tcp_addr", &self.tcp_addr)
            .field("unix_path", &self.unix_path)
            .field("mode", &self.shared.config.mode)
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
        let shared = Arc::new(Shared::new(config));
        let (stop, stop_rx) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
        let mut listeners = Vec::new();
        if let Some(listener) = tcp {
            let server = server_config(&shared, true)?;
            let (shared, slots, mut stop_rx) = (shared.clone(), slots.clone(), stop_rx.clone());
            listeners.push(tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        _ = stop_rx.changed() => return,
                    };
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "tcp accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "connection limit reached: closing");
                        continue;
                    };
                    let (shared, server) = (shared.clone(), server.clone());
                    tokio::spawn(async move {
                        match accept_tcp(stream, &server).await {
                            Ok(conn) => service::serve(shared, conn).await,
                            Err(e) => tracing::info!(%peer, error = %e, "tcp client not accepted"),
                        }
                        drop(slot);
                    });
                }
            }));
        }
        if let Some(listener) = unix {
            let server = server_config(&shared, false)?;
            let (shared, slots, mut stop_rx) = (shared.clone(), slots.clone(), stop_rx.clone());
            listeners.push(tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        _ = stop_rx.changed() => return,
                    };
                    let stream = match accepted {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "unix accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!("connection limit reached: closing");
                        continue;
                    };
                    let (shared, server) = (shared.clone(), server.clone());
                    tokio::spawn(async move {
                        match accept_unix(stream, &server).await {
                            Ok(conn) => service::serve(shared, conn).await,
                            Err(e) => tracing::info!(error = %e, "unix client not accepted"),
                        }
                        drop(slot);
                    });
                }
            }));
        }
        Ok(Simulator {
            shared,
            tcp_addr,
            unix_path,
            stop,
            listeners,
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
        self.shared.config.server_uuid
    }

    /// Replaces the faults applied to new connections (and to replies on connections
    /// accepted later).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Faults for the one connection whose client connection UUID is `client` (the UUID in
    /// its handshake header, i.e. its future session id). Applies from the handshake on and
    /// replaces the run's faults for that connection.
    pub fn set_connection_faults(&self, client: Uuid, faults: Faults) {
        self.shared.set_connection_faults(client, faults);
    }

    /// Logged-in connections.
    pub fn session_count(&self) -> usize {
        self.shared.session_count()
    }

    /// Sim tasks still running.
    pub fn task_count(&self) -> usize {
        self.shared.task_count()
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

fn server_config(shared: &Arc<Shared>, tcp: bool) -> Result<ServerConfig, ConfigError> {
    let mut server = ServerConfig::new()?;
    if let Some(creds) = &shared.config.tls_credentials {
        server.tls = prl_transport::TlsConfig::server_with_credentials(creds)
            .map_err(|e| ConfigError::Invalid(format!("--tls-cert/--tls-key: {e}")))?;
    }
    server.min_security = shared.config.min_security;
    server.stream = StreamOptions {
        heartbeat_interval: Some(shared.config.heartbeat_interval),
        limits: Limits {
            max_package_len: shared.config.max_package_len,
            ..Limits::default()
        },
        receive_capacity: 4,
        send_capacity: 32,
    };
    server.policy = Arc::new(Policy {
        shared: shared.clone(),
        tcp,
    });
    Ok(server)
}

/// Binds a unix socket, replacing a stale socket file (never any other kind of file).
fn bind_unix(path: &Path) -> Result<UnixListener, ConfigError> {
    let what = format!("unix://{}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(|source| ConfigError::Listen {
                what: what.clone(),
                source,
            })?;
        } else {
            return Err(ConfigError::Listen {
                what,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ),
            });
        }
    }
    UnixListener::bind(path).map_err(|source| ConfigError::Listen { what, source })
}
