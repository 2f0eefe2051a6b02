//! `prl-proxy --config FILE [--listen ADDR]`: run the relay (under systemd, `Type=notify`).
//! `prl-proxy ticket --config FILE --target HOST[:PORT]|@local --origin ORIGIN [--scope S]
//! [--subject S] [--ttl SECS] [--kid KID] [--private-key FILE]`: issue a ticket (a JWT, HS256
//! with a configured secret, or EdDSA with the private key given).
//! `prl-proxy keygen ed25519 --private-key FILE --public-key FILE` / `keygen hs256 --out FILE`:
//! write a fresh ticket key.
//! `prl-proxy check-config FILE`: check a configuration as start-up and reload do; exit 0 / 2.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use prl_protocol::scope::CommandScope;
use prl_proxy::config::LogFormat;
use prl_proxy::ticket::{TicketOptions, Tickets, LOCAL_TARGET};
use prl_proxy::ticket_keys;
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
    /// Print a signed ticket (a JWT) for one connection (needs [tickets] in the config): HS256
    /// with a configured secret, or EdDSA with --private-key. The ticket is checked against
    /// the config before it is printed.
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
        /// The key to sign with, by its `kid` (default: the only HS256 key, or the HS256 key
        /// without a kid; with --private-key, the EdDSA key holding its public half).
        #[arg(long)]
        kid: Option<String>,
        /// Sign with EdDSA and this Ed25519 private key (PKCS#8 PEM or JWK); its public key
        /// must be one of the config's EdDSA keys.
        #[arg(long, value_name = "FILE")]
        private_key: Option<PathBuf>,
    },
    /// Write a fresh ticket key: an Ed25519 pair (the private key for whoever mints tickets,
    /// the public key for [[tickets.keys]] alg = "EdDSA"), or an HS256 secret. Existing files
    /// are never overwritten; private files are created with mode 0600.
    Keygen {
        /// Which key.
        #[arg(value_enum)]
        alg: KeygenAlg,
        /// ed25519: where to write the private key (PKCS#8 PEM).
        #[arg(long, value_name = "FILE", required_if_eq("alg", "ed25519"))]
        private_key: Option<PathBuf>,
        /// ed25519: where to write the public key (SubjectPublicKeyInfo PEM).
        #[arg(long, value_name = "FILE", required_if_eq("alg", "ed25519"))]
        public_key: Option<PathBuf>,
        /// hs256: where to write the secret (32 random bytes as base64url text).
        #[arg(long, value_name = "FILE", required_if_eq("alg", "hs256"))]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeygenAlg {
    /// An Ed25519 key pair (EdDSA tickets).
    Ed25519,
    /// A 32-byte shared secret (HS256 tickets).
    Hs256,
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
    if let Some(Command::Keygen {
        alg,
        private_key,
        public_key,
        out,
    }) = &cli.command
    {
        return match keygen(
            *alg,
            private_key.as_deref(),
            public_key.as_deref(),
            out.as_deref(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("prl-proxy: {e}");
                ExitCode::from(2)
            }
        };
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
        kid,
        private_key,
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
        let key = Signing {
            kid: kid.as_deref(),
            private_key: private_key.as_deref(),
        };
        return match issue_ticket(&config, target, origin, *ttl, options, key) {
            Ok(ticket) => {
                println!("{ticket}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("prl-proxy: {e}");
                ExitCode::from(2)
            }
        };
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

/// Which key `prl-proxy ticket` signs with.
struct Signing<'a> {
    kid: Option<&'a str>,
    private_key: Option<&'a std::path::Path>,
}

fn issue_ticket(
    config: &Config,
    target: &str,
    origin: &str,
    ttl: u64,
    options: TicketOptions,
    key: Signing<'_>,
) -> Result<String, String> {
    let Some(section) = &config.tickets else {
        return Err("the config has no [tickets] section".into());
    };
    let tickets = Tickets::load(section).map_err(|e| e.to_string())?;
    let private_key = match key.private_key {
        Some(path) => Some(
            ticket_keys::load_ed25519_private(path).map_err(|e| format!("--private-key: {e}"))?,
        ),
        None => None,
    };
    let issuer = tickets.issuer(key.kid, private_key)?;
    if ttl == 0 || ttl > tickets.max_ttl_secs {
        return Err(format!(
            "--ttl must be between 1 and tickets.max_ttl_secs ({})",
            tickets.max_ttl_secs
        ));
    }
    let now = prl_proxy::util::unix_now();
    if prl_proxy::origin::normalize_origin(origin).is_none() {
        return Err("--origin is not an origin (scheme://host[:port])".into());
    }
    let ticket = if target == LOCAL_TARGET {
        issuer.local(origin, now, ttl, options)
    } else {
        let (host, port) = match target.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) => return Err("--target port is not a number".into()),
            },
            _ => (target, 0),
        };
        issuer.remote(host, port, origin, now, ttl, options)
    };
    // What the proxy would say of it (a ticket the config refuses is never printed).
    tickets
        .verify(&ticket, origin, now)
        .map_err(|e| format!("the minted ticket does not verify: {e}"))?;
    Ok(ticket)
}

/// `prl-proxy keygen`.
fn keygen(
    alg: KeygenAlg,
    private_key: Option<&std::path::Path>,
    public_key: Option<&std::path::Path>,
    out: Option<&std::path::Path>,
) -> Result<(), String> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    prl_proxy::util::fill_random(&mut seed[..]);
    match (alg, private_key, public_key, out) {
        (KeygenAlg::Ed25519, Some(private), Some(public), None) => {
            let pk = ticket_keys::ed25519_public_of(&seed).ok_or("cannot derive the public key")?;
            create(
                private,
                ticket_keys::ed25519_private_pem(&seed).as_bytes(),
                true,
            )?;
            create(
                public,
                ticket_keys::ed25519_public_pem(&pk).as_bytes(),
                false,
            )?;
            println!("{}", ticket_keys::ed25519_public_jwk(&pk));
            Ok(())
        }
        (KeygenAlg::Hs256, None, None, Some(out)) => {
            use base64::Engine as _;
            let text = zeroize::Zeroizing::new(format!(
                "{}\n",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&seed[..])
            ));
            create(out, text.as_bytes(), true)
        }
        (KeygenAlg::Ed25519, ..) => {
            Err("keygen ed25519 takes --private-key and --public-key".into())
        }
        (KeygenAlg::Hs256, ..) => Err("keygen hs256 takes --out".into()),
    }
}

/// Write a new file (never over an existing one); `secret`: readable by the owner only.
fn create(path: &std::path::Path, contents: &[u8], secret: bool) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
