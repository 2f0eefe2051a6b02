//! Release artifacts as an operator runs them, `#[ignore]`d: the recipes run them.
//! - `cargo xtask dist` sets PRL_DIST_DIR to the tarball unpacked in a fresh directory: the
//!   unpacked prl-sim and prl-proxy start from there.
//! - `cargo xtask container` sets PRL_PROXY_ADDR (a proxy it runs in a container, in front of
//!   a containerised prl-sim named by PRL_TARGET, with the user PRL_SIM_USER = NAME:PASSWORD).
//!
//! Either way `/readyz` answers, and a browser logs in through the proxy to the simulator over
//! anonymous-DH TLS (security level NORMAL: the OpenSSL the binaries link), and a wrong
//! password is refused by the service.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use browser::*;
use common::get;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::ErrorCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `bin` with `args` from `dir` and returns it with the address of its ready line
/// (`<prefix>ADDR`).
async fn start(dir: &Path, bin: &str, args: &[&str], prefix: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(dir.join("bin").join(bin))
        .args(args)
        .current_dir(dir)
        // Quiet unless something goes wrong (both read RUST_LOG).
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} from {}: {e}", dir.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{bin}: no ready line in 20 s"))
        .unwrap()
        .unwrap_or_else(|| panic!("{bin} exited before its ready line"));
    let addr = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{bin}: unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// `/readyz`, a login of `user` through the proxy to `target`, and a refused wrong password.
async fn readyz_and_login(proxy: SocketAddr, target: &str, user: &str, password: &str) {
    let (status, _, body) = get(proxy, "/readyz").await;
    assert_eq!((status, body.as_slice()), (200, b"ready\n".as_slice()));
    let open = || Browser::open_addr(proxy, open_request(target, SecurityLevel::Normal));
    let mut b = open().await.unwrap();
    let reply = b.login(user, password, "").await.unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    assert!(reply.login_response().is_ok());
    let mut wrong = open().await.unwrap();
    assert_eq!(
        wrong
            .login(user, "not-the-password", "")
            .await
            .unwrap()
            .code,
        ErrorCode::AUTHENTICATION_FAILED
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see the module docs)"))
}

#[tokio::test]
#[ignore = "run by `cargo xtask container` against the proxy it started (PRL_PROXY_ADDR)"]
async fn a_running_proxy_serves_readyz_and_a_login() {
    let proxy = env("PRL_PROXY_ADDR").parse().unwrap();
    let credentials = env("PRL_SIM_USER");
    let (user, password) = credentials.split_once(':').unwrap();
    readyz_and_login(proxy, &env("PRL_TARGET"), user, password).await;
}

#[tokio::test]
#[ignore = "run by `cargo xtask dist` on the unpacked tarball (PRL_DIST_DIR)"]
async fn the_unpacked_release_serves_readyz_and_a_login() {
    let dir = PathBuf::from(env("PRL_DIST_DIR"));
    let credentials = format!("{USER}:{PASSWORD}");
    let (_sim, sim) = start(
        &dir,
        "prl-sim",
        &["--listen", "127.0.0.1:0", "--user", &credentials],
        "prl-sim listening on tcp://",
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prl-proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[policy]\nresolve_names = false\n\
             [[policy.target]]\nname = \"sim\"\nhost = \"{}\"\nport = {}\n",
            sim.ip(),
            sim.port()
        ),
    )
    .unwrap();
    let (_proxy, proxy) = start(
        &dir,
        "prl-proxy",
        &["--config", config.to_str().unwrap()],
        "prl-proxy listening on ws://",
    )
    .await;

    readyz_and_login(proxy, "sim", USER, PASSWORD).await;
}
