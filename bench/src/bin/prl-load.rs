//! `prl-load`: the load runs of the benchmark suite with real processes (see
//! `prl_bench::load`), each writing its results as JSON. `cargo xtask bench` builds release
//! binaries of prl-proxy and prl-sim, runs this, and renders `bench/RESULTS.md` from the JSON.
//!
//! ```text
//! prl-load memory --proxy BIN --sim BIN --out FILE [--checkpoints 1000,4000,9000]
//! prl-load peers-memory --proxy BIN --sim BIN --out FILE [--sessions 500]
//! prl-load slow-consumer --proxy BIN --sim BIN --out FILE [--browsers 20]
//! prl-load profile --proxy BIN --sim BIN --out FILE [--sessions 300 --scheme wss --level high]
//! prl-load report --dir DATA_DIR --out bench/RESULTS.md
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use prl_bench::load::{self, Binaries, MemorySpec};
use prl_bench::peers::PeerKind;
use prl_protocol::handshake::SecurityLevel;

#[derive(Debug, Parser)]
#[command(name = "prl-load", about = "load runs of the prl-web benchmark suite")]
struct Cli {
    /// The prl-proxy binary (a release build).
    #[arg(long, global = true, value_name = "BIN")]
    proxy: Option<PathBuf>,
    /// The prl-sim binary (a release build).
    #[arg(long, global = true, value_name = "BIN")]
    sim: Option<PathBuf>,
    /// Where to write the results (JSON).
    #[arg(long, global = true, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Run,
}

#[derive(Debug, Subcommand)]
enum Run {
    /// Idle memory per session at each checkpoint and idle CPU at the last, for ws and wss at
    /// LOW and HIGH.
    Memory {
        /// Session counts at which memory is read.
        #[arg(long, value_delimiter = ',', default_value = "1000,4000,9000")]
        checkpoints: Vec<usize>,
        /// Seconds of idle CPU measurement at the last checkpoint.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// Only these schemes (ws, wss).
        #[arg(long, value_delimiter = ',', default_value = "ws,wss")]
        schemes: Vec<String>,
        /// Only these levels (low, high).
        #[arg(long, value_delimiter = ',', default_value = "low,high")]
        levels: Vec<String>,
    },
    /// Memory per idle connection through the peers (websockify, wstunnel: their programs in
    /// PRL_BENCH_WEBSOCKIFY / PRL_BENCH_WSTUNNEL) and through prl-proxy, measured alike.
    PeersMemory {
        /// Idle connections per path (websockify forks a process for each).
        #[arg(long, default_value_t = 200)]
        sessions: usize,
    },
    /// Browsers that start a streaming task and stop reading: the proxy's RSS over time.
    SlowConsumer {
        /// Stalled browsers.
        #[arg(long, default_value_t = 20)]
        browsers: usize,
        /// Events per task.
        #[arg(long, default_value_t = 10_000)]
        events: u32,
        /// Sampling window, seconds.
        #[arg(long, default_value_t = 25)]
        secs: u64,
    },
    /// A memory run with the proxy under heaptrack: where an idle session's memory goes.
    Profile {
        /// Sessions held.
        #[arg(long, default_value_t = 300)]
        sessions: usize,
        /// ws or wss.
        #[arg(long, default_value = "wss")]
        scheme: String,
        /// low or high.
        #[arg(long, default_value = "high")]
        level: String,
    },
    /// Renders RESULTS.md from a data directory (see `prl_bench::report`).
    Report {
        /// The directory holding the run's JSON files.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn level(name: &str) -> Result<SecurityLevel, String> {
    match name.to_ascii_lowercase().as_str() {
        "low" => Ok(SecurityLevel::Low),
        "normal" => Ok(SecurityLevel::Normal),
        "high" => Ok(SecurityLevel::High),
        other => Err(format!("unknown security level {other:?}")),
    }
}

async fn run(cli: Cli) -> Result<serde_json::Value, String> {
    if let Run::Report { dir } = &cli.command {
        let text = prl_bench::report::render(&prl_bench::report::Data::load(dir));
        return Ok(serde_json::Value::String(text));
    }
    let bins = Binaries {
        proxy: cli.proxy.ok_or("--proxy BIN is required")?,
        sim: cli.sim.ok_or("--sim BIN is required")?,
    };
    let limit = load::raise_open_files_limit().map_err(|e| e.to_string())?;
    eprintln!("prl-load: open-files limit {limit}");
    match cli.command {
        Run::Memory {
            checkpoints,
            idle_secs,
            schemes,
            levels,
        } => {
            let mut runs = Vec::new();
            for scheme in &schemes {
                for l in &levels {
                    let spec = MemorySpec {
                        level: level(l)?,
                        wss: scheme == "wss",
                        checkpoints: checkpoints.clone(),
                        idle_window: Duration::from_secs(idle_secs),
                    };
                    eprintln!("prl-load: memory {scheme} {l} {checkpoints:?}");
                    let r = load::memory_run(&bins, &spec)
                        .await
                        .map_err(|e| format!("memory {scheme} {l}: {e}"))?;
                    eprintln!("prl-load: {}", json(&r));
                    runs.push(r);
                }
            }
            Ok(json(&runs))
        }
        Run::PeersMemory { sessions } => {
            let mut runs = vec![load::proxy_pss_run(&bins, sessions, SecurityLevel::Low)
                .await
                .map_err(|e| format!("prl-proxy: {e}"))?];
            let mut missing = Vec::new();
            for kind in PeerKind::ALL {
                match kind.program() {
                    None => missing.push(kind.name()),
                    Some(program) => {
                        eprintln!("prl-load: peer memory {}", kind.name());
                        let r = load::peer_memory_run(
                            &bins,
                            kind,
                            &program,
                            sessions,
                            SecurityLevel::Low,
                        )
                        .await
                        .map_err(|e| format!("{}: {e}", kind.name()))?;
                        eprintln!("prl-load: {}", json(&r));
                        runs.push(r);
                    }
                }
            }
            Ok(serde_json::json!({ "runs": json(&runs), "missing": missing }))
        }
        Run::SlowConsumer {
            browsers,
            events,
            secs,
        } => {
            let r = load::slow_consumer_run(&bins, browsers, events, Duration::from_secs(secs))
                .await
                .map_err(|e| format!("slow consumer: {e}"))?;
            Ok(json(&r))
        }
        Run::Profile {
            sessions,
            scheme,
            level: l,
        } => {
            let spec = MemorySpec {
                level: level(&l)?,
                wss: scheme == "wss",
                checkpoints: vec![sessions],
                idle_window: Duration::ZERO,
            };
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let p = prl_bench::profile::run(&bins, &spec, dir.path())
                .await
                .map_err(|e| format!("profile: {e}"))?;
            Ok(json(&p))
        }
        // Rendered before any process is started (above).
        Run::Report { .. } => Err("report takes no binaries".into()),
    }
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = cli.out.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prl-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(value) => {
            // A report is Markdown; everything else JSON.
            let text = match value {
                serde_json::Value::String(markdown) => markdown,
                other => serde_json::to_string_pretty(&other).unwrap_or_default(),
            };
            match out {
                Some(path) => {
                    if let Err(e) = std::fs::write(&path, text) {
                        eprintln!("prl-load: cannot write {}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                None => println!("{text}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("prl-load: {e}");
            ExitCode::FAILURE
        }
    }
}
