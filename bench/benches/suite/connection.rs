//! Connection setup: TCP connect, IOService handshake, anonymous-DH TLS, login, logoff against
//! prl-sim in this process, (a) directly with prl-transport's client (the baseline) and (b) as a
//! browser does it through prl-proxy (WebSocket upgrade, `open`, login, logoff), at LOW and
//! HIGH. One iteration is one whole cycle; the time runs to the logoff reply.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::{direct_login_cycle, proxy_login_cycle, start_proxy, start_sim, SIM_TARGET};
use prl_protocol::handshake::SecurityLevel;

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let (sim, proxy) = rt.block_on(async {
        let sim = start_sim().await.expect("simulator");
        let sim_addr = sim.tcp_addr().expect("tcp listener");
        let proxy = start_proxy(&[(SIM_TARGET, sim_addr)]).await.expect("proxy");
        (sim, proxy)
    });
    let sim_addr = sim.tcp_addr().expect("tcp listener");
    let proxy_addr = proxy.local_addr();

    let mut g = c.benchmark_group("connection_setup");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        g.bench_function(BenchmarkId::new("baseline_direct", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += direct_login_cycle(sim_addr, level)
                            .await
                            .expect("direct login cycle");
                    }
                    total
                })
            })
        });
        g.bench_function(BenchmarkId::new("proxy_websocket", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += proxy_login_cycle(proxy_addr, level)
                            .await
                            .expect("login cycle through the proxy");
                    }
                    total
                })
            })
        });
    }
    g.finish();

    if run.measured("connection_setup") {
        for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
            let ratios = rt.block_on(async {
                let mut ratios = Vec::with_capacity(crate::ROUNDS);
                for round in 0..crate::ROUNDS {
                    let direct = || direct_login_cycle(sim_addr, level);
                    let browser = || proxy_login_cycle(proxy_addr, level);
                    let (a, b) = if round % 2 == 0 {
                        let a = direct().await.expect("direct login cycle");
                        (a, browser().await.expect("login cycle through the proxy"))
                    } else {
                        let b = browser().await.expect("login cycle through the proxy");
                        (direct().await.expect("direct login cycle"), b)
                    };
                    ratios.push(crate::ratio(a, b));
                }
                ratios
            });
            run.paired.push(Paired {
                id: format!("connection_setup/{name}: proxy_websocket / baseline_direct"),
                ratios,
            });
        }
    }
    proxy.shutdown();
    drop(sim);
}
