//! Connection setup: TCP connect, IOService handshake, anonymous-DH TLS, login, logoff against
//! prl-sim in this process, (a) directly with prl-transport's client (the baseline) and (b) as a
//! browser does it through prl-proxy (WebSocket upgrade, `open`, login, logoff) over `ws://`
//! and over `wss://`, at LOW and HIGH. One iteration is one whole cycle; the time runs to the
//! logoff reply.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::{
    direct_login_cycle, proxy_login_cycle, start_proxy, start_sim, ProxyEndpoint, SIM_TARGET,
};
use prl_protocol::handshake::SecurityLevel;

use crate::{PATHS, ROUNDS};

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
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
    // One whole cycle on path `i` of PATHS.
    let cycle = |i: usize, level| {
        let endpoints = &endpoints;
        async move {
            match endpoints.get(i.wrapping_sub(1)) {
                None => direct_login_cycle(sim_addr, level).await,
                Some(proxy) => proxy_login_cycle(proxy, level).await,
            }
            .expect("login cycle")
        }
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
    ws.shutdown();
    wss.shutdown();
    drop(sim);
}
