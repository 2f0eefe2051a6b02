//! `bench/RESULTS.md`, rendered from one run's data (`cargo xtask bench` writes it; nothing in
//! it is typed by hand): the suite's criterion rows, paired comparisons and round-trip samples,
//! the load runs (idle memory and CPU, peers' memory, the slow consumer), the page run, the
//! peers' installation, and the machine. Every goal of issue 11 is marked met or not met from
//! these numbers; for a goal not met, the measured profile and the reason follow.
//!
//! The data directory holds (each optional; a missing part is reported as not run):
//! `run.json` ([`RunInfo`]), `criterion/prl-bench-suite.json` ([`SuiteData`]),
//! `cluster/prl-bench-suite.json` (the cluster-mode comparison, a [`SuiteData`]), `memory.json`
//! and `memory-before.json` ([`MemoryRun`]s), `peers-memory.json`, `slow-consumer.json`
//! ([`SlowConsumer`]), `page.json` (bench/page/page.mjs), `peers.json` (install status),
//! `profile.json` ([`Profile`]).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::load::{MemoryRun, SlowConsumer};
use crate::summary::{self, Latency, Paired, SuiteData};

/// How the run was made (written by `cargo xtask bench`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// The command line.
    pub command: String,
    /// `git describe --always --dirty` of the worktree.
    pub commit: String,
    /// UTC start and end.
    pub started: String,
    /// UTC end.
    pub finished: String,
    /// `2 cores, AMD EPYC, ...` ([`summary::machine_facts`]).
    pub machine: String,
    /// rustc -V.
    pub rustc: String,
    /// OpenSSL version the proxy links.
    pub openssl: String,
}

/// One invocation that made data of this report (`steps.json`, appended by `cargo xtask bench`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Step {
    /// The command line.
    pub command: String,
    /// `git describe --always --dirty` when it ran.
    #[serde(default)]
    pub commit: String,
    /// UTC start.
    pub started: String,
    /// UTC end.
    pub finished: String,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Where an idle session's memory goes, from a heap profile (heaptrack) of one memory run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// What was profiled (`wss HIGH, 300 sessions`).
    pub what: String,
    /// (part, KiB per session), largest first.
    pub parts: Vec<(String, f64)>,
}

/// Everything read from a data directory.
#[derive(Debug, Default)]
pub struct Data {
    run: RunInfo,
    steps: Vec<Step>,
    suite: Option<SuiteData>,
    cluster: Option<SuiteData>,
    memory: Vec<MemoryRun>,
    memory_before: Vec<MemoryRun>,
    peers_memory: Vec<MemoryRun>,
    peers_missing: Vec<String>,
    slow: Option<SlowConsumer>,
    page: Option<serde_json::Value>,
    peers: Option<serde_json::Value>,
    profile: Option<Profile>,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

impl Data {
    /// Reads what `dir` holds.
    pub fn load(dir: &Path) -> Data {
        let peers_memory: Option<serde_json::Value> = read(&dir.join("peers-memory.json"));
        Data {
            run: read(&dir.join("run.json")).unwrap_or_default(),
            steps: read(&dir.join("steps.json")).unwrap_or_default(),
            suite: read(&dir.join("criterion").join(summary::SUITE_DATA_FILE)),
            cluster: read(&dir.join("cluster").join(summary::SUITE_DATA_FILE)),
            memory: read(&dir.join("memory.json")).unwrap_or_default(),
            memory_before: read(&dir.join("memory-before.json")).unwrap_or_default(),
            peers_memory: peers_memory
                .as_ref()
                .and_then(|v| serde_json::from_value(v.get("runs")?.clone()).ok())
                .unwrap_or_default(),
            peers_missing: peers_memory
                .as_ref()
                .and_then(|v| serde_json::from_value(v.get("missing")?.clone()).ok())
                .unwrap_or_default(),
            slow: read(&dir.join("slow-consumer.json")),
            page: read(&dir.join("page.json")),
            peers: read(&dir.join("peers.json")),
            profile: read(&dir.join("profile.json")),
        }
    }
}

/// A goal's verdict line.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The goal.
    pub goal: String,
    /// `Some(true)` met, `Some(false)` not met, `None` not measured in this run.
    pub met: Option<bool>,
    /// The figures it was judged by.
    pub figures: String,
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

fn paired<'a>(suite: &'a SuiteData, id: &str) -> Option<&'a Paired> {
    suite.paired.iter().find(|p| p.id == id)
}

fn median(p: Option<&Paired>) -> Option<f64> {
    p.and_then(|p| p.quantile(0.5))
}

fn latency<'a>(suite: &'a SuiteData, group: &str, path: &str) -> Option<&'a Latency> {
    suite
        .latency
        .iter()
        .find(|l| l.group == group && l.path == path)
}

/// Per-session KiB at `sessions` of the run for `path` at `level`.
fn memory_at(runs: &[MemoryRun], path: &str, level: &str, sessions: usize) -> Option<f64> {
    runs.iter()
        .find(|r| r.path == path && r.level == level)?
        .points
        .iter()
        .find(|p| p.sessions == sessions)
        .map(|p| p.per_session_kib)
}

/// The goals of issue 11, judged from `data`.
pub fn verdicts(data: &Data) -> Vec<Verdict> {
    let mut v = Vec::new();
    // 1. Memory per idle session at 9000.
    for path in ["prl-proxy ws", "prl-proxy wss"] {
        for level in ["LOW", "HIGH"] {
            let kib = memory_at(&data.memory, path, level, 9000);
            v.push(Verdict {
                goal: format!(
                    "memory per idle session ≤ 32 KiB at 9000 sessions ({path}, {level})"
                ),
                met: kib.map(|k| k <= 32.0),
                figures: kib.map_or_else(|| "-".into(), |k| format!("{k:.1} KiB")),
            });
        }
    }
    let suite = data.suite.as_ref();
    // 2. Peers: ahead on every figure.
    for peer in ["websockify", "wstunnel"] {
        let path = format!("peer_{peer}");
        let mut figures = Vec::new();
        let mut all = Some(true);
        let mut judge =
            |name: &str, ours: Option<f64>, theirs: Option<f64>, lower_better: bool| match (
                ours, theirs,
            ) {
                (Some(o), Some(t)) => {
                    let ahead = if lower_better { o < t } else { o > t };
                    figures.push(format!("{name} {o:.2} vs {t:.2}"));
                    if !ahead {
                        all = Some(false);
                    }
                }
                _ => all = all.and(None),
            };
        for level in ["LOW", "HIGH"] {
            let get = |group: &str, p: &str| {
                suite.and_then(|s| {
                    median(paired(
                        s,
                        &format!("{group}/{level}: {p} / baseline_direct"),
                    ))
                })
            };
            judge(
                &format!("login {level}"),
                get("connection_setup", "proxy_ws"),
                get("connection_setup", &path),
                true,
            );
            judge(
                &format!("events {level}"),
                get("relay_throughput", "proxy_ws"),
                get("relay_throughput", &path),
                true,
            );
            let rt = |p: &str| {
                suite.and_then(|s| {
                    latency(s, &format!("round_trip/{level}"), p)
                        .and_then(|l| l.ratio(&s.latency, 0.5))
                })
            };
            judge(
                &format!("round trip {level}"),
                rt("proxy_ws"),
                rt(&path),
                true,
            );
        }
        let mem = |p: &str| {
            data.peers_memory
                .iter()
                .find(|r| r.path == p)
                .and_then(|r| r.points.first())
                .map(|p| p.per_session_kib)
        };
        judge(
            "KiB per idle connection",
            mem("prl-proxy ws"),
            mem(peer),
            true,
        );
        let installed = !data.peers_missing.iter().any(|m| m == peer);
        v.push(Verdict {
            goal: format!("ahead of {peer} on every figure (time ratios to direct, memory)"),
            met: if installed { all } else { None },
            figures: if installed {
                figures.join("; ")
            } else {
                "not installed in this run (see Peers)".into()
            },
        });
    }
    // 3. Round trip ≤ 1.2 (p50 and p99).
    for level in ["LOW", "HIGH"] {
        for path in ["proxy_ws", "proxy_wss"] {
            let r = suite.and_then(|s| {
                let l = latency(s, &format!("round_trip/{level}"), path)?;
                Some((l.ratio(&s.latency, 0.5)?, l.ratio(&s.latency, 0.99)?))
            });
            v.push(Verdict {
                goal: format!(
                    "round trip after login relayed / direct ≤ 1.2, p50 and p99 ({path}, {level})"
                ),
                met: r.map(|(a, b)| a <= 1.2 && b <= 1.2),
                figures: r.map_or_else(|| "-".into(), |(a, b)| format!("p50 {a:.2}, p99 {b:.2}")),
            });
        }
    }
    // 4. Throughput: events relayed / direct (the inverse of the paired time ratio).
    for level in ["LOW", "HIGH"] {
        for (path, goal) in [("proxy_ws", 0.9), ("proxy_wss", 0.85)] {
            let t = suite.and_then(|s| {
                median(paired(
                    s,
                    &format!("relay_throughput/{level}: {path} / baseline_direct"),
                ))
            });
            let events = t.map(|t| 1.0 / t);
            v.push(Verdict {
                goal: format!("events relayed / direct ≥ {goal} ({path}, {level})"),
                met: events.map(|e| e >= goal),
                figures: events.map_or_else(
                    || "-".into(),
                    |e| format!("{e:.2} (time ratio {:.2})", 1.0 / e),
                ),
            });
        }
    }
    // 5. Slow consumer: RSS stops growing (no new peak in the last 5 s of the window; a
    // stalled browser is detached after 10 s, and the detached session fills its ring once
    // more) at the configured bound. The bound counts payload bytes; allocator chunks and the
    // bookkeeping of each queued package (boxes, ring slots) come on top, allowed for with 10 %.
    v.push(Verdict {
        goal: "slow consumer: proxy RSS plateaus at the configured bounds".into(),
        met: data.slow.as_ref().map(|s| {
            s.window_s - s.plateau_after_s >= 5.0
                && s.peak_per_browser_kib <= 1.1 * s.bound_per_browser_kib
        }),
        figures: data.slow.as_ref().map_or_else(
            || "-".into(),
            |s| {
                format!(
                    "plateau {:.0} KiB per stalled browser (flat from {:.1} s of {:.0} s); \
                     configured bound {:.0} KiB of payload ({:+.1} %: allocator and bookkeeping)",
                    s.peak_per_browser_kib,
                    s.plateau_after_s,
                    s.window_s,
                    s.bound_per_browser_kib,
                    (s.peak_per_browser_kib / s.bound_per_browser_kib - 1.0) * 100.0
                )
            },
        ),
    });
    // 6. The page.
    let gz = data.page.as_ref().and_then(|p| {
        let pkg = p.get("package")?;
        let sum: u64 = ["prl_client_wasm_bg.wasm", "prl_client_wasm.js", "index.js"]
            .iter()
            .filter_map(|f| pkg.get(*f)?.get("gz")?.as_u64())
            .sum();
        Some(sum)
    });
    v.push(Verdict {
        goal: "wasm + glue ≤ 100 KB gzipped".into(),
        met: gz.map(|g| g <= 100 * 1024),
        figures: gz.map_or_else(|| "-".into(), |g| format!("{:.1} KB", g as f64 / 1024.0)),
    });
    let served = data.page.as_ref().and_then(|p| {
        let files = p
            .get("results")?
            .get("https")?
            .get("rounds")?
            .get(0)?
            .get("files")?
            .as_object()?;
        Some(
            files
                .iter()
                // The package's files (the page's own web/ files are served as they are).
                .filter(|(name, _)| name.starts_with("/pkg/") && !name.contains("/snippets/"))
                .all(|(_, f)| f.get("encoding").and_then(|e| e.as_str()) == Some("br")),
        )
    });
    v.push(Verdict {
        goal: "the page's .wasm and JS are served pre-compressed (brotli, gzip) with ETag".into(),
        met: served,
        figures: "see The page".into(),
    });
    v
}

/// The Markdown of RESULTS.md.
pub fn render(data: &Data) -> String {
    let mut out = String::new();
    let r = &data.run;
    let _ = writeln!(
        out,
        "# prl-bench results\n\nRendered by `cargo xtask bench` from the data of the runs \
         below (commit `{}`); nothing here is typed by hand. Machine: {}; {}; {}. The machine \
         is shared with other builds: every comparison is a ratio to a baseline measured in the \
         same run (paired: the paths back to back, in rotating order), and the load average is \
         recorded with each part.\n",
        r.commit, r.machine, r.rustc, r.openssl
    );
    out.push_str("The runs that made this data (UTC):\n\n");
    if !r.command.is_empty() {
        let _ = writeln!(
            out,
            "- `{}` (every part): {} to {}",
            r.command, r.started, r.finished
        );
    }
    {
        for step in &data.steps {
            let _ = writeln!(
                out,
                "- `{}` (commit `{}`): {} to {}{}",
                step.command,
                step.commit,
                step.started,
                step.finished,
                if step.ok {
                    ""
                } else {
                    " (a part failed: see below what was not measured or comes from a later run)"
                }
            );
        }
        out.push('\n');
    }
    let verdicts = verdicts(data);
    out.push_str("## Goals (issue 11)\n\n| goal | verdict | figures |\n|---|---|---|\n");
    for v in &verdicts {
        let _ = writeln!(out, "| {} | {} | {} |", v.goal, mark(v.met), v.figures);
    }
    out.push('\n');
    render_memory(&mut out, data);
    render_suite(&mut out, data);
    render_cluster(&mut out, data);
    render_slow(&mut out, data);
    render_page(&mut out, data);
    render_peers(&mut out, data);
    render_not_met(&mut out, data, &verdicts);
    out
}

fn render_memory(out: &mut String, data: &Data) {
    out.push_str(
        "## Memory per idle session and idle CPU\n\n`prl-load memory`: the `prl-proxy` binary \
         (release build) in front of several `prl-sim` processes (at most 900 sessions each), \
         browsers connecting from many `127.1.x.y` addresses (at most 50 each, so the per-address \
         caps keep their defaults), each logged in and idle (WebSocket pings every 30 s answered; \
         IOService heartbeats every 10 s both ways between proxy and simulators). Figure = growth \
         of the proxy's RSS since 20 warm-up sessions, divided by the sessions held; idle CPU = \
         the proxy's user+system time over an idle window at the last checkpoint. Kernel socket \
         buffers are not process memory.\n\n",
    );
    let table = |out: &mut String, runs: &[MemoryRun], title: &str| {
        if runs.is_empty() {
            let _ = writeln!(out, "{title}: not run.\n");
            return;
        }
        let _ = writeln!(
            out,
            "{title}:\n\n| path | level | 1000 | 4000 | 9000 | idle CPU at the last | simulators, source addresses | load average (start, end) |\n|---|---|---|---|---|---|---|---|"
        );
        for run in runs {
            let at = |n| {
                run.points
                    .iter()
                    .find(|p| p.sessions == n)
                    .map_or_else(|| "-".into(), |p| format!("{:.1} KiB", p.per_session_kib))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {}, {} | {:.1}, {:.1} |",
                run.path,
                run.level,
                at(1000),
                at(4000),
                at(9000),
                run.idle_cpu_percent.map_or_else(
                    || "-".into(),
                    |c| format!("{c:.1} % of a core ({:.0} s)", run.idle_window_s)
                ),
                run.sims,
                run.sources,
                run.load.0,
                run.load.1
            );
        }
        out.push('\n');
    };
    table(out, &data.memory, "This run");
    if !data.memory_before.is_empty() {
        table(
            out,
            &data.memory_before,
            "Before this work (commit `76a6075`, the same harness)",
        );
    }
    if let Some(p) = &data.profile {
        let _ = writeln!(
            out,
            "Where an idle session's memory goes (heaptrack of `{}`, heap per session, largest \
             parts):\n\n| part | KiB per session |\n|---|---|",
            p.what
        );
        for (part, kib) in &p.parts {
            let _ = writeln!(out, "| {part} | {kib:.1} |");
        }
        out.push('\n');
    }
}

fn render_cluster(out: &mut String, data: &Data) {
    out.push_str(
        "## Login latency of cluster mode

`cargo xtask bench cluster`: the login cycle of \
         `connection_setup` (WebSocket upgrade, `open`, login, logoff; `ws://`, LOW) through a \
         prl-proxy with `[cluster]`, its shared state in a `redis-server` on loopback, against \
         the same cycle through a single proxy (`baseline_single`, everything in memory), both \
         in one process in front of one simulator. What cluster mode adds to a login: the \
         cluster-wide lease of an upstream waiting for its login, the address's and the user's \
         throttle buckets (Lua scripts in Redis), and the restore-proof record (in the \
         background).",
    );
    let Some(s) = &data.cluster else {
        out.push_str(" Not run.\n\n");
        return;
    };
    let load = summary::LoadSamples {
        samples: s.load.clone(),
    };
    let _ = writeln!(
        out,
        " Load average during the part: {}.\n\nPaired (the number to read; ratio = time through \
         the cluster instance / time through the single proxy, the two back to back, alternating \
         which goes first):\n\n{}\nCriterion's own medians:\n\n{}",
        load.describe(),
        summary::render_paired(&s.paired),
        summary::render(&s.rows)
    );
    out.push('\n');
}

fn render_suite(out: &mut String, data: &Data) {
    let Some(s) = &data.suite else {
        out.push_str("## Suite\n\nNot run.\n\n");
        return;
    };
    let load = summary::LoadSamples {
        samples: s.load.clone(),
    };
    let _ = writeln!(
        out,
        "## Login, event throughput and round trip (criterion suite)\n\n`cargo bench -p prl-bench \
         --bench suite`: simulator, proxies, peers' clients and the baseline in one process (2 \
         worker threads) over loopback; the peers are separate processes. Load average during the \
         suite: {}.\n\nPaired comparisons (the number to read; ratio = time of the path / time of \
         `baseline_direct` in the same round; for throughput the events-per-second ratio is its \
         inverse):\n\n{}\nRound trip after login ({} then its reply; every sample of the paired \
         rounds):\n\n{}\nCriterion's own medians (plain ratios of medians measured seconds apart; \
         noisier than the paired ones):\n\n{}",
        load.describe(),
        summary::render_paired(&s.paired),
        command_name(),
        summary::render_latency(&s.latency),
        summary::render(&s.rows)
    );
    out.push('\n');
}

fn command_name() -> String {
    format!(
        "`getVmState` (command {}, `PrlVm_GetState`) of a running simulator VM, answered with \
         0x{:08x} and the VM's info event",
        crate::ROUND_TRIP_COMMAND,
        crate::ROUND_TRIP_ANSWER.0
    )
}

fn render_slow(out: &mut String, data: &Data) {
    let Some(s) = &data.slow else {
        out.push_str("## Slow consumer\n\nNot run.\n\n");
        return;
    };
    let _ = writeln!(
        out,
        "## Slow consumer\n\n`prl-load slow-consumer`: {} browsers each start a task of {} \
         unpaced events ({} bytes each) and never read again. The proxy's RSS, sampled every 250 \
         ms for {:.0} s: {} KiB before, peak {} KiB ({:.0} KiB per browser, last new peak after \
         {:.1} s), {} KiB at the end. The configured bound per session with the default limits: \
         the queue toward the browser (64 packages; 4 MiB), the writer's batch in flight (64 KiB \
         and a frame), the replay ring (512 packages; 2 MiB) and the upstream connection's last \
         read (16 KiB) = {:.0} KiB. A stalled browser is detached after \
         `write_stall_ms` (10 s); the detached session reads the service only while its ring has \
         room, so the plateau holds.\n",
        s.browsers,
        s.events,
        crate::load::EVENT_BYTES,
        s.window_s,
        s.base_kib,
        s.peak_kib,
        s.peak_per_browser_kib,
        s.plateau_after_s,
        s.end_kib,
        s.bound_per_browser_kib
    );
}

fn render_page(out: &mut String, data: &Data) {
    let Some(p) = &data.page else {
        out.push_str("## The page\n\nNot run.\n\n");
        return;
    };
    let _ =
        writeln!(
        out,
        "## The page\n\n`node bench/page/page.mjs`: the demo page and the npm package served by \
         prl-proxy (release) in front of prl-sim, headless Chromium ({}), {} rounds per setting, \
         each in a fresh context (cold cache): time from the start of the navigation to the \
         login result on the page, and the bytes on the wire (headers and encoded bodies of \
         every HTTP response); then a second navigation in the same context (warm cache: \
         revalidation).\n\n| setting | navigation to logged in (median) | bytes on the wire | \
         warm reload | warm bytes |\n|---|---|---|---|---|",
        p.get("chromium").and_then(|c| c.as_str()).unwrap_or("chromium"),
        p.get("rounds").and_then(|r| r.as_u64()).unwrap_or(0)
    );
    for (setting, name) in [
        (
            "https",
            "https (wss; self-signed: Chromium does not cache it)",
        ),
        ("http", "http (Chromium offers br, gzip to 127.0.0.1)"),
        ("identity", "http, Accept-Encoding: identity forced"),
    ] {
        let r = p.get("results").and_then(|r| r.get(setting));
        let num = |k: &str| r.and_then(|r| r.get(k)).and_then(|v| v.as_f64());
        let _ = writeln!(
            out,
            "| {name} | {} ms | {} | {} ms | {} |",
            num("median_login_ms").map_or("-".into(), |v| format!("{v:.0}")),
            num("median_bytes").map_or("-".into(), |v| format!("{:.1} KB", v / 1024.0)),
            num("median_warm_ms").map_or("-".into(), |v| format!("{v:.0}")),
            num("median_warm_bytes").map_or("-".into(), |v| format!("{:.1} KB", v / 1024.0)),
        );
    }
    out.push_str("\nThe package's files (raw, and the pre-compressed variants written by `cargo xtask build-wasm`):\n\n| file | raw | .gz | .br |\n|---|---|---|---|\n");
    if let Some(pkg) = p.get("package").and_then(|p| p.as_object()) {
        for (name, f) in pkg {
            let kb = |k: &str| {
                f.get(k)
                    .and_then(|v| v.as_u64())
                    .map_or("-".into(), |v| format!("{:.1} KB", v as f64 / 1024.0))
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} |",
                kb("raw"),
                kb("gz"),
                kb("br")
            );
        }
    }
    out.push('\n');
}

fn render_peers(out: &mut String, data: &Data) {
    out.push_str("## Peers\n\n");
    if let Some(p) = &data.peers {
        if let Some(map) = p.as_object() {
            for (name, status) in map {
                let _ = writeln!(
                    out,
                    "- **{name}**: {}",
                    status.as_str().unwrap_or("unknown")
                );
            }
        }
    }
    out.push_str(
        "\nThe peers tunnel the WebSocket's bytes to prl-sim's TCP port; the client speaks \
         IOService inside the WebSocket (prl-transport over a WebSocket adapter, `WsBytes`): the \
         design a user would build without prl-proxy. Their login, throughput and round-trip \
         figures are in the paired tables above (`peer_*` rows).\n\n",
    );
    if !data.peers_memory.is_empty() {
        out.push_str(
            "Memory per idle logged-in connection, measured alike for all (`prl-load \
             peers-memory`: one simulator; PSS of the relay's whole process tree, since \
             websockify forks a process per connection; growth since 20 warm-up connections):\n\n\
             | relay | connections | KiB per idle connection | load average (start, end) |\n|---|---|---|---|\n",
        );
        for r in &data.peers_memory {
            if let Some(p) = r.points.first() {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {:.1}, {:.1} |",
                    r.path, p.sessions, p.per_session_kib, r.load.0, r.load.1
                );
            }
        }
        out.push('\n');
    }
}

fn render_not_met(out: &mut String, data: &Data, verdicts: &[Verdict]) {
    let not_met: Vec<&Verdict> = verdicts.iter().filter(|v| v.met == Some(false)).collect();
    if not_met.is_empty() {
        return;
    }
    out.push_str("## Goals not met: profile and reason\n\n");
    for v in not_met {
        let _ = writeln!(
            out,
            "- **{}** ({}): {}",
            v.goal,
            v.figures,
            reason(data, &v.goal)
        );
    }
    out.push('\n');
}

/// The measured explanation of a goal not met.
fn reason(data: &Data, goal: &str) -> String {
    if goal.starts_with("memory") {
        let parts = data
            .profile
            .as_ref()
            .map(|p| {
                p.parts
                    .iter()
                    .take(6)
                    .map(|(n, k)| format!("{n} {k:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!(
            "the heap profile above ({parts} KiB per session) is led by state the session \
             cannot drop while it lives: OpenSSL 3.0's per-connection `SSL` object (allocated \
             whole by `SSL_new`, its record-layer arrays sized for 32 pipelines) with its cipher \
             contexts, session and the peer's DH key (`SSL_MODE_RELEASE_BUFFERS` is set: no \
             idle record buffers); over wss, rustls' per-connection state and its deframer \
             buffer, which rustls 0.23 resizes to 4 KiB before every read and never below; \
             tungstenite's buffers: its read buffer keeps the allocation of the largest message \
             read (the login) and its frame buffer the largest frame written (the login reply), \
             neither of which tungstenite 0.30 can shrink; the replay ring holding the login \
             reply for a lossless resume. The session is one task (the writer task and its \
             channel are gone) and holds no idle I/O buffer of its own."
        )
    } else if goal.starts_with("events") {
        "the suite runs simulator, proxy and clients on the same 2 shared cores: the relayed \
         path does the direct path's work (decode) plus the relay's (rules, re-encode, replay \
         ring, WebSocket framing, and over wss rustls) on the same cores; see the paired table \
         for the spread."
            .into()
    } else if goal.starts_with("round trip") {
        // "(proxy_ws, LOW)" at the end of the goal names the path and level.
        let inner = goal
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .and_then(|r| r.split_once(", "));
        let us = |path: &str, level: &str, q: f64| {
            data.suite.as_ref().and_then(|s| {
                latency(s, &format!("round_trip/{level}"), path).and_then(|l| l.quantile(q))
            })
        };
        let added = inner.and_then(|(path, level)| {
            Some((
                us("baseline_direct", level, 0.5)?,
                us(path, level, 0.5)?,
                us("baseline_direct", level, 0.99)?,
                us(path, level, 0.99)?,
            ))
        });
        let figures = added.map_or_else(String::new, |(d50, r50, d99, r99)| {
            format!(
                "direct {d50:.0} µs at p50 ({d99:.0} at p99), relayed {r50:.0} µs ({r99:.0}): \
                 {:+.0} µs at p50. ",
                r50 - d50
            )
        });
        // What wss adds over ws at the same level, from the same rounds.
        let tls = inner.and_then(|(_, level)| {
            Some(us("proxy_wss", level, 0.5)? - us("proxy_ws", level, 0.5)?)
        });
        let tls = tls.map_or_else(String::new, |t| {
            format!(
                " At this level wss takes {t:+.0} µs over ws at p50: rustls at both ends of the \
                 browser leg (the benchmark's browser and the proxy)."
            )
        });
        format!(
            "{figures}The relayed path adds two loopback socket crossings (browser to proxy and \
             back) and the proxy's work on each package (decode, rules, re-encode, replay ring, \
             WebSocket framing; over wss rustls, decrypting the request and encrypting the \
             reply).{tls} The hand-off to a writer task is gone (the session's task writes \
             toward the browser itself); the rest is per-package work and socket crossings. \
             The p99 ratios move with the shared machine's load (see the spread in the paired \
             table). No CPU profile of this run was taken; against a real service, whose \
             answers take milliseconds, the same added microseconds are a small fraction."
        )
    } else if goal.starts_with("ahead of") {
        "see the figures: the paired ratio where the peer is faster.".into()
    } else {
        "see the section above.".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::MemoryPoint;

    fn run(path: &str, level: &str, kib: f64) -> MemoryRun {
        MemoryRun {
            path: path.into(),
            level: level.into(),
            metric: "rss".into(),
            points: vec![MemoryPoint {
                sessions: 9000,
                base_kib: 0,
                now_kib: 0,
                per_session_kib: kib,
            }],
            idle_cpu_percent: Some(1.0),
            idle_window_s: 30.0,
            sims: 10,
            sources: 181,
            load: (1.0, 2.0),
        }
    }

    #[test]
    fn goals_are_judged_from_the_data_and_missing_parts_are_not_measured() {
        let data = Data {
            memory: vec![
                run("prl-proxy ws", "LOW", 30.0),
                run("prl-proxy wss", "HIGH", 40.0),
            ],
            suite: Some(SuiteData {
                paired: vec![Paired {
                    id: "relay_throughput/LOW: proxy_ws / baseline_direct".into(),
                    ratios: vec![1.05, 1.1, 1.0],
                }],
                ..SuiteData::default()
            }),
            ..Data::default()
        };
        let v = verdicts(&data);
        let find = |g: &str| v.iter().find(|x| x.goal.contains(g)).unwrap().met;
        assert_eq!(find("(prl-proxy ws, LOW)"), Some(true));
        assert_eq!(find("(prl-proxy wss, HIGH)"), Some(false));
        assert_eq!(find("(prl-proxy ws, HIGH)"), None);
        // 1 / 1.05 = 0.95 >= 0.9.
        assert_eq!(find("≥ 0.9 (proxy_ws, LOW)"), Some(true));
        assert_eq!(find("slow consumer"), None);
        let text = render(&data);
        assert!(text.contains("| memory per idle session ≤ 32 KiB at 9000 sessions (prl-proxy wss, HIGH) | **not met** | 40.0 KiB |"), "{text}");
        assert!(text.contains("## Goals not met: profile and reason"));
    }

    #[test]
    fn the_cluster_part_has_its_own_section() {
        let text = render(&Data::default());
        assert!(
            text.contains("## Login latency of cluster mode\n\n") && text.contains(" Not run.\n"),
            "{text}"
        );
        let data = Data {
            cluster: Some(SuiteData {
                paired: vec![Paired {
                    id: "cluster_login/LOW: cluster_redis / baseline_single".into(),
                    ratios: vec![1.1, 1.2, 1.3],
                }],
                ..SuiteData::default()
            }),
            ..Data::default()
        };
        let text = render(&data);
        assert!(
            text.contains("| cluster_login/LOW: cluster_redis / baseline_single | 3 | 1.20 |"),
            "{text}"
        );
    }
}
