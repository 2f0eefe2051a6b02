//! `cargo xtask bench [CRITERION ARGS]`: the benchmark suite, then its ratio summary.
//!
//! Runs `cargo bench -p prl-bench --bench suite` with criterion's output in a directory of its
//! own (`<target>/prl-bench/criterion`), emptied first: every number of the summary then
//! comes from this run, and criterion prints no comparisons with an older run (the ratios to
//! the same-run baselines are what to read). The suite prints the summary table and writes it
//! to `prl-bench-summary.md` there; this command prints where, and how long the run took.
//! Arguments are passed to criterion: a filter (`connection_setup`), `--measurement-time 10`.
//!
//! Not part of `cargo xtask test`: timings are not checks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{cargo, exec, fmt_duration};

/// Criterion's output directory for `cargo xtask bench`, inside `target`.
fn criterion_home(target: &Path) -> PathBuf {
    target.join("prl-bench").join("criterion")
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
fn bench_command(root: &Path, home: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["bench", "-p", "prl-bench", "--bench", "suite", "--"])
        .args(args)
        .env("CRITERION_HOME", home);
    cmd
}

/// Runs the suite; see the module docs.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let home = criterion_home(&target_dir(root, std::env::var_os("CARGO_TARGET_DIR")));
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot empty {}", home.display()))?;
    }
    let start = Instant::now();
    exec(&mut bench_command(root, &home, args))?;
    let summary = home.join("prl-bench-summary.md");
    if summary.is_file() {
        println!(
            "xtask: benchmarks done in {}; summary in {}",
            fmt_duration(start.elapsed()),
            summary.display()
        );
    } else {
        println!(
            "xtask: benchmarks done in {}; nothing measured, no summary",
            fmt_duration(start.elapsed())
        );
    }
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
    fn the_suite_gets_the_criterion_arguments_and_home() {
        let home = Path::new("/t/prl-bench/criterion");
        let cmd = bench_command(
            Path::new("/ws"),
            home,
            &[
                "connection_setup".into(),
                "--measurement-time".into(),
                "10".into(),
            ],
        );
        assert!(
            describe(&cmd).ends_with(
                "bench -p prl-bench --bench suite -- connection_setup --measurement-time 10"
            ),
            "{}",
            describe(&cmd)
        );
        let env: Vec<_> = cmd.get_envs().collect();
        assert_eq!(env, [("CRITERION_HOME".as_ref(), Some(home.as_os_str()))]);
    }
}
