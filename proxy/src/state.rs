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
use crate::forwarded::TrustedProxies;
use crate::limits::{client_key, IpGuard, PerIpCounter};
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
    /// `server.trusted_proxies`: whose forwarding header names the client.
    pub trusted: TrustedProxies,
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
        let trusted = TrustedProxies::from_config(&config.server)?;
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
            trusted,
        })
    }

    /// tungstenite settings for one browser connection, sized from `[limits]`.
    pub fn ws_config(limits: &LimitsConfig) -> WebSocketConfig {
        WebSocketConfig::default()
            // Eagerly allocated per connection: small, since browser messages are small.
            .read_buffer_size(limits.ws_read_buffer_bytes)
            // 0: every message goes straight to the socket (`batch::BatchWriter` batches below).
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
///
/// Three pools, each with a per-client share (IPv6 per /64) so that a few addresses cannot
/// take all of it: all connections (`max_connections`, `max_connections_per_ip`); connections
/// waiting to authenticate, from accept until their `open` / `resume`
/// (`max_preauth_connections`, `max_preauth_per_ip`); and upstream connections opened but
/// not yet logged in (`max_unauthenticated_upstreams`,
/// `max_unauthenticated_upstreams_per_ip`).
///
/// The client of a share is the request's client address ([`crate::forwarded`]). A
/// connection from a trusted proxy carries requests of other clients, whose address is
/// known only once a request head has been read: at accept it takes a slot of each pool's
/// total only (its own address has no share), and each request then takes the shares of the
/// client it names (`bind_client`, `reacquire_preauth`). Any other connection's client is its
/// peer from accept on.
#[derive(Debug)]
pub(crate) struct ConnCaps {
    total: Pool,
    preauth: Pool,
    unauthenticated: Pool,
}

/// A pool of slots with a per-client share.
#[derive(Debug)]
struct Pool {
    all: Arc<Semaphore>,
    per_ip: Arc<PerIpCounter>,
}

/// A slot of a [`Pool`]: given back when dropped. `share` is the client's share (none for a
/// trusted proxy's connection before a request has named its client).
#[derive(Debug)]
pub(crate) struct Slot {
    _all: OwnedSemaphorePermit,
    share: Option<IpGuard>,
}

impl Pool {
    fn new(all: usize, per_ip: usize) -> Pool {
        Pool {
            all: Arc::new(Semaphore::new(all)),
            per_ip: PerIpCounter::new(per_ip.max(1)),
        }
    }

    /// A slot, with `client`'s share if given, or which limit refused it (`Err(true)`: the
    /// client's share).
    fn take(&self, client: Option<IpAddr>) -> Result<Slot, bool> {
        let share = match client {
            Some(ip) => Some(self.per_ip.try_acquire(ip).ok_or(true)?),
            None => None,
        };
        let all = Arc::clone(&self.all)
            .try_acquire_owned()
            .map_err(|_| false)?;
        Ok(Slot { _all: all, share })
    }

    /// Make `slot` count against `client`'s share (taking it before giving up the old one);
    /// `false` if that client is at its cap (the slot is unchanged).
    fn rebind(&self, slot: &mut Slot, client: IpAddr) -> bool {
        if slot
            .share
            .as_ref()
            .is_some_and(|g| g.key() == client_key(client))
        {
            return true;
        }
        match self.per_ip.try_acquire(client) {
            Some(g) => {
                slot.share = Some(g);
                true
            }
            None => false,
        }
    }
}

/// The outcome of admitting a new TCP connection.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Admitted, with a pre-auth slot.
    Ready(Arc<ConnSlots>),
    /// Counted against the connection caps, but no pre-auth slot is free: the connection
    /// gets HTTP 503 with `Retry-After` and is closed. `reason` is the
    /// `rejections_total` label.
    Busy {
        slots: Arc<ConnSlots>,
        reason: &'static str,
    },
}

impl ConnCaps {
    fn new(l: &LimitsConfig) -> ConnCaps {
        ConnCaps {
            total: Pool::new(l.max_connections, l.max_connections_per_ip),
            preauth: Pool::new(l.max_preauth_connections, l.max_preauth_per_ip),
            unauthenticated: Pool::new(
                l.max_unauthenticated_upstreams,
                l.max_unauthenticated_upstreams_per_ip,
            ),
        }
    }

    /// Admit a new TCP connection from `peer`: its connection slot and a pre-auth slot, with
    /// `peer`'s shares unless it is a trusted proxy (`trusted`; then its requests' clients
    /// take the shares). A connection over the connection caps is refused (`Err`, the
    /// `rejections_total` label) and closed at once.
    pub(crate) fn admit(
        &self,
        peer: IpAddr,
        trusted: bool,
        metrics: &Metrics,
    ) -> Result<Admission, &'static str> {
        let client = (!trusted).then_some(peer);
        let total = self.total.take(client).map_err(|own_share| {
            if own_share {
                "per_ip_connections"
            } else {
                "max_connections"
            }
        })?;
        metrics.connections.inc();
        let (preauth, busy) = match self.preauth(client) {
            Ok(slot) => (Some(slot), None),
            Err(reason) => (None, Some(reason)),
        };
        let slots = Arc::new(ConnSlots {
            total: Mutex::new(total),
            _gauge: GaugeGuard(metrics.connections.clone()),
            preauth: Mutex::new(preauth),
        });
        Ok(match busy {
            None => Admission::Ready(slots),
            Some(reason) => Admission::Busy { slots, reason },
        })
    }

    fn preauth(&self, client: Option<IpAddr>) -> Result<Slot, &'static str> {
        self.preauth.take(client).map_err(|own_share| {
            if own_share {
                "preauth_per_ip"
            } else {
                "preauth_connections"
            }
        })
    }

    /// Count `slots` against the share of `client`, the client of its latest request (a
    /// change only on a trusted proxy's connection); the `rejections_total` label if that
    /// client is at `max_connections_per_ip`.
    pub(crate) fn bind_client(
        &self,
        slots: &ConnSlots,
        client: IpAddr,
    ) -> Result<(), &'static str> {
        let mut total = slots.total.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.rebind(&mut total, client) {
            Ok(())
        } else {
            Err("per_ip_connections")
        }
    }

    /// A pre-auth slot with `client`'s share for `slots` (a keep-alive connection that served
    /// plain requests asks for the upgrade, or a trusted proxy's connection names its
    /// client); the `rejections_total` label if none is free.
    pub(crate) fn reacquire_preauth(
        &self,
        slots: &ConnSlots,
        client: IpAddr,
    ) -> Result<(), &'static str> {
        let mut pre = slots.preauth.lock().unwrap_or_else(|p| p.into_inner());
        match pre.as_mut() {
            None => *pre = Some(self.preauth(Some(client))?),
            Some(slot) => {
                if !self.preauth.rebind(slot, client) {
                    return Err("preauth_per_ip");
                }
            }
        }
        Ok(())
    }

    /// A slot for an upstream connection that has not logged in yet, or the
    /// `rejections_total` label if `client` or everyone is at the cap.
    pub(crate) fn unauthenticated(&self, client: IpAddr) -> Result<Slot, &'static str> {
        self.unauthenticated
            .take(Some(client))
            .map_err(|own_share| {
                if own_share {
                    "unauthenticated_upstreams_per_ip"
                } else {
                    "unauthenticated_upstreams"
                }
            })
    }
}

/// The cap slots one client connection holds while it lives.
#[derive(Debug)]
pub(crate) struct ConnSlots {
    /// Its connection slot, with the share of the client of its latest request.
    total: Mutex<Slot>,
    _gauge: GaugeGuard,
    /// Held until the connection is no longer waiting to authenticate (it served a plain
    /// HTTP request, or the relay opened or resumed).
    preauth: Mutex<Option<Slot>>,
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
