//! `cargo xtask demo`: the first thing a new user runs.
//!
//! Runs `cargo xtask setup` (installs only what is missing), builds the npm package, starts `prl-sim` (demo users, its default VM inventory) and `prl-proxy` on localhost, lets the
//! proxy serve the console of `web/` and the package at `/pkg/`, and prints the URL and the
//! demo credentials. Ctrl-C stops it all (the children share the terminal's process group, and
//! whichever of them ends first takes the other down with it).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{cargo, exec, setup, wasm};

/// Demo users: name, password.
pub const DEMO_USERS: &[(&str, &str)] = &[("demo", "demo"), ("alice", "wonderland")];
/// Preferred proxy address (a free port is used when it is taken).
const PROXY_ADDR: &str = "127.0.0.1:8080";
/// Preferred simulator address.
const SIM_ADDR: &str = "127.0.0.1:64000";

/// `preferred` if it can be bound now, else a free loopback port.
fn free_addr(preferred: &str) -> Result<SocketAddr> {
    let listener = TcpListener::bind(preferred).or_else(|_| TcpListener::bind("127.0.0.1:0"))?;
    Ok(listener.local_addr()?)
}

/// The demo proxy's resume window (ms).
const DEMO_RESUME_WINDOW_MS: u64 = 10_000;

/// The proxy configuration of the demo (TOML; see `proxy/prl-proxy.example.toml`).
pub fn proxy_config(listen: SocketAddr, sim: SocketAddr, web: &Path, pkg: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `cargo xtask demo`.");
    let _ = writeln!(s, "[server]\nlisten = \"{listen}\"\n");
    let _ = writeln!(s, "[static]\nroot = {:?}\n", web.display().to_string());
    let _ = writeln!(
        s,
        "[[static.mount]]\nprefix = \"/pkg/\"\ndir = {:?}\n",
        pkg.display().to_string()
    );
    // A short resume window, so that a connection lost for longer shows the other restore
    // path (a new login naming the previous session, with its lost tasks).
    let _ = writeln!(s, "[resume]\nwindow_ms = {DEMO_RESUME_WINDOW_MS}\n");
    let _ = writeln!(s, "[policy]\nresolve_names = false\n");
    let _ = writeln!(
        s,
        "[[policy.target]]\nname = \"demo\"\nhost = \"{}\"\nport = {}\n",
        sim.ip(),
        sim.port()
    );
    let _ = writeln!(
        s,
        "[[policy.allow]]\ncidr = \"{}/32\"\nports = [{}]",
        sim.ip(),
        sim.port()
    );
    s
}

/// Starts `cmd` and waits (up to 60 s) for a stdout line starting with `prefix`; returns the
/// child and the rest of that line. Later stdout lines are echoed with `tag`.
fn start(mut cmd: Command, prefix: &'static str, tag: &'static str) -> Result<(Child, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {tag}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let _ = tx.send(rest.trim().to_owned());
                    sent = true;
                    continue;
                }
            }
            println!("[{tag}] {line}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(rest) => Ok((child, rest)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{tag} did not print `{prefix}...` (see its output above)")
        }
    }
}

/// `cargo xtask demo`.
pub fn run(root: &Path) -> Result<()> {
    setup::run(root)?;
    let pkg = wasm::build(root)?;
    exec(Command::new(cargo()).current_dir(root).args([
        "build",
        "--locked",
        "--release",
        "-p",
        "prl-sim",
        "-p",
        "prl-proxy",
    ]))?;
    let bin = wasm::target_dir(root).join("release");

    let sim_addr = free_addr(SIM_ADDR)?;
    let mut sim_cmd = Command::new(bin.join("prl-sim"));
    sim_cmd.arg("--listen").arg(sim_addr.to_string());
    sim_cmd.args(["--product-version", "prl-sim demo"]);
    // Every session starts a simulated task (2 minutes, a progress event a second), so a lost
    // session leaves one to re-attach.
    sim_cmd.args(["--task-on-login", "120:1000"]);
    // The simulator's default inventory (four VMs); a power operation takes a second, so the
    // console shows it under way (the tests' default is 50 ms).
    sim_cmd.args(["--transition-ms", "all=1000"]);
    for (user, password) in DEMO_USERS {
        sim_cmd.arg("--user").arg(format!("{user}:{password}"));
    }
    let (mut sim, sim_line) = start(sim_cmd, "prl-sim listening on ", "prl-sim")?;

    let proxy_addr = free_addr(PROXY_ADDR)?;
    let dir = wasm::target_dir(root).join("demo");
    fs::create_dir_all(&dir)?;
    let config = dir.join("prl-proxy.toml");
    fs::write(
        &config,
        proxy_config(proxy_addr, sim_addr, &root.join("web"), &pkg),
    )?;
    let mut proxy_cmd = Command::new(bin.join("prl-proxy"));
    proxy_cmd.arg("--config").arg(&config);
    let (proxy, proxy_line) = match start(proxy_cmd, "prl-proxy listening on ", "prl-proxy") {
        Ok(p) => p,
        Err(e) => {
            let _ = sim.kill();
            let _ = sim.wait();
            return Err(e);
        }
    };
    let http = proxy_line
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    println!();
    println!("prl-web demo is running");
    println!("  simulator: {sim_line}");
    println!("  proxy:     {proxy_line}");
    println!();
    println!(
        "  open  {}/?host={}&port={}&user={}",
        http.trim_end_matches('/'),
        sim_addr.ip(),
        sim_addr.port(),
        DEMO_USERS[0].0
    );
    println!();
    println!("  demo users (user / password):");
    for (user, password) in DEMO_USERS {
        println!("    {user} / {password}");
    }
    println!("  try a wrong password, a 1 ms timeout, or security level High.");
    println!(
        "  every session runs a 2-minute simulated task; lose the connection for over {} s and",
        DEMO_RESUME_WINDOW_MS / 1000
    );
    println!("  the console logs in again with the previous session and lists the task to attach.");
    println!("  the VM list is the simulator's inventory: start and stop VMs; their state follows");
    println!("  the service's events, in every console logged in (open a second tab).");
    println!("  Ctrl-C stops everything.");

    // Whichever ends first (Ctrl-C reaches both through the process group) stops the other.
    let mut children = [("prl-sim", sim), ("prl-proxy", proxy)];
    loop {
        for i in 0..children.len() {
            let Some(status) = children[i].1.try_wait()? else {
                continue;
            };
            for (_, other) in children.iter_mut() {
                let _ = other.kill();
                let _ = other.wait();
            }
            if stopped_on_request(&status) {
                println!("prl-web demo stopped");
                return Ok(());
            }
            bail!("{} exited ({status}); the demo stopped", children[i].0);
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A clean exit or SIGINT / SIGTERM (Ctrl-C reaches the children too): not a failure.
fn stopped_on_request(status: &std::process::ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if matches!(status.signal(), Some(2 | 15)) {
            return true;
        }
    }
    status.success()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_config_allows_exactly_the_simulator() {
        let listen: SocketAddr = "127.0.0.1:8080"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        let sim: SocketAddr = "127.0.0.1:64001"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        let text = proxy_config(listen, sim, Path::new("/w/web"), Path::new("/w/dist/npm"));
        assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
        assert!(text.contains("root = \"/w/web\""), "{text}");
        assert!(
            text.contains("prefix = \"/pkg/\"\ndir = \"/w/dist/npm\""),
            "{text}"
        );
        assert!(
            text.contains("cidr = \"127.0.0.1/32\"\nports = [64001]"),
            "{text}"
        );
        assert!(!text.contains("local_login = true"));
        // The proxy's own loader takes it, with the demo's resume window.
        let config = prl_proxy::config::Config::from_toml_str(&text);
        assert!(config.is_ok(), "{:?}\n{text}", config.err());
        let config = config.unwrap_or_else(|_| unreachable!());
        assert_eq!(config.resume.window_ms, DEMO_RESUME_WINDOW_MS);
        assert_eq!(config.server.listen, listen);
    }

    #[cfg(unix)]
    #[test]
    fn ctrl_c_and_clean_exits_are_a_stop_not_a_failure() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::ExitStatus;
        // Raw wait statuses: a signal number, or an exit code shifted left by 8.
        for (raw, stop) in [
            (0, true),
            (2, true),
            (15, true),
            (1 << 8, false),
            (9, false),
        ] {
            assert_eq!(
                stopped_on_request(&ExitStatus::from_raw(raw)),
                stop,
                "wait status {raw}"
            );
        }
    }

    #[test]
    fn a_taken_port_falls_back_to_a_free_one() {
        let held = TcpListener::bind("127.0.0.1:0");
        let Ok(held) = held else { return };
        let taken = held.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let got = free_addr(&taken).map(|a| a.to_string()).unwrap_or_default();
        assert!(!got.is_empty() && got != taken, "{got}");
    }
}
