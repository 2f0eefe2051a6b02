//! `cargo xtask setup`: one idempotent install of what a fresh machine lacks.
//!
//! Assumed present: rustup with a stable toolchain, Node 20 with npm, apt (Debian), root or sudo.
//! Every step checks first and prints one line `setup: <step>: ok|installed|skipped (<why>)`.
//! Nothing here downloads browsers or prebuilt binaries: Chromium and its driver come from Debian,
//! wasm-bindgen-cli is built from crates.io.

use std::fmt;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo, exec, stdout_of};

/// Rust components the checks use (absent from rustup's `minimal` profile).
const RUST_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// The browser target: the protocol core and the client are built for it.
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Debian packages: openssl headers for the native transport, Chromium + driver for browser tests.
/// `gcc` and `libc6-dev` give crates with C parts (openssl-sys, ring) a compiler and headers;
/// rustup brings neither. nginx and Caddy are the TLS front ends the reverse-proxy e2e test runs
/// (as the current user, from a temp dir), with a certificate made by the `openssl` CLI.
/// `redis-server` holds the shared state of the cluster tests (the proxy's Redis store tests and
/// the cluster e2e test) and HAProxy balances the cluster e2e test's three proxies; both are
/// started by the tests as the current user, from a temp dir, on loopback ports.
const APT_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "libssl-dev",
    "pkg-config",
    "chromium",
    "chromium-driver",
    "openssl",
    "nginx",
    "caddy",
    "redis-server",
    "haproxy",
    // `cargo xtask abuse` brings up the loopback of its private network namespace with `ip`.
    "iproute2",
];

/// Packages whose Debian install starts a system service (on ports 80 / 443) where systemd
/// runs: setup stops and disables the ones it installed itself; the tests start their own.
const SERVICE_PACKAGES: &[&str] = &["nginx", "caddy", "redis-server", "haproxy"];

/// Directories (relative to the workspace root) that may hold an npm project with a lockfile.
pub const NPM_PROJECT_DIRS: &[&str] = &["tests/e2e", "web", "client-wasm/npm"];

/// What a setup step did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Already present: nothing to do.
    Ok(String),
    /// Was missing and is now installed.
    Installed(String),
    /// Not applicable here.
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(why) => write!(f, "ok ({why})"),
            Outcome::Installed(what) => write!(f, "installed ({what})"),
            Outcome::Skipped(why) => write!(f, "skipped ({why})"),
        }
    }
}

/// Runs every setup step in order; stops at the first that fails.
pub fn run(root: &Path) -> Result<()> {
    step("rust-components", rust_components())?;
    step("wasm32-target", wasm_target())?;
    step("apt-packages", apt_packages())?;
    step("wasm-bindgen-cli", wasm_bindgen_cli(root))?;
    for dir in NPM_PROJECT_DIRS {
        step(&format!("npm {dir}"), npm_ci(root, dir))?;
    }
    // `cargo xtask abuse`: the fuzz targets need nightly and cargo-fuzz; the supply-chain
    // check needs cargo-deny.
    use crate::abuse::tools;
    let outcome = |r: Result<(bool, String)>| {
        r.map(|(installed, what)| {
            if installed {
                Outcome::Installed(what)
            } else {
                Outcome::Ok(what)
            }
        })
    };
    step("nightly", outcome(tools::setup_nightly()))?;
    step(
        "cargo-fuzz",
        outcome(tools::setup_cargo_tool("cargo-fuzz", "fuzz")),
    )?;
    step(
        "cargo-deny",
        outcome(tools::setup_cargo_tool("cargo-deny", "deny")),
    )?;
    Ok(())
}

fn step(name: &str, outcome: Result<Outcome>) -> Result<()> {
    match outcome {
        Ok(outcome) => {
            println!("setup: {name}: {outcome}");
            Ok(())
        }
        Err(err) => {
            println!("setup: {name}: failed");
            Err(err.context(format!("setup step {name} failed")))
        }
    }
}

fn rustup(args: &[&str]) -> Result<String> {
    stdout_of(Command::new("rustup").args(args))
        .with_context(|| format!("`rustup {}` failed; is rustup on PATH?", args.join(" ")))
}

fn rust_components() -> Result<Outcome> {
    let installed = rustup(&["component", "list", "--installed"])?;
    // Lines look like `rustfmt-x86_64-unknown-linux-gnu`.
    let missing: Vec<&str> = RUST_COMPONENTS
        .iter()
        .copied()
        .filter(|c| !installed.lines().any(|l| l.starts_with(&format!("{c}-"))))
        .collect();
    if missing.is_empty() {
        return Ok(Outcome::Ok(format!(
            "{} present",
            RUST_COMPONENTS.join(", ")
        )));
    }
    exec(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )?;
    Ok(Outcome::Installed(missing.join(", ")))
}

fn wasm_target() -> Result<Outcome> {
    let installed = rustup(&["target", "list", "--installed"])?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(Outcome::Ok(format!("{WASM_TARGET} present")));
    }
    exec(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    Ok(Outcome::Installed(WASM_TARGET.to_string()))
}

/// `dpkg-query -W -f='${Status}'` prints `install ok installed` for an installed package.
fn dpkg_installed(status: &str) -> bool {
    status.split_whitespace().last() == Some("installed")
        && status.split_whitespace().next() == Some("install")
}

fn apt_packages() -> Result<Outcome> {
    let mut missing = Vec::new();
    for pkg in APT_PACKAGES {
        let query = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", pkg])
            .output();
        match query {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Outcome::Skipped(format!(
                    "no dpkg-query, not Debian: install {} yourself",
                    APT_PACKAGES.join(" ")
                )));
            }
            Err(err) => return Err(err).context("cannot start dpkg-query"),
            // An unknown package makes dpkg-query exit non-zero: missing too.
            Ok(out) => {
                if !(out.status.success() && dpkg_installed(&String::from_utf8_lossy(&out.stdout)))
                {
                    missing.push(*pkg);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(Outcome::Ok(format!("{} present", APT_PACKAGES.join(" "))));
    }
    let is_root = stdout_of(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    // `program` as root: directly, or through sudo.
    let as_root = |program: &str| {
        if is_root {
            Command::new(program)
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg(program);
            sudo
        }
    };
    let apt_get = |args: &[&str]| {
        let mut cmd = as_root("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    exec(&mut apt_get(&["update", "-q"]))?;
    let mut install = apt_get(&["install", "-y", "-q"]);
    install.args(&missing);
    exec(&mut install)?;
    let services: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| SERVICE_PACKAGES.contains(p))
        .collect();
    if !services.is_empty() && Path::new("/run/systemd/system").is_dir() {
        exec(
            as_root("systemctl")
                .args(["disable", "--now"])
                .args(&services),
        )?;
        return Ok(Outcome::Installed(format!(
            "{}; services disabled: {}",
            missing.join(" "),
            services.join(" ")
        )));
    }
    Ok(Outcome::Installed(missing.join(" ")))
}

/// The version of `package` in a Cargo.lock (the `version` line right after its `name` line).
fn locked_version<'a>(lock: &'a str, package: &str) -> Option<&'a str> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines().map(str::trim);
    lines.find(|l| *l == name_line)?;
    lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')
}

fn wasm_bindgen_cli(root: &Path) -> Result<Outcome> {
    let lock_path = root.join("Cargo.lock");
    let lock = match fs::read_to_string(&lock_path) {
        Ok(lock) => lock,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::Skipped("no Cargo.lock".into()));
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", lock_path.display()))
        }
    };
    let Some(version) = locked_version(&lock, "wasm-bindgen") else {
        return Ok(Outcome::Skipped("Cargo.lock has no wasm-bindgen".into()));
    };
    let wanted = format!("wasm-bindgen {version}");
    let current =
        || stdout_of(Command::new("wasm-bindgen").arg("--version")).map(|v| v.trim().to_string());
    if current().as_deref() == Some(wanted.as_str()) {
        return Ok(Outcome::Ok(format!("{wanted} matches Cargo.lock")));
    }
    // Not --locked: the crate's own lockfile pins versions the registry may not carry.
    exec(Command::new(cargo()).args(["install", "wasm-bindgen-cli", "--version", version]))?;
    match current() {
        Some(found) if found == wanted => Ok(Outcome::Installed(wanted)),
        found => bail!(
            "installed wasm-bindgen-cli {version}, but `wasm-bindgen --version` on PATH gives {}: \
             put cargo's bin directory first on PATH",
            found.unwrap_or_else(|| "nothing".into())
        ),
    }
}

fn npm_ci(root: &Path, dir: &str) -> Result<Outcome> {
    let project = root.join(dir);
    if !project.is_dir() {
        return Ok(Outcome::Skipped("no such directory".into()));
    }
    let lock = project.join("package-lock.json");
    let lock_time = match fs::metadata(&lock) {
        Ok(meta) => meta.modified()?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::Skipped("no package-lock.json".into()));
        }
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", lock.display())),
    };
    // npm writes its hidden lockfile when an install completes, so an interrupted `npm ci`
    // is not mistaken for a finished one.
    let installed = project.join("node_modules").join(".package-lock.json");
    let installed_time = fs::metadata(installed).and_then(|m| m.modified());
    if installed_time.is_ok_and(|t| t > lock_time) {
        return Ok(Outcome::Ok(
            "node_modules installed after package-lock.json changed".into(),
        ));
    }
    exec(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&project),
    )?;
    Ok(Outcome::Installed("npm ci".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen-futures"
version = "0.4.80"

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    #[test]
    fn finds_the_exact_package_version() {
        assert_eq!(locked_version(LOCK, "wasm-bindgen"), Some("0.2.130"));
        assert_eq!(locked_version(LOCK, "wasm-bindgen-futures"), Some("0.4.80"));
    }

    #[test]
    fn no_version_for_an_absent_package() {
        assert_eq!(locked_version(LOCK, "wasm-bindgen-cli"), None);
        assert_eq!(locked_version("", "wasm-bindgen"), None);
        // A name line with no version line after it.
        assert_eq!(
            locked_version("name = \"wasm-bindgen\"\n", "wasm-bindgen"),
            None
        );
    }

    #[test]
    fn dpkg_status_means_installed_only_when_fully_installed() {
        assert!(dpkg_installed("install ok installed"));
        assert!(!dpkg_installed("deinstall ok config-files"));
        assert!(!dpkg_installed("install ok half-installed"));
        assert!(!dpkg_installed(""));
    }

    #[test]
    fn outcomes_print_as_the_setup_line_expects() {
        assert_eq!(
            Outcome::Skipped("no Cargo.lock".into()).to_string(),
            "skipped (no Cargo.lock)"
        );
        assert_eq!(Outcome::Installed("x".into()).to_string(), "installed (x)");
        assert_eq!(Outcome::Ok("y".into()).to_string(), "ok (y)");
    }

    #[test]
    fn a_missing_npm_project_is_skipped() {
        let outcome = npm_ci(&crate::workspace_root(), "no-such-npm-project");
        assert_eq!(
            outcome.ok(),
            Some(Outcome::Skipped("no such directory".into()))
        );
    }
}
