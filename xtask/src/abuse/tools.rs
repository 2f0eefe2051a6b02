//! The abuse run's tool sections: a brief run of every cargo-fuzz target (nightly), `cargo deny`
//! and `npm audit`; and the setup steps that install nightly, cargo-fuzz and cargo-deny.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

use super::report::Report;
use super::Plan;
use crate::{cargo, exec, fmt_duration, stdout_of};

/// The fuzz targets (`fuzz/Cargo.toml`'s `[[bin]]`s).
fn fuzz_targets(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap_or_default();
    let Ok(doc) = manifest.parse::<toml::Table>() else {
        return Vec::new();
    };
    doc.get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// `rustup toolchain list` names a nightly.
pub fn have_nightly() -> bool {
    stdout_of(Command::new("rustup").args(["toolchain", "list"]))
        .is_some_and(|l| l.lines().any(|t| t.starts_with("nightly")))
}

/// Setup step: the nightly toolchain cargo-fuzz needs (`--profile minimal`); (installed now,
/// what).
pub fn setup_nightly() -> Result<(bool, String)> {
    if have_nightly() {
        return Ok((false, "nightly present".into()));
    }
    exec(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    Ok((true, "nightly, minimal profile".into()))
}

/// Setup step: `cargo install --locked NAME` unless `cargo SUB --version` works; (installed
/// now, what).
pub fn setup_cargo_tool(name: &str, sub: &str) -> Result<(bool, String)> {
    if stdout_of(Command::new(cargo()).args([sub, "--version"])).is_some() {
        return Ok((false, format!("{name} present")));
    }
    exec(Command::new(cargo()).args(["install", "--locked", name]))?;
    if stdout_of(Command::new(cargo()).args([sub, "--version"])).is_none() {
        bail!("installed {name}, but `cargo {sub} --version` fails: put cargo's bin directory on PATH");
    }
    Ok((true, name.to_string()))
}

/// Builds every fuzz target and runs each briefly; a section with executions and crashes.
pub fn fuzz(root: &Path, target: &Path, plan: Plan, report: &mut Report) {
    let secs = if plan.full { 60 } else { 3 };
    let fuzz_target_dir = target.join("fuzz");
    let t = Instant::now();
    // `+nightly` is understood by rustup's `cargo` proxy, not by the toolchain's own binary
    // that `$CARGO` names.
    let build = Command::new("cargo")
        .current_dir(root)
        .args(["+nightly", "fuzz", "build", "-O", "--target-dir"])
        .arg(&fuzz_target_dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .status();
    let build_time = t.elapsed();
    if !matches!(build, Ok(s) if s.success()) {
        report.fail(format!(
            "fuzz: `cargo +nightly fuzz build -O` failed: {build:?}"
        ));
        report.section(
            "Fuzzing",
            "The fuzz targets did not build (see the run's output).".into(),
        );
        return;
    }
    let mut rows = String::from("| target | executions | time | crashes |\n|---|---|---|---|\n");
    let mut total_crashes = 0;
    for name in fuzz_targets(root) {
        let corpus = target.join("fuzz-corpus").join(&name);
        let artifacts = target.join("fuzz-artifacts").join(&name);
        let _ = std::fs::create_dir_all(&corpus);
        let _ = std::fs::create_dir_all(&artifacts);
        // Seeds: the captured packages for the decoders that take wire bytes.
        if matches!(
            name.as_str(),
            "package_decoder" | "record_demux" | "handshake" | "commands"
        ) {
            for e in std::fs::read_dir(root.join("protocol/tests/data"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "bin") {
                    if let Some(f) = p.file_name() {
                        let _ = std::fs::copy(&p, corpus.join(f));
                    }
                }
            }
        }
        let t = Instant::now();
        let out = Command::new("cargo")
            .current_dir(root)
            .args(["+nightly", "fuzz", "run", "-O", "--target-dir"])
            .arg(&fuzz_target_dir)
            .arg(&name)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-max_len=8192")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .output();
        let took = t.elapsed();
        let (ok, log) = match out {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        };
        // libFuzzer ends with "Done N runs in S second(s)".
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("Done "))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let crashes = std::fs::read_dir(&artifacts)
            .map(|d| d.count())
            .unwrap_or(0);
        total_crashes += crashes;
        if !ok || crashes > 0 {
            report.fail(format!(
                "fuzz {name}: {} crash artifacts, exit ok: {ok}",
                crashes
            ));
        }
        let _ = writeln!(
            rows,
            "| {name} | {runs} | {} | {crashes} |",
            fmt_duration(took)
        );
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Every target of `fuzz/` built with `cargo +nightly fuzz build -O` ({}) and run for \
         {secs} s each (`-max_len=8192`; seeds: the captured packages for the wire decoders; \
         the corpus is kept in the target directory between runs). Longer runs: `fuzz/README.md`.\n",
        fmt_duration(build_time)
    );
    body.push_str(&rows);
    report.figure("fuzz crashes", total_crashes.to_string());
    report.section("Fuzzing", body);
}

/// `cargo deny` (advisories when the RustSec database can be fetched; licences, bans and
/// sources always) and `npm audit` for every npm project with a lockfile.
pub fn supply_chain(root: &Path, target: &Path, report: &mut Report) {
    let mut body = String::new();
    let deny = |args: &[&str]| {
        Command::new(cargo())
            .current_dir(root)
            .arg("deny")
            .args(args)
            .env("CARGO_TARGET_DIR", target)
            .output()
    };
    // The advisory database comes from GitHub: try to fetch it, say so when it cannot be.
    let fetched = deny(&["fetch", "db"]);
    let db_ok = matches!(&fetched, Ok(o) if o.status.success());
    let checks: &[&str] = if db_ok {
        &["advisories", "licenses", "bans", "sources"]
    } else {
        &["licenses", "bans", "sources"]
    };
    let mut args = vec!["check"];
    args.extend_from_slice(checks);
    let out = deny(&args);
    let (ok, text) = match &out {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run cargo deny: {e}")),
    };
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ok") || l.contains("FAILED") || l.starts_with("error["))
        .take(8)
        .collect();
    let _ = writeln!(
        body,
        "`cargo deny check {}` against the committed `deny.toml`: **{}** ({}).\n",
        checks.join(" "),
        if ok { "passed" } else { "FAILED" },
        summary.join("; ").replace('|', "\\|")
    );
    if !db_ok {
        let why = match &fetched {
            Ok(o) => String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
                .to_string(),
            Err(e) => e.to_string(),
        };
        let _ = writeln!(
            body,
            "Advisories **not checked**: the RustSec advisory database (a git repository on GitHub) \
             cannot be fetched from this machine (`cargo deny fetch db`: {}). Only licences, bans \
             and sources ran; where GitHub is reachable the same command checks advisories too.\n",
            why.trim().replace('|', "\\|")
        );
        report.note(
            "cargo deny: advisory database unreachable; licences, bans and sources checked".into(),
        );
    }
    report.figure(
        "cargo deny",
        format!(
            "{} ({})",
            if ok { "passed" } else { "FAILED" },
            checks.join(", ")
        ),
    );
    if !ok {
        report.fail(format!("cargo deny check failed: {}", summary.join("; ")));
    }
    let mut audits = Vec::new();
    for dir in crate::setup::NPM_PROJECT_DIRS {
        let project = root.join(dir);
        if !project.join("package-lock.json").exists() {
            continue;
        }
        let out = Command::new("npm")
            .args(["audit", "--json"])
            .current_dir(&project)
            .output();
        let text = out
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let outcome = if let Some(vulns) = v["metadata"]["vulnerabilities"].as_object() {
            let total: u64 = vulns
                .iter()
                .filter(|(k, _)| k.as_str() != "total")
                .filter_map(|(_, n)| n.as_u64())
                .sum();
            if total > 0 {
                report.fail(format!("npm audit {dir}: {total} vulnerabilities"));
            }
            format!("{total} vulnerabilities")
        } else {
            let why = v["message"]
                .as_str()
                .or_else(|| v["error"]["summary"].as_str())
                .unwrap_or("no answer")
                .to_string();
            report.note(format!(
                "npm audit {dir}: advisory endpoint unavailable ({why})"
            ));
            format!("**not checked**: the registry's audit endpoint is unavailable from this machine ({why})")
        };
        audits.push(format!("| `{dir}` | {outcome} |"));
        report.figure(&format!("npm audit {dir}"), outcome.replace("**", ""));
    }
    let _ = writeln!(
        body,
        "`npm audit` per npm project with a lockfile:\n\n| project | result |\n|---|---|\n{}",
        audits.join("\n")
    );
    report.section("Supply chain", body);
}
