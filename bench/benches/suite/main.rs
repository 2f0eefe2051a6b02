//! The benchmark suite: `cargo bench -p prl-bench` (or `cargo xtask bench`). Every group holds
//! a `baseline_*` function measured in the same run; the numbers to read are the other
//! functions' times divided by the baseline's, which the suite prints at the end (and writes
//! to `prl-bench-summary.md` in criterion's output directory).
//!
//! Measurement times are short on purpose (a shared 2-core machine): the whole suite runs in
//! about a minute and a half. Criterion's own flags change them, e.g.
//! `cargo bench -p prl-bench -- --measurement-time 10 connection_setup`.

mod codec;
mod connection;
mod relay;

use std::time::{Duration, SystemTime};

use criterion::Criterion;
use prl_bench::summary;

/// Short warm-up and measurement, and no plots; the command line may override them.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
        .without_plots()
        .configure_from_args()
}

/// A multi-threaded runtime with two workers (the machine's cores) hosting the simulator, the
/// proxy and the clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    // Criterion's file times have a resolution of the file system; a second's slack keeps
    // this run's first result.
    let started = SystemTime::now() - Duration::from_secs(1);
    let mut c = config();
    codec::benches(&mut c);
    connection::benches(&mut c);
    relay::benches(&mut c);
    c.final_summary();

    // `--list`, `--test` (`cargo test --benches`) and filters that match nothing leave no
    // results: then there is nothing to summarise.
    let exe = std::env::current_exe().unwrap_or_default();
    let home = summary::criterion_home(&exe);
    let rows = match summary::collect(&home, started) {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => return,
        Err(e) => {
            eprintln!("prl-bench: no summary: {e}");
            return;
        }
    };
    let text = format!(
        "# prl-bench summary\n\n{}; {}.\nRatio = median time / the median time of the group's \
         baseline (same group and parameter), measured in this run.\n\n{}",
        summary::fmt_utc(SystemTime::now()),
        summary::machine_facts(),
        summary::render(&rows)
    );
    println!("\n{text}");
    let file = home.join(summary::SUMMARY_FILE);
    match std::fs::write(&file, &text) {
        Ok(()) => println!("summary written to {}", file.display()),
        Err(e) => eprintln!("prl-bench: cannot write {}: {e}", file.display()),
    }
}
