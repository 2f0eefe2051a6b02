//! State shared by every connection, below both the listener (`server`) and the relay
//! (`relay`): the configuration in force, metrics, connection caps and what a connection
//! holds of them, the shared state (ticket replay cache, throttles, restore proofs: in memory
//! or a cluster's Redis), and the start-up error type.
//!
//! Nothing here knows the relay or the listener: both depend on this module, never the
//! other way round.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{Config, ConfigError, LimitsConfig};
use crate::fairpool::{FairPool, Refusal, SlotId};
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::policy::TargetPolicy;
use crate::shared_state::SharedState;
use crate::static_files::StaticFiles;
use crate::ticket::{TicketKeyError, Tickets};
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
    /// A ticket key file unreadable or not a key of its algorithm.
    #[error(transparent)]
    TicketKey(#[from] TicketKeyError),
    /// The cluster's shared state cannot be set up (secret, password, CA, URL).
    #[error("invalid config section `cluster`: {0}")]
    Cluster(String),
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
            StartError::Cluster(_) => "cluster",
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
            Some(t) => Some(Tickets::load(t)?),
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
    /// What must hold across processes: used ticket ids (header tickets and tickets in the
    /// open message alike), login throttles, restore proofs, parked-link locations.
    pub(crate) shared: Arc<dyn SharedState>,
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
        metrics: Metrics,
        shared: Arc<dyn SharedState>,
    ) -> ProxyState {
        let (shutdown, _) = watch::channel(false);
        let caps = ConnCaps::new(&active.config.limits);
        ProxyState {
            active: RwLock::new(Arc::new(active)),
            metrics,
            caps,
            shared,
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
/// A share alone cannot keep many addresses from filling a pool, so the two pools of
/// connections that have not authenticated evict fairly when full ([`crate::fairpool`]): a
/// newcomer whose client holds none, or two fewer than the biggest holder, takes that
/// holder's oldest slot, whose connection is told through its [`Eviction`] and closed with
/// `limit_reached` (`rejections_total` `preauth_evicted` / `unauthenticated_evicted`). The
/// pool of all connections, authenticated sessions included, never evicts.
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

/// Tells a connection that a pool took its slot back (fair-share eviction); one per
/// connection for its pre-auth slot (whichever it holds), one per unauthenticated upstream.
#[derive(Debug, Clone)]
pub(crate) struct Eviction(Arc<watch::Sender<bool>>);

impl Eviction {
    pub(crate) fn new() -> Eviction {
        Eviction(Arc::new(watch::channel(false).0))
    }

    fn evict(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once evicted (at once if it already was).
    pub(crate) async fn evicted(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: this only returns once the flag is set.
        let _ = rx.wait_for(|evicted| *evicted).await;
    }
}

type Shared = Arc<Mutex<FairPool<Eviction>>>;

fn lock(pool: &Shared) -> std::sync::MutexGuard<'_, FairPool<Eviction>> {
    pool.lock().unwrap_or_else(|p| p.into_inner())
}

/// A pool of slots with a per-client share; `evicted` is the `rejections_total` label of an
/// eviction, for a pool that evicts.
struct Pool {
    slots: Shared,
    evicted: Option<&'static str>,
}

/// A slot of a [`Pool`]: given back when dropped (if the pool has not taken it back).
pub(crate) struct Slot {
    pool: Shared,
    id: SlotId,
    eviction: Eviction,
}

impl Slot {
    /// Resolves once the pool took this slot back.
    pub(crate) async fn evicted(&self) {
        self.eviction.evicted().await
    }
}

impl std::fmt::Debug for Slot {
    /// The slot, not its whole pool.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("id", &self.id).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.pool).release(self.id);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("held", &lock(&self.slots).len())
            .field("evicted", &self.evicted)
            .finish()
    }
}

impl Pool {
    fn new(all: usize, per_ip: usize, evicted: Option<&'static str>) -> Pool {
        Pool {
            slots: Arc::new(Mutex::new(FairPool::new(all, per_ip, evicted.is_some()))),
            evicted,
        }
    }

    /// A slot counted against `client`'s share if given (else the pool's only), whose
    /// holder hears of an eviction through `eviction`; or why not. A slot this one takes
    /// the place of is told, and counted.
    fn take(
        &self,
        client: Option<IpAddr>,
        eviction: Eviction,
        metrics: &Metrics,
    ) -> Result<Slot, Refusal> {
        let taken = lock(&self.slots).take(client, eviction.clone())?;
        if let Some(victim) = taken.evicted {
            victim.evict();
            if let Some(reason) = self.evicted {
                metrics.reject(reason);
            }
        }
        Ok(Slot {
            pool: Arc::clone(&self.slots),
            id: taken.id,
            eviction,
        })
    }

    /// Make `slot` count against `client`'s share; `false` if that client is at its cap
    /// (the slot is unchanged).
    fn rebind(&self, slot: &Slot, client: IpAddr) -> bool {
        lock(&self.slots).rebind(slot.id, client)
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
            total: Pool::new(l.max_connections, l.max_connections_per_ip, None),
            preauth: Pool::new(
                l.max_preauth_connections,
                l.max_preauth_per_ip,
                Some("preauth_evicted"),
            ),
            unauthenticated: Pool::new(
                l.max_unauthenticated_upstreams,
                l.max_unauthenticated_upstreams_per_ip,
                Some("unauthenticated_evicted"),
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
        // The pool of all connections never evicts: its slot shares the connection's
        // eviction with the pre-auth slot, never to be told.
        let eviction = Eviction::new();
        let total = self
            .total
            .take(client, eviction.clone(), metrics)
            .map_err(|refusal| match refusal {
                Refusal::OwnShare => "per_ip_connections",
                Refusal::Full => "max_connections",
            })?;
        metrics.connections.inc();
        let (preauth, busy) = match self.preauth(client, &eviction, metrics) {
            Ok(slot) => (Some(slot), None),
            Err(reason) => (None, Some(reason)),
        };
        let slots = Arc::new(ConnSlots {
            total: Mutex::new(total),
            _gauge: GaugeGuard(metrics.connections.clone()),
            preauth: Mutex::new(preauth),
            eviction,
        });
        Ok(match busy {
            None => Admission::Ready(slots),
            Some(reason) => Admission::Busy { slots, reason },
        })
    }

    fn preauth(
        &self,
        client: Option<IpAddr>,
        eviction: &Eviction,
        metrics: &Metrics,
    ) -> Result<Slot, &'static str> {
        self.preauth
            .take(client, eviction.clone(), metrics)
            .map_err(|refusal| match refusal {
                Refusal::OwnShare => "preauth_per_ip",
                Refusal::Full => "preauth_connections",
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
        let total = slots.total.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.rebind(&total, client) {
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
        metrics: &Metrics,
    ) -> Result<(), &'static str> {
        let mut pre = slots.preauth.lock().unwrap_or_else(|p| p.into_inner());
        match pre.as_mut() {
            None => *pre = Some(self.preauth(Some(client), &slots.eviction, metrics)?),
            Some(slot) => {
                if !self.preauth.rebind(slot, client) {
                    return Err("preauth_per_ip");
                }
            }
        }
        Ok(())
    }

    /// A slot for an upstream connection that has not logged in yet, or the
    /// `rejections_total` label if `client` is at its share, or the pool is full and no
    /// client holds more than `client`.
    pub(crate) fn unauthenticated(
        &self,
        client: IpAddr,
        metrics: &Metrics,
    ) -> Result<Slot, &'static str> {
        self.unauthenticated
            .take(Some(client), Eviction::new(), metrics)
            .map_err(|refusal| match refusal {
                Refusal::OwnShare => "unauthenticated_upstreams_per_ip",
                Refusal::Full => "unauthenticated_upstreams",
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
    /// Told when the pre-auth pool takes back the slot this connection holds.
    eviction: Eviction,
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

    /// Resolves once the pre-auth pool took this connection's slot back (fair-share
    /// eviction): the connection must close.
    pub(crate) async fn preauth_evicted(&self) {
        self.eviction.evicted().await
    }
}

#[derive(Debug)]
struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
