//! Connection setup: TCP connect, IOService handshake, anonymous-DH TLS, login, logoff against
//! prl-sim in this process, (a) directly with prl-transport's client (the baseline) and (b) as a
//! browser does it through prl-proxy (WebSocket upgrade, `open`, login, logoff) over `ws://`
//! and over `wss://`, at LOW and HIGH. One iteration is one whole cycle; the time runs to the
//! logoff reply.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::{direct_login_cycle, proxy_login_cycle};
use prl_protocol::handshake::SecurityLevel;

use crate::{PATHS, ROUNDS};

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let rig = crate::Rig::start(&rt);
    let (sim_addr, endpoints) = (rig.sim_addr, &rig.endpoints);
    // One whole cycle on path `i` of PATHS.
    let cycle = |i: usize, level| async move {
        match endpoints.get(i.wrapping_sub(1)) {
            None => direct_login_cycle(sim_addr, level).await,
            Some(proxy) => proxy_login_cycle(proxy, level).await,
        }
        .expect("login cycle")
    };

    let mut g = c.benchmark_group("connection_setup");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        for (i, path) in PATHS.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*path, name), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += cycle(i, level).await;
                        }
                        total
                    })
                })
            });
        }
    }
    g.finish();

    if run.measured("connection_setup") {
        for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
            let ratios = rt.block_on(async {
                let mut ratios = [Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS)];
                for round in 0..ROUNDS {
                    let mut times = [Duration::ZERO; 3];
                    for i in crate::order(round) {
                        times[i] = cycle(i, level).await;
                    }
                    ratios[0].push(crate::ratio(times[0], times[1]));
                    ratios[1].push(crate::ratio(times[0], times[2]));
                }
                ratios
            });
            for (path, ratios) in PATHS[1..].iter().zip(ratios) {
                run.paired.push(Paired {
                    id: format!("connection_setup/{name}: {path} / {}", PATHS[0]),
                    ratios,
                });
            }
        }
    }
    rig.stop();
}
