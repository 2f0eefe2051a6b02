//! The login latency cluster mode adds: the connection-setup cycle of `connection_setup`
//! (WebSocket upgrade, `open`, login, logoff; `ws://`, LOW) through a proxy with `[cluster]`,
//! its shared state in a `redis-server` on loopback started here (Debian's, or
//! `$REDIS_SERVER`; a missing one fails the suite), against the same cycle through a single
//! proxy (everything in memory), both in front of one simulator. What the cluster adds to a
//! login: the cluster-wide lease of an upstream waiting for its login, the user's and the
//! address's shared throttle buckets (Lua scripts), and the restore-proof bookkeeping (in the
//! background).

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::{
    cluster_config, proxy_config, proxy_login_cycle, run_proxy, start_sim, ProxyEndpoint,
    SIM_TARGET,
};
use prl_protocol::handshake::SecurityLevel;

use crate::redis_server::RedisServer;
use crate::ROUNDS;

/// The two paths: the baseline, then cluster mode.
const PATHS: [&str; 2] = ["baseline_single", "cluster_redis"];

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("cluster.key");
    std::fs::write(&secret, "bench-cluster-secret-bench-cluster-secret").expect("secret");
    let (sim, single, cluster) = rt.block_on(async {
        let sim = start_sim().await.expect("simulator");
        let targets = [(SIM_TARGET, sim.tcp_addr().expect("tcp listener"))];
        let single = run_proxy(proxy_config(&targets, false).expect("config"))
            .await
            .expect("proxy");
        let config = cluster_config(&targets, &redis.url(), &secret).expect("cluster config");
        let cluster = run_proxy(config).await.expect("cluster proxy");
        (sim, single, cluster)
    });
    let endpoints = [
        ProxyEndpoint::of(&single).expect("endpoint"),
        ProxyEndpoint::of(&cluster).expect("endpoint"),
    ];
    let level = SecurityLevel::Low;
    let cycle = |i: usize| {
        let endpoint = &endpoints[i];
        async move {
            proxy_login_cycle(endpoint, level)
                .await
                .expect("login cycle")
        }
    };

    let mut g = c.benchmark_group("cluster_login");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (i, path) in PATHS.iter().enumerate() {
        g.bench_function(*path, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += cycle(i).await;
                    }
                    total
                })
            })
        });
    }
    g.finish();

    if run.measured("cluster_login") {
        let ratios = rt.block_on(async {
            let mut ratios = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS {
                // Alternating which path goes first.
                let first = round % 2;
                let mut times = [Duration::ZERO; 2];
                times[first] = cycle(first).await;
                times[1 - first] = cycle(1 - first).await;
                ratios.push(crate::ratio(times[0], times[1]));
            }
            ratios
        });
        run.paired.push(Paired {
            id: format!("cluster_login/LOW: {} / {}", PATHS[1], PATHS[0]),
            ratios,
        });
    }
    single.shutdown();
    cluster.shutdown();
    drop(sim);
    drop(redis);
}
