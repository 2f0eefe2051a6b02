//! The VM list: `getVmList` (2029, flags 0, as `PrlSrv_GetVmList`) of a host with 10 and with
//! 1000 VMs, straight to prl-sim with prl-transport's client (the baseline) and as the browser
//! client does it through prl-proxy over `ws://` (the measured path), at NORMAL (the SDK's and
//! the client's default level: commands and replies through TLS). One iteration is one list:
//! the request, the reply (about 20 KB per VM: ~200 KB and ~20 MB) and every VM's configuration
//! read with the core's parser, which both paths do alike. The proxy's
//! `limits.max_package_bytes` is raised for the 1000-VM list (`prl_bench::vms`).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::Paired;
use prl_bench::vms::{start_list_proxy, start_sim_with_vms};
use prl_bench::{BrowserSession, DirectSession, ProxyEndpoint, SIM_TARGET};
use prl_protocol::handshake::SecurityLevel;

/// The paths, baseline first.
const LIST_PATHS: [&str; 2] = ["baseline_direct", "proxy_ws"];
/// Host sizes, each with its measurement time (a 1000-VM list takes about 0.6 s) and the
/// rounds of its paired comparison.
const SIZES: [(usize, u64, usize); 2] = [(10, 3, 60), (1000, 7, 12)];

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let mut g = c.benchmark_group("vm_list");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (vms, seconds, rounds) in SIZES {
        let (sim, proxy, mut direct, mut browser) = rt.block_on(async {
            let sim = start_sim_with_vms(vms).await.expect("simulator");
            let addr = sim.tcp_addr().expect("tcp listener");
            let proxy = start_list_proxy(addr).await.expect("proxy");
            let endpoint = ProxyEndpoint::of(&proxy).expect("ws endpoint");
            let mut direct = DirectSession::connect(addr, SecurityLevel::Normal)
                .await
                .expect("connect");
            direct.login().await.expect("login");
            let mut browser = BrowserSession::open(&endpoint, SIM_TARGET, SecurityLevel::Normal)
                .await
                .expect("open");
            browser.login().await.expect("login");
            (sim, proxy, direct, browser)
        });
        // One list on path `i` of LIST_PATHS; every VM must have been read.
        let mut list = |i: usize| {
            let n = rt
                .block_on(async {
                    match i {
                        0 => direct.get_vm_list().await,
                        _ => browser.get_vm_list().await,
                    }
                })
                .expect("vm list");
            assert_eq!(n, vms, "VMs read");
        };
        g.measurement_time(Duration::from_secs(seconds));
        for (i, path) in LIST_PATHS.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*path, vms), |b| b.iter(|| list(i)));
        }

        if run.measured(&format!("vm_list/{}/{vms}", LIST_PATHS[0])) {
            // Rounds of both paths back to back, the first alternating.
            let mut ratios = Vec::with_capacity(rounds);
            for round in 0..rounds {
                let mut times = [Duration::ZERO; 2];
                for i in [round % 2, (round + 1) % 2] {
                    let start = Instant::now();
                    list(i);
                    times[i] = start.elapsed();
                }
                ratios.push(crate::ratio(times[0], times[1]));
            }
            run.paired.push(Paired {
                id: format!("vm_list/{vms} VMs: {} / {}", LIST_PATHS[1], LIST_PATHS[0]),
                ratios,
            });
        }
        rt.block_on(async {
            direct.logoff().await.expect("logoff");
            browser.logoff().await.expect("logoff");
        });
        proxy.shutdown();
        drop(sim);
    }
    g.finish();
}
