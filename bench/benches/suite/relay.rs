//! Relay throughput: a logged-in session receives a task's progress events (3003, a few
//! hundred bytes each) streamed back to back, directly (baseline) and through prl-proxy's
//! WebSocket, at LOW (events in plain records) and HIGH (events through TLS). One iteration is
//! one task: the start command, every event and the final reply. The source is
//! [`prl_bench::burst::BurstService`]: prl-sim's own task 9001 is paced by a millisecond timer
//! and would measure the timer.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use prl_bench::burst::BurstService;
use prl_bench::summary::Paired;
use prl_bench::{start_proxy, BrowserSession, DirectSession, BURST_TARGET};
use prl_protocol::handshake::SecurityLevel;

/// Progress events per task.
const EVENTS: u32 = 1000;

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let (source, proxy) = rt.block_on(async {
        let source = BurstService::start().await.expect("burst service");
        let proxy = start_proxy(&[(BURST_TARGET, source.addr())])
            .await
            .expect("proxy");
        (source, proxy)
    });

    let mut g = c.benchmark_group("relay_throughput");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        // Packages received per iteration: the events and the reply.
        .throughput(Throughput::Elements(u64::from(EVENTS) + 1));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        let mut direct = rt.block_on(async {
            let mut s = DirectSession::connect(source.addr(), level)
                .await
                .expect("connect");
            s.login().await.expect("login");
            s
        });
        g.bench_function(BenchmarkId::new("baseline_direct", name), |b| {
            b.iter(|| rt.block_on(direct.run_task(EVENTS, 0)).expect("task"))
        });
        let mut browser = rt.block_on(async {
            let mut s = BrowserSession::open(proxy.local_addr(), BURST_TARGET, level)
                .await
                .expect("open");
            s.login().await.expect("login");
            s
        });
        g.bench_function(BenchmarkId::new("proxy_websocket", name), |b| {
            b.iter(|| rt.block_on(browser.run_task(EVENTS, 0)).expect("task"))
        });
        if run.measured(&format!("relay_throughput/baseline_direct/{name}")) {
            let ratios = rt.block_on(async {
                let mut ratios = Vec::with_capacity(crate::ROUNDS);
                for round in 0..crate::ROUNDS {
                    let mut times = [Duration::ZERO; 2];
                    for i in [round % 2, 1 - round % 2] {
                        let start = Instant::now();
                        if i == 0 {
                            direct.run_task(EVENTS, 0).await.expect("task");
                        } else {
                            browser.run_task(EVENTS, 0).await.expect("task");
                        }
                        times[i] = start.elapsed();
                    }
                    ratios.push(crate::ratio(times[0], times[1]));
                }
                ratios
            });
            run.paired.push(Paired {
                id: format!("relay_throughput/{name}: proxy_websocket / baseline_direct"),
                ratios,
            });
        }
        rt.block_on(async {
            direct.logoff().await.expect("logoff");
            browser.logoff().await.expect("logoff");
        });
    }
    g.finish();
    proxy.shutdown();
    drop(source);
}
