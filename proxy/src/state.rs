//! State shared by every connection, below both the listener (`server`) and the relay
//! (`relay`): the configuration in force, metrics, connection caps and what a connection
//! holds of them, the ticket replay cache, and the start-up error type.
//!
//! Nothing here knows the relay or the listener: both depend on this module, never the
//! other way round.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{Config, ConfigError, LimitsConfig};
use crate::limits::{IpGuard, PerIpCounter};
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::policy::TargetPolicy;
use crate::static_files::StaticFiles;
use crate::ticket::{ReplayCache, TicketKey, Tickets};
use crate::tls::{TlsError, TlsState};

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

/// The reloadable part of the configuration, compiled: what is in force for new sessions.
#[derive(Debug)]
pub struct ActiveConfig {
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

impl ActiveConfig {
    /// Check `config` and compile every part of it (nothing is swapped in here).
    pub(crate) fn build(
        config: Config,
        local: SocketAddr,
        tls: bool,
    ) -> Result<ActiveConfig, StartError> {
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
        Ok(ActiveConfig {
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

/// State shared by every connection of one proxy.
#[derive(Debug)]
pub struct ProxyState {
    active: RwLock<Arc<ActiveConfig>>,
    /// Metrics.
    pub metrics: Metrics,
    pub(crate) caps: ConnCaps,
    /// Used ticket ids (header tickets and tickets in the open message alike).
    pub(crate) replay: ReplayCache,
    pub(crate) tls: Option<TlsState>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) ready: AtomicBool,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) config_path: Option<PathBuf>,
}

impl ProxyState {
    pub(crate) fn new(
        active: ActiveConfig,
        tls: Option<TlsState>,
        local_addr: SocketAddr,
        config_path: Option<PathBuf>,
        replay: ReplayCache,
    ) -> ProxyState {
        let (shutdown, _) = watch::channel(false);
        let caps = ConnCaps::new(&active.config.limits);
        ProxyState {
            active: RwLock::new(Arc::new(active)),
            metrics: Metrics::new(),
            caps,
            replay,
            tls,
            local_addr,
            ready: AtomicBool::new(false),
            shutdown,
            config_path,
        }
    }

    /// The configuration in force (a snapshot; reload swaps it).
    pub fn active(&self) -> Arc<ActiveConfig> {
        Arc::clone(&self.active.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Put a new configuration in force (for new sessions).
    pub(crate) fn install(&self, active: ActiveConfig) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(active);
    }
}

/// The connection caps (applied at start; a reload does not change them).
#[derive(Debug)]
pub(crate) struct ConnCaps {
    pub(crate) total: Arc<Semaphore>,
    pub(crate) per_ip: Arc<PerIpCounter>,
    pub(crate) preauth: Arc<Semaphore>,
}

impl ConnCaps {
    fn new(l: &LimitsConfig) -> ConnCaps {
        ConnCaps {
            total: Arc::new(Semaphore::new(l.max_connections)),
            per_ip: PerIpCounter::new(l.max_connections_per_ip.max(1)),
            preauth: Arc::new(Semaphore::new(l.max_preauth_connections)),
        }
    }

    /// Admit a new TCP connection from `peer`: a total slot, a per-IP slot and a pre-auth
    /// slot, or the reason (a `rejections_total` label) it is refused.
    pub(crate) fn admit(
        &self,
        peer: IpAddr,
        metrics: &Metrics,
    ) -> Result<Arc<ConnSlots>, &'static str> {
        let Ok(total) = Arc::clone(&self.total).try_acquire_owned() else {
            return Err("max_connections");
        };
        let Some(ip) = self.per_ip.try_acquire(peer) else {
            return Err("per_ip_connections");
        };
        let Ok(pre) = Arc::clone(&self.preauth).try_acquire_owned() else {
            return Err("preauth_connections");
        };
        metrics.connections.inc();
        Ok(Arc::new(ConnSlots {
            _total: total,
            _ip: ip,
            _gauge: GaugeGuard(metrics.connections.clone()),
            preauth: Mutex::new(Some(pre)),
        }))
    }

    /// A pre-auth slot for `slots` if it has none (a keep-alive connection that served plain
    /// requests asks for the upgrade); false if the pool is empty.
    pub(crate) fn reacquire_preauth(&self, slots: &ConnSlots) -> bool {
        let mut pre = slots.preauth.lock().unwrap_or_else(|p| p.into_inner());
        if pre.is_none() {
            match Arc::clone(&self.preauth).try_acquire_owned() {
                Ok(p) => *pre = Some(p),
                Err(_) => return false,
            }
        }
        true
    }
}

/// The cap slots one client connection holds while it lives.
#[derive(Debug)]
pub(crate) struct ConnSlots {
    _total: OwnedSemaphorePermit,
    _ip: IpGuard,
    _gauge: GaugeGuard,
    /// Held until the connection is no longer waiting to authenticate (it served a plain
    /// HTTP request, or the relay opened or resumed).
    preauth: Mutex<Option<OwnedSemaphorePermit>>,
}

impl ConnSlots {
    /// This connection no longer counts as pre-auth.
    pub(crate) fn release_preauth(&self) {
        drop(
            self.preauth
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

#[derive(Debug)]
struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
