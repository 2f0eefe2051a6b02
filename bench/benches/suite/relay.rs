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

/// The three sessions of one level, in the order of PATHS.
struct Sessions {
    direct: DirectSession,
    browsers: [BrowserSession; 2],
}

impl Sessions {
    /// Runs one task on path `i` of PATHS.
    async fn task(&mut self, i: usize) -> Result<u64, BenchError> {
        match i.checked_sub(1).and_then(|j| self.browsers.get_mut(j)) {
            None => self.direct.run_task(EVENTS, UNPACED).await,
            Some(browser) => browser.run_task(EVENTS, UNPACED).await,
        }
    }
}

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let rig = crate::Rig::start(&rt);
    let (sim_addr, endpoints) = (rig.sim_addr, &rig.endpoints);

    let mut g = c.benchmark_group("relay_throughput");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        // Packages received per iteration: the events and the reply.
        .throughput(Throughput::Elements(u64::from(EVENTS) + 1));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        let mut s = rt.block_on(async {
            let mut direct = DirectSession::connect(sim_addr, level)
                .await
                .expect("connect");
            direct.login().await.expect("login");
            let mut browsers = Vec::new();
            for endpoint in endpoints {
                let mut b = BrowserSession::open(endpoint, SIM_TARGET, level)
                    .await
                    .expect("open");
                b.login().await.expect("login");
                browsers.push(b);
            }
            let browsers: [BrowserSession; 2] = browsers.try_into().expect("two browsers");
            Sessions { direct, browsers }
        });
        for (i, path) in PATHS.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*path, name), |b| {
                b.iter(|| rt.block_on(s.task(i)).expect("task"))
            });
        }

        if run.measured(&format!("relay_throughput/{}/{name}", PATHS[0])) {
            let ratios = rt.block_on(async {
                let mut ratios = [Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS)];
                for round in 0..ROUNDS {
                    let mut times = [Duration::ZERO; 3];
                    for i in crate::order(round) {
                        let start = Instant::now();
                        s.task(i).await.expect("task");
                        times[i] = start.elapsed();
                    }
                    ratios[0].push(crate::ratio(times[0], times[1]));
                    ratios[1].push(crate::ratio(times[0], times[2]));
                }
                ratios
            });
            for (path, ratios) in PATHS[1..].iter().zip(ratios) {
                run.paired.push(Paired {
                    id: format!("relay_throughput/{name}: {path} / {}", PATHS[0]),
                    ratios,
                });
            }
        }
        rt.block_on(async {
            let Sessions { direct, browsers } = s;
            direct.logoff().await.expect("logoff");
            for b in browsers {
                b.logoff().await.expect("logoff");
            }
        });
    }
    g.finish();
    rig.stop();
}
