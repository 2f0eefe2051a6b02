//! Project recipes, one place for each: `cargo xtask setup | test | ci | build-wasm | demo |
//! real-sdk | bench | dist | container`.
//!
//! `setup` installs what a fresh machine (rustup stable, Node 20, apt, root) lacks, idempotently.
//! `test` runs `setup`, then every check CI runs, failing fast; `ci` is the same thing.
//! `build-wasm` builds the npm package; `demo` runs `setup`, builds, and serves the console;
//! `screenshots` runs the demo and saves the console's screenshots to `docs/screenshots/`.
//! `real-sdk` runs the real SDK client's test programs against prl-sim (also a `test` step).
//! `dist` builds and checks the relay's release tarball; `container` builds and checks the
//! container image with podman.
//! `abuse` attacks the release binaries from outside and writes `docs/RELIABILITY.md`.
#![forbid(unsafe_code)]

mod abuse;
mod bench;
mod container;
mod demo;
mod dist;
mod real_sdk;
mod screenshots;
mod setup;
mod test;
mod wasm;
mod wasm_names;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "prl-web project recipes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install what this machine lacks (wasm target, Debian packages, wasm-bindgen-cli, npm deps).
    Setup,
    /// Run `setup`, then every check (fmt, clippy, tests, wasm build, browser tests), failing fast.
    #[command(visible_alias = "ci")]
    Test,
    /// Build the npm package `@prl-web/client` into dist/npm (wasm-bindgen, wasm-opt, size budget).
    BuildWasm,
    /// Run `setup`, build the package, start prl-sim and prl-proxy on localhost, serve the
    /// console; Ctrl-C, SIGTERM or SIGHUP stops all of it.
    Demo {
        /// Skip setup and the builds (the release binaries and dist/npm must exist).
        #[arg(long)]
        no_build: bool,
    },
    /// Run the demo and save screenshots of the console (login, VM list, an error, a 375 px
    /// phone) to docs/screenshots/, driving headless Chromium (tests/e2e/screenshots.mjs).
    Screenshots {
        /// Skip setup and the builds (the release binaries and dist/npm must exist).
        #[arg(long)]
        no_build: bool,
    },
    /// Run the real SDK client's C programs (tests/real-sdk) against prl-sim: install the SDK,
    /// compile, run every case (or those whose names contain a CASE filter).
    RealSdk {
        /// Case-name filters (substrings).
        cases: Vec<String>,
    },
    /// Run the benchmarks (criterion suite, load runs, peers, page) and write bench/RESULTS.md;
    /// `bench PART` runs one part (peers, build, suite, memory, page, report); other arguments
    /// go to criterion (a filter, `--measurement-time 10`).
    Bench {
        /// A part and its arguments, or criterion's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the relay's release tarball (prl-proxy, prl-sim, example config, systemd unit,
    /// licences, INSTALL) into dist/, then check it unpacked in a fresh directory.
    Dist {
        /// Target triple (default: this host's; another one needs its toolchain and linker,
        /// and is not run).
        #[arg(long)]
        target: Option<String>,
        /// Only build and pack.
        #[arg(long)]
        no_check: bool,
    },
    /// Build the Dockerfile's image with podman (from the dist tarball, on a debootstrapped
    /// Debian 12 base: no registry needed) and check it: config, user, /readyz, health check,
    /// a login. Podman's storage is temporary.
    Container,
    /// Attack the release prl-proxy and prl-sim from outside (loopback only, in a private
    /// network namespace), fuzz briefly, check the supply chain; write docs/RELIABILITY.md.
    Abuse {
        /// Longer floods, the 5 s and 90 s network drops, a minute per fuzz target.
        #[arg(long)]
        full: bool,
        /// Where to write the report (default docs/RELIABILITY.md).
        #[arg(long, conflicts_with = "ci")]
        out: Option<PathBuf>,
        /// CI's run: the report goes to <target>/abuse/RELIABILITY.md, not into docs/.
        #[arg(long)]
        ci: bool,
        /// Only the floods (no other section, fuzzing or supply chain); the report goes to
        /// <target>/abuse/FLOODS.md unless --out names a file.
        #[arg(long)]
        floods_only: bool,
    },
    /// The network part of `abuse`, run by it inside the namespace it makes.
    #[command(hide = true)]
    AbuseInner {
        #[arg(long)]
        work: PathBuf,
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        full: bool,
        #[arg(long)]
        floods_only: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::Setup => setup::run(&root),
        Cmd::Test => test::run(&root),
        Cmd::BuildWasm => wasm::run(&root),
        Cmd::Demo { no_build } => demo::run(&root, !no_build),
        Cmd::Screenshots { no_build } => screenshots::run(&root, !no_build),
        Cmd::RealSdk { cases } => real_sdk::run(&root, &cases),
        Cmd::Bench { args } => bench::run(&root, &args),
        Cmd::Dist { target, no_check } => dist::run(&root, target, !no_check),
        Cmd::Container => container::run(&root),
        Cmd::Abuse {
            full,
            out,
            ci,
            floods_only,
        } => {
            let own = if floods_only {
                Some("abuse/FLOODS.md")
            } else {
                ci.then_some("abuse/RELIABILITY.md")
            };
            let out = out.or_else(|| own.map(|f| wasm::target_dir(&root).join(f)));
            let plan = abuse::Plan { full, floods_only };
            abuse::run(&root, plan, out)
        }
        Cmd::AbuseInner {
            work,
            bin,
            full,
            floods_only,
        } => abuse::inner(&root, &work, &bin, abuse::Plan { full, floods_only }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory, whatever the current directory is.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo binary: the one that started us (`$CARGO`), else `cargo` from `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A command line for messages: program and arguments, space-separated.
fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `cmd` with inherited stdio; an error unless it exits successfully.
fn exec(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` exited with {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout, or `None` when it cannot start or exits unsuccessfully.
fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `12.3s` / `4m05.1s`, rounded to tenths of a second.
fn fmt_duration(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        let rest = tenths % 600;
        format!("{}m{:02}.{}s", tenths / 600, rest / 10, rest % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(fmt_duration(Duration::from_millis(245_100)), "4m05.1s");
        assert_eq!(fmt_duration(Duration::ZERO), "0.0s");
        assert_eq!(fmt_duration(Duration::from_millis(59_960)), "1m00.0s");
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest =
            std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap_or_default();
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }

    #[test]
    fn commands_are_described_with_their_arguments() {
        let mut cmd = Command::new("cargo");
        cmd.args(["fmt", "--all"]);
        assert_eq!(describe(&cmd), "cargo fmt --all");
    }
}
