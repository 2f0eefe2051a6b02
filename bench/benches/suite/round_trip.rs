//! Round trip after login: a logged-in session sends one small command
//! ([`prl_bench::ROUND_TRIP_COMMAND`]: `getVmState` of a simulator VM) and waits for its
//! reply, directly (baseline), through prl-proxy over `ws://` and `wss://`, and through the
//! installed peers. Criterion measures the first three; the paired rounds measure every
//! path, [`PER_ROUND`] round trips per path per round, keeping every sample for p50 and p99.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use prl_bench::summary::{Latency, Paired};
use prl_protocol::handshake::SecurityLevel;

use crate::relay::Sessions;
use crate::PATHS;

/// Rounds of the paired comparison.
const ROUNDS: usize = 100;
/// Round trips per path per round.
const PER_ROUND: usize = 20;

pub fn benches(c: &mut Criterion, run: &mut crate::Run) {
    let rt = crate::runtime();
    let rig = crate::Rig::start(&rt);
    let paths = rig.paths();

    let mut g = c.benchmark_group("round_trip");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    for (level, name) in [(SecurityLevel::Low, "LOW"), (SecurityLevel::High, "HIGH")] {
        let mut s = rt.block_on(Sessions::open(&rig, level));
        for (i, path) in PATHS.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*path, name), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += s.round_trip(i).await.expect("round trip");
                        }
                        total
                    })
                })
            });
        }
        if run.measured(&format!("round_trip/{}/{name}", PATHS[0])) {
            let n = paths.len();
            let (samples, ratios) = rt.block_on(async {
                let mut samples = vec![Vec::with_capacity(ROUNDS * PER_ROUND); n];
                let mut ratios = vec![Vec::with_capacity(ROUNDS); n - 1];
                for round in 0..ROUNDS {
                    let mut medians = vec![0.0; n];
                    for i in crate::order(round, n) {
                        let mut times = Vec::with_capacity(PER_ROUND);
                        for _ in 0..PER_ROUND {
                            let t = s.round_trip(i).await.expect("round trip");
                            times.push(t.as_secs_f64() * 1e6);
                        }
                        medians[i] = prl_bench::summary::quantile(&times, 0.5).unwrap_or(0.0);
                        samples[i].extend(times);
                    }
                    for (j, r) in ratios.iter_mut().enumerate() {
                        r.push(medians[j + 1] / medians[0]);
                    }
                }
                (samples, ratios)
            });
            for (path, samples_us) in paths.iter().zip(samples) {
                run.latency.push(Latency {
                    group: format!("round_trip/{name}"),
                    path: path.clone(),
                    samples_us,
                });
            }
            for (path, ratios) in paths[1..].iter().zip(ratios) {
                run.paired.push(Paired {
                    id: format!(
                        "round_trip/{name}: {path} / {} (median per round)",
                        PATHS[0]
                    ),
                    ratios,
                });
            }
        }
        rt.block_on(s.close());
    }
    g.finish();
    rig.stop();
}
