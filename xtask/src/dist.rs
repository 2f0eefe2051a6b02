//! `cargo xtask dist [--target TRIPLE] [--no-check]`: the relay's release tarball.
//!
//! Builds `prl-proxy` and `prl-sim` (release, `--locked`; the same commands as CI's build
//! steps, so their artifacts are reused) and packs `dist/prl-web-VERSION-TARGET.tar.gz` with a
//! `.sha256` beside it:
//!
//! ```text
//! prl-web-VERSION-TARGET/
//!   bin/prl-proxy  bin/prl-sim
//!   etc/prl-proxy.example.toml
//!   systemd/prl-proxy.service  systemd/prl-proxy.sysusers
//!   README.md (the relay's reference)  INSTALL.md  CHANGELOG.md  LICENSE-MIT  LICENSE-APACHE
//! ```
//!
//! Then, unless `--no-check`, it checks the tarball as an operator gets it, unpacked into a
//! fresh temporary directory: every file is there; the binaries' shared libraries all resolve
//! (`ldd`; the OpenSSL they link is printed); the example configuration passes the unpacked
//! `prl-proxy check-config`; the unit passes `systemd-analyze verify` (pointed at the unpacked
//! binary; skipped where systemd-analyze is missing); and the unpacked prl-sim and prl-proxy
//! answer `/readyz` and a login (`proxy/tests/dist.rs`, run with `PRL_DIST_DIR`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::wasm::{kb, target_dir};
use crate::{cargo, describe, exec, fmt_duration, stdout_of};

/// Where the tarballs go, relative to the workspace root.
pub const OUT_DIR: &str = "dist";
/// The binaries: (cargo package, binary name).
const BINARIES: &[(&str, &str)] = &[("prl-proxy", "prl-proxy"), ("prl-sim", "prl-sim")];
/// Other files: (source relative to the workspace root, path in the tarball).
const FILES: &[(&str, &str)] = &[
    ("proxy/prl-proxy.example.toml", "etc/prl-proxy.example.toml"),
    (
        "packaging/systemd/prl-proxy.service",
        "systemd/prl-proxy.service",
    ),
    (
        "packaging/systemd/prl-proxy.sysusers",
        "systemd/prl-proxy.sysusers",
    ),
    ("proxy/README.md", "README.md"),
    ("packaging/INSTALL.md", "INSTALL.md"),
    ("proxy/CHANGELOG.md", "CHANGELOG.md"),
    ("LICENSE-MIT", "LICENSE-MIT"),
    ("LICENSE-APACHE", "LICENSE-APACHE"),
];
/// Where the unit expects the binary; the check points it at the unpacked one.
const UNIT_BINARY: &str = "/usr/local/bin/prl-proxy";

/// The tarball's top directory (and file stem): `prl-web-VERSION-TARGET`.
pub fn release_name(version: &str, target: &str) -> String {
    format!("prl-web-{version}-{target}")
}

/// The host's target triple (`rustc -vV`).
pub fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = stdout_of(Command::new(rustc).arg("-vV")).context("cannot run `rustc -vV`")?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

/// Seconds since the epoch for the files in the tarball: `SOURCE_DATE_EPOCH`, else the last
/// commit's time, else now.
fn source_date_epoch(root: &Path) -> u64 {
    let from_env = std::env::var("SOURCE_DATE_EPOCH").ok();
    let from_git = || {
        stdout_of(
            Command::new("git")
                .current_dir(root)
                .args(["log", "-1", "--format=%ct"]),
        )
    };
    from_env
        .or_else(from_git)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// A directory of its own under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("prl-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds the binaries; returns the directory they are in.
fn build(root: &Path, target: &str, host: &str) -> Result<PathBuf> {
    // One package per command, as CI's build steps do: the same feature sets, so the same
    // artifacts.
    for (package, _) in BINARIES {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root)
            .args(["build", "--locked", "--release", "-p", package]);
        if target != host {
            cmd.args(["--target", target]);
        }
        exec(&mut cmd)?;
    }
    let dir = target_dir(root);
    Ok(if target == host {
        dir.join("release")
    } else {
        dir.join(target).join("release")
    })
}

/// Copies everything into `stage/` (emptied first).
fn stage(root: &Path, bins: &Path, stage: &Path) -> Result<()> {
    if stage.exists() {
        fs::remove_dir_all(stage).with_context(|| format!("cannot empty {}", stage.display()))?;
    }
    let copies = BINARIES
        .iter()
        .map(|(_, bin)| (bins.join(bin), format!("bin/{bin}")))
        .chain(
            FILES
                .iter()
                .map(|(from, to)| (root.join(from), to.to_string())),
        );
    for (from, to) in copies {
        let to = stage.join(to);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

/// `tar` with fixed owners, modes, order and times, gzip without a timestamp.
fn tar_command(out: &Path, name: &str, epoch: u64) -> Command {
    let mut cmd = Command::new("tar");
    cmd.current_dir(out).args([
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mode=u+rw,go+r,go-w",
        &format!("--mtime=@{epoch}"),
        "--use-compress-program=gzip -9n",
        "-cf",
        &format!("{name}.tar.gz"),
        name,
    ]);
    cmd
}

/// `cargo xtask dist`.
pub fn run(root: &Path, target: Option<String>, check: bool) -> Result<()> {
    let host = host_triple()?;
    let target = target.unwrap_or_else(|| host.clone());
    let name = release_name(env!("CARGO_PKG_VERSION"), &target);
    let out = root.join(OUT_DIR);
    fs::create_dir_all(&out)?;

    let t = Instant::now();
    let bins = build(root, &target, &host)?;
    let build_time = t.elapsed();

    let t = Instant::now();
    stage(root, &bins, &out.join(&name))?;
    exec(&mut tar_command(&out, &name, source_date_epoch(root)))?;
    fs::remove_dir_all(out.join(&name))?;
    let tarball = out.join(format!("{name}.tar.gz"));
    let sum = stdout_of(
        Command::new("sha256sum")
            .current_dir(&out)
            .arg(format!("{name}.tar.gz")),
    )
    .context("sha256sum failed")?;
    fs::write(out.join(format!("{name}.tar.gz.sha256")), sum)?;
    let size = fs::metadata(&tarball)?.len();
    println!(
        "dist: {} ({}) built in {}, packed in {}",
        tarball.display(),
        kb(size),
        fmt_duration(build_time),
        fmt_duration(t.elapsed())
    );
    if !check {
        println!("dist: check skipped (--no-check)");
        return Ok(());
    }
    if target != host {
        println!("dist: check skipped (a {target} tarball does not run on this {host} host)");
        return Ok(());
    }
    let t = Instant::now();
    check_tarball(root, &tarball, &name)?;
    println!(
        "dist: unpacked tarball checked in {}",
        fmt_duration(t.elapsed())
    );
    Ok(())
}

/// The checks of the module docs, in a fresh directory.
fn check_tarball(root: &Path, tarball: &Path, name: &str) -> Result<()> {
    let scratch = Scratch::new("dist-check")?;
    exec(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(&scratch.0),
    )?;
    let dir = scratch.0.join(name);
    for path in BINARIES
        .iter()
        .map(|(_, bin)| format!("bin/{bin}"))
        .chain(FILES.iter().map(|(_, to)| to.to_string()))
    {
        if !dir.join(&path).is_file() {
            bail!("the tarball has no {path}");
        }
    }
    for (_, bin) in BINARIES {
        let ldd = stdout_of(Command::new("ldd").arg(dir.join("bin").join(bin)))
            .with_context(|| format!("ldd {bin} failed"))?;
        if ldd.contains("not found") {
            bail!("{bin} needs libraries this machine lacks:\n{ldd}");
        }
        for lib in ldd
            .lines()
            .filter(|l| l.contains("libssl") || l.contains("libcrypto"))
        {
            println!("dist: {bin} links {}", lib.trim());
        }
    }
    let proxy = dir.join("bin/prl-proxy");
    exec(
        Command::new(&proxy)
            .arg("check-config")
            .arg(dir.join("etc/prl-proxy.example.toml")),
    )?;
    verify_unit(&dir, &proxy, &scratch.0)?;
    exec(
        release_test(root, "the_unpacked_release_serves_readyz_and_a_login")
            .env("PRL_DIST_DIR", &dir),
    )
}

/// One `#[ignore]`d test of `proxy/tests/dist.rs` (it reads its inputs from the environment).
pub fn release_test(root: &Path, name: &str) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args([
        "test",
        "--locked",
        "-p",
        "prl-proxy",
        "--test",
        "dist",
        "--",
        "--ignored",
        "--exact",
        name,
    ]);
    cmd
}

/// `systemd-analyze verify` of the unit with `ExecStart` pointed at the unpacked binary; any
/// output counts as a failure.
fn verify_unit(dir: &Path, proxy: &Path, scratch: &Path) -> Result<()> {
    let unit = fs::read_to_string(dir.join("systemd/prl-proxy.service"))?;
    if !unit.contains(UNIT_BINARY) {
        bail!("the unit does not start {UNIT_BINARY}");
    }
    let copy = scratch.join("prl-proxy.service");
    fs::write(&copy, unit.replace(UNIT_BINARY, &proxy.to_string_lossy()))?;
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(&copy);
    match cmd.output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("dist: systemd-analyze verify skipped (no systemd-analyze)");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot start `{}`", describe(&cmd))),
        Ok(o) if o.status.success() && o.stdout.is_empty() && o.stderr.is_empty() => {
            println!("dist: systemd-analyze verify: clean");
            Ok(())
        }
        Ok(o) => bail!(
            "`{}` ({}):\n{}{}",
            describe(&cmd),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packed_file_exists_in_the_workspace() {
        let root = crate::workspace_root();
        for (from, _) in FILES {
            assert!(root.join(from).is_file(), "{from}");
        }
    }

    #[test]
    fn the_unit_starts_the_installed_binary_with_the_etc_config() {
        let root = crate::workspace_root();
        let unit = fs::read_to_string(root.join("packaging/systemd/prl-proxy.service"))
            .unwrap_or_default();
        assert!(
            unit.contains(&format!(
                "ExecStart={UNIT_BINARY} --config /etc/prl-proxy/prl-proxy.toml"
            )),
            "{unit}"
        );
        assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
        assert!(unit.contains("Type=notify"));
    }

    #[test]
    fn the_tarball_is_named_by_version_and_target() {
        assert_eq!(
            release_name("0.1.0", "x86_64-unknown-linux-gnu"),
            "prl-web-0.1.0-x86_64-unknown-linux-gnu"
        );
        let cmd = tar_command(Path::new("/w/dist"), "prl-web-0.1.0-t", 7);
        let line = describe(&cmd);
        assert!(line.contains("--mtime=@7"), "{line}");
        assert!(
            line.ends_with("-cf prl-web-0.1.0-t.tar.gz prl-web-0.1.0-t"),
            "{line}"
        );
    }
}
