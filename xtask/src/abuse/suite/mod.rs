//! The network part of `cargo xtask abuse`, run inside a private network namespace (only a
//! loopback interface exists, so nothing the proxy is tricked into can leave the machine) with
//! a private `/etc/hosts`: release prl-sim and prl-proxy started here, attacked from outside.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use futures_util::SinkExt;
use prl_protocol::codes::cmd;
use prl_protocol::commands::simple_command;
use prl_protocol::{uuid_string, ErrorCode, Uuid};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, Answer, Outcome, Upgrade};
use super::helpers::metric;
use super::procs::{self, Proc};
use super::report::Report;
use super::Plan;

mod cswsh;
mod floods;
mod open_relay;
mod protocol;
mod secrets;
mod service;

pub use cswsh::cswsh;
pub use floods::floods;
pub use open_relay::{open_relay, HOSTS};
pub use protocol::protocol_abuse;
pub use secrets::{scan_logs, tickets};
pub use service::{faults, hostile_service};

/// The proxy's address in the namespace.
pub const PROXY: &str = "127.0.0.1:18080";
/// The browser part's proxy (its own process) and the forwarder in front of it.
pub const BROWSER_PROXY: &str = "127.0.0.1:18090";
pub const BROWSER_FORWARDER_PORT: u16 = 18091;
/// The simulator every allowed target leads to.
pub const SIM: &str = "127.0.0.2:64000";
/// Fault-injecting simulators: 127.0.0.2:64101...
pub const FAULT_BASE_PORT: u16 = 64101;
/// The simulator killed mid-login.
pub const KILL_SIM: &str = "127.0.0.2:64200";
/// The browser part's simulator with a numbered task per session.
pub const TASK_SIM: &str = "127.0.0.2:64300";
/// The browser part's slow-login simulator (killed mid-login).
pub const SLOW_SIM: &str = "127.0.0.2:64301";
/// The browser part's simulator with a slow numbered task (for the drop beyond the window).
pub const LONG_TASK_SIM: &str = "127.0.0.2:64302";
pub const FAULTS: &[&str] = &[
    "refuse",
    "close-on-accept",
    "stall-handshake",
    "stall-tls",
    "delay=1500",
    "drop-after=1",
    "garbage",
    "bad-crc",
];
/// Users of every simulator: alice (the victim) and legit users u0..u63.
const LEGIT_USERS: usize = 64;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
}

/// A loopback client address of a group (1..=250 hosts per group).
fn src(group: u8, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        10 + group,
        (n / 250) as u8,
        (n % 250) as u8 + 1,
    ))
}

/// Everything secret the run handled, for the log scan.
#[derive(Debug, Default)]
pub struct Secrets {
    pub passwords: Vec<String>,
    pub uuids: Vec<Uuid>,
    pub tokens: Vec<String>,
    pub tickets: Vec<String>,
}

pub struct Ctx {
    pub plan: Plan,
    pub work: PathBuf,
    pub bin: PathBuf,
    pub proxy: Proc,
    pub proxy_addr: SocketAddr,
    pub own_origin: String,
    pub users: Vec<(String, String)>,
    pub secrets: Arc<Mutex<Secrets>>,
    pub report: Report,
    pub next_legit: usize,
    pub config: PathBuf,
    pub sims: Vec<Proc>,
}

impl Ctx {
    fn user(&self, n: usize) -> (String, String) {
        self.users[1 + n % LEGIT_USERS].clone()
    }

    async fn metrics(&self) -> String {
        let (status, body) = get(self.proxy_addr, "/metrics").await;
        if status == 200 {
            body
        } else {
            String::new()
        }
    }

    async fn healthy(&self) -> bool {
        get(self.proxy_addr, "/healthz").await.0 == 200
    }

    fn remember_uuid(&self, u: Uuid) {
        if let Ok(mut s) = self.secrets.lock() {
            s.uuids.push(u);
        }
    }

    /// A first message from `from` with the run's own Origin; an opened connection's UUID and
    /// resume token are remembered for the log scan.
    async fn first_message(&self, from: IpAddr, first: &str) -> Answer {
        let answer =
            client::first_message(from, self.proxy_addr, Some(&self.own_origin), first).await;
        if let Answer::Opened { conn, token, .. } = &answer {
            self.remember_uuid(*conn);
            self.remember_token(token);
        }
        answer
    }

    fn remember_token(&self, t: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.tokens.push(t.to_string());
        }
    }

    /// A full legitimate login from a fresh client address: upgrade, open, login; the time
    /// it took or what failed.
    async fn legit_login(&mut self) -> std::result::Result<Duration, String> {
        let n = self.next_legit;
        self.next_legit += 1;
        let from = src(1, n);
        let (user, password) = self.user(n);
        let t0 = Instant::now();
        let first = client::open_json(client::open_request("sim", 0));
        let answer = self.first_message(from, &first).await;
        let Answer::Opened { mut ws, conn, .. } = answer else {
            return Err(format!("open: {}", answer.label()));
        };
        let (job, p) = client::login_package(conn, &user, &password, "");
        self.remember_uuid(job);
        match client::request(&mut ws, &p, job, client::STEP).await {
            Outcome::Reply(r) if r.code == ErrorCode::SUCCESS => {
                let took = t0.elapsed();
                // A browser leaving for good closes normally (without a close code the proxy
                // takes it for a lost connection and keeps the session for a resume).
                // The stream's own close (with a frame), not SinkExt's on the Box: with the
                // Redis client in the workspace `Box<Ws>` is a Sink too (futures-sink's alloc
                // feature), and method lookup would stop at the Box.
                let _ = (*ws)
                    .close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    }))
                    .await;
                Ok(took)
            }
            other => Err(format!("login: {}", other.label())),
        }
    }
}

/// A GET from 127.0.0.1; (status, body).
async fn get(proxy: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\n\r\n");
    let Ok(mut s) = client::tcp_from(ip("127.0.0.1"), proxy).await else {
        return (0, String::new());
    };
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `prl_proxy_rejections_total` by reason.
fn rejections(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("prl_proxy_rejections_total{reason=\"") {
            if let Some((reason, value)) = rest.split_once("\"} ") {
                out.insert(reason.to_string(), value.trim().parse().unwrap_or(0.0));
            }
        }
    }
    out
}

/// `prl_proxy_rejections_total` by reason, and the refused / throttled login counters.
fn refusals(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = rejections(metrics);
    for o in ["refused", "throttled"] {
        let v = metric(
            metrics,
            &format!("prl_proxy_logins_total{{outcome=\"{o}\"}}"),
        );
        out.insert(format!("logins {o}"), v);
    }
    out
}

/// Counters that moved between two snapshots, `reason +n` joined.
fn moved(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let mut parts = Vec::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d > 0.0 {
            parts.push(format!("{k} +{d}"));
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The proxy configuration: `proxy/prl-proxy.example.toml` with its example targets replaced
/// by the simulators, listening on `listen`, logging at trace, optional tickets and static
/// files. Every limit keeps the example's (= default) value.
pub fn derive_config(
    example: &str,
    listen: &str,
    origins: &[String],
    ticket_key: Option<&Path>,
    statics: Option<(&Path, &Path)>,
) -> Result<String> {
    let mut doc: toml::Table = example
        .parse()
        .context("proxy/prl-proxy.example.toml does not parse")?;
    let table = |doc: &mut toml::Table, key: &str| -> Result<toml::Table> {
        match doc.remove(key) {
            Some(toml::Value::Table(t)) => Ok(t),
            None => Ok(toml::Table::new()),
            Some(_) => bail!("example config: [{key}] is not a table"),
        }
    };
    let mut server = table(&mut doc, "server")?;
    server.insert("listen".into(), listen.into());
    server.insert(
        "allowed_origins".into(),
        toml::Value::Array(origins.iter().map(|o| o.as_str().into()).collect()),
    );
    doc.insert("server".into(), server.into());

    let mut policy = table(&mut doc, "policy")?;
    let sim = addr(SIM);
    let mut target = toml::Table::new();
    target.insert("name".into(), "sim".into());
    target.insert("host".into(), sim.ip().to_string().into());
    target.insert("port".into(), i64::from(sim.port()).into());
    policy.insert("target".into(), toml::Value::Array(vec![target.into()]));
    let mut ports: Vec<toml::Value> = vec![i64::from(sim.port()).into()];
    ports.extend((0..FAULTS.len() as u16).map(|i| i64::from(FAULT_BASE_PORT + i).into()));
    for extra in [KILL_SIM, TASK_SIM, SLOW_SIM, LONG_TASK_SIM] {
        ports.push(i64::from(addr(extra).port()).into());
    }
    let mut allow = toml::Table::new();
    allow.insert("cidr".into(), format!("{}/32", sim.ip()).into());
    allow.insert("ports".into(), toml::Value::Array(ports));
    policy.insert("allow".into(), toml::Value::Array(vec![allow.into()]));
    doc.insert("policy".into(), policy.into());

    let mut log = table(&mut doc, "log")?;
    log.insert("level".into(), "trace".into());
    doc.insert("log".into(), log.into());

    if let Some(key) = ticket_key {
        let mut tickets = table(&mut doc, "tickets")?;
        tickets.insert("key_file".into(), key.display().to_string().into());
        tickets.insert("required".into(), false.into());
        doc.insert("tickets".into(), tickets.into());
    }
    let mut stat = table(&mut doc, "static")?;
    if let Some((root, pkg)) = statics {
        stat.insert("root".into(), root.display().to_string().into());
        let mut mount = toml::Table::new();
        mount.insert("prefix".into(), "/pkg/".into());
        mount.insert("dir".into(), pkg.display().to_string().into());
        stat.insert("mount".into(), toml::Value::Array(vec![mount.into()]));
    }
    doc.insert("static".into(), stat.into());
    Ok(format!(
        "# Written by `cargo xtask abuse` from proxy/prl-proxy.example.toml: the example's \
         targets replaced by the simulators, trace logs; every limit as in the example.\n{}",
        toml::to_string(&doc)?
    ))
}

/// Starts the simulators and the proxy; the context for every section.
pub async fn start(plan: Plan, root: &Path, bin: &Path, work: &Path) -> Result<Ctx> {
    let mut users = vec![("alice".to_string(), random_secret("alice-pw"))];
    for k in 0..LEGIT_USERS {
        users.push((format!("u{k}"), random_secret(&format!("u{k}-pw"))));
    }
    let specs: Vec<String> = users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    let mut sims = vec![procs::start_sim(
        bin,
        addr(SIM),
        &specs,
        &[],
        &work.join("sim.log"),
    )?];
    for (i, fault) in FAULTS.iter().enumerate() {
        let listen = SocketAddr::new(addr(SIM).ip(), FAULT_BASE_PORT + i as u16);
        let log = work.join(format!("sim-fault-{i}.log"));
        sims.push(procs::start_sim(
            bin,
            listen,
            &specs,
            &["--fault", fault],
            &log,
        )?);
    }
    let example = std::fs::read_to_string(root.join("proxy/prl-proxy.example.toml"))?;
    let key = work.join("ticket.key");
    std::fs::write(&key, random_secret("ticket-key-material-0123456789"))?;
    let proxy_addr = addr(PROXY);
    let own_origin = format!("http://{proxy_addr}");
    // The proxy's own origin only (the example's allow-list is empty = own origin).
    let config_text = derive_config(&example, PROXY, &[], Some(&key), None)?;
    let config = work.join("prl-proxy.toml");
    std::fs::write(&config, config_text)?;
    let proxy = procs::start_proxy(bin, &config, &work.join("proxy.log"))?;
    let secrets = Secrets {
        passwords: users.iter().map(|(_, p)| p.clone()).collect(),
        ..Secrets::default()
    };
    Ok(Ctx {
        plan,
        work: work.to_path_buf(),
        bin: bin.to_path_buf(),
        proxy,
        proxy_addr,
        own_origin,
        users,
        secrets: Arc::new(Mutex::new(secrets)),
        report: Report::default(),
        next_legit: 0,
        config,
        sims,
    })
}

/// A secret of the run: a prefix and 24 random hex digits (from the kernel).
pub fn random_secret(prefix: &str) -> String {
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let id = String::from_utf8_lossy(&bytes).replace('-', "");
    format!("{prefix}-{}", id.trim())
}

/// An opened connection from a fresh address: (ws, connection uuid).
async fn opened(ctx: &mut Ctx, group: u8, n: usize) -> Option<(Box<super::helpers::Ws>, Uuid)> {
    let first = client::open_json(client::open_request("sim", 0));
    match ctx.first_message(src(group, n), &first).await {
        Answer::Opened { ws, conn, .. } => Some((ws, conn)),
        _ => None,
    }
}
