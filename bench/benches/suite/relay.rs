//! Relay throughput: a logged-in session receives a task's progress events (3003, a few
//! hundred bytes each) streamed back to back, directly (baseline) and through prl-proxy over
//! `ws://` and `wss://`, at LOW (events in plain records) and HIGH (events through TLS). One
//! iteration is one task: the start command, every event and the final reply. The source is
//! prl-sim's task 9001 with `sim_task_interval_ms = 0` (no pacing: every event as fast as the
//! connection takes it), the same simulator the connection benchmarks log in to.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use prl_bench::summary::Paired;
use prl_bench::{BenchError, BrowserSession, DirectSession, SIM_TARGET};
use prl_protocol::handshake::SecurityLevel;

use crate::PATHS;

/// Progress events per task (prl-sim allows up to 10000): enough for one task to outlast the scheduling noise of a shared
/// machine (tens of milliseconds).
const EVENTS: u32 = 5000;
/// Rounds of the paired comparison.
const ROUNDS: usize = 30;
/// `sim_task_interval_ms` 0: the simulator streams the events without pausing.
const UNPACED: u32 = 0;

/// The sessions of one level, in the order of the rig's paths: direct, the two browsers,
/// then one IOService connection through each peer.
pub(crate) struct Sessions {
    direct: DirectSession,
    browsers: [BrowserSession; 2],
    tunnels: Vec<DirectSession>,
}

impl Sessions {
    /// Logged-in sessions on every path of `rig` at `level`.
    pub(crate) async fn open(rig: &crate::Rig, level: SecurityLevel) -> Sessions {
        let mut direct = DirectSession::connect(rig.sim_addr, level)
            .await
            .expect("connect");
        direct.login().await.expect("login");
        let mut browsers = Vec::new();
        for endpoint in &rig.endpoints {
            let mut b = BrowserSession::open(endpoint, SIM_TARGET, level)
                .await
                .expect("open");
            b.login().await.expect("login");
            browsers.push(b);
        }
        let browsers: [BrowserSession; 2] = browsers.try_into().expect("two browsers");
        let mut tunnels = Vec::new();
        for peer in &rig.peers {
            let mut t = DirectSession::over_tunnel(peer, None, level, false)
                .await
                .expect("tunnel");
            t.login().await.expect("login");
            tunnels.push(t);
        }
        Sessions {
            direct,
            browsers,
            tunnels,
        }
    }

    /// Runs one task on path `i`.
    async fn task(&mut self, i: usize) -> Result<u64, BenchError> {
        match i {
            0 => self.direct.run_task(EVENTS, UNPACED).await,
            1 | 2 => self.browsers[i - 1].run_task(EVENTS, UNPACED).await,
            _ => self.tunnels[i - 3].run_task(EVENTS, UNPACED).await,
        }
    }

    /// One small command's round trip on path `i`.
    pub(crate) async fn round_trip(&mut self, i: usize) -> Result<Duration, BenchError> {
        match i {
            0 => self.direct.round_trip().await,
            1 | 2 => self.browsers[i - 1].round_trip().await,
            _ => self.tunnels[i - 3].round_trip().await,
        }
    }

    /// Logs every session off.
    pub(crate) async fn close(self) {
        let Sessions {
            direct,
            browsers,
            tunnels,
        } = self;
        direct.logoff().await.expect("logoff");
        for b in browsers {
            b.logoff().await.expect("logoff");
        }
        for t in tunnels {
            t.logoff().await.expect("logoff");
        }
    }
}

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let rig = crate::Rig::start(&rt);
    let paths = rig.paths();

    let mut g = c.benchmark_group("relay_throughput");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        // Packages received per iteration: the events and the reply.
        .throughput(Throughput::Elements(u64::from(EVENTS) + 1));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        let mut s = rt.block_on(Sessions::open(&rig, level));
        for (i, path) in PATHS.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*path, name), |b| {
                b.iter(|| rt.block_on(s.task(i)).expect("task"))
            });
        }

        if run.measured(&format!("relay_throughput/{}/{name}", PATHS[0])) {
            let n = paths.len();
            let ratios = rt.block_on(async {
                let mut ratios = vec![Vec::with_capacity(ROUNDS); n - 1];
                for round in 0..ROUNDS {
                    let mut times = vec![Duration::ZERO; n];
                    for i in crate::order(round, n) {
                        let start = Instant::now();
                        s.task(i).await.expect("task");
                        times[i] = start.elapsed();
                    }
                    for (j, r) in ratios.iter_mut().enumerate() {
                        r.push(crate::ratio(times[0], times[j + 1]));
                    }
                }
                ratios
            });
            for (path, ratios) in paths[1..].iter().zip(ratios) {
                run.paired.push(Paired {
                    id: format!("relay_throughput/{name}: {path} / {}", PATHS[0]),
                    ratios,
                });
            }
        }
        rt.block_on(s.close());
    }
    g.finish();
    rig.stop();
}
