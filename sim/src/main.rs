//! `prl-sim`: run the Parallels Service simulator.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use prl_protocol::parse_uuid;
use prl_sim::config::parse_security_level;
use prl_sim::{ConfigError, Faults, Mode, SimConfig, Simulator, UserDb};

/// A Parallels Service simulator speaking the real IOService wire protocol (plaintext
/// handshake, anonymous-DH TLS, IO packages) for tests, benchmarks and demos.
#[derive(Debug, Parser)]
#[command(name = "prl-sim", version)]
struct Cli {
    /// TCP address to listen on (server mode; default 127.0.0.1:64000).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Unix socket to listen on (local logins, identified by the peer's uid).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// server: remote and local logins, many users; desktop: local logins only, one user.
    #[arg(long, value_name = "server|desktop", default_value = "server")]
    mode: String,
    /// Minimum security level: the service's routing-table rule refuses every client whose table
    /// conflicts with it (a NORMAL service refuses LOW and HIGH clients) by closing the socket.
    #[arg(long, value_name = "low|normal|high", default_value = "low")]
    min_security: String,
    /// TOML users file ([[user]] name, password, uid).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// A user for password logins (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    user: Vec<String>,
    /// A user for local logins from a unix uid (repeatable).
    #[arg(long = "local-user", value_name = "NAME:UID")]
    local_user: Vec<String>,
    /// The server UUID reported at login (default: this machine's id).
    #[arg(long, value_name = "UUID")]
    server_uuid: Option<String>,
    /// Product version reported at login.
    #[arg(long, value_name = "TEXT")]
    product_version: Option<String>,
    /// Host OS version reported at login.
    #[arg(long, value_name = "TEXT")]
    os_version: Option<String>,
    /// Fault to inject (repeatable): refuse (do not listen), close-on-accept,
    /// stall-handshake, stall-tls, delay=MS, drop-after=N, garbage, bad-crc.
    #[arg(long = "fault", value_name = "SPEC")]
    fault: Vec<String>,
    /// PEM certificate for the certificate (RSA) TLS mode (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Heartbeat period in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    heartbeat_ms: u64,
    /// Time a password check takes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    auth_delay_ms: u64,
    /// Logins allowed in progress at once (the service's MaxLogonActions).
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_logons: usize,
    /// Start one sim task (as the sim-only command 9001 would) for every session a login
    /// creates: STEPS progress events INTERVAL_MS apart, then the final reply.
    #[arg(long, value_name = "STEPS:INTERVAL_MS")]
    task_on_login: Option<String>,
    /// TOML inventory of the host and its VMs (default: four demo VMs; see README).
    #[arg(long, value_name = "FILE")]
    vms: Option<PathBuf>,
    /// How long a VM operation takes (repeatable): OP=MS with OP start, stop, pause, suspend,
    /// reset, restart or all (default 50 ms each).
    #[arg(long = "transition-ms", value_name = "OP=MS")]
    transition_ms: Vec<String>,
    /// Report transient states (starting, stopping, ...) during VM operations, as the legacy
    /// dispatcher did (a libvirt host reports stable states only).
    #[arg(long)]
    transient_states: bool,
    /// Answer a forked VM operation's failure once instead of twice.
    #[arg(long)]
    no_duplicate_replies: bool,
    /// Send a VM operation's reply before its state event (default: the event first).
    #[arg(long)]
    reply_before_event: bool,
}

fn build_config(cli: &Cli) -> Result<SimConfig, ConfigError> {
    let mut config = SimConfig::new();
    config.mode = Mode::parse(&cli.mode)?;
    config.tcp = match (config.mode, cli.listen) {
        (_, Some(addr)) => Some(addr),
        (Mode::Server, None) => config.tcp,
        (Mode::Desktop, None) => None,
    };
    config.unix = cli.unix.clone();
    config.min_security = parse_security_level(&cli.min_security)?;
    if let Some(path) = &cli.users {
        config.users = UserDb::load(path)?;
    }
    for spec in &cli.user {
        config.users.add(
            UserDb::parse_spec(spec).map_err(|e| ConfigError::UserSpec(format!("--user: {e}")))?,
        )?;
    }
    for spec in &cli.local_user {
        config.users.add(
            UserDb::parse_local_spec(spec)
                .map_err(|e| ConfigError::UserSpec(format!("--local-user: {e}")))?,
        )?;
    }
    if let Some(text) = &cli.server_uuid {
        config.server_uuid = parse_uuid(text).filter(|u| !u.is_nil()).ok_or_else(|| {
            ConfigError::Invalid(format!("--server-uuid: {text:?} is not a uuid"))
        })?;
    }
    if let Some(v) = &cli.product_version {
        config.product_version = v.clone();
    }
    if let Some(v) = &cli.os_version {
        config.os_version = v.clone();
    }
    config.faults = Faults::parse(cli.fault.iter().map(String::as_str))?;
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                ConfigError::Invalid(format!("{flag}: cannot read {}: {e}", path.display()))
            })
        };
        let cert_pem = read("--tls-cert", cert)?;
        let key_pem = zeroize::Zeroizing::new(read("--tls-key", key)?);
        config.tls_credentials = Some(
            prl_transport::Credentials::from_pem(&cert_pem, &key_pem)
                .map_err(|e| ConfigError::Invalid(format!("--tls-cert/--tls-key: {e}")))?,
        );
    }
    config.heartbeat_interval = Duration::from_millis(cli.heartbeat_ms);
    config.auth_delay = Duration::from_millis(cli.auth_delay_ms);
    config.max_logon_actions = cli.max_logons;
    config.task_on_login = cli
        .task_on_login
        .as_deref()
        .map(prl_sim::TaskSpec::parse)
        .transpose()?;
    if let Some(path) = &cli.vms {
        config.inventory = prl_sim::Inventory::load(path)?;
    }
    for spec in &cli.transition_ms {
        config.vm_behaviour.timing.apply(spec)?;
    }
    config.vm_behaviour.transient_states = cli.transient_states;
    config.vm_behaviour.duplicate_replies = !cli.no_duplicate_replies;
    config.vm_behaviour.reply_before_event = cli.reply_before_event;
    config.validate()?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a terminal: piped logs stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("prl-sim: error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prl-sim: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: SimConfig) -> ExitCode {
    let users = config.users.len();
    let vms = config.inventory.vms.len();
    let mode = config.mode;
    let faults = config.faults.clone();
    let min = config.min_security;
    let sim = match Simulator::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("prl-sim: error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(?mode, users, vms, min_security = ?min, %faults, server_uuid = %sim.server_uuid(), "started");
    {
        let mut out = std::io::stdout().lock();
        if let Some(addr) = sim.tcp_addr() {
            let _ = writeln!(out, "prl-sim listening on tcp://{addr}");
        }
        if let Some(path) = sim.unix_path() {
            let _ = writeln!(out, "prl-sim listening on unix://{}", path.display());
        }
        let _ = out.flush();
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
