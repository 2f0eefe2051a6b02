//! `cargo xtask demo`: the first thing a new user runs.
//!
//! Runs `cargo xtask setup` (installs only what is missing), builds the npm package, starts
//! `prl-sim` (demo users, its default VM inventory) and `prl-proxy` on localhost, lets the
//! proxy serve the console of `web/` and the package at `/pkg/`, and prints the URL and the
//! demo credentials. It stops, and stops both children, on Ctrl-C, SIGTERM or SIGHUP (a
//! `kill`, a closed terminal, a service manager), and when either child ends. Only SIGKILL of
//! the recipe itself leaves them running (nothing can catch it; `kill -9` the two then too).
//! `--no-build` skips setup and the builds (the release binaries and `dist/npm` must exist).
//!
//! [`Demo`] (start the two, stop them on drop) is also what `cargo xtask screenshots` runs.
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

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
    cmd.stderr(Stdio::inherit());
    let (mut child, rx) = spawn_watching(cmd, tag, prefix, Some(tag))?;
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(rest) => Ok((child, rest)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{tag} did not print `{prefix}...` (see its output above)")
        }
    }
}

/// Starts `cmd` (its stdin and stderr set by the caller) with stdout piped, and a thread that
/// sends the rest of the first stdout line starting with `prefix` and then echoes the later
/// lines with `echo` as their tag (or drops them). One ready-line reader for the demo and the
/// abuse suite.
pub(crate) fn spawn_watching(
    mut cmd: Command,
    name: &str,
    prefix: &'static str,
    echo: Option<&'static str>,
) -> Result<(Child, mpsc::Receiver<String>)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
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
            if let Some(tag) = echo {
                println!("[{tag}] {line}");
            }
        }
    });
    Ok((child, rx))
}

/// The release prl-sim and prl-proxy, built with the lock file.
pub(crate) fn build_release_bins(root: &Path) -> Result<()> {
    exec(Command::new(cargo()).current_dir(root).args([
        "build",
        "--locked",
        "--release",
        "-p",
        "prl-sim",
        "-p",
        "prl-proxy",
    ]))
}

/// Setup and the builds the demo runs from: the npm package (returned) and the release
/// prl-sim and prl-proxy.
pub fn build(root: &Path) -> Result<PathBuf> {
    setup::run(root)?;
    let pkg = wasm::build(root)?;
    build_release_bins(root)?;
    Ok(pkg)
}

/// The running demo: prl-sim and prl-proxy. Dropping it stops both.
pub struct Demo {
    children: Vec<(&'static str, Child)>,
    /// What prl-sim printed after "listening on".
    pub sim_line: String,
    /// What prl-proxy printed after "listening on".
    pub proxy_line: String,
    /// The console's URL, with the simulator and the first demo user in its query string.
    pub url: String,
}

impl Demo {
    /// Starts prl-sim with the demo users and inventory, and prl-proxy serving `web/` and the
    /// package `pkg` (from the release binaries of this workspace's target directory).
    pub fn start(root: &Path, pkg: &Path) -> Result<Demo> {
        let bin = wasm::target_dir(root).join("release");
        for name in ["prl-sim", "prl-proxy"] {
            if !bin.join(name).is_file() {
                bail!(
                    "no {}: build it (`cargo build --release -p {name}`) or run without --no-build",
                    bin.join(name).display()
                );
            }
        }
        if !pkg.join("index.js").is_file() {
            bail!(
                "no {}: run `cargo xtask build-wasm` or run without --no-build",
                pkg.join("index.js").display()
            );
        }
        let sim_addr = free_addr(SIM_ADDR)?;
        let mut sim_cmd = Command::new(bin.join("prl-sim"));
        sim_cmd.arg("--listen").arg(sim_addr.to_string());
        sim_cmd.args(["--product-version", "prl-sim demo"]);
        // Every session starts a simulated task (2 minutes, a progress event a second), so a
        // lost session leaves one to re-attach.
        sim_cmd.args(["--task-on-login", "120:1000"]);
        // The simulator's default inventory (four VMs); a power operation takes a second, so
        // the console shows it under way (the tests' default is 50 ms).
        sim_cmd.args(["--transition-ms", "all=1000"]);
        for (user, password) in DEMO_USERS {
            sim_cmd.arg("--user").arg(format!("{user}:{password}"));
        }
        let (sim, sim_line) = start(sim_cmd, "prl-sim listening on ", "prl-sim")?;
        let mut demo = Demo {
            children: vec![("prl-sim", sim)],
            sim_line,
            proxy_line: String::new(),
            url: String::new(),
        };
        let proxy_addr = free_addr(PROXY_ADDR)?;
        let dir = wasm::target_dir(root).join("demo");
        fs::create_dir_all(&dir)?;
        let config = dir.join("prl-proxy.toml");
        fs::write(
            &config,
            proxy_config(proxy_addr, sim_addr, &root.join("web"), pkg),
        )?;
        let mut proxy_cmd = Command::new(bin.join("prl-proxy"));
        proxy_cmd.arg("--config").arg(&config);
        // On failure `demo` is dropped: the simulator stops.
        let (proxy, proxy_line) = start(proxy_cmd, "prl-proxy listening on ", "prl-proxy")?;
        demo.children.push(("prl-proxy", proxy));
        let http = proxy_line
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        demo.url = format!(
            "{}/?host={}&port={}&user={}",
            http.trim_end_matches('/'),
            sim_addr.ip(),
            sim_addr.port(),
            DEMO_USERS[0].0
        );
        demo.proxy_line = proxy_line;
        Ok(demo)
    }

    /// The process ids of prl-sim and prl-proxy.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children.iter().map(|(n, c)| (*n, c.id())).collect()
    }

    /// The first child that has ended, and how.
    fn ended(&mut self) -> Result<Option<(&'static str, ExitStatus)>> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                return Ok(Some((*name, status)));
            }
        }
        Ok(None)
    }

    /// Stops both: SIGTERM (they close their listeners and sessions), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                // `kill(1)`: std has no SIGTERM, and this crate has no unsafe code.
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A channel that receives the name of the first SIGINT, SIGTERM or SIGHUP this process gets
/// from now on: those no longer end it, so it can stop its children first.
fn stop_signals() -> Result<mpsc::Receiver<&'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before the children start: no window in which a signal kills us alone.
    let (mut int, mut term, mut hup) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let name = rt.block_on(async {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            }
        });
        let _ = tx.send(name);
    });
    Ok(rx)
}

/// `cargo xtask demo [--no-build]`.
pub fn run(root: &Path, build_first: bool) -> Result<()> {
    let signals = stop_signals()?;
    let pkg = if build_first {
        build(root)?
    } else {
        root.join(wasm::OUT_DIR)
    };
    let mut demo = Demo::start(root, &pkg)?;
    let pids = demo.pids();
    println!();
    println!("prl-web demo is running");
    println!("  simulator: {} (pid {})", demo.sim_line, pids[0].1);
    println!("  proxy:     {} (pid {})", demo.proxy_line, pids[1].1);
    println!();
    println!("  open  {}", demo.url);
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
    println!("  Ctrl-C (or SIGTERM, SIGHUP) stops everything.");
    let _ = std::io::stdout().flush();

    // A stop signal, or whichever child ends first, stops the other.
    loop {
        match signals.recv_timeout(Duration::from_millis(200)) {
            Ok(name) => {
                demo.stop();
                println!("prl-web demo stopped ({name})");
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the signal watcher ended"),
        }
        if let Some((name, status)) = demo.ended()? {
            demo.stop();
            if stopped_on_request(&status) {
                println!("prl-web demo stopped");
                return Ok(());
            }
            bail!("{name} exited ({status}); the demo stopped");
        }
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
