//! Under systemd (`Type=notify`): the binary sends READY=1 once it listens, RELOADING=1 (with
//! MONOTONIC_USEC) and READY=1 around a SIGHUP reload, and STOPPING=1 on SIGTERM, to the
//! datagram socket named by NOTIFY_SOCKET.
#![cfg(unix)]
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("no notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn ready_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut ready_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready_line)
        .unwrap();
    assert!(ready_line.starts_with("prl-proxy listening on ws://127.0.0.1:"));

    assert_eq!(next(&socket), "READY=1");
    signal(pid, "-HUP");
    let reloading = next(&socket);
    let mut fields = reloading.lines();
    assert_eq!(fields.next(), Some("RELOADING=1"), "{reloading}");
    let usec = fields
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="));
    assert!(
        usec.is_some_and(|u| u.parse::<u64>().is_ok_and(|u| u > 0)),
        "{reloading}"
    );
    assert_eq!(next(&socket), "READY=1");
    signal(pid, "-TERM");
    assert_eq!(next(&socket), "STOPPING=1");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
