//! The proxy's TOML configuration: one loader, strict keys, errors that name the bad key.
//!
//! Every section and every key is optional; the defaults are the safe ones (deny every target,
//! accept only the proxy's own origin, local login off). See `prl-proxy.example.toml` for the
//! documented format.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use prl_protocol::scope::CommandScope;
use serde::Deserialize;

/// Failure to load or validate the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown / mistyped key (toml names the key and position).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A key has a value the proxy cannot use.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// Dotted key path, e.g. `policy.allow[0].cidr`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// Stable snake_case name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_read",
            ConfigError::Parse(_) => "config_parse",
            ConfigError::Invalid { .. } => "config_invalid",
        }
    }

    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listener and origin settings.
    pub server: ServerConfig,
    /// wss: certificate and key (absent = plain ws).
    pub tls: Option<TlsConfig>,
    /// Static files (web console, npm package).
    #[serde(rename = "static")]
    pub static_files: StaticConfig,
    /// Which service targets may be reached.
    pub policy: PolicyConfig,
    /// Signed tickets.
    pub tickets: Option<TicketsConfig>,
    /// Sizes, caps, timeouts.
    pub limits: LimitsConfig,
    /// Keeping the upstream connection across a browser blip.
    pub resume: ResumeConfig,
    /// Logging.
    pub log: LogConfig,
    /// Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Several proxies as one relay, their shared state in Redis (absent = a single proxy,
    /// everything in memory). Applied at start only.
    pub cluster: Option<ClusterConfig>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The origin under which browsers reach this proxy (`https://proxy.example.com`); used as
    /// the default allowed origin. Needed when listening on an unspecified address.
    pub public_origin: Option<String>,
    /// Exact allowed page origins. Empty = the proxy's own origin only.
    pub allowed_origins: Vec<String>,
    /// Allow plain `ws://` on a non-loopback address (for a TLS-terminating front end).
    pub allow_plain_ws: bool,
    /// WebSocket endpoint path.
    pub ws_path: String,
    /// Reverse proxies / TLS front ends (CIDRs or addresses) whose `forwarded_header` names
    /// the client. Empty (the default): every peer is the client, forwarding headers are
    /// ignored. See [`crate::forwarded`].
    pub trusted_proxies: Vec<String>,
    /// Which header the trusted proxies set: `x-forwarded-for` (default) or `forwarded` (only
    /// if they write it on every request).
    pub forwarded_header: crate::forwarded::ForwardedHeader,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_origin: None,
            allowed_origins: Vec::new(),
            allow_plain_ws: false,
            ws_path: "/ws".into(),
            trusted_proxies: Vec::new(),
            forwarded_header: Default::default(),
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Generate a self-signed certificate for `localhost` / the listen address (demos only).
    pub self_signed: bool,
}

/// `[static]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// Directory served at `/` (the web console).
    pub root: Option<PathBuf>,
    /// Further directories under a URL prefix (e.g. the npm package at `/pkg/`).
    pub mount: Vec<MountConfig>,
    /// Largest file served, in bytes.
    pub max_file_bytes: u64,
}

/// `[[static.mount]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// URL prefix, starting and ending with `/`.
    pub prefix: String,
    /// Directory.
    pub dir: PathBuf,
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Named targets the browser may ask for by name.
    pub target: Vec<TargetConfig>,
    /// CIDR + port allow-list for hosts the browser names directly.
    pub allow: Vec<AllowConfig>,
    /// Whether the browser may name DNS hosts that are not configured targets (every resolved
    /// address is still checked against `allow`).
    pub resolve_names: bool,
    /// Allow `login_local` (2186) to the co-located service: it logs the browser in as the
    /// proxy's own OS user.
    pub local_login: bool,
    /// Where `mode = "local"` connects over TCP when `local_socket` is not set (non-Linux
    /// services, or a service that identifies local users some other way).
    pub local_target: SocketAddr,
    /// The co-located service's unix socket (the real one is
    /// `/var/run/prl_disp_service.socket`). When set, `mode = "local"` connects here and the
    /// service identifies the proxy's OS user by `SO_PEERCRED`. Absolute path.
    pub local_socket: Option<PathBuf>,
    /// What a browser may ask the service to do (`read`, `operate`, `all`; see
    /// `prl_protocol::scope`). A ticket's `scope` claim can narrow it for its connection.
    pub scope: CommandScope,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            target: Vec::new(),
            allow: Vec::new(),
            resolve_names: true,
            local_login: false,
            local_target: SocketAddr::from(([127, 0, 0, 1], prl_protocol_default_port())),
            local_socket: None,
            scope: CommandScope::All,
        }
    }
}

pub(crate) const fn prl_protocol_default_port() -> u16 {
    64000
}

/// `[[policy.target]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The name the browser uses.
    pub name: String,
    /// Host name or IP literal. An IP literal is "explicitly listed": it may be loopback etc.
    pub host: String,
    /// Port (default 64000).
    #[serde(default = "prl_protocol_default_port")]
    pub port: u16,
}

/// `[[policy.allow]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// Network, e.g. `10.0.0.0/8` or `2001:db8::/32` (a bare address means /32 or /128).
    pub cidr: String,
    /// Allowed ports (default `[64000]`).
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
}

fn default_ports() -> Vec<u16> {
    vec![prl_protocol_default_port()]
}

/// `[tickets]`: signed tickets (compact JWS, `docs/tickets.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// Shorthand for one HS256 key without a `kid`: the shared secret's file (at least 32
    /// bytes; base64url / base64 text or raw bytes).
    pub key_file: Option<PathBuf>,
    /// The keys tickets may be signed with (`[[tickets.keys]]`), each with one algorithm.
    #[serde(default)]
    pub keys: Vec<TicketKeyConfig>,
    /// The `aud` every ticket must name (a string, or an array holding it).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Refuse connections without a valid ticket.
    #[serde(default = "yes")]
    pub required: bool,
    /// Longest ticket lifetime accepted, in seconds.
    #[serde(default = "default_ticket_ttl")]
    pub max_ttl_secs: u64,
    /// Capacity of the replay cache (used tickets remembered until they expire).
    #[serde(default = "default_replay_cache")]
    pub replay_cache_size: usize,
}

/// `[[tickets.keys]]`: one verification key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketKeyConfig {
    /// The `kid` tickets name this key by; at most one key may have none (tickets without a
    /// `kid` use it).
    pub kid: Option<String>,
    /// The one algorithm this key accepts.
    pub alg: TicketAlg,
    /// HS256: the shared secret's file. EdDSA: the Ed25519 public key (PEM or JWK).
    pub file: PathBuf,
}

/// A ticket key's algorithm, spelt as in the JOSE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TicketAlg {
    /// HMAC-SHA-256 with a shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// Ed25519; the proxy holds the public key only.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// The default `tickets.audience`.
pub const DEFAULT_AUDIENCE: &str = "prl-proxy";

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_string()
}
fn yes() -> bool {
    true
}
fn default_ticket_ttl() -> u64 {
    120
}
fn default_replay_cache() -> usize {
    100_000
}

impl TicketsConfig {
    /// The audience and the key list's shape (the key files are read by
    /// `ticket::Tickets::load`, with the rest of what start-up and reload load).
    fn validate_keys(&self) -> Result<(), ConfigError> {
        let a = &self.audience;
        if a.is_empty() || a.len() > 256 || a.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "tickets.audience",
                "must be 1 to 256 characters, no control characters",
            ));
        }
        if self.key_file.is_none() && self.keys.is_empty() {
            return Err(ConfigError::invalid(
                "tickets.keys",
                "no key: set tickets.key_file or at least one [[tickets.keys]]",
            ));
        }
        let mut without_kid = self.key_file.is_some();
        for (i, k) in self.keys.iter().enumerate() {
            let key = format!("tickets.keys[{i}].kid");
            match &k.kid {
                None if without_kid => {
                    return Err(ConfigError::invalid(
                        key,
                        "missing: only one key (tickets.key_file counts) may be without a kid",
                    ))
                }
                None => without_kid = true,
                Some(kid) if !crate::jws::valid_kid(kid) => {
                    return Err(ConfigError::invalid(
                        key,
                        "must be 1 to 64 visible ASCII characters",
                    ))
                }
                Some(kid) if self.keys[..i].iter().any(|o| o.kid.as_ref() == Some(kid)) => {
                    return Err(ConfigError::invalid(key, "used by another key"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest WebSocket message from the browser (one IO package or control message).
    pub max_message_bytes: usize,
    /// Largest WebSocket frame from the browser.
    pub max_frame_bytes: usize,
    /// Largest IO package accepted from the service.
    pub max_package_bytes: usize,
    /// tungstenite read buffer per connection.
    pub ws_read_buffer_bytes: usize,
    /// tungstenite write buffer per connection (0 = write each message through).
    pub ws_write_buffer_bytes: usize,
    /// Packages queued toward each side before reading from the other side stops.
    pub queue_packages: usize,
    /// Bytes queued toward each side before reading from the other side stops.
    pub queue_bytes: usize,
    /// The TLS handshake, and then the HTTP request head, must each complete within this.
    pub handshake_timeout_ms: u64,
    /// After the WebSocket upgrade, the first relay message (`open` / `resume`) must arrive
    /// within this (a browser sends it at once).
    pub first_message_timeout_ms: u64,
    /// Ceiling of every upstream connect (the client's 0 means this).
    pub connect_timeout_ms: u64,
    /// All connections (HTTP, WebSocket, detached sessions).
    pub max_connections: usize,
    /// Connections that have not completed `open` / `resume` yet. Full, a newcomer from an
    /// address holding none of them, or at least two fewer than the address holding the
    /// most, takes that address's oldest (fair-share eviction, `crate::fairpool`); any other
    /// gets HTTP 503 with `Retry-After`.
    pub max_preauth_connections: usize,
    /// One client address's share of `max_preauth_connections` (IPv6 per /64).
    pub max_preauth_per_ip: usize,
    /// Upstream connections opened but not yet logged in, all clients together (kept well
    /// below what the service can hold). Full, it evicts like `max_preauth_connections`; an
    /// `open` it cannot make room for is refused with `limit_reached`.
    pub max_unauthenticated_upstreams: usize,
    /// One client address's share of `max_unauthenticated_upstreams` (IPv6 per /64).
    pub max_unauthenticated_upstreams_per_ip: usize,
    /// Concurrent connections from one client IP.
    pub max_connections_per_ip: usize,
    /// Login attempts (2039) per client IP: burst, then this many per minute.
    pub login_burst_per_ip: u32,
    /// Login attempts per client IP per minute after the burst.
    pub login_per_minute_per_ip: u32,
    /// Login attempts per user name: burst.
    pub login_burst_per_user: u32,
    /// Login attempts per user name per minute after the burst.
    pub login_per_minute_per_user: u32,
    /// Close a session with no package either way for this long.
    pub idle_timeout_ms: u64,
    /// Close every session after this long.
    pub max_lifetime_ms: u64,
    /// Close a session on which no login has succeeded this long after `opened`.
    pub login_deadline_ms: u64,
    /// WebSocket ping interval toward the browser.
    pub ping_interval_ms: u64,
    /// HTTP connections that never upgrade are closed after this long.
    pub http_connection_ms: u64,
    /// A browser that accepts no byte of a WebSocket write (or of a queue hand-off toward
    /// it) for this long is treated as gone (detached for a resume, like a dead browser).
    pub write_stall_ms: u64,
    /// Bytes queued toward all browsers together; beyond this, no session reads its service
    /// until browsers have taken some (applied at the next start).
    pub max_queued_bytes_total: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 1 << 20,
            max_frame_bytes: 1 << 20,
            max_package_bytes: 16 << 20,
            ws_read_buffer_bytes: 1024,
            ws_write_buffer_bytes: 0,
            queue_packages: 64,
            queue_bytes: 4 << 20,
            handshake_timeout_ms: 10_000,
            first_message_timeout_ms: 5_000,
            connect_timeout_ms: 60_000,
            max_connections: 10_000,
            max_preauth_connections: 512,
            max_preauth_per_ip: 8,
            max_unauthenticated_upstreams: 256,
            max_unauthenticated_upstreams_per_ip: 8,
            max_connections_per_ip: 64,
            login_burst_per_ip: 10,
            login_per_minute_per_ip: 30,
            login_burst_per_user: 5,
            login_per_minute_per_user: 10,
            idle_timeout_ms: 30 * 60_000,
            max_lifetime_ms: 24 * 3_600_000,
            login_deadline_ms: 20_000,
            ping_interval_ms: 30_000,
            http_connection_ms: 60_000,
            write_stall_ms: 10_000,
            max_queued_bytes_total: 256 << 20,
        }
    }
}

/// `[resume]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeConfig {
    /// Keep the upstream connection this long after the browser's WebSocket drops (0 = off).
    pub window_ms: u64,
    /// Service packages kept for replay.
    pub buffer_packages: usize,
    /// Bytes of service packages kept for replay.
    pub buffer_bytes: usize,
    /// Detached sessions kept at once.
    pub max_detached: usize,
    /// How long the proxy keeps the restore proof of a closed upstream connection (the hash
    /// of its last resume token), after which a login naming that session is refused
    /// (0 = keep none: only a connection's own session may be named).
    pub restore_ttl_ms: u64,
    /// Restore proofs kept at once (the oldest are dropped first).
    pub restore_max: usize,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig {
            window_ms: 60_000,
            buffer_packages: 512,
            buffer_bytes: 2 << 20,
            max_detached: 1000,
            restore_ttl_ms: 600_000,
            restore_max: 100_000,
        }
    }
}

/// `[cluster]`: this proxy is one instance of several behind a load balancer; what must hold
/// across them lives in Redis (see `docs/scaling.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host[:port][/db]` or `rediss://...` (TLS). No password in the URL: use
    /// `password_file`.
    pub redis_url: String,
    /// Redis ACL user name (optional; with `password_file`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the Redis password (`AUTH`); trailing whitespace is ignored.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM trust anchors for `rediss://` (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This instance's id: letters, digits, `-`, `_`, `.`; at most 64 bytes; unique in the
    /// cluster.
    pub instance_id: String,
    /// The `ws://` / `wss://` URL of this instance's relay endpoint as browsers reach it
    /// directly (a resume is sent here).
    pub public_url: String,
    /// The other instances: id -> public URL. A resume is redirected only to these URLs.
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, String>,
    /// File holding the cluster secret (at least 32 bytes, the same on every instance): keys
    /// every identifier stored in Redis (HMAC-SHA256).
    pub secret_file: PathBuf,
    /// Prefix of every Redis key (several clusters can share one Redis).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How often this instance renews its registration (which expires after three periods)
    /// and probes Redis.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Longest wait for one Redis operation; beyond it the operation counts as failed (fail
    /// closed).
    #[serde(default = "default_op_timeout_ms")]
    pub op_timeout_ms: u64,
}

fn default_key_prefix() -> String {
    "prl:".into()
}
fn default_heartbeat_ms() -> u64 {
    1_000
}
fn default_op_timeout_ms() -> u64 {
    500
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// tracing filter (`RUST_LOG` overrides it).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Serve `/metrics` to non-loopback clients too.
    pub allow_remote: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            allow_remote: false,
        }
    }
}

impl Config {
    /// Parse and validate TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Read, parse and validate a file. Relative paths inside are resolved against the file's
    /// directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::from_toml_str(&text)?;
        if let Some(base) = path.parent() {
            config.resolve_paths(base);
        }
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(tls) = &mut self.tls {
            tls.cert_file.as_mut().map(fix);
            tls.key_file.as_mut().map(fix);
        }
        if let Some(root) = &mut self.static_files.root {
            fix(root);
        }
        for m in &mut self.static_files.mount {
            fix(&mut m.dir);
        }
        if let Some(t) = &mut self.tickets {
            t.key_file.as_mut().map(fix);
            for k in &mut t.keys {
                fix(&mut k.file);
            }
        }
        if let Some(c) = &mut self.cluster {
            fix(&mut c.secret_file);
            c.password_file.as_mut().map(fix);
            c.ca_file.as_mut().map(fix);
        }
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if !s.ws_path.starts_with('/') {
            return Err(ConfigError::invalid(
                "server.ws_path",
                "must start with '/'",
            ));
        }
        let listen_ip = s.listen.ip();
        if self.tls.is_none() && !listen_ip.is_loopback() && !s.allow_plain_ws {
            return Err(ConfigError::invalid(
                "server.listen",
                "plain ws on a non-loopback address needs [tls] or server.allow_plain_ws = true",
            ));
        }
        if listen_ip.is_unspecified() && s.public_origin.is_none() && s.allowed_origins.is_empty() {
            return Err(ConfigError::invalid(
                "server.public_origin",
                "must be set (or server.allowed_origins) when listening on an unspecified address",
            ));
        }
        if let Some(o) = &s.public_origin {
            crate::origin::normalize_origin(o)
                .ok_or_else(|| ConfigError::invalid("server.public_origin", "not an origin"))?;
        }
        for (i, o) in s.allowed_origins.iter().enumerate() {
            crate::origin::normalize_origin(o).ok_or_else(|| {
                ConfigError::invalid(
                    format!("server.allowed_origins[{i}]"),
                    "not an origin (scheme://host[:port])",
                )
            })?;
        }
        if let Some(tls) = &self.tls {
            match (&tls.cert_file, &tls.key_file, tls.self_signed) {
                (Some(_), Some(_), false) | (None, None, true) => {}
                (None, None, false) => {
                    return Err(ConfigError::invalid(
                        "tls",
                        "set cert_file and key_file, or self_signed = true",
                    ))
                }
                (_, _, true) => {
                    return Err(ConfigError::invalid(
                        "tls.self_signed",
                        "cannot be combined with cert_file / key_file",
                    ))
                }
                (None, Some(_), false) => {
                    return Err(ConfigError::invalid("tls.cert_file", "missing"))
                }
                (Some(_), None, false) => {
                    return Err(ConfigError::invalid("tls.key_file", "missing"))
                }
            }
        }
        for (i, m) in self.static_files.mount.iter().enumerate() {
            if !m.prefix.starts_with('/') || !m.prefix.ends_with('/') || m.prefix.contains("..") {
                return Err(ConfigError::invalid(
                    format!("static.mount[{i}].prefix"),
                    "must start and end with '/'",
                ));
            }
        }
        crate::forwarded::TrustedProxies::from_config(s)?;
        crate::policy::TargetPolicy::from_config(&self.policy)?;
        if let Some(path) = &self.policy.local_socket {
            if !path.is_absolute() {
                return Err(ConfigError::invalid(
                    "policy.local_socket",
                    "must be an absolute path",
                ));
            }
        }
        if let Some(t) = &self.tickets {
            if t.max_ttl_secs == 0 {
                return Err(ConfigError::invalid("tickets.max_ttl_secs", "must be > 0"));
            }
            if t.replay_cache_size == 0 {
                return Err(ConfigError::invalid(
                    "tickets.replay_cache_size",
                    "must be > 0",
                ));
            }
            t.validate_keys()?;
        }
        let l = &self.limits;
        let positive: [(&str, u64); 14] = [
            (
                "limits.max_queued_bytes_total",
                l.max_queued_bytes_total as u64,
            ),
            ("limits.max_message_bytes", l.max_message_bytes as u64),
            ("limits.max_frame_bytes", l.max_frame_bytes as u64),
            ("limits.max_package_bytes", l.max_package_bytes as u64),
            ("limits.queue_packages", l.queue_packages as u64),
            ("limits.queue_bytes", l.queue_bytes as u64),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            ("limits.connect_timeout_ms", l.connect_timeout_ms),
            ("limits.max_connections", l.max_connections as u64),
            (
                "limits.max_preauth_connections",
                l.max_preauth_connections as u64,
            ),
            ("limits.max_preauth_per_ip", l.max_preauth_per_ip as u64),
            (
                "limits.max_unauthenticated_upstreams",
                l.max_unauthenticated_upstreams as u64,
            ),
            (
                "limits.max_unauthenticated_upstreams_per_ip",
                l.max_unauthenticated_upstreams_per_ip as u64,
            ),
            (
                "limits.first_message_timeout_ms",
                l.first_message_timeout_ms,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be > 0"));
            }
        }
        if l.max_message_bytes < prl_protocol::package::HEADER_LEN {
            return Err(ConfigError::invalid(
                "limits.max_message_bytes",
                "must hold at least one package header (82 bytes)",
            ));
        }
        if l.max_frame_bytes > l.max_message_bytes {
            return Err(ConfigError::invalid(
                "limits.max_frame_bytes",
                "must not exceed limits.max_message_bytes",
            ));
        }
        if l.ws_read_buffer_bytes < 512 {
            return Err(ConfigError::invalid(
                "limits.ws_read_buffer_bytes",
                "must be at least 512",
            ));
        }
        let nonzero_ms: [(&str, u64); 6] = [
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.max_lifetime_ms", l.max_lifetime_ms),
            ("limits.login_deadline_ms", l.login_deadline_ms),
            ("limits.ping_interval_ms", l.ping_interval_ms),
            ("limits.http_connection_ms", l.http_connection_ms),
            ("limits.write_stall_ms", l.write_stall_ms),
        ];
        for (key, v) in nonzero_ms {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be > 0"));
            }
        }
        // Durations are added to clocks: keep them far from overflow (at most a year).
        const YEAR_MS: u64 = 365 * 24 * 3_600_000;
        let durations: [(&str, u64); 12] = [
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.login_deadline_ms", l.login_deadline_ms),
            ("limits.write_stall_ms", l.write_stall_ms),
            ("limits.max_lifetime_ms", l.max_lifetime_ms),
            ("limits.ping_interval_ms", l.ping_interval_ms),
            ("limits.http_connection_ms", l.http_connection_ms),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            (
                "limits.first_message_timeout_ms",
                l.first_message_timeout_ms,
            ),
            ("limits.connect_timeout_ms", l.connect_timeout_ms),
            ("resume.window_ms", self.resume.window_ms),
            ("resume.restore_ttl_ms", self.resume.restore_ttl_ms),
            (
                "tickets.max_ttl_secs",
                self.tickets
                    .as_ref()
                    .map_or(0, |t| t.max_ttl_secs.saturating_mul(1000)),
            ),
        ];
        for (key, v) in durations {
            if v > YEAR_MS {
                return Err(ConfigError::invalid(key, "must be at most one year"));
            }
        }
        if self.resume.window_ms > 0
            && (self.resume.buffer_packages == 0 || self.resume.buffer_bytes == 0)
        {
            return Err(ConfigError::invalid(
                "resume.buffer_packages",
                "buffer_packages and buffer_bytes must be > 0 when resume.window_ms > 0",
            ));
        }
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        Ok(())
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_redis_url(&self.redis_url)?;
        if let Some(u) = &self.username {
            if u.is_empty()
                || u.len() > 256
                || u.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::invalid(
                    "cluster.username",
                    "must be 1-256 characters, no spaces",
                ));
            }
            if self.password_file.is_none() {
                return Err(ConfigError::invalid(
                    "cluster.username",
                    "needs cluster.password_file",
                ));
            }
        }
        if self.ca_file.is_some() && !self.redis_url.starts_with("rediss://") {
            return Err(ConfigError::invalid(
                "cluster.ca_file",
                "only used with a rediss:// url",
            ));
        }
        check_instance_id("cluster.instance_id", &self.instance_id)?;
        check_public_url("cluster.public_url", &self.public_url)?;
        let mut urls = std::collections::BTreeSet::new();
        urls.insert(self.public_url.as_str());
        for (id, url) in &self.peers {
            check_instance_id(&format!("cluster.peers.{id}"), id)?;
            if *id == self.instance_id {
                return Err(ConfigError::invalid(
                    format!("cluster.peers.{id}"),
                    "is this instance's own id",
                ));
            }
            check_public_url(&format!("cluster.peers.{id}"), url)?;
            if !urls.insert(url.as_str()) {
                return Err(ConfigError::invalid(
                    format!("cluster.peers.{id}"),
                    "another instance has the same public url",
                ));
            }
        }
        if self.key_prefix.len() > 64 || self.key_prefix.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(ConfigError::invalid(
                "cluster.key_prefix",
                "at most 64 printable ascii characters, no spaces",
            ));
        }
        if !(100..=60_000).contains(&self.heartbeat_ms) {
            return Err(ConfigError::invalid(
                "cluster.heartbeat_ms",
                "must be between 100 and 60000",
            ));
        }
        if !(10..=10_000).contains(&self.op_timeout_ms) {
            return Err(ConfigError::invalid(
                "cluster.op_timeout_ms",
                "must be between 10 and 10000",
            ));
        }
        Ok(())
    }

    /// How long this instance's registration lives without a renewal.
    pub fn registration_ttl_ms(&self) -> u64 {
        self.heartbeat_ms.saturating_mul(3)
    }
}

/// `redis://` or `rediss://`, a host, no password, no query or fragment.
fn check_redis_url(url: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid("cluster.redis_url", reason);
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| bad("must start with redis:// or rediss://"))?;
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("no query, fragment or spaces"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad(
            "no user or password in the url: use cluster.username and cluster.password_file",
        ));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("names no host"));
    }
    let db = rest.split_once('/').map(|(_, db)| db).unwrap_or_default();
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(bad("the path must be a database number"));
    }
    Ok(())
}

fn check_instance_id(key: &str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ConfigError::invalid(
            key,
            "an instance id is 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

/// A browser-facing relay URL: `ws://` or `wss://`, a host, a path, nothing else.
fn check_public_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid(key, reason);
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| bad("must start with ws:// or wss://"))?;
    if url.len() > 512 {
        return Err(bad("longer than 512 bytes"));
    }
    if rest.contains(['?', '#', '@', '\\']) || rest.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(bad("no query, fragment, user info, spaces or non-ascii"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("names no host"));
    }
    if !path.starts_with('/') {
        return Err(bad(
            "needs the relay path, e.g. wss://relay-a.example.com/ws",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_scope_is_all_unless_narrowed() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.policy.scope, CommandScope::All);
        for (text, scope) in [
            ("read", CommandScope::Read),
            ("operate", CommandScope::Operate),
            ("all", CommandScope::All),
        ] {
            let c = Config::from_toml_str(&format!("[policy]\nscope = \"{text}\"\n")).unwrap();
            assert_eq!(c.policy.scope, scope);
        }
        let e = Config::from_toml_str("[policy]\nscope = \"admin\"\n").unwrap_err();
        assert!(e.to_string().contains("scope"), "{e}");
    }

    #[test]
    fn empty_config_is_the_safe_default() {
        let c = Config::from_toml_str("").unwrap();
        assert!(c.policy.target.is_empty() && c.policy.allow.is_empty());
        assert!(!c.policy.local_login);
        assert_eq!(c.resume.window_ms, 60_000);
        assert_eq!(c.limits.connect_timeout_ms, 60_000);
        assert_eq!(c.resume.restore_ttl_ms, 600_000);
        // Availability under abuse: a few addresses cannot take every slot, and an
        // unauthenticated connection gives its slot back soon.
        let l = &c.limits;
        assert_eq!(l.max_preauth_per_ip, 8);
        assert!(l.max_preauth_per_ip * 32 <= l.max_preauth_connections);
        assert_eq!(l.first_message_timeout_ms, 5_000);
        assert!(l.first_message_timeout_ms < l.handshake_timeout_ms);
        assert_eq!(l.max_unauthenticated_upstreams, 256);
        assert_eq!(l.max_unauthenticated_upstreams_per_ip, 8);
        assert!(l.max_unauthenticated_upstreams_per_ip * 32 <= l.max_unauthenticated_upstreams);
        assert_eq!(l.login_deadline_ms, 20_000);
        assert!(c.policy.local_socket.is_none());
        assert!(c.tls.is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml_str("[limits]\nmax_mesage_bytes = 5\n").unwrap_err();
        assert_eq!(err.kind(), "config_parse");
        assert!(err.to_string().contains("max_mesage_bytes"), "{err}");
        let err = Config::from_toml_str("[bogus]\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn wrong_types_are_named() {
        let err = Config::from_toml_str("[limits]\nidle_timeout_ms = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("idle_timeout_ms"), "{err}");
        let err =
            Config::from_toml_str("[server]\nforwarded_header = \"x-real-ip\"\n").unwrap_err();
        assert!(err.to_string().contains("forwarded_header"), "{err}");
    }

    #[test]
    fn trusted_proxies_default_to_none() {
        let c = Config::from_toml_str("").unwrap();
        assert!(c.server.trusted_proxies.is_empty());
        let c = Config::from_toml_str(
            "[server]\ntrusted_proxies = [\"127.0.0.1\", \"::1/128\"]\nforwarded_header = \"forwarded\"\n",
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(
            c.server.forwarded_header,
            crate::forwarded::ForwardedHeader::Forwarded
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"10.0.0.1:80\"\n", "server.listen"),
            (
                "[server]\nlisten = \"0.0.0.0:80\"\nallow_plain_ws = true\n",
                "server.public_origin",
            ),
            (
                "[server]\nallowed_origins = [\"nope\"]\n",
                "server.allowed_origins[0]",
            ),
            (
                "[[policy.allow]]\ncidr = \"10.0.0.0/33\"\n",
                "policy.allow[0].cidr",
            ),
            (
                "[[policy.target]]\nname = \"\"\nhost = \"h\"\n",
                "policy.target[0].name",
            ),
            ("[limits]\nqueue_packages = 0\n", "limits.queue_packages"),
            (
                "[limits]\nmax_preauth_per_ip = 0\n",
                "limits.max_preauth_per_ip",
            ),
            (
                "[limits]\nmax_unauthenticated_upstreams_per_ip = 0\n",
                "limits.max_unauthenticated_upstreams_per_ip",
            ),
            (
                "[limits]\nfirst_message_timeout_ms = 0\n",
                "limits.first_message_timeout_ms",
            ),
            (
                "[limits]\nlogin_deadline_ms = 0\n",
                "limits.login_deadline_ms",
            ),
            (
                "[limits]\nlogin_deadline_ms = 999999999999999\n",
                "limits.login_deadline_ms",
            ),
            (
                "[limits]\nmax_lifetime_ms = 999999999999999\n",
                "limits.max_lifetime_ms",
            ),
            (
                "[limits]\nmax_frame_bytes = 999999999\n",
                "limits.max_frame_bytes",
            ),
            ("[tls]\ncert_file = \"c.pem\"\n", "tls.key_file"),
            (
                "[[static.mount]]\nprefix = \"pkg\"\ndir = \"x\"\n",
                "static.mount[0].prefix",
            ),
            (
                "[policy]\nlocal_socket = \"run/prl.sock\"\n",
                "policy.local_socket",
            ),
            (
                "[resume]\nrestore_ttl_ms = 999999999999999\n",
                "resume.restore_ttl_ms",
            ),
            (
                "[server]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/33\"]\n",
                "server.trusted_proxies[1]",
            ),
            (
                "[server]\ntrusted_proxies = [\"0.0.0.0/0\"]\n",
                "server.trusted_proxies[0]",
            ),
        ];
        for (text, key) in cases {
            match Config::from_toml_str(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("prl-proxy.example.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.policy.target.is_empty());
        assert!(!c.policy.local_login);
        assert!(c.cluster.is_none(), "a single proxy by default");
    }

    #[test]
    fn the_examples_cluster_block_is_valid_once_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("prl-proxy.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("\n# [cluster]").expect("a [cluster] example");
        let block = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml_str(&block).unwrap();
        let cluster = c.cluster.expect("[cluster]");
        assert_eq!(cluster.instance_id, "a");
        assert_eq!(cluster.peers.len(), 2);
        assert_eq!(cluster.registration_ttl_ms(), 3000);
    }
}
