//! `cargo xtask bench [PART] [ARGS]`: the benchmarks, and `bench/RESULTS.md` rendered from them.
//!
//! With no part (or `all`), everything, in order, each part's data into `<target>/prl-bench/`:
//! 1. `peers`: websockify (PyPI, into a venv) and wstunnel (npm) under
//!    `<target>/prl-bench/peers/`, once; what was installed (or why not) goes to `peers.json`;
//! 2. release builds of prl-proxy, prl-sim and prl-load, and the npm package (`build-wasm`,
//!    which also writes its `.br` / `.gz` files);
//! 3. `suite`: `cargo bench -p prl-bench --bench suite` (codec, login, event throughput,
//!    round trip; the peers in the paired rounds), criterion's output in its own directory;
//! 4. `cluster`: the same suite binary with `PRL_BENCH_CLUSTER` set: the login latency of
//!    cluster mode against a single proxy (`cluster_login`; a `redis-server` on loopback),
//!    criterion's output in `<target>/prl-bench/cluster/`;
//! 5. `memory`: `prl-load memory` (1k, 4k, 9k sessions; ws and wss; LOW and HIGH; idle CPU),
//!    then `prl-load profile` (heaptrack), `peers-memory` and `slow-consumer`;
//! 6. `page`: `node bench/page/page.mjs` (headless Chromium);
//! 7. `report`: `bench/RESULTS.md` from the data (`prl-load report`).
//!
//! A part can be run alone (`cargo xtask bench memory --checkpoints 500`: the extra arguments
//! go to `prl-load`; `cargo xtask bench report` re-renders). Arguments that name no part go to
//! criterion (`cargo xtask bench connection_setup --measurement-time 10`), as before. A
//! `memory-before.json` left in the data directory (from a run of an older commit) is kept and
//! shown beside the new figures. Not part of `cargo xtask test`: timings are not checks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::{cargo, exec, fmt_duration, stdout_of};

/// websockify from PyPI, pinned.
const WEBSOCKIFY: &str = "websockify==0.13.0";
/// wstunnel from npm (mhzed's Node.js tunnel), pinned.
const WSTUNNEL: &str = "wstunnel@1.4.0";

/// The parts, in the order `all` runs them (`memory` is `memory-runs`, `profile`,
/// `peers-memory` and `slow-consumer`; each of those can also run alone).
const PARTS: [&str; 11] = [
    "peers",
    "build",
    "suite",
    "cluster",
    "memory",
    "memory-runs",
    "profile",
    "peers-memory",
    "slow-consumer",
    "page",
    "report",
];

/// The benchmark data directory, inside `target`.
fn data_dir(target: &Path) -> PathBuf {
    target.join("prl-bench")
}

/// Criterion's output directory for `cargo xtask bench`, inside `target`.
fn criterion_home(target: &Path) -> PathBuf {
    data_dir(target).join("criterion")
}

/// The target directory: `$CARGO_TARGET_DIR` (relative to the workspace root), else
/// `<root>/target`.
fn target_dir(root: &Path, cargo_target_dir: Option<OsString>) -> PathBuf {
    match cargo_target_dir {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The `cargo bench` command line.
fn bench_command(root: &Path, home: &Path, args: &[String], peers: &Peers) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["bench", "-p", "prl-bench", "--bench", "suite", "--"])
        .args(args)
        .env("CRITERION_HOME", home);
    if let Some(p) = &peers.websockify {
        cmd.env("PRL_BENCH_WEBSOCKIFY", p);
    }
    if let Some(p) = &peers.wstunnel {
        cmd.env("PRL_BENCH_WSTUNNEL", p);
    }
    cmd
}

/// The installed peers' programs.
#[derive(Debug, Default)]
struct Peers {
    websockify: Option<PathBuf>,
    wstunnel: Option<PathBuf>,
}

fn websockify_bin(dir: &Path) -> PathBuf {
    dir.join("venv").join("bin").join("websockify")
}

fn wstunnel_bin(dir: &Path) -> PathBuf {
    dir.join("npm")
        .join("node_modules")
        .join(".bin")
        .join("wstunnel")
}

/// Installs the peers once (idempotent); writes `peers.json`; returns what is installed.
fn install_peers(data: &Path) -> Result<Peers> {
    let dir = data.join("peers");
    std::fs::create_dir_all(&dir)?;
    let mut status = serde_json::Map::new();
    let websockify = websockify_bin(&dir);
    if !websockify.is_file() {
        let venv = dir.join("venv");
        let r = exec(Command::new("python3").arg("-m").arg("venv").arg(&venv)).and_then(|()| {
            exec(
                Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", WEBSOCKIFY]),
            )
        });
        if let Err(e) = r {
            eprintln!("xtask: websockify not installed: {e:#}");
        }
    }
    status.insert(
        "websockify".into(),
        if websockify.is_file() {
            format!("`{WEBSOCKIFY}` from PyPI, in a venv under the target directory").into()
        } else {
            "not installed: `pip install` into the venv failed (see the run's output)".into()
        },
    );
    let wstunnel = wstunnel_bin(&dir);
    if !wstunnel.is_file() {
        let r = exec(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir.join("npm"))
                .arg(WSTUNNEL),
        );
        if let Err(e) = r {
            eprintln!("xtask: wstunnel not installed: {e:#}");
        }
    }
    status.insert(
        "wstunnel".into(),
        if wstunnel.is_file() {
            format!(
                "`{WSTUNNEL}` from npm: mhzed's Node.js WebSocket tunnel. The Rust wstunnel \
                 (erebe/wstunnel) cannot be installed here: it is not on crates.io (`cargo info \
                 wstunnel`: could not find `wstunnel` in registry), PyPI or npm; it ships as \
                 GitHub release binaries, and this network reaches only crates.io, PyPI, npm and \
                 Debian"
            )
            .into()
        } else {
            "not installed: `npm install` failed (see the run's output)".into()
        },
    );
    std::fs::write(
        data.join("peers.json"),
        serde_json::to_string_pretty(&status)?,
    )?;
    Ok(Peers {
        websockify: websockify.is_file().then_some(websockify),
        wstunnel: wstunnel.is_file().then_some(wstunnel),
    })
}

/// The peers installed by an earlier `peers` part, without installing anything.
fn installed_peers(data: &Path) -> Peers {
    let dir = data.join("peers");
    let (w, s) = (websockify_bin(&dir), wstunnel_bin(&dir));
    Peers {
        websockify: w.is_file().then_some(w),
        wstunnel: s.is_file().then_some(s),
    }
}

/// Release builds of what the load runs start.
fn build(root: &Path) -> Result<()> {
    exec(Command::new(cargo()).current_dir(root).args([
        "build",
        "--release",
        "-p",
        "prl-proxy",
        "-p",
        "prl-sim",
        "-p",
        "prl-bench",
        "--bins",
    ]))?;
    crate::wasm::build(root).map(|_| ())
}

fn release(target: &Path, name: &str) -> PathBuf {
    target.join("release").join(name)
}

/// `prl-load SUBCOMMAND ... --out FILE` with the release binaries.
fn prl_load(target: &Path, peers: &Peers, sub: &str, out: &Path, extra: &[String]) -> Result<()> {
    let mut cmd = Command::new(release(target, "prl-load"));
    cmd.arg(sub)
        .arg("--proxy")
        .arg(release(target, "prl-proxy"))
        .arg("--sim")
        .arg(release(target, "prl-sim"))
        .arg("--out")
        .arg(out)
        .args(extra);
    if let Some(p) = &peers.websockify {
        cmd.env("PRL_BENCH_WEBSOCKIFY", p);
    }
    if let Some(p) = &peers.wstunnel {
        cmd.env("PRL_BENCH_WSTUNNEL", p);
    }
    exec(&mut cmd)
}

/// The criterion suite (`args` to criterion); criterion's directory is emptied first.
fn suite(root: &Path, target: &Path, args: &[String], peers: &Peers) -> Result<()> {
    let home = criterion_home(target);
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot empty {}", home.display()))?;
    }
    exec(&mut bench_command(root, &home, args, peers))
}

/// The cluster-mode comparison (`args` to criterion) into `<data>/cluster`, emptied first.
fn cluster(root: &Path, target: &Path, args: &[String]) -> Result<()> {
    let home = data_dir(target).join("cluster");
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot empty {}", home.display()))?;
    }
    exec(bench_command(root, &home, args, &Peers::default()).env("PRL_BENCH_CLUSTER", "1"))
}

/// The load runs; `extra` goes to `prl-load memory` (and then only the memory runs are made).
fn memory(target: &Path, peers: &Peers, extra: &[String]) -> Result<()> {
    load_part(target, peers, "memory-runs", extra)?;
    if extra.is_empty() {
        for part in ["profile", "peers-memory", "slow-consumer"] {
            load_part(target, peers, part, &[])?;
        }
    }
    Ok(())
}

/// One `prl-load` part into its data file.
fn load_part(target: &Path, peers: &Peers, part: &str, extra: &[String]) -> Result<()> {
    let data = data_dir(target);
    let (sub, file) = match part {
        "memory-runs" => ("memory", "memory.json"),
        "profile" => ("profile", "profile.json"),
        "peers-memory" => ("peers-memory", "peers-memory.json"),
        _ => ("slow-consumer", "slow-consumer.json"),
    };
    prl_load(target, peers, sub, &data.join(file), extra)
}

/// Appends one step (what ran, when, whether it succeeded) to `steps.json`, which the report
/// lists: the data of one RESULTS.md may come from several invocations.
fn record_step(root: &Path, data: &Path, step: &str, started: &str, ok: bool) -> Result<()> {
    let path = data.join("steps.json");
    let mut steps: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let commit = stdout_of(
        Command::new("git")
            .current_dir(root)
            .args(["describe", "--always", "--dirty"]),
    )
    .map(|s| s.trim().to_owned())
    .unwrap_or_default();
    steps.push(serde_json::json!({
        "command": step,
        "commit": commit,
        "started": started,
        "finished": utc_now(),
        "ok": ok,
    }));
    std::fs::write(&path, serde_json::to_string_pretty(&steps)?)?;
    Ok(())
}

/// The page run in headless Chromium.
fn page(root: &Path, target: &Path) -> Result<()> {
    exec(
        Command::new("node")
            .current_dir(root)
            .arg("bench/page/page.mjs")
            .arg("--proxy")
            .arg(release(target, "prl-proxy"))
            .arg("--sim")
            .arg(release(target, "prl-sim"))
            .arg("--out")
            .arg(data_dir(target).join("page.json")),
    )
}

/// `run.json`: how this run was made.
fn run_info(root: &Path, command: &str, started: &str) -> Result<serde_json::Value> {
    let line = |cmd: &mut Command| {
        stdout_of(cmd)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB RAM", kb >> 20));
    Ok(serde_json::json!({
        "command": command,
        "commit": line(Command::new("git").current_dir(root).args(["describe", "--always", "--dirty"])),
        "started": started,
        "finished": utc_now(),
        "machine": format!("{cores} cores (nproc), {cpu}{mem}, {}", line(Command::new("uname").args(["-sr"]))),
        "rustc": line(Command::new("rustc").arg("-V")),
        "openssl": line(Command::new("openssl").arg("version")),
    }))
}

/// `2026-12-07 18:00 UTC` (via `date`, to keep xtask free of a time crate).
fn utc_now() -> String {
    stdout_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| format!("{:?}", SystemTime::now()))
}

/// Renders `bench/RESULTS.md` from the data directory.
fn report(root: &Path, target: &Path) -> Result<()> {
    exec(
        Command::new(release(target, "prl-load"))
            .arg("report")
            .arg("--dir")
            .arg(data_dir(target))
            .arg("--out")
            .arg(root.join("bench").join("RESULTS.md")),
    )?;
    println!("xtask: bench/RESULTS.md written");
    Ok(())
}

/// Everything, in order (module docs); a failing part is reported and the others still run.
fn all(root: &Path, target: &Path, rest: &[String], started: &str) -> Result<()> {
    let data = data_dir(target);
    for stale in [
        "memory.json",
        "profile.json",
        "peers-memory.json",
        "slow-consumer.json",
        "page.json",
        "run.json",
        "steps.json",
    ] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    let peers = install_peers(&data)?;
    build(root)?;
    let mut failed = Vec::new();
    let mut step = |name: &str, r: Result<()>| {
        if let Err(e) = r {
            eprintln!("xtask: bench {name} failed: {e:#}");
            failed.push(name.to_owned());
        }
    };
    step("suite", suite(root, target, rest, &peers));
    step("cluster", cluster(root, target, &[]));
    step("memory", memory(target, &peers, &[]));
    step("page", page(root, target));
    std::fs::write(
        data.join("run.json"),
        serde_json::to_string_pretty(&run_info(root, "cargo xtask bench", started)?)?,
    )?;
    if !failed.is_empty() {
        bail!("benchmark parts failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the benchmarks; see the module docs.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let target = target_dir(root, std::env::var_os("CARGO_TARGET_DIR"));
    let data = data_dir(&target);
    std::fs::create_dir_all(&data)?;
    let start = Instant::now();
    let (part, rest) = match args.first().map(String::as_str) {
        None | Some("all") => ("all", args.get(1..).unwrap_or_default()),
        Some(p) if PARTS.contains(&p) => (p, args.get(1..).unwrap_or_default()),
        // Anything else is for criterion, as `cargo xtask bench` always took it.
        Some(_) => ("suite", args),
    };
    let started = utc_now();
    let command = format!("cargo xtask bench {}", args.join(" "));
    let result = match part {
        "peers" => install_peers(&data).map(|_| ()),
        "build" => build(root),
        "suite" => suite(root, &target, rest, &installed_peers(&data)),
        "cluster" => cluster(root, &target, rest),
        "memory" => memory(&target, &installed_peers(&data), rest),
        "memory-runs" | "profile" | "peers-memory" | "slow-consumer" => {
            load_part(&target, &installed_peers(&data), part, rest)
        }
        "page" => page(root, &target),
        "report" => return report(root, &target),
        _ => all(root, &target, rest, &started),
    };
    record_step(root, &data, command.trim(), &started, result.is_ok())?;
    // The machine facts of the report's header: from the last full run, else from this part.
    if part != "all" && !data.join("run.json").exists() {
        std::fs::write(
            data.join("run.json"),
            serde_json::to_string_pretty(&run_info(root, command.trim(), &started)?)?,
        )?;
    }
    // RESULTS.md follows the data, whatever ran (a failed part shows as not run or stale).
    report(root, &target)?;
    result?;
    println!(
        "xtask: bench {part} done in {}; data in {}",
        fmt_duration(start.elapsed()),
        data.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe;

    #[test]
    fn results_go_to_a_directory_of_their_own_in_the_target_dir() {
        let root = Path::new("/ws");
        assert_eq!(target_dir(root, None), Path::new("/ws/target"));
        assert_eq!(
            target_dir(root, Some("/any/target".into())),
            Path::new("/any/target")
        );
        assert_eq!(target_dir(root, Some("t2".into())), Path::new("/ws/t2"));
        assert_eq!(
            criterion_home(Path::new("/any/target")),
            Path::new("/any/target/prl-bench/criterion")
        );
    }

    #[test]
    fn the_suite_gets_the_criterion_arguments_home_and_peers() {
        let home = Path::new("/t/prl-bench/criterion");
        let peers = Peers {
            websockify: Some("/t/ws".into()),
            wstunnel: None,
        };
        let cmd = bench_command(
            Path::new("/ws"),
            home,
            &[
                "connection_setup".into(),
                "--measurement-time".into(),
                "10".into(),
            ],
            &peers,
        );
        assert!(
            describe(&cmd).ends_with(
                "bench -p prl-bench --bench suite -- connection_setup --measurement-time 10"
            ),
            "{}",
            describe(&cmd)
        );
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.contains(&("CRITERION_HOME".as_ref(), Some(home.as_os_str()))));
        assert!(env.contains(&("PRL_BENCH_WEBSOCKIFY".as_ref(), Some("/t/ws".as_ref()))));
        assert!(!env.iter().any(|(k, _)| *k == "PRL_BENCH_WSTUNNEL"));
    }

    #[test]
    fn the_peers_live_under_the_data_directory() {
        let d = Path::new("/t/prl-bench/peers");
        assert_eq!(
            websockify_bin(d),
            Path::new("/t/prl-bench/peers/venv/bin/websockify")
        );
        assert_eq!(
            wstunnel_bin(d),
            Path::new("/t/prl-bench/peers/npm/node_modules/.bin/wstunnel")
        );
    }
}
