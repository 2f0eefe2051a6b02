//! `prl-proxy --config FILE [--listen ADDR]`: run the relay (under systemd, `Type=notify`).
//! `prl-proxy ticket --config FILE --target HOST[:PORT]|@local --origin ORIGIN [--scope S]`:
//! issue a ticket.
//! `prl-proxy check-config FILE`: check a configuration as start-up and reload do; exit 0 / 2.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use prl_protocol::scope::CommandScope;
use prl_proxy::config::LogFormat;
use prl_proxy::ticket::{TicketKey, TicketOptions, LOCAL_TARGET};
use prl_proxy::{Config, Proxy, StartError};
use sd_notify::NotifyState;
use tracing_subscriber::EnvFilter;

/// The secure WebSocket relay between browsers and Parallels Service.
#[derive(Debug, Parser)]
#[command(name = "prl-proxy", version, about)]
struct Cli {
    /// TOML configuration file (see prl-proxy.example.toml).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Listen address, overriding server.listen.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file with the loaders start-up and reload use (certificate, key,
    /// ticket key, policy, static directories included), without listening; exit 0 when
    /// valid, 2 with the error when not.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Print a signed ticket for one connection (needs [tickets] in the config).
    Ticket {
        /// Target as the browser will name it: HOST or HOST:PORT (port 0/absent = 64000), or
        /// `@local` for a local-mode open (`"mode":"local"`).
        #[arg(long)]
        target: String,
        /// The page origin that will use it.
        #[arg(long)]
        origin: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 60)]
        ttl: u64,
        /// Optional subject (restores of its sessions need the same subject).
        #[arg(long)]
        subject: Option<String>,
        /// Optional command scope the connection may not leave: read, operate or all (the
        /// narrower of this and `[policy] scope` applies).
        #[arg(long, value_name = "read|operate|all")]
        scope: Option<String>,
    },
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return check_config(file);
    }
    let Some(path) = cli.config.clone() else {
        eprintln!("prl-proxy: --config FILE is required");
        return ExitCode::from(2);
    };
    let mut config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("prl-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Ticket {
        target,
        origin,
        ttl,
        subject,
        scope,
    }) = &cli.command
    {
        let scope = match scope.as_deref().map(CommandScope::parse) {
            None => None,
            Some(Some(s)) => Some(s),
            Some(None) => {
                eprintln!("prl-proxy: --scope must be read, operate or all");
                return ExitCode::from(2);
            }
        };
        let options = TicketOptions {
            sub: subject.clone(),
            scope,
        };
        return issue_ticket(&config, target, origin, *ttl, options);
    }
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
        if let Err(e) = config.validate() {
            eprintln!("prl-proxy: {e}");
            return ExitCode::from(2);
        }
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prl-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, path))
}

async fn run(config: Config, path: PathBuf) -> ExitCode {
    let proxy = match Proxy::bind(config, Some(path)).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("prl-proxy: {e}");
            // A configuration that names a missing or bad certificate, key or ticket key is a
            // configuration error like any other (2); failing to bind is not (1).
            return match e {
                StartError::Bind { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            };
        }
    };
    let handle = proxy.handle();
    #[cfg(unix)]
    if let Err(e) = handle.spawn_sighup_reloader() {
        tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload disabled");
    }
    let stopper = handle.clone();
    tokio::spawn(async move {
        wait_for_stop().await;
        tracing::info!("shutting down");
        notify_systemd(NotifyState::Stopping);
        stopper.shutdown();
    });
    tracing::info!(url = %handle.url(), "listening");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "prl-proxy listening on {}", handle.url());
    let _ = out.flush();
    // systemd (Type=notify): the listener is bound and everything is loaded. Without
    // NOTIFY_SOCKET this does nothing.
    notify_systemd(NotifyState::Ready);
    proxy.run().await;
    ExitCode::SUCCESS
}

/// Tells systemd about a state change (a no-op when not started by systemd).
fn notify_systemd(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `prl-proxy check-config FILE`: [`Config::load`] and [`Proxy::check`], the loaders start-up
/// and reload use.
fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file)
        .map_err(StartError::from)
        .and_then(Proxy::check)
    {
        Ok(()) => {
            println!("prl-proxy: {}: configuration ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prl-proxy: {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn issue_ticket(
    config: &Config,
    target: &str,
    origin: &str,
    ttl: u64,
    options: TicketOptions,
) -> ExitCode {
    let Some(tickets) = &config.tickets else {
        eprintln!("prl-proxy: the config has no [tickets] section");
        return ExitCode::from(2);
    };
    let key = match TicketKey::load(&tickets.key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("prl-proxy: invalid config key `tickets.key_file`: {e}");
            return ExitCode::from(2);
        }
    };
    if ttl == 0 || ttl > tickets.max_ttl_secs {
        eprintln!(
            "prl-proxy: --ttl must be between 1 and tickets.max_ttl_secs ({})",
            tickets.max_ttl_secs
        );
        return ExitCode::from(2);
    }
    let now = prl_proxy::util::unix_now();
    if prl_proxy::origin::normalize_origin(origin).is_none() {
        eprintln!("prl-proxy: --origin is not an origin (scheme://host[:port])");
        return ExitCode::from(2);
    }
    if target == LOCAL_TARGET {
        println!("{}", key.issue_local_with(origin, now, ttl, options));
        return ExitCode::SUCCESS;
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.to_string(), p),
            Err(_) => {
                eprintln!("prl-proxy: --target port is not a number");
                return ExitCode::from(2);
            }
        },
        _ => (target.to_string(), 0),
    };
    println!(
        "{}",
        key.issue_for_with(&host, port, origin, now, ttl, options)
    );
    ExitCode::SUCCESS
}
