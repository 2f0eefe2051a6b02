//! The benchmark suite: `cargo bench -p prl-bench` (or `cargo xtask bench`). Every group holds
//! a `baseline_*` function measured in the same run; the numbers to read are the other
//! functions' times divided by the baseline's, which the suite prints at the end (and writes
//! to `prl-bench-summary.md` in criterion's output directory).
//!
//! Measurement times are short on purpose (a shared 2-core machine): the whole suite runs in
//! about a minute and a half. Criterion's own flags change them, e.g.
//! `cargo bench -p prl-bench -- --measurement-time 10 connection_setup`.

mod cluster;
mod codec;
mod connection;
mod relay;
// The proxy tests' redis-server (started as the current user on a loopback port, stopped when
// dropped): one helper for both.
#[allow(clippy::unwrap_used)]
#[path = "../../../proxy/tests/common/redis.rs"]
mod redis_server;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use prl_bench::summary::{self, Paired};

/// Rounds of the paired connection-setup comparison.
const ROUNDS: usize = 100;

/// The paths compared in `connection_setup` and `relay_throughput`: the baseline (prl-transport
/// straight to the service), then a browser through prl-proxy over `ws://` and over `wss://`.
const PATHS: [&str; 3] = ["baseline_direct", "proxy_ws", "proxy_wss"];

/// The order of PATHS in paired round `round`: rotated each round, so that each path runs
/// first, second and third equally often.
fn order(round: usize) -> [usize; 3] {
    let r = round % 3;
    [r, (r + 1) % 3, (r + 2) % 3]
}

/// This run: where criterion writes, since when, and the paired comparisons made.
struct Run {
    started: SystemTime,
    home: PathBuf,
    paired: Vec<Paired>,
}

impl Run {
    /// Whether criterion measured `group` in this run (not in `--test` or `--list` mode, and
    /// not filtered out): only then are its paired comparisons made too.
    fn measured(&self, group: &str) -> bool {
        summary::collect(&self.home.join(group), self.started).is_ok_and(|rows| !rows.is_empty())
    }
}

/// `measured / baseline`.
fn ratio(baseline: Duration, measured: Duration) -> f64 {
    measured.as_secs_f64() / baseline.as_secs_f64()
}

/// Short warm-up and measurement, and no plots; the command line may override them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

/// A multi-threaded runtime with two workers (the machine's cores) hosting the simulator, the
/// proxy and the clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The simulator and the two proxies (`ws://`, `wss://`) in front of it, as every benchmark of
/// a path uses them; [`Rig::stop`] ends them.
struct Rig {
    sim: prl_sim::Simulator,
    ws: prl_proxy::ProxyHandle,
    wss: prl_proxy::ProxyHandle,
    sim_addr: std::net::SocketAddr,
    /// `ws` then `wss`: paths 1 and 2 of [`PATHS`].
    endpoints: [prl_bench::ProxyEndpoint; 2],
}

impl Rig {
    fn start(rt: &tokio::runtime::Runtime) -> Rig {
        use prl_bench::{start_proxy, start_sim, ProxyEndpoint, SIM_TARGET};
        let (sim, ws, wss) = rt.block_on(async {
            let sim = start_sim().await.expect("simulator");
            let targets = [(SIM_TARGET, sim.tcp_addr().expect("tcp listener"))];
            let ws = start_proxy(&targets, false).await.expect("proxy");
            let wss = start_proxy(&targets, true).await.expect("proxy with wss");
            (sim, ws, wss)
        });
        let sim_addr = sim.tcp_addr().expect("tcp listener");
        let endpoints = [
            ProxyEndpoint::of(&ws).expect("ws endpoint"),
            ProxyEndpoint::of(&wss).expect("wss endpoint"),
        ];
        Rig {
            sim,
            ws,
            wss,
            sim_addr,
            endpoints,
        }
    }

    fn stop(self) {
        self.ws.shutdown();
        self.wss.shutdown();
        drop(self.sim);
    }
}

fn main() {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut run = Run {
        // Criterion's file times have a resolution of the file system; a second's slack
        // keeps this run's first result.
        started: SystemTime::now() - Duration::from_secs(1),
        home: summary::criterion_home(&exe),
        paired: Vec::new(),
    };
    let mut c = config();
    codec::benches(&mut c);
    connection::benches(&mut c, &mut run);
    relay::benches(&mut c, &mut run);
    cluster::benches(&mut c, &mut run);
    c.final_summary();

    // `--list`, `--test` (`cargo test --benches`) and filters that match nothing leave no
    // results: then there is nothing to summarise.
    let Run {
        started,
        home,
        paired,
    } = run;
    let rows = match summary::collect(&home, started) {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => return,
        Err(e) => {
            eprintln!("prl-bench: no summary: {e}");
            return;
        }
    };
    let mut text = format!(
        "# prl-bench summary\n\n{}; {}.\n\nRatio = median time / the median time of the group's \
         baseline (same group and parameter), measured in this run.\n\n{}",
        summary::fmt_utc(SystemTime::now()),
        summary::machine_facts(),
        summary::render(&rows)
    );
    if !paired.is_empty() {
        text.push_str(&format!(
            "\nPaired: rounds of the compared paths back to back (the order rotating each round), \
             one ratio (measured / baseline) per round.\n\n{}",
            summary::render_paired(&paired)
        ));
    }
    println!("\n{text}");
    let file = home.join(summary::SUMMARY_FILE);
    match std::fs::write(&file, &text) {
        Ok(()) => println!("summary written to {}", file.display()),
        Err(e) => eprintln!("prl-bench: cannot write {}: {e}", file.display()),
    }
}
