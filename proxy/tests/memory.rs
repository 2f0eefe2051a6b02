//! Memory per idle relayed session: the `prl-proxy` binary in front of prl-sim on loopback,
//! N logged-in browsers held open, RSS delta of the proxy process / N.
//!
//! Not part of the default run (it opens hundreds of connections). Measure with a release
//! build:
//!
//! ```text
//! cargo test --release -p prl-proxy --test memory -- --ignored --nocapture
//! PRL_MEM_SESSIONS=2000 cargo test --release -p prl-proxy --test memory -- --ignored --nocapture
//! ```
//!
//! It prints one line per security level (`low` = plain IOService records, `normal` = ADH
//! TLS toward the service) and fails if a session costs more than `PRL_MEM_MAX_KIB`
//! (default 256 KiB), so a regression in buffer sizing shows up when it is run.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use prl_protocol::handshake::SecurityLevel;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of a process, in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn spawn_proxy(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("no ready line")
            .unwrap()
            .expect("the proxy exited before its ready line");
        if let Some(a) = line.strip_prefix("prl-proxy listening on ws://") {
            break a.parse().unwrap();
        }
    };
    (child, addr)
}

async fn open_logged_in(addr: SocketAddr, level: SecurityLevel) -> Browser {
    let mut b = Browser::open_addr(addr, open_request("sim", level))
        .await
        .unwrap();
    b.login_ok("").await;
    b
}

async fn measure(level: SecurityLevel, n: u64) -> f64 {
    let sim = sim_with(|c| c.max_logon_actions = 64).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let cap = n + 100;
    std::fs::write(
        &path,
        format!(
            "{}[limits]\nmax_connections_per_ip = {cap}\nmax_connections = {cap}\n\
             login_burst_per_ip = {cap}\nlogin_burst_per_user = {cap}\n[log]\nlevel = \"warn\"\n",
            sim_target(&sim)
        ),
    )
    .unwrap();
    let (child, addr) = spawn_proxy(&path).await;
    let pid = child.id().unwrap();
    // Warm-up: lazily built state (TLS contexts, metric families, allocator arenas).
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(open_logged_in(addr, level).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(n as usize);
    for _ in 0..n {
        held.push(open_logged_in(addr, level).await);
    }
    // Idle: heartbeats only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    assert_eq!(sim.session_count() as u64, n + 20);
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!(
        "idle relayed session, security level {level:?}: {per:.1} KiB per session \
         ({n} sessions; proxy RSS {before} KiB -> {after} KiB)"
    );
    drop(held);
    drop(warm);
    drop(child);
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "opens hundreds of connections; run with --release -- --ignored --nocapture"]
async fn memory_per_idle_relayed_session() {
    let n = env_num("PRL_MEM_SESSIONS", 500);
    let max = env_num("PRL_MEM_MAX_KIB", 256) as f64;
    for level in [SecurityLevel::Low, SecurityLevel::Normal] {
        let per = measure(level, n).await;
        assert!(per > 0.0, "no growth measured: the sessions were not held");
        assert!(
            per <= max,
            "{per:.1} KiB per idle session exceeds {max} KiB"
        );
    }
}
