//! `cargo xtask abuse [--full] [--out FILE] [--floods-only]`: the project attacked from
//! outside, and `docs/RELIABILITY.md` written from what happened. `--floods-only` runs the
//! floods alone (no other section, no fuzzing or supply chain) into
//! `<target>/abuse/FLOODS.md`.
//!
//! 1. builds the release prl-sim and prl-proxy (and the npm package when missing);
//! 2. re-runs itself (`abuse-inner`) inside a private network and mount namespace
//!    (`unshare --net --mount`): only a loopback interface exists there, so whatever the proxy
//!    could be tricked into connecting to cannot leave the machine; a private `/etc/hosts`
//!    gives names that resolve to denied addresses; link-local, NAT64 and 6to4 addresses are
//!    added to that namespace's loopback so that canaries can listen on them. There
//!    ([`suite`]) it starts the simulators and the proxy (configuration derived from
//!    `proxy/prl-proxy.example.toml`) and runs the open-relay, cross-site, flood,
//!    protocol-abuse, hostile-service and fault sections, then the browser part
//!    (`tests/e2e/abuse.mjs`: the npm package in headless Chromium through a TCP forwarder
//!    that can be cut), then scans every log of the run for secrets;
//! 3. outside the namespace: a brief run of every cargo-fuzz target ([`tools`]), `cargo deny`
//!    and `npm audit`;
//! 4. writes the report (default `docs/RELIABILITY.md`) and fails if any figure is wrong.
//!
//! The short run (the default, a `cargo xtask test` step) keeps floods and drops short; `--full`
//! runs longer floods and the 5 s and 90 s network drops. Bounded: every wait has a deadline,
//! every child process is killed when its owner goes.

mod client;
#[path = "../../../proxy/tests/common/net.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod helpers;
mod procs;
mod report;
mod suite;
pub mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{describe, exec, fmt_duration, stdout_of, wasm};
use report::Report;

/// Short (CI) or full; everything or the floods only (`--floods-only`).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub full: bool,
    pub floods_only: bool,
}

/// The inner run's result file, in the work directory.
const INNER_JSON: &str = "inner.json";

/// `cargo xtask abuse`.
pub fn run(root: &Path, plan: Plan, out: Option<PathBuf>) -> Result<()> {
    let started = Instant::now();
    let target = wasm::target_dir(root);
    let bin = target.join("release");
    crate::demo::build_release_bins(root)?;
    if !plan.floods_only && !root.join("dist/npm/index.js").exists() {
        wasm::build(root)?;
    }
    let work = target.join("abuse").join("run");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;

    // The network part, in its own namespace.
    let t = Instant::now();
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut inner = Command::new("unshare");
    inner.args(["--net", "--mount", "--propagation", "private"]);
    if !is_root() {
        inner.arg("--map-root-user");
    }
    inner
        .arg("--")
        .arg(&exe)
        .arg("abuse-inner")
        .arg("--work")
        .arg(&work)
        .arg("--bin")
        .arg(&bin);
    if plan.full {
        inner.arg("--full");
    }
    if plan.floods_only {
        inner.arg("--floods-only");
    }
    inner.current_dir(root);
    println!("abuse: {}", describe(&inner));
    let status = inner.status().context("cannot start unshare")?;
    let network_time = t.elapsed();
    let inner_json = std::fs::read_to_string(work.join(INNER_JSON)).unwrap_or_default();
    let mut report = match serde_json::from_str(&inner_json) {
        Ok(v) => Report::from_json(&v),
        Err(_) => bail!("the network part ({status}) wrote no result; see the output above"),
    };
    if !status.success() {
        report.fail(format!("the network part exited with {status}"));
    }

    // Outside: fuzzing and the supply chain (they need no network namespace; cargo deny and
    // npm audit need the registries).
    let mut times = vec![("network part (namespace)", network_time)];
    if !plan.floods_only {
        let t = Instant::now();
        tools::fuzz(root, &target, plan, &mut report);
        times.push(("fuzzing", t.elapsed()));
        let t = Instant::now();
        tools::supply_chain(root, &target, &mut report);
        times.push(("supply chain", t.elapsed()));
    }
    times.push(("total", started.elapsed()));

    let out = out.unwrap_or_else(|| root.join("docs/RELIABILITY.md"));
    let text = render(root, plan, &report, &times);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "abuse: wrote {} in {}",
        out.display(),
        fmt_duration(started.elapsed())
    );
    for (name, value) in &report.figures {
        println!("abuse: {name}: {value}");
    }
    if report.failures.is_empty() {
        println!("abuse: every figure as it must be");
        Ok(())
    } else {
        for f in &report.failures {
            eprintln!("abuse: FAILED: {f}");
        }
        bail!("{} abuse checks failed", report.failures.len())
    }
}

fn is_root() -> bool {
    stdout_of(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0")
}

/// `abuse-inner`: runs inside the namespace made by [`run`].
pub fn inner(root: &Path, work: &Path, bin: &Path, plan: Plan) -> Result<()> {
    let mut report = Report::default();
    let result = prepare_namespace(work).and_then(|()| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            // Stopped (SIGTERM, Ctrl-C): the run is dropped, and with it every process it
            // started (simulators, proxies, the browser part).
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = network(root, work, bin, plan, &mut report) => r,
                _ = term.recv() => Err(anyhow::anyhow!("stopped by SIGTERM")),
                _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("stopped by Ctrl-C")),
            }
        })
    });
    if let Err(e) = result {
        report.fail(format!("the network part stopped: {e:#}"));
    }
    std::fs::write(work.join(INNER_JSON), report.to_json().to_string())?;
    Ok(())
}

/// Loopback up, extra addresses on it for canaries, a private /etc/hosts.
fn prepare_namespace(work: &Path) -> Result<()> {
    // Refuse to run outside a fresh namespace: there must be no interface but `lo`.
    let links = stdout_of(Command::new("ip").args(["-o", "link", "show"])).unwrap_or_default();
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    if names != ["lo"] {
        bail!("not in a private network namespace (interfaces: {names:?})");
    }
    exec(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    for a in ["169.254.169.254/32", "169.254.0.1/32"] {
        exec(Command::new("ip").args(["addr", "add", a, "dev", "lo"]))?;
    }
    for a in ["64:ff9b::7f00:1/128", "2002:7f00:1::1/128", "fd00::1/128"] {
        // IPv6 may be off in this kernel: canaries on these are then simply absent.
        let _ = Command::new("ip")
            .args(["-6", "addr", "add", a, "dev", "lo", "nodad"])
            .status();
    }
    let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts.push('\n');
    hosts.push_str(suite::HOSTS);
    let file = work.join("hosts");
    std::fs::write(&file, hosts)?;
    exec(
        Command::new("mount")
            .arg("--bind")
            .arg(&file)
            .arg("/etc/hosts"),
    )?;
    Ok(())
}

async fn network(
    root: &Path,
    work: &Path,
    bin: &Path,
    plan: Plan,
    report: &mut Report,
) -> Result<()> {
    let mut ctx = suite::start(plan, root, bin, work).await?;
    if plan.floods_only {
        let r = suite::floods(&mut ctx).await;
        report.merge(std::mem::take(&mut ctx.report));
        return r;
    }
    let mut timings = Vec::new();
    macro_rules! timed {
        ($name:expr, $e:expr) => {{
            let t = Instant::now();
            println!("abuse: {} ...", $name);
            let r = $e;
            timings.push(($name, t.elapsed()));
            println!("abuse: {} done in {}", $name, fmt_duration(t.elapsed()));
            r
        }};
    }
    timed!("open relay", suite::open_relay(&mut ctx).await)?;
    timed!("cross-site", suite::cswsh(&mut ctx).await)?;
    let tickets = timed!("tickets", suite::tickets(&mut ctx).await)?;
    timed!("protocol abuse", suite::protocol_abuse(&mut ctx).await)?;
    timed!("hostile service", suite::hostile_service(&mut ctx).await)?;
    timed!("floods", suite::floods(&mut ctx).await)?;
    let fault_rows = timed!("faults", suite::faults(&mut ctx).await)?;
    let browser = timed!("browser", browser(root, &ctx, plan).await);
    let mut body = String::from(
        "The service and the proxy failing under a session, and the browser's network cut while \
         a task streams numbered progress events (one per step, 1..100). The browser rows run \
         the real client: the npm package in headless Chromium (`tests/e2e/abuse.mjs`), its \
         WebSocket through a TCP forwarder that is cut (connections reset, new ones refused) \
         for the time shown.\n\n| fault | outcome | notes |\n|---|---|---|\n",
    );
    body.push_str(&fault_rows);
    match browser {
        Ok((rows, figures)) => {
            body.push_str(&rows);
            for (name, value) in figures {
                ctx.report.figure(&name, value);
            }
        }
        Err(e) => ctx.report.fail(format!("browser part: {e:#}")),
    }
    ctx.report.section("Faults with counting", body);

    // Stop everything, then scan every log of the run.
    ctx.proxy.stop();
    for s in &mut ctx.sims {
        s.stop();
    }
    let mut logs: Vec<PathBuf> = std::fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let secrets = ctx
        .secrets
        .lock()
        .map_err(|_| anyhow::anyhow!("secrets lock poisoned"))?;
    let browser_secrets = std::fs::read_to_string(work.join("browser-secrets.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let mut all = suite::Secrets {
        passwords: secrets.passwords.clone(),
        uuids: secrets.uuids.clone(),
        tokens: secrets.tokens.clone(),
        tickets: secrets.tickets.clone(),
    };
    drop(secrets);
    if let Some(v) = browser_secrets {
        for p in v["passwords"].as_array().into_iter().flatten() {
            all.passwords.extend(p.as_str().map(str::to_string));
        }
        for u in v["uuids"].as_array().into_iter().flatten() {
            all.uuids
                .extend(u.as_str().and_then(prl_protocol::parse_uuid));
        }
    }
    let (bytes, leaks, where_) = suite::scan_logs(&all, &logs);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Every log of the run ({} files, {:.1} MB: the proxies at `trace`, the simulators at \
         `RUST_LOG=trace`) scanned for {} passwords (plain and the first 16 symbols of their \
         standard, unpadded and URL-safe base64), {} session and package UUIDs (braced, bare, \
         simple, upper-case), {} resume tokens and {} tickets handled in the run. {tickets}\n",
        logs.len(),
        bytes as f64 / 1e6,
        all.passwords.len(),
        all.uuids.len(),
        all.tokens.len(),
        all.tickets.len(),
    );
    let _ = writeln!(
        body,
        "**Leaks: {leaks}**{}",
        if where_.is_empty() {
            ".".to_string()
        } else {
            format!(": {}", where_.join(", "))
        }
    );
    ctx.report.figure("secret leaks in logs", leaks.to_string());
    if leaks > 0 {
        ctx.report.fail(format!("secrets in logs: {where_:?}"));
    }
    if bytes < 10_000 {
        ctx.report.fail(format!(
            "the logs hold only {bytes} bytes: nothing was scanned"
        ));
    }
    ctx.report.section("Secrets in logs", body);
    let mut t = String::from("| section | time |\n|---|---|\n");
    for (name, d) in timings {
        let _ = writeln!(t, "| {name} | {} |", fmt_duration(d));
    }
    ctx.report.section("Time per section (network part)", t);
    report.merge(std::mem::take(&mut ctx.report));
    Ok(())
}

/// The browser part: `node tests/e2e/abuse.mjs`, its own proxy (the derived configuration,
/// serving the test page and the package) and simulators; returns its table rows.
async fn browser(
    root: &Path,
    ctx: &suite::Ctx,
    plan: Plan,
) -> Result<(String, Vec<(String, String)>)> {
    let work = &ctx.work;
    let example = std::fs::read_to_string(root.join("proxy/prl-proxy.example.toml"))?;
    let forwarder_origin = format!("http://127.0.0.1:{}", suite::BROWSER_FORWARDER_PORT);
    let config = suite::derive_config(
        &example,
        suite::BROWSER_PROXY,
        &[forwarder_origin],
        None,
        Some((&root.join("tests/e2e/www"), &root.join("dist/npm"))),
    )?;
    let config_path = work.join("browser-proxy.toml");
    std::fs::write(&config_path, config)?;
    let drops: Vec<u64> = if plan.full { vec![5, 90] } else { vec![2] };
    // Users of their own (the login throttles count per user): u40..u63.
    let users: Vec<serde_json::Value> = ctx.users[41..]
        .iter()
        .map(|(name, password)| serde_json::json!({ "name": name, "password": password }))
        .collect();
    let spec = serde_json::json!({
        "proxyBin": ctx.bin.join("prl-proxy"),
        "simBin": ctx.bin.join("prl-sim"),
        "proxyConfig": config_path,
        "proxyAddr": suite::BROWSER_PROXY,
        "forwarderPort": suite::BROWSER_FORWARDER_PORT,
        "sim": suite::SIM,
        "taskSim": suite::TASK_SIM,
        "longTaskSim": suite::LONG_TASK_SIM,
        "slowSim": suite::SLOW_SIM,
        "faultHost": "127.0.0.2",
        "faultBasePort": suite::FAULT_BASE_PORT,
        "faults": suite::FAULTS,
        "drops": drops,
        // The numbered task's pace: 100 steps in 5 s (short) or 20 s (full).
        "taskIntervalMs": if plan.full { 200 } else { 50 },
        "users": users,
        "work": work,
        "out": work.join("browser.json"),
    });
    let spec_path = work.join("browser-spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("abuse.mjs")
        .arg(&spec_path)
        .current_dir(root.join("tests/e2e"))
        .kill_on_drop(true);
    // 90 s drop, a 150 s task and the rest: bounded well above what the full run needs.
    let limit = if plan.full { 600 } else { 180 };
    let status = tokio::time::timeout(Duration::from_secs(limit), cmd.status())
        .await
        .map_err(|_| anyhow::anyhow!("tests/e2e/abuse.mjs did not finish in {limit} s"))??;
    let out = std::fs::read_to_string(work.join("browser.json"))
        .with_context(|| format!("tests/e2e/abuse.mjs ({status}) wrote no result"))?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut rows = String::new();
    for r in v["rows"].as_array().into_iter().flatten() {
        let _ = writeln!(
            rows,
            "| {} | {} | {} |",
            r["fault"].as_str().unwrap_or_default(),
            r["outcome"].as_str().unwrap_or_default(),
            r["notes"].as_str().unwrap_or_default()
        );
    }
    for f in v["failures"].as_array().into_iter().flatten() {
        // Reported through the context's report by the caller's merge below.
        eprintln!("abuse: browser FAIL: {}", f.as_str().unwrap_or_default());
    }
    let failures: Vec<String> = v["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    if !status.success() {
        bail!("tests/e2e/abuse.mjs exited with {status}");
    }
    let figures = v["figures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f[0].as_str().unwrap_or_default().to_string(),
                f[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Ok((rows, figures))
}

/// The markdown of `docs/RELIABILITY.md`.
fn render(root: &Path, plan: Plan, report: &Report, times: &[(&str, Duration)]) -> String {
    let git = |args: &[&str]| {
        stdout_of(Command::new("git").current_dir(root).args(args))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let date = stdout_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let uname = stdout_of(Command::new("uname").args(["-srm"]))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1048576.0))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let rustc = stdout_of(Command::new("rustc").arg("--version"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let command = match (plan.full, plan.floods_only) {
        (true, false) => "cargo xtask abuse --full",
        (false, false) => "cargo xtask abuse",
        (true, true) => "cargo xtask abuse --full --floods-only",
        (false, true) => "cargo xtask abuse --floods-only",
    };
    let mut s = String::new();
    let _ = writeln!(s, "# Reliability under abuse\n");
    let _ = writeln!(
        s,
        "<!-- Generated by `{command}` (xtask/src/abuse): do not edit by hand; run it again. -->\n"
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| run | `{command}` ({}) |",
        if plan.full { "full" } else { "short, as in CI" }
    );
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(
        s,
        "| commit | `{commit}`{} |",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| machine | {uname}, {cpus} CPUs, {mem}, load average at the end {load} (shared with other builds) |");
    let _ = writeln!(
        s,
        "| toolchain | {rustc}; release builds of prl-proxy and prl-sim |"
    );
    let _ = writeln!(
        s,
        "| result | {} |\n",
        if report.failures.is_empty() {
            "every check passed".to_string()
        } else {
            format!(
                "**{} checks failed** (listed at the end)",
                report.failures.len()
            )
        }
    );
    let _ = writeln!(
        s,
        "The release binaries, attacked from outside as an attacker would, on loopback only: \
        the network part runs in a private network namespace (`unshare --net --mount`) whose only \
        interface is `lo`, so nothing can leave the machine whatever the proxy is tricked into; \
        the link-local, metadata, NAT64 and 6to4 addresses that canaries listen on exist only on \
        that namespace's `lo`. The proxy runs with `proxy/prl-proxy.example.toml` as it is \
        (every limit at its default), its example targets replaced by the simulator \
        (`127.0.0.2:64000` as the named target `sim` and an allow rule for `127.0.0.2/32`), \
        tickets optional, logs at trace.\n"
    );
    let _ = writeln!(s, "## Figures\n\n| figure | value |\n|---|---|");
    for (name, value) in &report.figures {
        let _ = writeln!(s, "| {name} | {value} |");
    }
    s.push('\n');
    for (title, body) in &report.sections {
        let _ = writeln!(s, "## {title}\n\n{}\n", body.trim_end());
    }
    let _ = writeln!(s, "## Run\n\n| part | wall time |\n|---|---|");
    for (name, d) in times {
        let _ = writeln!(s, "| {name} | {} |", fmt_duration(*d));
    }
    let _ = writeln!(s, "\nCommands: `{command}` (what CI runs is `cargo xtask abuse --ci` (report in `<target>/abuse/RELIABILITY.md`), \
        the short run, as a step of `cargo xtask test`; the full run is `cargo xtask abuse --full` and writes this file).\n");
    if !report.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
        s.push('\n');
    }
    if !report.failures.is_empty() {
        let _ = writeln!(s, "## Failed checks\n");
        for f in &report.failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}
