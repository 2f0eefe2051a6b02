//! `cargo xtask container`: builds the `Dockerfile` image with podman and checks it, on a
//! machine without a container registry.
//!
//! 1. `cargo xtask dist --no-check` makes the release tarball the image takes its binaries
//!    from (`BINARIES=prebuilt`; the default build stage needs a Rust image from a registry).
//! 2. The runtime base is Debian 12 itself: a `debootstrap --variant=minbase bookworm` tree,
//!    kept as a tarball in `<target>/container/` (made once), `podman import`ed
//!    (`RUNTIME_IMAGE`). The image's own `apt-get install libssl3` runs against Debian's
//!    archive as in any build.
//! 3. Checks: the image's configuration passes `check-config`; it runs as uid 10001; the demo
//!    configuration of `packaging/docker/compose.yaml` passes `check-config` with the
//!    compose file's mounts; in one pod, prl-sim and prl-proxy from the image answer
//!    `/readyz` on the published port, the image's HEALTHCHECK passes (`podman healthcheck
//!    run`), and a login through the proxy succeeds (`proxy/tests/dist.rs` with
//!    `PRL_PROXY_ADDR`).
//!
//! Everything podman stores lives in a temporary directory (`--root`, `--runroot`) removed at
//! the end, so nothing is left in the machine's image store. Podman reads a `containers.conf`
//! of its own there: `runc` when installed (crun refuses hosts with hybrid cgroups, as this
//! project's VMs have), and default ulimits no higher than this process's own hard limits
//! (podman's default of 1048576 open files needs CAP_SYS_RESOURCE, which they lack).
//! Not part of `cargo xtask test`: see the README for why and how long it takes.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::wasm::target_dir;
use crate::{describe, dist, exec, fmt_duration, stdout_of};

const BASE: &str = "localhost/prl-base:bookworm";
const IMAGE: &str = "localhost/prl-proxy:check";
const POD: &str = "prl-container-check";
/// The simulator's user inside the checked pod.
const SIM_USER: &str = "alice:container-check-1";

/// podman with its storage in a directory of its own.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new() -> Result<Podman> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("prl-podman-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("containers.conf"), containers_conf())?;
        Ok(Podman { dir })
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        exec(self.cmd().args(args))
    }

    fn output(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.cmd();
        cmd.args(args);
        stdout_of(&mut cmd).with_context(|| format!("`{}` failed", describe(&cmd)))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["pod", "rm", "--force", "--ignore", POD])
            .output();
        let _ = self.cmd().args(["system", "reset", "--force"]).output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// This process's hard limit `name` from /proc/self/limits (`None`: unlimited or unknown).
fn hard_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let rest = line.strip_prefix(name)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// podman's configuration for this run (see the module docs).
fn containers_conf() -> String {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = hard_limit(&limits, "Max open files").map_or(65536, |n| n.min(65536));
    let nproc = hard_limit(&limits, "Max processes").map_or(4096, |n| n.min(4096));
    let mut conf = format!(
        "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n"
    );
    if stdout_of(Command::new("runc").arg("--version")).is_some() {
        conf.push_str("[engine]\nruntime = \"runc\"\n");
    }
    conf
}

/// The Debian 12 minbase tree as a tarball, made once.
fn base_tarball(root: &Path) -> Result<PathBuf> {
    let dir = target_dir(root).join("container");
    let tarball = dir.join("bookworm-minbase.tar");
    if tarball.is_file() {
        return Ok(tarball);
    }
    fs::create_dir_all(&dir)?;
    let tree = dir.join("rootfs");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    let t = Instant::now();
    exec(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&tree)
            .arg("http://deb.debian.org/debian"),
    )
    .context("debootstrap failed (apt-get install debootstrap)")?;
    let partial = dir.join("bookworm-minbase.tar.partial");
    exec(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .args(["--numeric-owner", "-cf"])
            .arg(&partial)
            .arg("."),
    )?;
    fs::rename(&partial, &tarball)?;
    fs::remove_dir_all(&tree)?;
    println!("container: base tree made in {}", fmt_duration(t.elapsed()));
    Ok(tarball)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `/readyz` until it answers 200 or `limit` passes.
fn wait_ready(port: u16, limit: Duration) -> Result<()> {
    use std::io::{Read, Write};
    let started = Instant::now();
    loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        // `HTTP/1.x 200 OK`.
        if answer.is_ok_and(|t| t.split(' ').nth(1) == Some("200")) {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("no 200 from /readyz on port {port} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cargo xtask container`.
pub fn run(root: &Path) -> Result<()> {
    if stdout_of(Command::new("podman").arg("--version")).is_none() {
        bail!("podman is not installed (apt-get install podman debootstrap)");
    }
    dist::run(root, None, false)?;
    let version = env!("CARGO_PKG_VERSION");
    let host = dist::host_triple()?;
    let dist_tarball = format!(
        "{}/{}.tar.gz",
        dist::OUT_DIR,
        dist::release_name(version, &host)
    );
    let base = base_tarball(root)?;
    let podman = Podman::new()?;
    podman.run(&["import", &base.to_string_lossy(), BASE])?;

    let t = Instant::now();
    let mut build = podman.cmd();
    build
        .current_dir(root)
        .args(["build", "--format", "docker", "--tag", IMAGE])
        .args(["--build-arg", &format!("RUNTIME_IMAGE={BASE}")])
        .args(["--build-arg", "BINARIES=prebuilt"])
        .args(["--build-arg", &format!("DIST={dist_tarball}")])
        .arg(".");
    exec(&mut build)?;
    let size: u64 = podman
        .output(&["image", "inspect", "--format", "{{.Size}}", IMAGE])?
        .trim()
        .parse()
        .unwrap_or(0);
    println!(
        "container: image built in {} ({:.1} MB)",
        fmt_duration(t.elapsed()),
        size as f64 / 1e6
    );

    let t = Instant::now();
    podman.run(&[
        "run",
        "--rm",
        IMAGE,
        "check-config",
        "/etc/prl-proxy/prl-proxy.toml",
    ])?;
    let uid = podman.output(&["run", "--rm", "--entrypoint", "id", IMAGE, "-u"])?;
    if uid.trim() != "10001" {
        bail!("the image runs as uid {}, not 10001", uid.trim());
    }
    if !root.join(crate::wasm::OUT_DIR).join("index.js").is_file() {
        crate::wasm::build(root)?;
    }
    let demo = root.join("packaging/docker");
    let mount = |from: &Path, to: &str| format!("{}:{to}:ro", from.display());
    podman.run(&[
        "run",
        "--rm",
        "-v",
        &mount(&demo.join("demo.toml"), "/etc/prl-proxy/prl-proxy.toml"),
        "-v",
        &mount(&root.join("web"), "/srv/web"),
        "-v",
        &mount(&root.join("dist/npm"), "/srv/pkg"),
        IMAGE,
        "check-config",
        "/etc/prl-proxy/prl-proxy.toml",
    ])?;

    let port = free_port()?;
    let config = podman.dir.join("check.toml");
    fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\nallow_plain_ws = true\n\
             allowed_origins = [\"http://127.0.0.1:{port}\"]\n\
             [policy]\nresolve_names = false\n\
             [[policy.target]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = 64000\n"
        ),
    )?;
    podman.run(&[
        "pod",
        "create",
        "--name",
        POD,
        "--publish",
        &format!("127.0.0.1:{port}:8080"),
    ])?;
    podman.run(&[
        "run",
        "--detach",
        "--pod",
        POD,
        "--name",
        &format!("{POD}-sim"),
        "--entrypoint",
        "prl-sim",
        IMAGE,
        "--listen",
        "127.0.0.1:64000",
        "--user",
        SIM_USER,
    ])?;
    let proxy = format!("{POD}-proxy");
    podman.run(&[
        "run",
        "--detach",
        "--pod",
        POD,
        "--name",
        &proxy,
        "-v",
        &mount(&config, "/etc/prl-proxy/prl-proxy.toml"),
        IMAGE,
    ])?;
    wait_ready(port, Duration::from_secs(30))?;
    podman
        .run(&["healthcheck", "run", &proxy])
        .context("the image's HEALTHCHECK failed")?;
    exec(
        dist::release_test(root, "a_running_proxy_serves_readyz_and_a_login")
            .env("PRL_PROXY_ADDR", format!("127.0.0.1:{port}"))
            .env("PRL_TARGET", "sim")
            .env("PRL_SIM_USER", SIM_USER),
    )?;
    println!(
        "container: image checked in {} (check-config, uid, /readyz, HEALTHCHECK, login)",
        fmt_duration(t.elapsed())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limits_are_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96370                96370                processes \n\
                      Max open files            1024                 20000                files     \n\
                      Max locked memory         unlimited            unlimited            bytes     \n";
        assert_eq!(hard_limit(limits, "Max open files"), Some(20000));
        assert_eq!(hard_limit(limits, "Max processes"), Some(96370));
        assert_eq!(hard_limit(limits, "Max locked memory"), None);
        assert_eq!(hard_limit(limits, "Max pending signals"), None);
    }
}
