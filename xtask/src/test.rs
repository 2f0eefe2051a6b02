//! `cargo xtask test` (alias `ci`): setup, then every check, failing fast, with wall times.
//!
//! To add a check, add one entry to [`STEPS`].

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::{cargo, describe, fmt_duration, setup};

/// Stands for the cargo that runs us (`$CARGO`) in [`Step::program`].
const CARGO: &str = "cargo";

/// One check: a command run from a directory of the workspace.
#[derive(Debug)]
struct Step {
    name: &'static str,
    /// Run only when this path, relative to the workspace root, exists (a component not yet built
    /// skips its checks).
    only_if: Option<&'static str>,
    /// Working directory, relative to the workspace root.
    dir: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// Every check, in order.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &["fmt", "--all", "--", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "test",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &["test", "--workspace", "--locked"],
        env: &[],
    },
    // The core must build for the browser.
    Step {
        name: "wasm-build",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &[
            "build",
            "--locked",
            "-p",
            "prl-protocol",
            "--target",
            "wasm32-unknown-unknown",
        ],
        env: &[],
    },
    // wasm-bindgen tests in headless Chromium.
    Step {
        name: "browser-test",
        only_if: Some("client-wasm"),
        dir: ".",
        program: CARGO,
        args: &[
            "test",
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "prl-client-wasm",
        ],
        env: &[
            (
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            ),
            ("CHROMEDRIVER", "/usr/bin/chromedriver"),
        ],
    },
    // The npm package (dist/npm): wasm-release build, wasm-bindgen, wasm-opt, size budget.
    Step {
        name: "build-wasm",
        only_if: Some("client-wasm"),
        dir: ".",
        program: CARGO,
        args: &[
            "run",
            "--quiet",
            "--locked",
            "-p",
            "xtask",
            "--",
            "build-wasm",
        ],
        env: &[],
    },
    // The simulator and the proxy the browser end-to-end tests run against.
    Step {
        name: "build-sim",
        only_if: Some("sim/Cargo.toml"),
        dir: ".",
        program: CARGO,
        args: &["build", "--locked", "--release", "-p", "prl-sim"],
        env: &[],
    },
    Step {
        name: "build-proxy",
        only_if: Some("proxy/Cargo.toml"),
        dir: ".",
        program: CARGO,
        args: &["build", "--locked", "--release", "-p", "prl-proxy"],
        env: &[],
    },
    // The real SDK client (../shared/real-sdk) against the release prl-sim: tests/real-sdk.
    // Fails, never skips, when the SDK is missing.
    Step {
        name: "real-sdk",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &[
            "run", "--quiet", "--locked", "-p", "xtask", "--", "real-sdk",
        ],
        env: &[],
    },
    // The relay's release tarball, checked unpacked in a fresh directory (reuses the two
    // release builds above).
    Step {
        name: "dist",
        only_if: Some("packaging/INSTALL.md"),
        dir: ".",
        program: CARGO,
        args: &["run", "--quiet", "--locked", "-p", "xtask", "--", "dist"],
        env: &[],
    },
    // The release binaries attacked from outside (loopback only, a private network namespace),
    // every fuzz target built and run briefly, cargo deny and npm audit: `cargo xtask abuse`,
    // short; its report goes to <target>/abuse/RELIABILITY.md.
    Step {
        name: "abuse",
        only_if: None,
        dir: ".",
        program: CARGO,
        args: &[
            "run", "--quiet", "--locked", "-p", "xtask", "--", "abuse", "--ci",
        ],
        env: &[],
    },
    // Browser end-to-end tests (Node test runner driving Chromium).
    Step {
        name: "e2e",
        only_if: Some("tests/e2e/package.json"),
        dir: "tests/e2e",
        program: "node",
        args: &["--test"],
        env: &[],
    },
];

impl Step {
    fn command(&self, root: &Path) -> Command {
        let program: OsString = if self.program == CARGO {
            cargo()
        } else {
            self.program.into()
        };
        let mut cmd = Command::new(program);
        cmd.args(self.args)
            .envs(self.env.iter().copied())
            .current_dir(root.join(self.dir));
        cmd
    }
}

/// How a step ended, for the summary table.
#[derive(Debug)]
enum Status {
    Ok(Duration),
    Skipped(String),
    Failed(Duration),
    NotRun,
}

pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let mut rows: Vec<(&str, Status)> = Vec::new();

    let t = Instant::now();
    let setup_result = setup::run(root);
    let setup_time = t.elapsed();
    if let Err(err) = setup_result {
        eprintln!("xtask: {err:#}");
        rows.push(("setup", Status::Failed(setup_time)));
        rows.extend(STEPS.iter().map(|s| (s.name, Status::NotRun)));
        return finish(rows, started, "setup");
    }
    rows.push(("setup", Status::Ok(setup_time)));

    let mut failed = None;
    for step in STEPS {
        if failed.is_some() {
            rows.push((step.name, Status::NotRun));
            continue;
        }
        if let Some(path) = step.only_if {
            if !root.join(path).exists() {
                let why = format!("no {path}");
                println!("xtask: step {}: skipped ({why})", step.name);
                rows.push((step.name, Status::Skipped(why)));
                continue;
            }
        }
        let mut cmd = step.command(root);
        println!("xtask: step {}: {}", step.name, describe(&cmd));
        // Each step gets its own temporary directory, removed afterwards: what a browser or a
        // test leaves behind (Chromium profiles of killed sessions) does not pile up in /tmp.
        let scratch =
            std::env::temp_dir().join(format!("prl-xtask-{}-{}", std::process::id(), step.name));
        std::fs::create_dir_all(&scratch)?;
        cmd.env("TMPDIR", &scratch);
        let t = Instant::now();
        let outcome = cmd.status();
        let elapsed = t.elapsed();
        if let Err(err) = std::fs::remove_dir_all(&scratch) {
            eprintln!("xtask: cannot remove {}: {err}", scratch.display());
        }
        match outcome {
            Ok(status) if status.success() => {
                println!("xtask: step {}: ok in {}", step.name, fmt_duration(elapsed));
                rows.push((step.name, Status::Ok(elapsed)));
            }
            Ok(status) => {
                eprintln!("xtask: `{}` exited with {status}", describe(&cmd));
                rows.push((step.name, Status::Failed(elapsed)));
                failed = Some(step.name);
            }
            Err(err) => {
                eprintln!("xtask: cannot start `{}`: {err}", describe(&cmd));
                rows.push((step.name, Status::Failed(elapsed)));
                failed = Some(step.name);
            }
        }
    }
    match failed {
        Some(name) => finish(rows, started, name),
        None => {
            print_summary(&rows, started.elapsed());
            println!("xtask: all steps passed");
            Ok(())
        }
    }
}

fn finish(rows: Vec<(&str, Status)>, started: Instant, failed: &str) -> Result<()> {
    print_summary(&rows, started.elapsed());
    bail!("step {failed} failed")
}

fn print_summary(rows: &[(&str, Status)], total: Duration) {
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max("total".len());
    println!();
    println!("{:<width$}  {:>9}  result", "step", "time");
    for (name, status) in rows {
        let (time, result) = match status {
            Status::Ok(d) => (fmt_duration(*d), "ok".to_string()),
            Status::Failed(d) => (fmt_duration(*d), "FAILED".to_string()),
            Status::Skipped(why) => ("-".to_string(), format!("skipped ({why})")),
            Status::NotRun => ("-".to_string(), "not run".to_string()),
        };
        println!("{name:<width$}  {time:>9}  {result}");
    }
    println!("{:<width$}  {:>9}", "total", fmt_duration(total));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique() {
        for (i, a) in STEPS.iter().enumerate() {
            assert!(a.name != "setup", "`setup` is reserved");
            assert!(
                STEPS.iter().skip(i + 1).all(|b| b.name != a.name),
                "duplicate step name {}",
                a.name
            );
        }
    }

    #[test]
    fn cargo_steps_use_the_running_cargo() {
        let root = crate::workspace_root();
        let fmt = STEPS.iter().find(|s| s.name == "fmt");
        let cmd = fmt.map(|s| s.command(&root));
        assert_eq!(
            cmd.as_ref().map(Command::get_program),
            Some(cargo().as_os_str())
        );
        let e2e = STEPS.iter().find(|s| s.name == "e2e");
        let cmd = e2e.map(|s| s.command(&root));
        assert_eq!(
            cmd.as_ref().and_then(Command::get_current_dir),
            Some(root.join("tests/e2e").as_path())
        );
    }
}
