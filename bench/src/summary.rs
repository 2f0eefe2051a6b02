//! The ratio table printed at the end of a benchmark run (and written to
//! [`SUMMARY_FILE`] beside criterion's results).
//!
//! Criterion leaves one `new/benchmark.json` (ids, throughput) and `new/estimates.json`
//! (statistics, in nanoseconds) per benchmark. Benchmarks are grouped by criterion group and
//! parameter (`connection_setup` + `LOW`); the function whose name starts with `baseline` is
//! the group's baseline, and every row's ratio is its median time divided by the baseline's
//! median time. The median, not the mean: on a shared machine a few samples land on another
//! process's burst.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Name of the summary file, in criterion's output directory.
pub const SUMMARY_FILE: &str = "prl-bench-summary.md";
/// Name of the suite's data file (rows, paired comparisons, latencies, load), beside it.
pub const SUITE_DATA_FILE: &str = "prl-bench-suite.json";
/// How many directory levels below the output directory a `benchmark.json` may be
/// (`group/function/value/new/benchmark.json`).
const MAX_DEPTH: usize = 6;

/// Reading criterion's results failed.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A results file is not what criterion writes.
    #[error("malformed criterion file {path}: {reason}")]
    Malformed {
        /// The path.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
}

impl SummaryError {
    /// Stable snake_case name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            SummaryError::Read { .. } => "read",
            SummaryError::Malformed { .. } => "malformed",
        }
    }
}

/// What one iteration processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Throughput {
    /// Bytes per iteration.
    Bytes(u64),
    /// Elements (here: packages) per iteration.
    Elements(u64),
}

/// One benchmark's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Criterion group (`codec_login_package`).
    pub group: String,
    /// Function (`baseline_memcpy`, `decode_incremental`).
    pub function: String,
    /// Parameter (`LOW`), if any.
    pub value: Option<String>,
    /// Median time of one iteration, in nanoseconds.
    pub median_ns: f64,
    /// Work per iteration, if declared.
    pub throughput: Option<Throughput>,
}

impl Row {
    /// `group/function[/value]`, criterion's id.
    pub fn id(&self) -> String {
        match &self.value {
            Some(v) => format!("{}/{}/{v}", self.group, self.function),
            None => format!("{}/{}", self.group, self.function),
        }
    }

    /// Whether this row is its group's baseline.
    pub fn is_baseline(&self) -> bool {
        self.function.starts_with("baseline")
    }

    fn same_group(&self, other: &Row) -> bool {
        self.group == other.group && self.value == other.value
    }
}

/// Criterion's output directory, as criterion picks it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion` in the target directory holding `exe`
/// (`<target>/release/deps/<bench>`).
pub fn criterion_home(exe: &Path) -> PathBuf {
    criterion_home_from(
        std::env::var_os("CRITERION_HOME"),
        std::env::var_os("CARGO_TARGET_DIR"),
        exe,
    )
}

fn criterion_home_from(
    criterion_home: Option<std::ffi::OsString>,
    cargo_target_dir: Option<std::ffi::OsString>,
    exe: &Path,
) -> PathBuf {
    if let Some(home) = criterion_home {
        return PathBuf::from(home);
    }
    if let Some(target) = cargo_target_dir {
        return PathBuf::from(target).join("criterion");
    }
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Every benchmark under `dir` whose results were written at or after `since`, sorted by
/// group, parameter, baseline first, then function (criterion's order within a group is lost
/// on disk).
pub fn collect(dir: &Path, since: SystemTime) -> Result<Vec<Row>, SummaryError> {
    let mut files = Vec::new();
    find_benchmark_files(dir, 0, &mut files)?;
    let mut rows = Vec::new();
    for file in files {
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .map_err(|source| SummaryError::Read {
                path: file.clone(),
                source,
            })?;
        if modified < since {
            continue;
        }
        rows.push(read_row(&file)?);
    }
    rows.sort_by(|a, b| {
        (&a.group, &a.value, !a.is_baseline(), &a.function).cmp(&(
            &b.group,
            &b.value,
            !b.is_baseline(),
            &b.function,
        ))
    });
    Ok(rows)
}

fn find_benchmark_files(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), SummaryError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| SummaryError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SummaryError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                let file = path.join("benchmark.json");
                if file.is_file() {
                    out.push(file);
                }
            } else if path
                .file_name()
                .is_some_and(|n| n != "base" && n != "report")
            {
                find_benchmark_files(&path, depth + 1, out)?;
            }
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value, SummaryError> {
    let text = std::fs::read_to_string(path).map_err(|source| SummaryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SummaryError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_row(benchmark_json: &Path) -> Result<Row, SummaryError> {
    let malformed = |path: &Path, reason: &str| SummaryError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let b = read_json(benchmark_json)?;
    let text = |key: &str| b.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let group = text("group_id").ok_or_else(|| malformed(benchmark_json, "no group_id"))?;
    let function = text("function_id").unwrap_or_default();
    let value = text("value_str");
    let count = |kind: &str| {
        b.get("throughput")
            .and_then(|t| t.get(kind))
            .and_then(|v| v.as_u64())
    };
    let throughput = count("Bytes")
        .map(Throughput::Bytes)
        .or_else(|| count("Elements").map(Throughput::Elements));
    let estimates_json = benchmark_json.with_file_name("estimates.json");
    let e = read_json(&estimates_json)?;
    let median_ns = e
        .get("median")
        .and_then(|m| m.get("point_estimate"))
        .and_then(|v| v.as_f64())
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| malformed(&estimates_json, "no positive median point_estimate"))?;
    Ok(Row {
        group,
        function,
        value,
        median_ns,
        throughput,
    })
}

/// The ratio of `row`'s median to its group's baseline median, if the group has a baseline.
pub fn ratio(rows: &[Row], row: &Row) -> Option<f64> {
    rows.iter()
        .find(|b| b.is_baseline() && b.same_group(row))
        .map(|b| row.median_ns / b.median_ns)
}

/// `22.7 ns`, `451 ns`, `52.4 µs`, `6.17 ms`, `1.16 s`: three significant digits.
pub fn fmt_time(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", sig3(v))
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Throughput per second of `t` at `ns` per iteration: `5.47 GiB/s`, `229k packages/s`.
pub fn fmt_throughput(t: Throughput, ns: f64) -> String {
    let per_s = |n: u64| n as f64 * 1e9 / ns;
    match t {
        Throughput::Bytes(n) => {
            let b = per_s(n);
            if b >= f64::from(1u32 << 30) {
                format!("{} GiB/s", sig3(b / f64::from(1u32 << 30)))
            } else {
                format!("{} MiB/s", sig3(b / f64::from(1u32 << 20)))
            }
        }
        Throughput::Elements(n) => {
            let e = per_s(n);
            if e >= 1e3 {
                format!("{}k packages/s", sig3(e / 1e3))
            } else {
                format!("{} packages/s", sig3(e))
            }
        }
    }
}

/// The Markdown table: one row per benchmark with its median, throughput and ratio.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| benchmark | median | throughput | ratio to the group's baseline |\n|---|---|---|---|\n",
    );
    for row in rows {
        let throughput = row
            .throughput
            .map(|t| fmt_throughput(t, row.median_ns))
            .unwrap_or_else(|| "-".into());
        let ratio = if row.is_baseline() {
            "1 (baseline)".to_owned()
        } else {
            ratio(rows, row).map_or_else(|| "no baseline".to_owned(), |r| format!("{r:.2}"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {throughput} | {ratio} |",
            row.id(),
            fmt_time(row.median_ns)
        );
    }
    out
}

/// `2026-11-26 21:49 UTC`.
pub fn fmt_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// `2 cores (nproc), AMD EPYC (/proc/cpuinfo), load average 4.16 5.35 4.83`.
pub fn machine_facts() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    format!("{cores} cores, {cpu}, load average {load}")
}

/// A paired comparison: `pairs` rounds of the measured path and its baseline back to back
/// (alternating which goes first), one ratio per round. Load that drifts during a run moves
/// both halves of a pair alike, so the median of these ratios is steadier than the ratio of
/// two medians measured seconds apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// What is compared (`connection_setup/LOW: proxy_websocket / baseline_direct`).
    pub id: String,
    /// One ratio per round.
    pub ratios: Vec<f64>,
}

impl Paired {
    /// The `q`-quantile of the ratios (nearest rank), `None` without ratios.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.ratios, q)
    }
}

/// The `q`-quantile (nearest rank) of `values`, `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|r| r.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    let rank = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
    sorted.get(rank.min(last)).copied()
}

/// The round-trip times of one path at one level, every sample of the paired rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// `round_trip/LOW`.
    pub group: String,
    /// `baseline_direct`, `proxy_ws`, ...
    pub path: String,
    /// Round-trip times, microseconds.
    pub samples_us: Vec<f64>,
}

impl Latency {
    /// The `q`-quantile of the samples, microseconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.samples_us, q)
    }

    /// This path's `q`-quantile over the baseline's (same group), if both exist.
    pub fn ratio(&self, all: &[Latency], q: f64) -> Option<f64> {
        let base = all
            .iter()
            .find(|l| l.group == self.group && l.path.starts_with("baseline"))?;
        Some(self.quantile(q)? / base.quantile(q)?)
    }
}

/// The Markdown table of round-trip times: p50 and p99 per path and their ratios to the
/// baseline's.
pub fn render_latency(latency: &[Latency]) -> String {
    let mut out = String::from(
        "| round trip | samples | p50 | p99 | p50 ratio | p99 ratio |\n|---|---|---|---|---|---|\n",
    );
    for l in latency {
        let us = |q| {
            l.quantile(q)
                .map_or_else(|| "-".to_owned(), |v| fmt_time(v * 1e3))
        };
        let r = |q| {
            l.ratio(latency, q)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            out,
            "| {}/{} | {} | {} | {} | {} | {} |",
            l.group,
            l.path,
            l.samples_us.len(),
            us(0.5),
            us(0.99),
            r(0.5),
            r(0.99)
        );
    }
    out
}

/// Samples the 1-minute load average every `every` on a thread of its own while a run lasts.
#[derive(Debug)]
pub struct LoadSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<f64>>>,
}

/// The load averages sampled during a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSamples {
    /// 1-minute load averages, in sampling order.
    pub samples: Vec<f64>,
}

impl LoadSamples {
    /// `4.0-5.2 (median 4.6, 17 samples)`.
    pub fn describe(&self) -> String {
        match (
            quantile(&self.samples, 0.0),
            quantile(&self.samples, 0.5),
            quantile(&self.samples, 1.0),
        ) {
            (Some(lo), Some(mid), Some(hi)) => format!(
                "{lo:.1}-{hi:.1} (median {mid:.1}, {} samples)",
                self.samples.len()
            ),
            _ => "not sampled".into(),
        }
    }
}

impl LoadSampler {
    /// Starts sampling (the first sample now).
    pub fn start(every: Duration) -> LoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let tick = Duration::from_millis(100);
            let mut waited = every;
            // Bounded by the run: the flag ends it.
            while !flag.load(Ordering::Relaxed) {
                if waited >= every {
                    if let Some(l) = crate::load::load_average() {
                        samples.push(l);
                    }
                    waited = Duration::ZERO;
                }
                std::thread::sleep(tick);
                waited += tick;
            }
            samples
        });
        LoadSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the samples taken.
    pub fn stop(mut self) -> LoadSamples {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        LoadSamples { samples }
    }
}

/// What the suite leaves for the report (`SUITE_DATA_FILE`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SuiteData {
    /// Criterion's results.
    pub rows: Vec<Row>,
    /// The paired comparisons.
    pub paired: Vec<Paired>,
    /// Round-trip samples.
    pub latency: Vec<Latency>,
    /// Load average during the run.
    pub load: Vec<f64>,
}

/// The Markdown table of paired comparisons: median ratio and interquartile range.
pub fn render_paired(paired: &[Paired]) -> String {
    let mut out = String::from(
        "| paired comparison | rounds | median ratio | interquartile range |\n|---|---|---|---|\n",
    );
    for p in paired {
        let q = |x| {
            p.quantile(x)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} to {} |",
            p.id,
            p.ratios.len(),
            q(0.5),
            q(0.25),
            q(0.75)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bench(dir: &Path, id: &str, benchmark: &str, median: f64) {
        let new = dir.join(id).join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("benchmark.json"), benchmark).unwrap();
        std::fs::write(
            new.join("estimates.json"),
            format!(
                "{{\"mean\":{{\"point_estimate\":1.0}},\"median\":{{\"confidence_interval\":{{}},\"point_estimate\":{median}}},\"slope\":null}}"
            ),
        )
        .unwrap();
    }

    #[test]
    fn rows_pair_with_their_groups_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_bench(
            d,
            "codec/baseline_memcpy",
            r#"{"group_id":"codec","function_id":"baseline_memcpy","value_str":null,"throughput":{"Bytes":2048}}"#,
            20.0,
        );
        write_bench(
            d,
            "codec/decode",
            r#"{"group_id":"codec","function_id":"decode","value_str":null,"throughput":{"Bytes":2048}}"#,
            400.0,
        );
        for (level, direct, proxy) in [("LOW", 4e6, 6e6), ("HIGH", 9e6, 13.5e6)] {
            write_bench(
                d,
                &format!("relay/baseline_direct/{level}"),
                &format!(
                    r#"{{"group_id":"relay","function_id":"baseline_direct","value_str":"{level}","throughput":{{"Elements":1001}}}}"#
                ),
                direct,
            );
            write_bench(
                d,
                &format!("relay/proxy_websocket/{level}"),
                &format!(
                    r#"{{"group_id":"relay","function_id":"proxy_websocket","value_str":"{level}","throughput":{{"Elements":1001}}}}"#
                ),
                proxy,
            );
        }
        write_bench(
            d,
            "lonely/alone",
            r#"{"group_id":"lonely","function_id":"alone","value_str":null,"throughput":null}"#,
            1.5e9,
        );
        let rows = collect(d, SystemTime::UNIX_EPOCH).unwrap();
        let ids: Vec<String> = rows.iter().map(Row::id).collect();
        assert_eq!(
            ids,
            [
                "codec/baseline_memcpy",
                "codec/decode",
                "lonely/alone",
                "relay/baseline_direct/HIGH",
                "relay/proxy_websocket/HIGH",
                "relay/baseline_direct/LOW",
                "relay/proxy_websocket/LOW",
            ]
        );
        assert_eq!(ratio(&rows, &rows[1]), Some(20.0));
        assert_eq!(ratio(&rows, &rows[2]), None);
        assert_eq!(ratio(&rows, &rows[4]), Some(1.5));
        assert_eq!(ratio(&rows, &rows[6]), Some(1.5));
        let table = render(&rows);
        assert!(
            table.contains("| codec/decode | 400 ns | 4.77 GiB/s | 20.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| relay/proxy_websocket/LOW | 6.00 ms | 167k packages/s | 1.50 |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| relay/baseline_direct/LOW | 4.00 ms | 250k packages/s | 1 (baseline) |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| lonely/alone | 1.50 s | - | no baseline |"),
            "{table}"
        );
        // Results older than the run are left out.
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(collect(d, later).unwrap().is_empty());
    }

    #[test]
    fn malformed_results_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_bench(dir.path(), "g/f", r#"{"function_id":"f"}"#, 1.0);
        let e = collect(dir.path(), SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.kind(), "malformed");
        assert!(e.to_string().contains("no group_id"), "{e}");
        write_bench(
            dir.path(),
            "g/f",
            r#"{"group_id":"g","function_id":"f"}"#,
            0.0,
        );
        let e = collect(dir.path(), SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(e.to_string().contains("estimates.json"), "{e}");
        let e = collect(&dir.path().join("missing"), SystemTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.kind(), "read");
    }

    #[test]
    fn paired_ratios_report_median_and_quartiles() {
        let p = Paired {
            id: "g/LOW: b / a".into(),
            ratios: vec![1.3, 0.9, 1.1, 1.0, 1.2, f64::NAN],
        };
        assert_eq!(p.quantile(0.5), Some(1.1));
        assert_eq!(p.quantile(0.25), Some(1.0));
        assert_eq!(p.quantile(0.75), Some(1.2));
        assert_eq!(p.quantile(1.0), Some(1.3));
        let table = render_paired(&[p]);
        assert!(
            table.contains("| g/LOW: b / a | 6 | 1.10 | 1.00 to 1.20 |"),
            "{table}"
        );
        let empty = Paired {
            id: "x".into(),
            ratios: vec![],
        };
        assert_eq!(empty.quantile(0.5), None);
        assert!(render_paired(&[empty]).contains("| x | 0 | - | - to - |"));
    }

    #[test]
    fn times_and_dates_read_well() {
        assert_eq!(fmt_time(22.688), "22.7 ns");
        assert_eq!(fmt_time(451.09), "451 ns");
        assert_eq!(fmt_time(52_384.0), "52.4 µs");
        assert_eq!(fmt_time(6_167_300.0), "6.17 ms");
        assert_eq!(
            fmt_throughput(Throughput::Elements(1001), 1e9),
            "1.00k packages/s"
        );
        assert_eq!(
            fmt_throughput(Throughput::Bytes(1 << 20), 1e9),
            "1.00 MiB/s"
        );
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_723_775);
        assert_eq!(fmt_utc(t), "2026-11-26 20:09 UTC");
        assert_eq!(fmt_utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00 UTC");
        assert!(machine_facts().contains("cores"));
    }

    #[test]
    fn the_output_directory_follows_criterion() {
        let exe = Path::new("/t/release/deps/suite-123");
        assert_eq!(
            criterion_home_from(Some("/h".into()), Some("/c".into()), exe),
            Path::new("/h")
        );
        assert_eq!(
            criterion_home_from(None, Some("/c".into()), exe),
            Path::new("/c/criterion")
        );
        assert_eq!(
            criterion_home_from(None, None, exe),
            Path::new("/t/criterion")
        );
        assert_eq!(
            criterion_home_from(None, None, Path::new("suite")),
            Path::new("target/criterion")
        );
    }
}
