//! The `prl-proxy` binary: ready line, logs without secrets, SIGHUP reload without dropping
//! sessions, config errors naming the key.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use browser::*;

use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::RelayErrorKind;
use prl_protocol::ErrorCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
}

async fn spawn(config: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let sink = Arc::clone(&stderr);
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("no ready line")
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "exited: {}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            )
        });
    let addr = line
        .strip_prefix("prl-proxy listening on ws://")
        .expect(&line)
        .parse()
        .unwrap();
    Running {
        child,
        addr,
        stderr,
    }
}

async fn open_at(addr: SocketAddr, host: &str) -> Result<Browser, prl_protocol::relay::RelayError> {
    Browser::open_addr(addr, open_request(host, SecurityLevel::Normal)).await
}

fn write_config(path: &Path, sim_toml: &str, extra: &str) {
    std::fs::write(
        path,
        format!("[log]\nformat = \"json\"\nlevel = \"debug\"\n[policy]\nresolve_names = false\n{sim_toml}{extra}"),
    )
    .unwrap();
}

#[tokio::test]
async fn logs_of_a_login_contain_neither_password_nor_session_uuid() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.toml");
    write_config(&cfg, &sim_target(&sim), "");
    let mut p = spawn(&cfg).await;
    let mut b = open_at(p.addr, "sim").await.unwrap();
    let token = b.token.clone();
    let reply = b.login(USER, PASSWORD, "").await.unwrap();
    let session = reply.login_response().unwrap().session_uuid;
    // A failed login and a refused takeover attempt log too.
    let mut c = open_at(p.addr, "sim").await.unwrap();
    assert_eq!(
        c.login(USER, "an0ther-Secret", "").await.unwrap().code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    let mut d = open_at(p.addr, "sim").await.unwrap();
    assert_eq!(
        d.login(USER, PASSWORD, &session).await.unwrap_err().kind,
        RelayErrorKind::RestoreRefused
    );
    b.ping().await.unwrap();
    drop((b, c, d));
    let stderr = std::sync::Arc::clone(&p.stderr);
    // Two closed (the failed and the refused login), one kept for resume (logged in).
    common::wait_until("the three browsers' ends were logged", || {
        let logs = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
        logs.matches("upstream connection closed").count() >= 2
            && logs.contains("upstream kept for resume")
    })
    .await;
    p.child.start_kill().unwrap();
    let _ = p.child.wait().await;
    let logs = String::from_utf8_lossy(&p.stderr.lock().unwrap()).to_string();
    assert!(
        logs.contains("login succeeded"),
        "logging did not happen: {logs}"
    );
    assert!(logs.contains("login failed"), "{logs}");
    let bare = session.trim_matches(|c| c == '{' || c == '}').to_string();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let padded = prl_protocol::commands::Password::new(PASSWORD)
        .encode(true)
        .to_string();
    for secret in [
        PASSWORD.to_string(),
        "an0ther-Secret".to_string(),
        b64(PASSWORD),
        padded.get(..20).unwrap().to_string(),
        bare.clone(),
        bare.to_uppercase(),
        bare.replace('-', ""),
        token,
    ] {
        assert!(
            !logs.contains(&secret),
            "secret {secret:?} found in logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_policy_without_dropping_sessions() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.toml");
    write_config(&cfg, &sim_target(&sim), "");
    let mut p = spawn(&cfg).await;
    let mut a = open_at(p.addr, "sim").await.unwrap();
    a.login(USER, PASSWORD, "").await.unwrap();
    // Rename the target and reload.
    write_config(
        &cfg,
        &sim_target(&sim).replace("name = \"sim\"", "name = \"sim2\""),
        "",
    );
    let pid = p.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    loop {
        match open_at(p.addr, "sim").await {
            Err(e) if e.kind == RelayErrorKind::PolicyDenied => break,
            other => assert!(
                t0.elapsed() < Duration::from_secs(5),
                "policy not reloaded: {:?} {}",
                other.map(|_| ()),
                String::from_utf8_lossy(&p.stderr.lock().unwrap())
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(open_at(p.addr, "sim2").await.is_ok());
    // The session opened before the reload is untouched.
    a.ping().await.unwrap();
    // A broken config is refused with the key named, and the old one stays in force.
    std::fs::write(&cfg, "[limits]\nqueue_pakages = 3\n").unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let stderr = std::sync::Arc::clone(&p.stderr);
    common::wait_until("the failed reload was logged", || {
        String::from_utf8_lossy(&stderr.lock().unwrap()).contains("queue_pakages")
    })
    .await;
    assert!(open_at(p.addr, "sim2").await.is_ok());
    a.ping().await.unwrap();
    let logs = String::from_utf8_lossy(&p.stderr.lock().unwrap()).to_string();
    assert!(logs.contains("queue_pakages"), "{logs}");
    p.child.start_kill().unwrap();
}

#[tokio::test]
async fn config_errors_name_the_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[policy.allow]]\ncidr = \"10.0.0.0/40\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.allow[0].cidr"), "{err}");
}

#[tokio::test]
async fn missing_certificate_and_ticket_key_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    for (body, key) in [
        (
            format!(
                "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                missing.display().to_string(),
                missing.display().to_string()
            ),
            "missing.pem",
        ),
        (
            format!(
                "[tickets]\nkey_file = {:?}\n",
                missing.display().to_string()
            ),
            "tickets.key_file",
        ),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, body).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
            .arg("--config")
            .arg(&cfg)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(key), "{err}");
    }
}
