//! Memory and CPU at scale, and the slow consumer: real processes on loopback.
//!
//! - [`memory_run`]: the `prl-proxy` binary in front of several `prl-sim` processes (each
//!   simulator holds at most [`SESSIONS_PER_SIM`] connections, its own cap being 1024);
//!   browsers (this process) connect from many loopback addresses `127.1.x.y`, at most
//!   [`SESSIONS_PER_SOURCE`] each, so the proxy's per-address caps stay at their defaults; each
//!   logs in and then idles, answering the proxy's pings, while the proxy and the simulators
//!   exchange their 10 s heartbeats. At each checkpoint the proxy's RSS growth since the
//!   warm-up is divided by the sessions held; at the last, the proxy's CPU time over an idle
//!   window gives its idle CPU.
//! - [`peer_memory_run`]: the same for a WebSocket tunnel (websockify, wstunnel) in front of
//!   one simulator, its clients speaking IOService through it; memory is the proportional set
//!   size (PSS) of the tunnel's process tree, since websockify forks per connection.
//! - [`slow_consumer_run`]: browsers that start a streaming task and never read again; the
//!   proxy's RSS is sampled until it stops growing.
//!
//! Every wait is bounded; every loop runs a bounded number of times.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prl_protocol::handshake::SecurityLevel;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::peers::{Peer, PeerKind};
use crate::{BenchError, BrowserSession, DirectSession, ProxyEndpoint, PASSWORD, USER};

/// Sessions per simulator process (below prl-sim's own cap of 1024 connections).
pub const SESSIONS_PER_SIM: usize = 900;
/// Browsers per loopback source address (below the proxy's default per-address cap of 64).
pub const SESSIONS_PER_SOURCE: usize = 50;
/// Logins in flight at once.
const CONCURRENCY: usize = 24;
/// Warm-up sessions opened before the baseline RSS is read (lazily built state: TLS
/// contexts, metric families, allocator arenas, the runtime's slabs).
const WARM_UP: usize = 20;
/// Longest wait for a child process to print its address.
const START_WAIT: Duration = Duration::from_secs(30);

/// The programs a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `prl-proxy`.
    pub proxy: PathBuf,
    /// `prl-sim`.
    pub sim: PathBuf,
}

/// Raises the soft limit on open files to the hard limit (the proxy holds two descriptors
/// per session; the children inherit the limit). Returns the new soft limit.
pub fn raise_open_files_limit() -> Result<u64, BenchError> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)?;
    Ok(hard)
}

/// Loopback source address number `i` (`127.1.x.y`, never `.0` or `.255`).
pub fn source_address(i: usize) -> IpAddr {
    let x = (i / 250) % 250;
    let y = i % 250 + 1;
    IpAddr::V4(Ipv4Addr::new(127, 1, x as u8, y as u8))
}

/// Resident set size of a process, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Proportional set size of a process, KiB (`smaps_rollup`).
fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The parent of a process (`/proc/PID/stat` field 4).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and all its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    // Bounded: each pass adds a generation; process trees here are a few levels deep.
    for _ in 0..8 {
        let before = tree.len();
        for p in &all {
            if !tree.contains(p) && parent_of(*p).is_some_and(|pp| tree.contains(&pp)) {
                tree.push(*p);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    tree
}

/// PSS of `pid` and its descendants, KiB: what a process tree adds to the machine's memory,
/// shared pages counted once.
pub fn tree_pss_kib(pid: u32) -> u64 {
    process_tree(pid).into_iter().filter_map(pss_kib).sum()
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime(11) stime(12).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`; 100 on Linux for every architecture we run on).
const CLK_TCK: f64 = 100.0;

/// The 1-minute load average now.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads a child's stdout until a line starting with `prefix`; returns the rest of it.
async fn ready_line(child: &mut Child, prefix: &str) -> Result<String, BenchError> {
    let stdout = child
        .stdout
        .take()
        .ok_or(BenchError::Closed("child stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(START_WAIT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| BenchError::Timeout(START_WAIT, "a child's ready line"))??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found.ok_or(BenchError::Closed("a child exited before its ready line"))
}

/// `prl-sim` processes, each on its own loopback address (killed when dropped).
#[derive(Debug)]
pub struct SimFleet {
    children: Vec<Child>,
    /// Their listening addresses.
    pub addrs: Vec<SocketAddr>,
}

impl SimFleet {
    /// Starts `n` simulators with [`USER`], 10 s heartbeats (the default) and room for 64
    /// logins in progress each.
    pub async fn start(program: &Path, n: usize) -> Result<SimFleet, BenchError> {
        let mut fleet = SimFleet {
            children: Vec::new(),
            addrs: Vec::new(),
        };
        for i in 0..n {
            let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1 + i as u8)), 0);
            let mut child = Command::new(program)
                .arg("--listen")
                .arg(listen.to_string())
                .arg("--user")
                .arg(format!("{USER}:{PASSWORD}"))
                .arg("--max-logons")
                .arg("64")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let line = ready_line(&mut child, "prl-sim listening on tcp://").await?;
            let addr = line.parse().map_err(|_| BenchError::Unexpected {
                what: "prl-sim address",
                detail: line.clone(),
            })?;
            fleet.children.push(child);
            fleet.addrs.push(addr);
        }
        Ok(fleet)
    }

    /// The proxy target name of simulator `i`.
    pub fn target(i: usize) -> String {
        format!("sim{i}")
    }
}

/// Runs the proxy under this command (a heap profiler) when set.
pub const PROFILE_WRAP_ENV: &str = "PRL_LOAD_PROXY_WRAP";

/// A `prl-proxy` process (killed when dropped; under a profiler, stopped with SIGTERM so that
/// the profiler finishes its file).
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    /// The proxy binary, when it runs under a profiler (`child` is then the profiler).
    profiled: Option<PathBuf>,
    _dir: tempfile::TempDir,
    /// Its pid.
    pub pid: u32,
    /// How browsers reach it.
    pub endpoint: ProxyEndpoint,
}

impl ProxyProcess {
    /// Starts the proxy in front of `sims` (targets `sim0`, `sim1`, ...), for `sessions`
    /// browsers, over `wss://` (a fresh self-signed certificate) or `ws://`. The login
    /// throttles are opened wide (thousands of logins a minute as one user); every other
    /// limit keeps its default unless `extra` (TOML lines of `[limits]`) says otherwise.
    pub async fn start(
        program: &Path,
        sims: &[SocketAddr],
        sessions: usize,
        wss: bool,
        extra: &str,
    ) -> Result<ProxyProcess, BenchError> {
        let dir = tempfile::tempdir()?;
        let cap = sessions + WARM_UP + 100;
        let mut toml = format!(
            "[limits]\nmax_connections = {cap}\nlogin_burst_per_ip = 1000000\n\
             login_per_minute_per_ip = 1000000\nlogin_burst_per_user = 1000000\n\
             login_per_minute_per_user = 1000000\n{extra}\n[log]\nlevel = \"warn\"\n"
        );
        let mut pem = None;
        if wss {
            let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            let cert = dir.path().join("proxy.crt");
            let key = dir.path().join("proxy.key");
            std::fs::write(&cert, ck.cert.pem())?;
            std::fs::write(&key, ck.signing_key.serialize_pem())?;
            toml.push_str(&format!(
                "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ));
            pem = Some(ck.cert.pem());
        }
        for (i, a) in sims.iter().enumerate() {
            toml.push_str(&format!(
                "[[policy.target]]\nname = \"{}\"\nhost = \"{}\"\nport = {}\n",
                SimFleet::target(i),
                a.ip(),
                a.port()
            ));
        }
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, toml)?;
        // A profiler to run the proxy under (`PROFILE_WRAP_ENV`, e.g. `heaptrack -o FILE`):
        // for finding where memory goes; the RSS figures are then the profiler's.
        let wrap = std::env::var(PROFILE_WRAP_ENV).unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(profiler) => {
                let mut c = Command::new(profiler);
                c.args(words).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = command
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or(BenchError::Closed("prl-proxy"))?;
        let url = ready_line(&mut child, "prl-proxy listening on ").await?;
        let addr: SocketAddr = url
            .split("://")
            .nth(1)
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .ok_or_else(|| BenchError::Unexpected {
                what: "prl-proxy address",
                detail: url.clone(),
            })?;
        let endpoint = match &pem {
            Some(pem) => ProxyEndpoint::wss(addr, pem)?,
            None => ProxyEndpoint::ws(addr),
        };
        Ok(ProxyProcess {
            child,
            profiled: (!wrap.trim().is_empty()).then(|| program.to_path_buf()),
            _dir: dir,
            pid,
            endpoint,
        })
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let Some(program) = &self.profiled else {
            return;
        };
        // The profiled proxy is a child of the profiler's script: SIGTERM it by pid (it
        // shuts down and the profiler writes its file); the script is killed after.
        let exe = std::fs::canonicalize(program).ok();
        for pid in process_tree(self.pid) {
            let this = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if pid != self.pid && this.is_some() && this == exe {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

/// Waits until `read` gives two samples in a row within 0.5 % of each other (at most 20 s),
/// returning the last: memory settles after a ramp (allocator, lazily freed buffers).
async fn settled(mut read: impl FnMut() -> Option<u64>) -> Option<u64> {
    let mut last = read()?;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read()?;
        if now.abs_diff(last) * 200 <= last.max(1) {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

/// One checkpoint of an idle-memory run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryPoint {
    /// Sessions held (logged in, idle).
    pub sessions: usize,
    /// Memory of the measured process (or tree) after the warm-up, KiB.
    pub base_kib: u64,
    /// Memory now, KiB.
    pub now_kib: u64,
    /// `(now - base) / sessions`.
    pub per_session_kib: f64,
}

/// An idle-memory run of one configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryRun {
    /// `prl-proxy ws`, `prl-proxy wss`, `websockify`, `wstunnel`.
    pub path: String,
    /// `LOW`, `HIGH`.
    pub level: String,
    /// `rss` (one process) or `pss` (a process tree).
    pub metric: String,
    /// One entry per checkpoint.
    pub points: Vec<MemoryPoint>,
    /// CPU of the measured process at the last checkpoint while idle, % of one core.
    pub idle_cpu_percent: Option<f64>,
    /// The idle window it was measured over, seconds.
    pub idle_window_s: f64,
    /// Simulator processes.
    pub sims: usize,
    /// Loopback source addresses used by the browsers.
    pub sources: usize,
    /// 1-minute load average at the start and the end of the run.
    pub load: (f64, f64),
}

/// The level's report name.
pub fn level_name(level: SecurityLevel) -> &'static str {
    match level {
        SecurityLevel::Low => "LOW",
        SecurityLevel::Normal => "NORMAL",
        SecurityLevel::High => "HIGH",
    }
}

/// Idle sessions held by reader tasks until [`Holder::release`].
struct Holder {
    stop: watch::Sender<bool>,
    tasks: JoinSet<Result<(), BenchError>>,
    /// Sessions whose reader ended early (closed by the proxy, or an error).
    lost: Arc<AtomicUsize>,
}

impl Holder {
    fn new() -> Holder {
        Holder {
            stop: watch::channel(false).0,
            tasks: JoinSet::new(),
            lost: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn hold_browser(&mut self, mut b: BrowserSession) {
        let mut stop = self.stop.subscribe();
        let lost = Arc::clone(&self.lost);
        self.tasks.spawn(async move {
            let r = b
                .idle_until(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if r.is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            r
        });
    }

    fn hold_direct(&mut self, d: DirectSession) {
        let mut stop = self.stop.subscribe();
        self.tasks.spawn(async move {
            // The connection's own task reads (heartbeats, pings); hold it until the end.
            let _ = stop.wait_for(|s| *s).await;
            drop(d);
            Ok(())
        });
    }

    fn lost(&self) -> usize {
        self.lost.load(Ordering::Relaxed)
    }

    async fn release(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

/// The source address of browser `i` of `total`: round robin over `total / SESSIONS_PER_SOURCE`
/// addresses, so that the logins in flight at once come from different addresses (the proxy
/// lets one address have 8 connections before `open`).
fn browser_source(i: usize, total: usize) -> IpAddr {
    source_address(i % source_count(total))
}

/// Source addresses for `total` browsers: at most [`SESSIONS_PER_SOURCE`] each, and at least
/// one per login in flight.
fn source_count(total: usize) -> usize {
    total.div_ceil(SESSIONS_PER_SOURCE).max(CONCURRENCY)
}

/// Opens browser sessions `range` (of `total`) through `proxy` (source address and simulator
/// by index), logged in, `CONCURRENCY` at a time; hands each to `holder`.
async fn open_browsers(
    proxy: &ProxyEndpoint,
    sims: usize,
    level: SecurityLevel,
    range: std::ops::Range<usize>,
    total: usize,
    holder: &mut Holder,
) -> Result<(), BenchError> {
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut opening = JoinSet::new();
    for i in range {
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .map_err(|_| BenchError::Closed("semaphore"))?;
        let endpoint = proxy.from_source(browser_source(i, total));
        let target = SimFleet::target(i % sims.max(1));
        opening.spawn(async move {
            let mut b = BrowserSession::open(&endpoint, &target, level).await?;
            b.login().await?;
            drop(permit);
            Ok::<_, BenchError>(b)
        });
        while let Some(done) = opening.try_join_next() {
            holder.hold_browser(done.map_err(|e| BenchError::Unexpected {
                what: "open task",
                detail: e.to_string(),
            })??);
        }
    }
    while let Some(done) = opening.join_next().await {
        holder.hold_browser(done.map_err(|e| BenchError::Unexpected {
            what: "open task",
            detail: e.to_string(),
        })??);
    }
    Ok(())
}

/// Opens IOService connections `range` through a tunnel (source address by index), logged
/// in, one after the other; hands each to `holder`.
async fn open_tunnels(
    peer: &Peer,
    level: SecurityLevel,
    range: std::ops::Range<usize>,
    holder: &mut Holder,
) -> Result<(), BenchError> {
    for i in range {
        let source = Some(source_address(i / SESSIONS_PER_SOURCE));
        let mut d = DirectSession::over_tunnel(peer, source, level, true).await?;
        d.login().await?;
        holder.hold_direct(d);
    }
    Ok(())
}

/// What a memory run measures.
#[derive(Debug, Clone)]
pub struct MemorySpec {
    /// Security level toward the service.
    pub level: SecurityLevel,
    /// `wss://` between browsers and the proxy.
    pub wss: bool,
    /// Session counts at which memory is read, ascending.
    pub checkpoints: Vec<usize>,
    /// The idle window for the CPU figure at the last checkpoint.
    pub idle_window: Duration,
}

/// The idle-memory run of prl-proxy (module docs).
pub async fn memory_run(bins: &Binaries, spec: &MemorySpec) -> Result<MemoryRun, BenchError> {
    let load_start = load_average().unwrap_or(0.0);
    let max = spec.checkpoints.iter().copied().max().unwrap_or(0);
    let n_sims = max.div_ceil(SESSIONS_PER_SIM).max(1);
    let fleet = SimFleet::start(&bins.sim, n_sims).await?;
    let mut proxy = ProxyProcess::start(&bins.proxy, &fleet.addrs, max, spec.wss, "").await?;
    let pid = proxy.pid;
    let mut holder = Holder::new();
    // Warm-up sessions (among the first addresses; the sessions measured come from all).
    let total = max + WARM_UP;
    open_browsers(
        &proxy.endpoint,
        n_sims,
        spec.level,
        max..total,
        total,
        &mut holder,
    )
    .await?;
    let base = settled(|| rss_kib(pid))
        .await
        .ok_or(BenchError::Closed("prl-proxy"))?;
    let mut points = Vec::new();
    let mut opened = 0;
    let mut idle_cpu = None;
    for &n in &spec.checkpoints {
        open_browsers(
            &proxy.endpoint,
            n_sims,
            spec.level,
            opened..n,
            total,
            &mut holder,
        )
        .await?;
        opened = n;
        let now = settled(|| rss_kib(pid))
            .await
            .ok_or(BenchError::Closed("prl-proxy"))?;
        if holder.lost() > 0 || !proxy.running() {
            return Err(BenchError::Unexpected {
                what: "idle sessions",
                detail: format!("{} sessions were closed while idle", holder.lost()),
            });
        }
        points.push(MemoryPoint {
            sessions: n,
            base_kib: base,
            now_kib: now,
            per_session_kib: now.saturating_sub(base) as f64 / n as f64,
        });
    }
    if !spec.idle_window.is_zero() {
        let t0 = cpu_ticks(pid).ok_or(BenchError::Closed("prl-proxy"))?;
        let start = Instant::now();
        tokio::time::sleep(spec.idle_window).await;
        let t1 = cpu_ticks(pid).ok_or(BenchError::Closed("prl-proxy"))?;
        let secs = start.elapsed().as_secs_f64();
        idle_cpu = Some((t1.saturating_sub(t0)) as f64 / CLK_TCK / secs * 100.0);
        if holder.lost() > 0 {
            return Err(BenchError::Unexpected {
                what: "idle sessions",
                detail: format!("{} sessions were closed while idle", holder.lost()),
            });
        }
    }
    holder.release().await;
    drop(proxy);
    drop(fleet);
    Ok(MemoryRun {
        path: format!("prl-proxy {}", if spec.wss { "wss" } else { "ws" }),
        level: level_name(spec.level).into(),
        metric: "rss".into(),
        points,
        idle_cpu_percent: idle_cpu,
        idle_window_s: spec.idle_window.as_secs_f64(),
        sims: n_sims,
        sources: source_count(total),
        load: (load_start, load_average().unwrap_or(0.0)),
    })
}

/// The idle-memory run of a tunnel peer: `n` idle logged-in IOService connections through it
/// (module docs); memory is the PSS of its process tree.
pub async fn peer_memory_run(
    bins: &Binaries,
    kind: PeerKind,
    program: &Path,
    n: usize,
    level: SecurityLevel,
) -> Result<MemoryRun, BenchError> {
    let load_start = load_average().unwrap_or(0.0);
    let fleet = SimFleet::start(&bins.sim, 1).await?;
    let peer = Peer::start(kind, program, fleet.addrs[0]).await?;
    let pid = peer.pid().ok_or(BenchError::Closed("peer"))?;
    let mut holder = Holder::new();
    open_tunnels(&peer, level, n..n + WARM_UP, &mut holder).await?;
    let base = settled(|| Some(tree_pss_kib(pid)))
        .await
        .ok_or(BenchError::Closed("peer"))?;
    open_tunnels(&peer, level, 0..n, &mut holder).await?;
    let now = settled(|| Some(tree_pss_kib(pid)))
        .await
        .ok_or(BenchError::Closed("peer"))?;
    holder.release().await;
    drop(peer);
    drop(fleet);
    Ok(MemoryRun {
        path: kind.name().into(),
        level: level_name(level).into(),
        metric: "pss".into(),
        points: vec![MemoryPoint {
            sessions: n,
            base_kib: base,
            now_kib: now,
            per_session_kib: now.saturating_sub(base) as f64 / n as f64,
        }],
        idle_cpu_percent: None,
        idle_window_s: 0.0,
        sims: 1,
        sources: n.div_ceil(SESSIONS_PER_SOURCE) + 1,
        load: (load_start, load_average().unwrap_or(0.0)),
    })
}

/// The same measurement for prl-proxy at `n` sessions as a peer run gets (PSS of the proxy,
/// one simulator), so that the two are compared like for like.
pub async fn proxy_pss_run(
    bins: &Binaries,
    n: usize,
    level: SecurityLevel,
) -> Result<MemoryRun, BenchError> {
    let load_start = load_average().unwrap_or(0.0);
    let fleet = SimFleet::start(&bins.sim, 1).await?;
    let proxy = ProxyProcess::start(&bins.proxy, &fleet.addrs, n, false, "").await?;
    let pid = proxy.pid;
    let mut holder = Holder::new();
    let total = n + WARM_UP;
    open_browsers(&proxy.endpoint, 1, level, n..total, total, &mut holder).await?;
    let base = settled(|| Some(tree_pss_kib(pid)))
        .await
        .ok_or(BenchError::Closed("prl-proxy"))?;
    open_browsers(&proxy.endpoint, 1, level, 0..n, total, &mut holder).await?;
    let now = settled(|| Some(tree_pss_kib(pid)))
        .await
        .ok_or(BenchError::Closed("prl-proxy"))?;
    let lost = holder.lost();
    holder.release().await;
    drop(proxy);
    drop(fleet);
    if lost > 0 {
        return Err(BenchError::Unexpected {
            what: "idle sessions",
            detail: format!("{lost} sessions were closed while idle"),
        });
    }
    Ok(MemoryRun {
        path: "prl-proxy ws".into(),
        level: level_name(level).into(),
        metric: "pss".into(),
        points: vec![MemoryPoint {
            sessions: n,
            base_kib: base,
            now_kib: now,
            per_session_kib: now.saturating_sub(base) as f64 / n as f64,
        }],
        idle_cpu_percent: None,
        idle_window_s: 0.0,
        sims: 1,
        sources: source_count(n + WARM_UP),
        load: (load_start, load_average().unwrap_or(0.0)),
    })
}

/// The slow-consumer run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowConsumer {
    /// Browsers that started a task and stopped reading.
    pub browsers: usize,
    /// Events each task streams.
    pub events: u32,
    /// Proxy RSS before the tasks started, KiB.
    pub base_kib: u64,
    /// Highest RSS seen, KiB.
    pub peak_kib: u64,
    /// RSS at the end of the sampling window, KiB.
    pub end_kib: u64,
    /// `(peak - base) / browsers`.
    pub peak_per_browser_kib: f64,
    /// The configured bound per session, KiB (see [`slow_consumer_bound_kib`]).
    pub bound_per_browser_kib: f64,
    /// Seconds until the last new peak (the plateau starts there).
    pub plateau_after_s: f64,
    /// Sampling window, seconds.
    pub window_s: f64,
    /// RSS samples (seconds since start, KiB), every 250 ms.
    pub samples: Vec<(f64, u64)>,
}

/// Size of one progress event of the simulator's task on the wire (`sim_task_events_are_a_few_hundred_bytes_on_the_wire`).
pub const EVENT_BYTES: f64 = 723.0;

/// The configured bound of what one stalled session holds in the proxy with the default
/// limits, for events of [`EVENT_BYTES`], KiB: the queue toward the browser (`queue_packages`
/// 64, `queue_bytes` 4 MiB: the package count binds first), the batch the writer has taken
/// from it and not yet written (at most 64 KiB and one frame, plus tungstenite's copy of
/// the frame being written), the replay ring (`buffer_packages` 512, `buffer_bytes` 2 MiB) and
/// what the upstream connection decoded from its last socket read (at most 16 KiB, one TLS
/// record's worth, and one package). Kernel socket buffers are not process memory.
pub fn slow_consumer_bound_kib() -> f64 {
    let queue = (64.0 * EVENT_BYTES).min(4.0 * 1024.0 * 1024.0);
    let batch = 64.0 * 1024.0 + 2.0 * EVENT_BYTES;
    let ring = (512.0 * EVENT_BYTES).min(2.0 * 1024.0 * 1024.0);
    let read = 16.0 * 1024.0 + EVENT_BYTES;
    (queue + batch + ring + read) / 1024.0
}

/// The slow-consumer run (module docs): `browsers` sessions each start task 9001 with
/// `events` unpaced events and never read again; the proxy's RSS is sampled for `window`.
pub async fn slow_consumer_run(
    bins: &Binaries,
    browsers: usize,
    events: u32,
    window: Duration,
) -> Result<SlowConsumer, BenchError> {
    let fleet = SimFleet::start(&bins.sim, 1).await?;
    let proxy = ProxyProcess::start(&bins.proxy, &fleet.addrs, browsers, false, "").await?;
    let pid = proxy.pid;
    let mut sessions = Vec::new();
    for i in 0..browsers {
        let endpoint = proxy.endpoint.from_source(browser_source(i, browsers));
        let mut b =
            BrowserSession::open(&endpoint, &SimFleet::target(0), SecurityLevel::Low).await?;
        b.login().await?;
        sessions.push(b);
    }
    let base = settled(|| rss_kib(pid))
        .await
        .ok_or(BenchError::Closed("prl-proxy"))?;
    for b in &mut sessions {
        b.start_task_and_stall(events).await?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    let (mut peak, mut peak_at) = (base, 0.0);
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rss = rss_kib(pid).ok_or(BenchError::Closed("prl-proxy"))?;
        let t = start.elapsed().as_secs_f64();
        samples.push((t, rss));
        if rss > peak {
            peak = rss;
            peak_at = t;
        }
    }
    let end = samples.last().map_or(base, |s| s.1);
    drop(sessions);
    drop(proxy);
    drop(fleet);
    Ok(SlowConsumer {
        browsers,
        events,
        base_kib: base,
        peak_kib: peak,
        end_kib: end,
        peak_per_browser_kib: peak.saturating_sub(base) as f64 / browsers as f64,
        bound_per_browser_kib: slow_consumer_bound_kib(),
        plateau_after_s: peak_at,
        window_s: window.as_secs_f64(),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_loopback_and_distinct() {
        let addrs: Vec<_> = (0..600).map(source_address).collect();
        assert!(addrs.iter().all(|a| a.is_loopback()));
        let mut sorted = addrs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), addrs.len());
        assert!(addrs.iter().all(|a| match a {
            IpAddr::V4(v4) => v4.octets()[3] != 0 && v4.octets()[3] != 255,
            IpAddr::V6(_) => false,
        }));
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(tree_pss_kib(me) > 0);
        assert!(cpu_ticks(me).is_some());
        assert_eq!(process_tree(me)[0], me);
        assert!(parent_of(me).is_some());
    }

    #[test]
    fn the_slow_consumer_bound_is_the_queue_the_batch_the_ring_and_the_last_read() {
        let kib = slow_consumer_bound_kib();
        let expected = ((64.0 + 2.0 + 512.0 + 1.0) * EVENT_BYTES + 80.0 * 1024.0) / 1024.0;
        assert!((kib - expected).abs() < 1e-9, "{kib} {expected}");
    }
}
