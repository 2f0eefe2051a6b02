//! The processes the abuse suite drives from outside: release prl-sim and prl-proxy, each with
//! its log in a file of the run, started and awaited by their ready line, killed on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A child process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after 5 s; reaped.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        for _ in 0..100 {
            if !self.alive() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `cmd` with stderr appended to `log` and waits (up to 30 s) for a stdout line
/// starting with `prefix`; returns the process and the rest of that line.
pub fn spawn_ready(
    mut cmd: Command,
    name: &str,
    prefix: &'static str,
    log: &Path,
) -> Result<(Proc, String)> {
    let err = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    cmd.stderr(Stdio::from(err)).stdin(Stdio::null());
    let (child, rx) = crate::demo::spawn_watching(cmd, name, prefix, None)?;
    let mut proc = Proc { child };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(rest) => Ok((proc, rest)),
        Err(_) => {
            proc.kill();
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            bail!("{name} did not print `{prefix}...`; its log ends:\n{tail}")
        }
    }
}

/// A release prl-sim on `listen` with `users` (`NAME:PASSWORD`) and extra flags, at trace level.
pub fn start_sim(
    bin: &Path,
    listen: SocketAddr,
    users: &[String],
    extra: &[&str],
    log: &Path,
) -> Result<Proc> {
    let mut cmd = Command::new(bin.join("prl-sim"));
    cmd.arg("--listen").arg(listen.to_string());
    for u in users {
        cmd.arg("--user").arg(u);
    }
    cmd.args(["--product-version", "abuse"]).args(extra);
    cmd.env("RUST_LOG", "trace");
    let (proc, _) = spawn_ready(cmd, "prl-sim", "prl-sim listening on ", log)?;
    Ok(proc)
}

/// A release prl-proxy with `config` (its log level comes from the config: trace).
pub fn start_proxy(bin: &Path, config: &Path, log: &Path) -> Result<Proc> {
    let mut cmd = Command::new(bin.join("prl-proxy"));
    cmd.arg("--config").arg(config);
    cmd.env_remove("RUST_LOG");
    let (proc, _) = spawn_ready(cmd, "prl-proxy", "prl-proxy listening on ", log)?;
    Ok(proc)
}

/// Resident memory (KiB) and CPU time (clock ticks, user + system) of a process.
pub fn usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> u64 {
    crate::stdout_of(Command::new("getconf").arg("CLK_TCK"))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
