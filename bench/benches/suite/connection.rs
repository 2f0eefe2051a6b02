//! Connection setup: TCP connect, IOService handshake, anonymous-DH TLS, login, logoff against
//! prl-sim in this process, (a) directly with prl-transport's client (the baseline) and (b) as a
//! browser does it through prl-proxy (WebSocket upgrade, `open`, login, logoff) over `ws://`
//! and over `wss://`, at LOW and HIGH. One iteration is one whole cycle; the time runs to the
//! logoff reply.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::{direct_login_cycle, proxy_login_cycle, tunnel_login_cycle};
use prl_protocol::handshake::SecurityLevel;

use crate::{PATHS, ROUNDS};

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let rig = crate::Rig::start(&rt);
    let (sim_addr, endpoints, peers) = (rig.sim_addr, &rig.endpoints, &rig.peers);
    let paths = rig.paths();
    // One whole cycle on path `i` of the rig's paths (PATHS, then the peers).
    let cycle = |i: usize, level| async move {
        match i {
            0 => direct_login_cycle(sim_addr, level).await,
            1 | 2 => proxy_login_cycle(&endpoints[i - 1], level).await,
            _ => tunnel_login_cycle(&peers[i - 3], level).await,
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
            let n = paths.len();
            let ratios = rt.block_on(async {
                let mut ratios = vec![Vec::with_capacity(ROUNDS); n - 1];
                for round in 0..ROUNDS {
                    let mut times = vec![Duration::ZERO; n];
                    for i in crate::order(round, n) {
                        times[i] = cycle(i, level).await;
                    }
                    for (j, r) in ratios.iter_mut().enumerate() {
                        r.push(crate::ratio(times[0], times[j + 1]));
                    }
                }
                ratios
            });
            for (path, ratios) in paths[1..].iter().zip(ratios) {
                run.paired.push(Paired {
                    id: format!("connection_setup/{name}: {path} / {}", PATHS[0]),
                    ratios,
                });
            }
        }
    }
    rig.stop();
}
