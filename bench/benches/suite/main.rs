//! The benchmark suite: `cargo bench -p prl-bench` (or `cargo xtask bench`). Every group holds
//! a `baseline_*` function measured in the same run; the numbers to read are the other
//! functions' times divided by the baseline's, which the suite prints at the end (and writes
//! to `prl-bench-summary.md` in criterion's output directory).
//!
//! Measurement times are short on purpose (a shared 2-core machine): the whole suite runs in
//! about three minutes (the 1000-VM list of `vm_list` alone takes about a minute). Criterion's own flags change them, e.g.
//! `cargo bench -p prl-bench -- --measurement-time 10 connection_setup`.
//!
//! With `PRL_BENCH_CLUSTER` set (`cargo xtask bench cluster`) it runs only `cluster_login`: the
//! login latency cluster mode adds (a redis-server on loopback; see `cluster.rs`).

mod cluster;
mod codec;
mod connection;
mod relay;
mod round_trip;
mod vm_list;
// The proxy tests' redis-server (started as the current user on a loopback port, stopped when
// dropped): one helper for both.
#[allow(clippy::unwrap_used)]
#[path = "../../../proxy/tests/common/redis.rs"]
mod redis_server;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use prl_bench::peers::{Peer, PeerKind};
use prl_bench::summary::{self, Latency, LoadSampler, Paired};

/// Set (to anything) by `cargo xtask bench cluster`: the suite then runs the cluster-mode
/// comparison (`cluster_login`, which starts a redis-server) instead of everything else, into
/// a criterion directory of its own.
const CLUSTER_PART: &str = "PRL_BENCH_CLUSTER";

/// Rounds of the paired connection-setup comparison.
const ROUNDS: usize = 100;

/// The paths measured with criterion in `connection_setup` and `relay_throughput`: the
/// baseline (prl-transport straight to the service), then a browser through prl-proxy over
/// `ws://` and over `wss://`. The peers (websockify, wstunnel), when installed, follow in the
/// paired rounds only ([`Rig::paths`]).
const PATHS: [&str; 3] = ["baseline_direct", "proxy_ws", "proxy_wss"];

/// The order of `n` paths in paired round `round`: rotated each round, so that each path runs
/// in each position equally often.
fn order(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (round + i) % n)
}

/// This run: where criterion writes, since when, and the paired comparisons made.
struct Run {
    started: SystemTime,
    home: PathBuf,
    paired: Vec<Paired>,
    latency: Vec<Latency>,
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

/// The simulator, the two proxies (`ws://`, `wss://`) and the installed peers in front of it,
/// as every benchmark of a path uses them; [`Rig::stop`] ends them.
struct Rig {
    sim: prl_sim::Simulator,
    ws: prl_proxy::ProxyHandle,
    wss: prl_proxy::ProxyHandle,
    sim_addr: std::net::SocketAddr,
    /// `ws` then `wss`: paths 1 and 2 of [`PATHS`].
    endpoints: [prl_bench::ProxyEndpoint; 2],
    /// The peers installed for this run (paths 3, 4, ... of [`Rig::paths`]).
    peers: Vec<Peer>,
}

impl Rig {
    fn start(rt: &tokio::runtime::Runtime) -> Rig {
        use prl_bench::{start_proxy, start_sim, ProxyEndpoint, SIM_TARGET};
        let (sim, ws, wss, peers) = rt.block_on(async {
            let sim = start_sim().await.expect("simulator");
            let sim_addr = sim.tcp_addr().expect("tcp listener");
            let targets = [(SIM_TARGET, sim_addr)];
            let ws = start_proxy(&targets, false).await.expect("proxy");
            let wss = start_proxy(&targets, true).await.expect("proxy with wss");
            let mut peers = Vec::new();
            for kind in PeerKind::ALL {
                if let Some(program) = kind.program() {
                    peers.push(Peer::start(kind, &program, sim_addr).await.expect("peer"));
                }
            }
            (sim, ws, wss, peers)
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
            peers,
        }
    }

    /// Every path of the paired rounds: [`PATHS`], then `peer_websockify`, `peer_wstunnel`.
    fn paths(&self) -> Vec<String> {
        PATHS
            .iter()
            .map(|p| p.to_string())
            .chain(
                self.peers
                    .iter()
                    .map(|p| format!("peer_{}", p.kind().name())),
            )
            .collect()
    }

    fn stop(self) {
        self.ws.shutdown();
        self.wss.shutdown();
        drop(self.peers);
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
        latency: Vec::new(),
    };
    let load = LoadSampler::start(Duration::from_secs(5));
    let mut c = config();
    if std::env::var_os(CLUSTER_PART).is_some() {
        cluster::benches(&mut c, &mut run);
    } else {
        codec::benches(&mut c);
        connection::benches(&mut c, &mut run);
        relay::benches(&mut c, &mut run);
        round_trip::benches(&mut c, &mut run);
        vm_list::benches(&mut c, &mut run);
    }
    c.final_summary();
    let load = load.stop();

    // `--list`, `--test` (`cargo test --benches`) and filters that match nothing leave no
    // results: then there is nothing to summarise.
    let Run {
        started,
        home,
        paired,
        latency,
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
        "# prl-bench summary\n\n{}; {}; 1-minute load average during the run {}.\n\nRatio = \
         median time / the median time of the group's baseline (same group and parameter), \
         measured in this run.\n\n{}",
        summary::fmt_utc(SystemTime::now()),
        summary::machine_facts(),
        load.describe(),
        summary::render(&rows)
    );
    if !paired.is_empty() {
        text.push_str(&format!(
            "\nPaired: rounds of the paths back to back (the order rotating each round), \
             one ratio (measured / baseline) per round.\n\n{}",
            summary::render_paired(&paired)
        ));
    }
    if !latency.is_empty() {
        text.push_str(&format!(
            "\nRound trip after login: every sample of the paired rounds, per path.\n\n{}",
            summary::render_latency(&latency)
        ));
    }
    let data = summary::SuiteData {
        rows,
        paired,
        latency,
        load: load.samples,
    };
    let json = home.join(summary::SUITE_DATA_FILE);
    if let Err(e) = std::fs::write(
        &json,
        serde_json::to_string_pretty(&data).unwrap_or_default(),
    ) {
        eprintln!("prl-bench: cannot write {}: {e}", json.display());
    }
    println!("\n{text}");
    let file = home.join(summary::SUMMARY_FILE);
    match std::fs::write(&file, &text) {
        Ok(()) => println!("summary written to {}", file.display()),
        Err(e) => eprintln!("prl-bench: cannot write {}: {e}", file.display()),
    }
}
