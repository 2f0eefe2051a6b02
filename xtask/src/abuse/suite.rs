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
        let answer =
            client::first_message(from, self.proxy_addr, Some(&self.own_origin), &first).await;
        let Answer::Opened {
            mut ws,
            conn,
            token,
        } = answer
        else {
            return Err(format!("open: {}", answer.label()));
        };
        self.remember_uuid(conn);
        self.remember_token(&token);
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

// ---------------------------------------------------------------------------------------------
// Open relay

/// Canary listeners: every accept is an escape.
struct Canaries {
    accepts: Arc<AtomicU64>,
    hits: Arc<Mutex<Vec<String>>>,
    bound: Vec<SocketAddr>,
}

async fn canaries() -> Canaries {
    let accepts = Arc::new(AtomicU64::new(0));
    let hits = Arc::new(Mutex::new(Vec::new()));
    let mut bound = Vec::new();
    let sim_port = addr(SIM).port();
    let mut spots: Vec<SocketAddr> = Vec::new();
    // The simulator's port on every other local address.
    for a in [
        "127.0.0.1",
        "127.0.0.3",
        "127.1.2.3",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "[::1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
        "[fd00::1]",
    ] {
        spots.push(addr(&format!("{a}:{sim_port}")));
    }
    // Other ports on every address (IPv4 and IPv6 wildcards).
    for port in [1u16, 22, 80, 443, 3306, 6379, 8080, 64001, 65535] {
        spots.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        spots.push(addr(&format!("[::]:{port}")));
    }
    for spot in spots {
        let sock = if spot.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let Ok(sock) = sock else { continue };
        let _ = sock.set_reuseaddr(true);
        if sock.bind(spot).is_err() {
            continue;
        }
        let Ok(listener): std::io::Result<TcpListener> = sock.listen(64) else {
            continue;
        };
        bound.push(spot);
        let (accepts, hits) = (accepts.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((s, peer)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut h) = hits.lock() {
                    h.push(format!(
                        "{} from {peer}",
                        s.local_addr().map(|a| a.to_string()).unwrap_or_default()
                    ));
                }
                drop(s);
            }
        });
    }
    Canaries {
        accepts,
        hits,
        bound,
    }
}

/// One open-relay attempt: a host spelling and port, or a raw first message.
struct Spelling {
    what: &'static str,
    host: String,
    port: u16,
    raw: Option<String>,
    allowed: bool,
}

fn spellings() -> Vec<Spelling> {
    let sim_port = addr(SIM).port();
    let mut out = Vec::new();
    let mut add = |what: &'static str, hosts: &[&str], port: u16| {
        for h in hosts {
            out.push(Spelling {
                what,
                host: (*h).to_string(),
                port,
                raw: None,
                allowed: false,
            });
        }
    };
    add(
        "127/8",
        &[
            "127.0.0.1",
            "127.0.0.3",
            "127.1.2.3",
            "127.255.255.254",
            "127.0.0.1.",
            " 127.0.0.1",
            "127.000.000.001",
        ],
        sim_port,
    );
    add(
        "decimal/hex/octal/short IPv4",
        &[
            "2130706433",
            "2130706435",
            "0x7f000001",
            "0x7F000001",
            "0x7f.1",
            "0x7f.0.0.1",
            "0x7f.0x0.0x0.0x3",
            "0177.0.0.1",
            "0177.1",
            "017700000001",
            "127.1",
            "127.0.1",
            "0127.0.0.1",
            "0x7f.0xff.0xff.0xfe",
        ],
        sim_port,
    );
    add(
        "unspecified",
        &[
            "0.0.0.0",
            "0",
            "0x0",
            "00",
            "0.0.0.0.",
            "::",
            "[::]",
            "0:0:0:0:0:0:0:0",
        ],
        sim_port,
    );
    add(
        "IPv6 loopback",
        &[
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
            "::0:1",
            "[0::1]",
            "0000::0001",
        ],
        sim_port,
    );
    add(
        "IPv4-mapped / -compatible / SIIT",
        &[
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
            "::ffff:7f00:1",
            "::ffff:7f00:3",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "0:0:0:0:0:ffff:7f00:1",
        ],
        sim_port,
    );
    add(
        "NAT64 / 6to4 / Teredo",
        &[
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::",
            "2002:7f00:1::1",
            "2001:0:7f00:1::1",
            "64:ff9b::a9fe:a9fe",
        ],
        sim_port,
    );
    add(
        "link-local, metadata, ULA",
        &[
            "169.254.169.254",
            "169.254.169.254.",
            "2852039166",
            "0xa9fea9fe",
            "0251.0376.0251.0376",
            "169.254.43518",
            "0xa9.0xfe.0xa9.0xfe",
            "169.254.170.2",
            "100.100.100.200",
            "168.63.129.16",
            "169.254.0.1",
            "fe80::1",
            "[fe80::1]",
            "fe80::1%lo",
            "[fe80::1%25lo]",
            "fd00::1",
            "fd00:ec2::254",
            "fc00::1",
        ],
        sim_port,
    );
    add(
        "multicast, broadcast, reserved",
        &["224.0.0.1", "255.255.255.255", "240.0.0.1", "ff02::1"],
        sim_port,
    );
    add(
        "names resolving to denied addresses",
        &[
            "localhost",
            "LOCALHOST",
            "localhost.",
            "LocalHost.",
            "localhost.localdomain",
            "ip6-localhost",
            "ip6-loopback",
            "canary-loopback.test",
            "meta.test",
            "mapped.test",
            "v6loop.test",
            "mixed.test",
            "zero.test",
            "nat64.test",
            "no-such-name.invalid",
        ],
        sim_port,
    );
    for port in [1u16, 22, 80, 443, 8080, 64001, 65535] {
        add(
            "allowed address, port outside the allow-list",
            &["127.0.0.2"],
            port,
        );
    }
    add("named target, another port", &["sim"], 22);
    add("named target, another port", &["SIM"], 64001);
    add(
        "other ports on loopback",
        &["127.0.0.1", "::1", "localhost", "0.0.0.0"],
        80,
    );
    add(
        "malformed hosts",
        &[
            "",
            " ",
            "127.0.0.1:64000",
            "127.0.0.1/32",
            "http://127.0.0.1",
            "127.0.0.1#",
            "127.0.0.1\u{0}",
            "127.0.0.1 evil",
            "user@127.0.0.1",
            "[127.0.0.1]",
            "[::1",
            "::1]",
            "1.2.3.4.5",
            "256.0.0.1",
            "0x100000000",
            "a..b",
            "-leading.test",
            "%31%32%37.0.0.1",
            "127\u{3002}0\u{3002}0\u{3002}1",
            "\u{ff11}\u{ff12}\u{ff17}.0.0.1",
            "127.0.0.1\r\nHost: evil",
            "\\\\127.0.0.1",
            "*.localhost",
            "999999999999999",
        ],
        sim_port,
    );
    let long = "a".repeat(300);
    out.push(Spelling {
        what: "malformed hosts",
        host: long,
        port: sim_port,
        raw: None,
        allowed: false,
    });
    for (what, raw) in [
        (
            "port out of range",
            r#"{"type":"open","version":1,"target":{"host":"127.0.0.2","port":70000},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#,
        ),
        (
            "port out of range",
            r#"{"type":"open","version":1,"target":{"host":"127.0.0.2","port":-1},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#,
        ),
        (
            "host not a string",
            r#"{"type":"open","version":1,"target":{"host":2130706433,"port":64000},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#,
        ),
        (
            "duplicate target",
            r#"{"type":"open","version":1,"target":{"host":"sim","port":0},"target":{"host":"127.0.0.1","port":64000},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#,
        ),
        (
            "local mode (disabled)",
            r#"{"type":"open","version":1,"target":{"host":"127.0.0.1","port":64000},"securityLevel":"low","timeoutMs":3000,"mode":"local"}"#,
        ),
    ] {
        out.push(Spelling {
            what,
            host: String::new(),
            port: 0,
            raw: Some(raw.to_string()),
            allowed: false,
        });
    }
    // Controls: what the policy allows must open (else the figures above prove nothing).
    for (host, port) in [
        ("sim", 0u16),
        ("SIM", sim_port),
        ("127.0.0.2", 0),
        ("127.0.0.2", sim_port),
        ("2130706434", sim_port),
        ("::ffff:127.0.0.2", sim_port),
        ("sim.test", sim_port),
    ] {
        out.push(Spelling {
            what: "control: allowed",
            host: host.to_string(),
            port,
            raw: None,
            allowed: true,
        });
    }
    out
}

/// Names for the private `/etc/hosts` of the namespace.
pub const HOSTS: &str = "\
127.0.0.3 canary-loopback.test
169.254.169.254 meta.test
::ffff:127.0.0.1 mapped.test
::1 v6loop.test
127.0.0.2 mixed.test
127.0.0.3 mixed.test
0.0.0.0 zero.test
64:ff9b::7f00:1 nat64.test
127.0.0.2 sim.test
";

pub async fn open_relay(ctx: &mut Ctx) -> Result<()> {
    let canaries = canaries().await;
    let before = rejections(&ctx.metrics().await);
    let list = spellings();
    let mut rows = String::new();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut controls_failed = Vec::new();
    let mut unexpected_open = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let first = match &s.raw {
            Some(raw) => raw.clone(),
            None => client::open_json(client::open_request(&s.host, s.port)),
        };
        let answer =
            client::first_message(src(2, i), ctx.proxy_addr, Some(&ctx.own_origin), &first).await;
        let label = answer.label();
        if let Answer::Opened { conn, token, .. } = &answer {
            ctx.remember_uuid(*conn);
            ctx.remember_token(token);
        }
        drop(answer);
        *by_outcome.entry(label.clone()).or_default() += 1;
        if s.allowed && label != "opened" {
            controls_failed.push(format!("{:?}:{} -> {label}", s.host, s.port));
        }
        if !s.allowed && label == "opened" {
            unexpected_open.push(format!("{:?}:{}", s.host, s.port));
        }
        let shown = match &s.raw {
            Some(raw) => format!("raw `{}`", raw.replace('|', "\\|")),
            None => format!("`{}`:{}", s.host.escape_debug(), s.port),
        };
        let _ = writeln!(rows, "| {} | {shown} | {label} |", s.what);
    }
    // Every refused attempt was refused before any connect; give a late connect time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rejections(&ctx.metrics().await);
    let escapes = canaries.accepts.load(Ordering::SeqCst);
    let hits = canaries.hits.lock().map(|h| h.clone()).unwrap_or_default();
    let denied = list.iter().filter(|s| !s.allowed).count();
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{} attempts: {} spellings that must be refused and {} controls that must open. \
         Canary listeners on {} address:port pairs (the simulator's port on every other local \
         address, IPv4 and IPv6 wildcards on other ports) counted every accept.\n",
        list.len(),
        denied,
        list.len() - denied,
        canaries.bound.len()
    );
    let _ = writeln!(body, "**Escapes (canary accepts): {escapes}**. Refused spellings that opened: {}. Controls that did not open: {}.\n", unexpected_open.len(), controls_failed.len());
    let _ = writeln!(
        body,
        "Outcomes: {}.\n",
        by_outcome
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        body,
        "Refusals counted (`prl_proxy_rejections_total`): {}.\n",
        moved(&before, &after)
    );
    let _ = writeln!(body, "<details><summary>Every spelling and its outcome</summary>\n\n| kind | host:port | outcome |\n|---|---|---|\n{rows}\n</details>\n");
    ctx.report.figure("open-relay escapes", escapes.to_string());
    ctx.report
        .figure("open-relay spellings", denied.to_string());
    if escapes > 0 {
        ctx.report
            .fail(format!("open relay: {escapes} canary accepts: {hits:?}"));
    }
    if !unexpected_open.is_empty() {
        ctx.report.fail(format!(
            "open relay: denied spellings opened: {unexpected_open:?}"
        ));
    }
    if !controls_failed.is_empty() {
        ctx.report.fail(format!(
            "open relay: controls did not open: {controls_failed:?}"
        ));
    }
    ctx.report.section("Open relay", body);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cross-site WebSocket hijacking

pub async fn cswsh(ctx: &mut Ctx) -> Result<()> {
    let p = ctx.proxy_addr;
    let port = p.port();
    let own = ctx.own_origin.clone();
    let cases: Vec<(String, String)> = vec![
        ("foreign".into(), "Origin: http://evil.example\r\n".into()),
        (
            "foreign https".into(),
            "Origin: https://evil.example\r\n".into(),
        ),
        ("missing".into(), String::new()),
        ("null".into(), "Origin: null\r\n".into()),
        ("empty".into(), "Origin: \r\n".into()),
        (
            "look-alike: suffix".into(),
            format!("Origin: http://127.0.0.1:{port}.evil.example\r\n"),
        ),
        (
            "look-alike: userinfo".into(),
            format!("Origin: http://127.0.0.1:{port}@evil.example\r\n"),
        ),
        (
            "look-alike: trailing slash".into(),
            format!("Origin: {own}/\r\n"),
        ),
        ("look-alike: path".into(), format!("Origin: {own}/ws\r\n")),
        (
            "look-alike: https".into(),
            format!("Origin: https://127.0.0.1:{port}\r\n"),
        ),
        (
            "look-alike: no port".into(),
            "Origin: http://127.0.0.1\r\n".into(),
        ),
        (
            "look-alike: other port".into(),
            format!("Origin: http://127.0.0.1:{}\r\n", port + 1),
        ),
        (
            "look-alike: trailing dot".into(),
            format!("Origin: http://127.0.0.1.:{port}\r\n"),
        ),
        (
            "look-alike: decimal host".into(),
            format!("Origin: http://2130706433:{port}\r\n"),
        ),
        (
            "look-alike: mapped IPv6".into(),
            format!("Origin: http://[::ffff:127.0.0.1]:{port}\r\n"),
        ),
        (
            "look-alike: other loopback".into(),
            format!("Origin: http://127.0.0.2:{port}\r\n"),
        ),
        (
            "look-alike: fullwidth digits".into(),
            format!("Origin: http://\u{ff11}27.0.0.1:{port}\r\n"),
        ),
        (
            "look-alike: trailing space junk".into(),
            format!("Origin: {own} evil\r\n"),
        ),
        (
            "list of origins".into(),
            format!("Origin: http://evil.example, {own}\r\n"),
        ),
        (
            "two Origin headers".into(),
            format!("Origin: http://evil.example\r\nOrigin: {own}\r\n"),
        ),
        ("file".into(), "Origin: file://\r\n".into()),
        (
            "extension".into(),
            "Origin: chrome-extension://abcdefghijklmnop\r\n".into(),
        ),
        (
            "Sec-WebSocket-Origin only".into(),
            format!("Sec-WebSocket-Origin: {own}\r\n"),
        ),
        ("Referer only".into(), format!("Referer: {own}/\r\n")),
        (
            "foreign Origin, own Host spoofed".into(),
            "Origin: http://evil.example\r\nX-Forwarded-Host: 127.0.0.1\r\n".into(),
        ),
    ];
    let before = rejections(&ctx.metrics().await);
    let mut rows = String::new();
    let mut upgrades = 0;
    for (i, (what, headers)) in cases.iter().enumerate() {
        let status = client::raw_status(src(3, i), p, &client::upgrade_request(p, headers)).await;
        if status == 101 {
            upgrades += 1;
        }
        let _ = writeln!(
            rows,
            "| {what} | `{}` | {status} |",
            headers
                .trim_end()
                .replace("\r\n", " / ")
                .replace('|', "\\|")
        );
    }
    // Other spellings of the proxy's own origin (a browser never sends them: it serialises
    // its origin lower-case without a leading zero) name the same origin: reported, not
    // counted as foreign.
    let mut same = Vec::new();
    for (i, o) in [
        format!("HTTP://127.0.0.1:{port}"),
        format!("http://127.0.0.1:0{port}"),
    ]
    .iter()
    .enumerate()
    {
        let status = client::raw_status(
            src(3, 100 + i),
            p,
            &client::upgrade_request(p, &format!("Origin: {o}\r\n")),
        )
        .await;
        same.push(format!("`{o}` {status}"));
    }
    // Control: the own origin upgrades.
    let control = client::raw_status(
        src(3, 200),
        p,
        &client::upgrade_request(p, &format!("Origin: {own}\r\n")),
    )
    .await;
    let after = rejections(&ctx.metrics().await);
    let mut body = String::new();
    let _ = writeln!(body, "{} upgrade requests with a foreign, missing, `null` or look-alike Origin; the control with the proxy's own origin got {control}.\n", cases.len());
    let _ = writeln!(
        body,
        "**Upgrades: {upgrades}**. Refusals counted: {}.\n",
        moved(&before, &after)
    );
    let _ = writeln!(body, "| case | headers | status |\n|---|---|---|\n{rows}");
    let _ = writeln!(
        body,
        "\nOther spellings of the proxy's own origin, which no browser sends (the \
        scheme is case-insensitive and the port a number, so they name the same origin): {}.",
        same.join(", ")
    );
    ctx.report
        .figure("cross-site upgrades", upgrades.to_string());
    if upgrades > 0 {
        ctx.report
            .fail(format!("cswsh: {upgrades} foreign upgrades"));
    }
    if control != 101 {
        ctx.report
            .fail(format!("cswsh: the own-origin control got {control}"));
    }
    ctx.report.section("Cross-site WebSocket hijacking", body);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Floods

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    Slowloris,
    Preauth,
    OpenNoLogin,
}

/// Counts of one flood's attempts.
#[derive(Debug, Default)]
struct FloodCount {
    attempts: AtomicU64,
    held: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl FloodCount {
    fn refuse(&self, why: String) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(why).or_default() += 1;
        }
    }
}

/// One flooding connection slot: connect, hold as long as the proxy lets it, repeat.
async fn flood_slot(
    kind: Flood,
    from: IpAddr,
    proxy: SocketAddr,
    origin: String,
    stop: Arc<AtomicBool>,
    count: Arc<FloodCount>,
) {
    while !stop.load(Ordering::SeqCst) {
        count.attempts.fetch_add(1, Ordering::SeqCst);
        match kind {
            Flood::Slowloris => {
                let Ok(mut s) = client::tcp_from(from, proxy).await else {
                    count.refuse("connect failed".into());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let head = format!("GET /ws HTTP/1.1\r\nHost: {proxy}\r\nOrigin: {origin}\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    count.refuse("closed at once".into());
                    continue;
                }
                count.held.fetch_add(1, Ordering::SeqCst);
                // One header byte a second, never the end of the head.
                let mut held_for = 0;
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    held_for += 1;
                    if s.write_all(b"X").await.is_err() {
                        break;
                    }
                }
                count.held.fetch_sub(1, Ordering::SeqCst);
                if held_for < 2 {
                    count.refuse("closed within 2 s".into());
                }
            }
            Flood::Preauth | Flood::OpenNoLogin => {
                let mut ws = match client::upgrade(from, proxy, Some(&origin)).await {
                    Upgrade::Ok(ws) => ws,
                    Upgrade::Status(s) => {
                        count.refuse(format!("http_{s}"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Upgrade::Failed(_) => {
                        count.refuse("no answer".into());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if kind == Flood::OpenNoLogin {
                    let first = client::open_json(client::open_request("sim", 0));
                    if ws.send(Message::Text(first.into())).await.is_err() {
                        count.refuse("closed".into());
                        continue;
                    }
                    match client::next_control(&mut ws, client::STEP).await {
                        Some(prl_protocol::relay::ProxyMessage::Opened(_)) => {}
                        Some(prl_protocol::relay::ProxyMessage::Error(e)) => {
                            count.refuse(e.kind.as_str().to_string());
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        _ => {
                            count.refuse("no answer".into());
                            continue;
                        }
                    }
                }
                count.held.fetch_add(1, Ordering::SeqCst);
                // Silent until the proxy ends it (or the flood stops).
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match tokio::time::timeout(
                        Duration::from_millis(250),
                        futures_util::StreamExt::next(&mut *ws),
                    )
                    .await
                    {
                        Err(_) => continue,
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if let Ok(prl_protocol::relay::ProxyMessage::Error(e)) =
                                prl_protocol::relay::ProxyMessage::from_json(&t)
                            {
                                count.refuse(format!("ended: {}", e.kind.as_str()));
                            }
                            break;
                        }
                        _ => break,
                    }
                }
                count.held.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

struct FloodSpec {
    name: &'static str,
    kind: Flood,
    addresses: usize,
    per_address: usize,
}

pub async fn floods(ctx: &mut Ctx) -> Result<()> {
    let full = ctx.plan.full;
    let secs = if full { 25 } else { 4 };
    let specs = [
        FloodSpec {
            name: "slowloris upgrades",
            kind: Flood::Slowloris,
            // 64 addresses x 8 fill the pre-auth pool (512): the documented bound.
            addresses: if full { 63 } else { 40 },
            per_address: 9,
        },
        FloodSpec {
            name: "pre-auth flood, 1 address",
            kind: Flood::Preauth,
            addresses: 1,
            per_address: 64,
        },
        FloodSpec {
            name: "pre-auth flood, 40 addresses",
            kind: Flood::Preauth,
            addresses: 40,
            per_address: 9,
        },
        FloodSpec {
            // 80 x 8 is more than the pre-auth pool (512): its per-address share alone
            // cannot keep it from filling.
            name: "pre-auth flood, 80 addresses",
            kind: Flood::Preauth,
            addresses: 80,
            per_address: 9,
        },
        FloodSpec {
            name: "open without login, 1 address",
            kind: Flood::OpenNoLogin,
            addresses: 1,
            per_address: 32,
        },
        FloodSpec {
            name: "open without login, 40 addresses",
            kind: Flood::OpenNoLogin,
            addresses: 40,
            per_address: 9,
        },
    ];
    let ticks = procs::clock_ticks();
    let mut drains = String::new();
    let mut table = String::from(
        "| flood | connections | held at peak | refused (why) | legit logins ok | p50 / p99 / max latency | proxy RSS peak | proxy CPU |\n|---|---|---|---|---|---|---|---|\n",
    );
    // Baseline: legitimate logins with nothing else going on.
    let mut base = Vec::new();
    for _ in 0..10 {
        if let Ok(d) = ctx.legit_login().await {
            base.push(d);
        }
    }
    let (b50, b99, bmax) = percentiles(&mut base);
    let (rss0, _) = procs::usage(ctx.proxy.pid()).unwrap_or((0, 0));
    let _ = writeln!(
        table,
        "| none (baseline) | 0 | 0 | - | {}/10 | {b50} / {b99} / {bmax} ms | {} MiB | - |",
        base.len(),
        rss0 / 1024
    );
    for (g, spec) in specs.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        let mut tasks = Vec::new();
        for a in 0..spec.addresses {
            let from = src(4 + g as u8, a);
            for _ in 0..spec.per_address {
                tasks.push(tokio::spawn(flood_slot(
                    spec.kind,
                    from,
                    ctx.proxy_addr,
                    ctx.own_origin.clone(),
                    stop.clone(),
                    count.clone(),
                )));
            }
        }
        let pid = ctx.proxy.pid();
        let (_, cpu0) = procs::usage(pid).unwrap_or((0, 0));
        let t0 = Instant::now();
        // Let the flood fill what it can, then log in legitimately throughout.
        let fill = Instant::now();
        let mut peak_held = 0;
        while fill.elapsed() < Duration::from_millis(if full { 3000 } else { 1500 }) {
            peak_held = peak_held.max(count.held.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut lat = Vec::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        let mut tries = 0;
        let mut peak_rss = 0;
        while t0.elapsed() < Duration::from_secs(secs) {
            tries += 1;
            match ctx.legit_login().await {
                Ok(d) => lat.push(d),
                Err(e) => *failures.entry(e).or_default() += 1,
            }
            peak_held = peak_held.max(count.held.load(Ordering::SeqCst));
            if let Some((rss, _)) = procs::usage(pid) {
                peak_rss = peak_rss.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let wall = t0.elapsed();
        let (_, cpu1) = procs::usage(pid).unwrap_or((0, 0));
        stop.store(true, Ordering::SeqCst);
        // A slot may be in the middle of an upgrade or an open: stop them all (their sockets
        // close with them).
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let cpu = (cpu1.saturating_sub(cpu0)) as f64 / ticks as f64 / wall.as_secs_f64() * 100.0;
        let ok = lat.len();
        let (p50, p99, max) = percentiles(&mut lat);
        let refused = count
            .refused
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let fails = failures
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            table,
            "| {} ({} × {}) | {} | {peak_held} | {} | {ok}/{tries}{} | {p50} / {p99} / {max} ms | {} MiB | {cpu:.0} % |",
            spec.name,
            spec.addresses,
            spec.per_address,
            count.attempts.load(Ordering::SeqCst),
            if refused.is_empty() { "-".into() } else { refused },
            if fails.is_empty() { String::new() } else { format!(" (failed: {fails})") },
            peak_rss / 1024,
        );
        ctx.report.figure(
            &format!("flood {}: legit logins ok", spec.name),
            format!("{ok}/{tries}, p99 {p99} ms"),
        );
        // An open whose upstream connect ran out of its budget while the flood's own opens
        // load the service's handshakes (anonymous DH, CPU-bound: up to
        // max_unauthenticated_upstreams at once) measures the service's capacity, not the
        // proxy's admission: noted. Any other failure, every refusal above all, fails.
        let slow = match spec.kind {
            Flood::OpenNoLogin => failures.get("open: timeout").copied().unwrap_or(0),
            _ => 0,
        };
        let failed = (tries - ok) as u64;
        if failed > slow {
            ctx.report.fail(format!(
                "flood {}: {failed} of {tries} legitimate logins failed: {fails}",
                spec.name
            ));
        } else if slow > 0 {
            ctx.report.note(format!(
                "flood {}: {slow} of {tries} legitimate opens ran out of their connect budget \
                 in the upstream handshake while the flood's opens loaded the service",
                spec.name
            ));
        }
        if !ctx.healthy().await {
            ctx.report.fail(format!(
                "flood {}: the proxy stopped answering /healthz",
                spec.name
            ));
        }
        // Let the proxy forget the flood's connections before the next one (bounded).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(if full { 40 } else { 10 }) {
            let m = ctx.metrics().await;
            if metric(&m, "prl_proxy_sessions_active") == 0.0
                && metric(&m, "prl_proxy_connections") <= 2.0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let m = ctx.metrics().await;
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let _ = writeln!(
            drains,
            "- {}: {} connections left {} after the flood's clients closed (the suite's own open files: {fds})",
            spec.name,
            metric(&m, "prl_proxy_connections"),
            crate::fmt_duration(t.elapsed()),
        );
        println!(
            "abuse: flood {}: drained in {} (connections {}, sessions {}, detached {}; our open fds {fds})",
            spec.name,
            crate::fmt_duration(t.elapsed()),
            metric(&m, "prl_proxy_connections"),
            metric(&m, "prl_proxy_sessions_active"),
            metric(&m, "prl_proxy_sessions_detached")
        );
    }
    let mut body = format!(
        "Each flood runs {secs} s from its own loopback addresses (127.x.y.z) against the \
         example configuration's limits; after {} s to fill, a legitimate client (a fresh address \
         and user each time: the per-address and per-user login throttles do not apply to it) \
         upgrades, opens and logs in every 150 ms, timed from TCP connect to the login reply. \
         \"held at peak\": flood connections the proxy held at once. RSS and CPU of the proxy \
         process from /proc.\n\n",
        if full { "3" } else { "1.5" }
    );
    body.push_str(&table);
    let _ = write!(
        body,
        "\nThe proxy's `prl_proxy_connections` gauge after each flood (waited for until at most \
         one connection besides the suite's metrics request was left, bounded):\n\n{drains}"
    );
    ctx.report.section("Floods", body);
    Ok(())
}

fn percentiles(v: &mut [Duration]) -> (u128, u128, u128) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1].as_millis();
    (at(0.5), at(0.99), v[v.len() - 1].as_millis())
}

// ---------------------------------------------------------------------------------------------
// Protocol abuse after open

/// An opened connection from a fresh address: (ws, connection uuid).
async fn opened(ctx: &mut Ctx, group: u8, n: usize) -> Option<(Box<super::helpers::Ws>, Uuid)> {
    let first = client::open_json(client::open_request("sim", 0));
    match client::first_message(src(group, n), ctx.proxy_addr, Some(&ctx.own_origin), &first).await
    {
        Answer::Opened { ws, conn, token } => {
            ctx.remember_uuid(conn);
            ctx.remember_token(&token);
            Some((ws, conn))
        }
        _ => None,
    }
}

pub async fn protocol_abuse(ctx: &mut Ctx) -> Result<()> {
    let mut rows = String::new();
    let mut uncounted = Vec::new();
    let mut n = 0usize;
    let big = vec![0x41u8; (1 << 20) + 1];
    // First messages (before open).
    let firsts: Vec<(&str, Vec<u8>, &str)> = vec![
        ("first message not JSON", client::frame(true, 1, b"hello", None), "protocol_violation"),
        ("first message 16 KiB of JSON", client::frame(true, 1, &vec![b' '; 16 << 10], None), "limit_reached"),
        ("first message binary", client::frame(true, 2, &[0u8; 90], None), "protocol_violation"),
        ("first frame declares 2^40 bytes", client::frame(true, 1, b"{", Some(1 << 40)), "limit_reached"),
        ("first message fragmented past 8 KiB", [client::frame(false, 1, &[b' '; 6000], None), client::frame(true, 0, &[b' '; 6000], None)].concat(), "limit_reached"),
        ("continuation without a start", client::frame(true, 0, b"{}", None), "protocol_violation"),
        ("unknown message type", client::frame(true, 1, br#"{"type":"attach","version":1}"#, None), "protocol_violation"),
        ("wrong version", client::frame(true, 1, br#"{"type":"open","version":2,"target":{"host":"sim","port":0},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#, None), "protocol_violation"),
        ("reserved opcode 3", client::frame(true, 3, b"x", None), "protocol_violation"),
        ("unmasked frame", vec![0x81, 0x02, b'{', b'}'], "protocol_violation"),
    ];
    for (what, bytes, expect) in firsts {
        n += 1;
        let before = refusals(&ctx.metrics().await);
        let got = match client::upgrade(src(20, n), ctx.proxy_addr, Some(&ctx.own_origin)).await {
            Upgrade::Ok(mut ws) => {
                let _ = ws.get_mut().write_all(&bytes).await;
                client::closing_error(&mut ws, Duration::from_secs(8)).await
            }
            other => format!("{other:?}"),
        };
        let after = wait_counted(ctx, &before).await;
        let counted = moved(&before, &after);
        if counted == "none" {
            uncounted.push(what);
        }
        let _ = writeln!(rows, "| {what} | {got} | {counted} |");
        if got != expect {
            ctx.report.note(format!(
                "protocol abuse: {what}: expected {expect}, got {got}"
            ));
        }
    }
    // After open: packages.
    let cases: Vec<&str> = vec![
        "binary message of 1 MiB + 1",
        "frame declaring 2^62 bytes",
        "fragmented package (valid, 3 frames)",
        "continuation without a start",
        "package with a bad header CRC",
        "package declaring a 1 GiB buffer",
        "package declaring 100000 buffers",
        "package from a foreign senderUuid",
        "login with malformed XML",
        "login with a 2 KiB user name",
        "second open on the same socket",
        "text that is not JSON",
        "package shorter than a header",
    ];
    for what in cases {
        n += 1;
        let Some((mut ws, conn)) = opened(ctx, 20, n).await else {
            ctx.report
                .fail(format!("protocol abuse: could not open for {what}"));
            continue;
        };
        let before = refusals(&ctx.metrics().await);
        let ping = |sender: Uuid| {
            simple_command(cmd::USER_PING, Uuid::new_v4(), sender, &mut Uuid::new_v4)
        };
        let raw: Vec<u8> = match what {
            "binary message of 1 MiB + 1" => client::frame(true, 2, &big, None),
            "frame declaring 2^62 bytes" => client::frame(true, 2, &[0u8; 16], Some(1 << 62)),
            "fragmented package (valid, 3 frames)" => {
                let bytes = ping(conn).encode();
                let (a, rest) = bytes.split_at(30);
                let (b, c) = rest.split_at(30);
                [
                    client::frame(false, 2, a, None),
                    client::frame(false, 0, b, None),
                    client::frame(true, 0, c, None),
                ]
                .concat()
            }
            "continuation without a start" => client::frame(true, 0, &ping(conn).encode(), None),
            "package with a bad header CRC" => {
                let mut b = ping(conn).encode();
                b[80] ^= 0xFF;
                client::frame(true, 2, &b, None)
            }
            "package declaring a 1 GiB buffer" => {
                let p = prl_protocol::package::Package::request(
                    cmd::USER_PING,
                    Uuid::new_v4(),
                    conn,
                    vec![prl_protocol::package::text_buffer("x")],
                );
                let mut b = p.encode();
                b[86..90].copy_from_slice(&(1u32 << 30).to_le_bytes());
                client::frame(true, 2, &b, None)
            }
            "package declaring 100000 buffers" => {
                let mut b = ping(conn).encode();
                // buffersNumber is a header field; patch it and recompute nothing: the CRC
                // check or the count check must refuse it.
                b[76..80].copy_from_slice(&100_000u32.to_le_bytes());
                client::frame(true, 2, &b, None)
            }
            "package from a foreign senderUuid" => {
                client::frame(true, 2, &ping(Uuid::new_v4()).encode(), None)
            }
            "login with malformed XML" => {
                let p = prl_protocol::package::Package::request(
                    cmd::USER_LOGIN,
                    Uuid::new_v4(),
                    conn,
                    vec![prl_protocol::package::text_buffer(
                        "<ParallelsEvent><unclosed",
                    )],
                );
                client::frame(true, 2, &p.encode(), None)
            }
            "login with a 2 KiB user name" => {
                let (_, p) = client::login_package(conn, &"x".repeat(2048), "pw", "");
                client::frame(true, 2, &p.encode(), None)
            }
            "second open on the same socket" => client::frame(
                true,
                1,
                client::open_json(client::open_request("sim", 0)).as_bytes(),
                None,
            ),
            "text that is not JSON" => client::frame(true, 1, b"not json", None),
            _ => client::frame(true, 2, &[1, 2, 3], None),
        };
        let _ = ws.get_mut().write_all(&raw).await;
        let got = if what.starts_with("fragmented") {
            match client::reply_to(&mut ws, Uuid::nil(), Duration::from_secs(3)).await {
                Outcome::Refused(k) => k,
                _ => {
                    // Any reply proves it went through; a ping before login gets 0x80000059.
                    "accepted (relayed)".into()
                }
            }
        } else {
            client::closing_error(&mut ws, Duration::from_secs(8)).await
        };
        let after = wait_counted(ctx, &before).await;
        let counted = moved(&before, &after);
        let refused = !got.starts_with("accepted") && got != "still_open";
        if refused && counted == "none" {
            uncounted.push(what);
        }
        let _ = writeln!(rows, "| after open: {what} | {got} | {counted} |");
    }
    // Brute force: one address, one user, wrong passwords.
    let before_m = ctx.metrics().await;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    if let Some((mut ws, conn)) = opened(ctx, 21, 0).await {
        for _ in 0..40 {
            let (job, p) = client::login_package(conn, "brute-one", "wrong-password", "");
            let o = client::request(&mut ws, &p, job, client::STEP).await;
            let label = o.label();
            *outcomes.entry(label.clone()).or_default() += 1;
            if !matches!(o, Outcome::Reply(_)) {
                break;
            }
        }
    }
    // Brute force of one user from many addresses.
    let mut spread: BTreeMap<String, u64> = BTreeMap::new();
    for a in 0..30 {
        if let Some((mut ws, conn)) = opened(ctx, 22, a).await {
            let (job, p) = client::login_package(conn, "brute-many", "guess", "");
            *spread
                .entry(
                    client::request(&mut ws, &p, job, client::STEP)
                        .await
                        .label(),
                )
                .or_default() += 1;
        }
    }
    let after_m = ctx.metrics().await;
    let logins =
        |m: &str, o: &str| metric(m, &format!("prl_proxy_logins_total{{outcome=\"{o}\"}}"));
    let _ = writeln!(
        rows,
        "| brute force: 40 wrong passwords, one address and (unknown) user, one connection | {} | logins failure +{}, throttled +{} |",
        fmt_counts(&outcomes),
        logins(&after_m, "failure") - logins(&before_m, "failure"),
        logins(&after_m, "throttled") - logins(&before_m, "throttled"),
    );
    let _ = writeln!(
        rows,
        "| brute force: one (unknown) user from 30 addresses | {} | throttled +{} |",
        fmt_counts(&spread),
        logins(&after_m, "throttled") - logins(&before_m, "throttled")
    );
    if outcomes.get("reply 0x80000330").copied().unwrap_or(0) > 12 {
        ctx.report
            .fail(format!("brute force was not throttled: {outcomes:?}"));
    }
    // Takeover attempts against a logged-in victim.
    takeovers(ctx, &mut rows, &mut uncounted).await;
    let mut body = String::from(
        "Each case on a fresh connection from its own address; \"counted\" is what moved in \
         `prl_proxy_rejections_total` (or the login counters) for it.\n\n| case | outcome | counted |\n|---|---|---|\n",
    );
    body.push_str(&rows);
    let _ = writeln!(
        body,
        "\nRefusals not counted: {}.",
        if uncounted.is_empty() {
            "none".to_string()
        } else {
            uncounted.join(", ")
        }
    );
    ctx.report
        .figure("uncounted refusals", uncounted.len().to_string());
    if !uncounted.is_empty() {
        ctx.report.fail(format!(
            "refusals not counted in rejections_total: {uncounted:?}"
        ));
    }
    ctx.report
        .section("Protocol abuse after open, brute force, takeover", body);
    Ok(())
}

/// Waits (up to 2 s) until some rejection counter moved; the snapshot.
async fn wait_counted(ctx: &Ctx, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let t = Instant::now();
    loop {
        let after = refusals(&ctx.metrics().await);
        if moved(before, &after) != "none" || t.elapsed() > Duration::from_secs(2) {
            return after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn takeovers(ctx: &mut Ctx, rows: &mut String, uncounted: &mut Vec<&'static str>) {
    let Some((mut victim, vconn)) = opened(ctx, 23, 0).await else {
        ctx.report
            .fail("takeover: the victim could not open".to_string());
        return;
    };
    let (user, password) = ctx.users[0].clone();
    let (job, p) = client::login_package(vconn, &user, &password, "");
    let session = match client::request(&mut victim, &p, job, client::STEP).await {
        Outcome::Reply(r) if r.code == ErrorCode::SUCCESS => uuid_string(&vconn),
        other => {
            ctx.report.fail(format!(
                "takeover: the victim's login failed: {}",
                other.label()
            ));
            return;
        }
    };
    let proxy = ctx.proxy_addr;
    let mut n = 0;
    let mut attempt =
        |what: &'static str, got: String, counted: String, ok: bool, ctx: &mut Ctx| {
            let _ = writeln!(rows, "| takeover: {what} | {got} | {counted} |");
            if !ok {
                ctx.report.fail(format!("takeover: {what}: {got}"));
            }
            if counted == "none" {
                uncounted.push(what);
            }
        };
    // 1. A login naming the victim's live session, no proof.
    for (what, restore) in [
        ("login naming the live session, no restore proof", None),
        (
            "login naming the live session, forged restore proof",
            Some(random_secret("forged")),
        ),
    ] {
        n += 1;
        let before = refusals(&ctx.metrics().await);
        let mut req = client::open_request("sim", 0);
        req.restore = restore.map(prl_protocol::relay::Secret);
        let got = match client::first_message(
            src(24, n),
            proxy,
            Some(&ctx.own_origin),
            &client::open_json(req),
        )
        .await
        {
            Answer::Opened { mut ws, conn, .. } => {
                let (job, p) = client::login_package(conn, "alice", "any", &session);
                client::request(&mut ws, &p, job, client::STEP)
                    .await
                    .label()
            }
            other => other.label(),
        };
        let after = wait_counted(ctx, &before).await;
        let ok = got == "restore_refused";
        attempt(what, got, moved(&before, &after), ok, ctx);
    }
    // 2. A resume with a guessed token.
    n += 1;
    let before = refusals(&ctx.metrics().await);
    let got = client::first_message(
        src(24, n),
        proxy,
        Some(&ctx.own_origin),
        &client::resume_json(&random_secret("guess"), 0),
    )
    .await
    .label();
    let after = wait_counted(ctx, &before).await;
    let ok = got == "resume_failed";
    attempt(
        "resume with a guessed token",
        got,
        moved(&before, &after),
        ok,
        ctx,
    );
    // 3. The victim's session UUID as sender on the attacker's own connection.
    n += 1;
    let before = refusals(&ctx.metrics().await);
    let got = match opened(ctx, 24, n).await {
        Some((mut ws, _)) => {
            let p = simple_command(cmd::USER_PING, Uuid::new_v4(), vconn, &mut Uuid::new_v4);
            let _ = ws.send(Message::Binary(p.encode().into())).await;
            client::closing_error(&mut ws, Duration::from_secs(8)).await
        }
        None => "could not open".into(),
    };
    let after = wait_counted(ctx, &before).await;
    let ok = got == "protocol_violation";
    attempt(
        "the victim's session uuid as sender",
        got,
        moved(&before, &after),
        ok,
        ctx,
    );
    // The victim is still logged in and served.
    let job = Uuid::new_v4();
    let p = simple_command(cmd::USER_PING, job, vconn, &mut Uuid::new_v4);
    let still = client::request(&mut victim, &p, job, client::STEP).await;
    let ok = matches!(&still, Outcome::Reply(r) if r.code == ErrorCode::UNIMPLEMENTED);
    let _ = writeln!(
        rows,
        "| the victim after the attempts | {} (ping answered) | - |",
        still.label()
    );
    if !ok {
        ctx.report.fail(format!(
            "takeover: the victim lost its session: {}",
            still.label()
        ));
    }
    let _ = (*victim).close(None).await;
}

// ---------------------------------------------------------------------------------------------
// Hostile service

pub async fn hostile_service(ctx: &mut Ctx) -> Result<()> {
    let mut rows = String::new();
    for (i, fault) in FAULTS.iter().enumerate() {
        let port = FAULT_BASE_PORT + i as u16;
        let t0 = Instant::now();
        let (user, password) = ctx.user(i);
        let mut req = client::open_request("127.0.0.2", port);
        req.timeout_ms = 1500;
        let first = client::open_json(req);
        let got =
            match client::first_message(src(25, i), ctx.proxy_addr, Some(&ctx.own_origin), &first)
                .await
            {
                Answer::Opened {
                    mut ws,
                    conn,
                    token,
                } => {
                    ctx.remember_uuid(conn);
                    ctx.remember_token(&token);
                    let (job, p) = client::login_package(conn, &user, &password, "");
                    format!(
                        "opened; login: {}",
                        client::request(&mut ws, &p, job, client::STEP)
                            .await
                            .label()
                    )
                }
                other => other.label(),
            };
        let took = t0.elapsed();
        let healthy = ctx.healthy().await;
        let _ = writeln!(
            rows,
            "| `--fault {fault}` | {got} | {} ms | {} |",
            took.as_millis(),
            if healthy { "yes" } else { "NO" }
        );
        if !healthy || !ctx.proxy.alive() {
            ctx.report
                .fail(format!("hostile service {fault}: the proxy is not healthy"));
        }
        if took > Duration::from_secs(12) || got.contains("no_answer") {
            ctx.report
                .fail(format!("hostile service {fault}: {got} after {took:?}"));
        }
    }
    let mut body = String::from(
        "The proxy against each prl-sim fault mode (open with a 1.5 s connect budget, then a \
         login), from a scripted client; the browser client's view is in \"Faults with \
         counting\".\n\n| simulator | outcome | time | proxy healthy after |\n|---|---|---|---|\n",
    );
    body.push_str(&rows);
    ctx.report.section("Hostile service", body);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Faults with counting (the proxy's side; the browser's runs in tests/e2e/abuse.mjs)

pub async fn faults(ctx: &mut Ctx) -> Result<String> {
    let mut rows = String::new();
    // Service killed mid-login.
    let specs: Vec<String> = ctx.users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    let log = ctx.work.join("sim-kill.log");
    let mut sim = procs::start_sim(
        &ctx.bin,
        addr(KILL_SIM),
        &specs,
        &["--auth-delay-ms", "3000"],
        &log,
    )?;
    let first = client::open_json(client::open_request("127.0.0.2", addr(KILL_SIM).port()));
    let (user, password) = ctx.user(7);
    let t0 = Instant::now();
    let got = match client::first_message(src(26, 0), ctx.proxy_addr, Some(&ctx.own_origin), &first)
        .await
    {
        Answer::Opened {
            mut ws,
            conn,
            token,
        } => {
            ctx.remember_uuid(conn);
            ctx.remember_token(&token);
            let (job, p) = client::login_package(conn, &user, &password, "");
            let _ = ws.send(Message::Binary(p.encode().into())).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            sim.kill();
            client::reply_to(&mut ws, job, client::STEP).await.label()
        }
        other => format!("open: {}", other.label()),
    };
    let took = t0.elapsed();
    let healthy = ctx.healthy().await;
    let _ = writeln!(rows, "| service killed (SIGKILL) 0.5 s into a login | {got} after {} ms | proxy healthy: {healthy} |", took.as_millis());
    if got != "closed" || !healthy {
        ctx.report.fail(format!(
            "service killed mid-login: {got}, healthy {healthy}"
        ));
    }
    let mut sim = procs::start_sim(&ctx.bin, addr(KILL_SIM), &specs, &[], &log)?;
    let first = client::open_json(client::open_request("127.0.0.2", addr(KILL_SIM).port()));
    let again = match client::first_message(
        src(26, 1),
        ctx.proxy_addr,
        Some(&ctx.own_origin),
        &first,
    )
    .await
    {
        Answer::Opened { mut ws, conn, .. } => {
            ctx.remember_uuid(conn);
            let (job, p) = client::login_package(conn, &user, &password, "");
            client::request(&mut ws, &p, job, client::STEP)
                .await
                .label()
        }
        other => other.label(),
    };
    let _ = writeln!(rows, "| the service back: a new login | {again} | - |");
    if again != "reply 0x00000000" {
        ctx.report
            .fail(format!("after the service came back: {again}"));
    }
    sim.stop();

    // Proxy restarted mid-session.
    let (user, password) = ctx.user(8);
    let mut line = String::new();
    if let Some((mut ws, conn)) = opened(ctx, 26, 2).await {
        let (job, p) = client::login_package(conn, &user, &password, "");
        let _ = client::request(&mut ws, &p, job, client::STEP).await;
        drop(ws);
        let token_opened = ctx
            .secrets
            .lock()
            .ok()
            .and_then(|s| s.tokens.last().cloned())
            .unwrap_or_default();
        ctx.proxy.stop();
        let log = ctx.work.join("proxy.log");
        ctx.proxy = procs::start_proxy(&ctx.bin, &ctx.config, &log)?;
        let resume = client::first_message(
            src(26, 3),
            ctx.proxy_addr,
            Some(&ctx.own_origin),
            &client::resume_json(&token_opened, 0),
        )
        .await
        .label();
        let mut req = client::open_request("sim", 0);
        req.restore = Some(prl_protocol::relay::Secret(token_opened.clone()));
        let relogin = match client::first_message(
            src(26, 4),
            ctx.proxy_addr,
            Some(&ctx.own_origin),
            &client::open_json(req),
        )
        .await
        {
            Answer::Opened {
                mut ws,
                conn: c2,
                token,
            } => {
                ctx.remember_uuid(c2);
                ctx.remember_token(&token);
                let (job, p) = client::login_package(c2, &user, &password, &uuid_string(&conn));
                client::request(&mut ws, &p, job, client::STEP)
                    .await
                    .label()
            }
            other => other.label(),
        };
        let fresh = ctx
            .legit_login()
            .await
            .map(|d| format!("ok in {} ms", d.as_millis()))
            .unwrap_or_else(|e| e);
        let _ = write!(line, "| proxy restarted (SIGTERM, started again) mid-session | resume: {resume}; login naming the old session with its proof: {relogin}; a new login: {fresh} | - |");
        if resume != "resume_failed" || relogin != "restore_refused" || !fresh.starts_with("ok") {
            ctx.report.fail(format!("proxy restart: {line}"));
        }
    }
    let _ = writeln!(rows, "{line}");
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// Every spelling of a secret that would betray it in a log.
fn spellings_of(secrets: &Secrets) -> Vec<(String, &'static str)> {
    let b64 = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut out = Vec::new();
    for p in &secrets.passwords {
        out.push((p.clone(), "password"));
        for e in &b64 {
            let enc = e.encode(p);
            // Any 4-symbol-aligned prefix appears in every base64 text that holds it.
            out.push((enc[..enc.len().min(16)].to_string(), "password (base64)"));
        }
    }
    for u in &secrets.uuids {
        let braced = uuid_string(u);
        let bare = braced.trim_matches(|c| c == '{' || c == '}').to_string();
        let simple = bare.replace('-', "");
        for s in [braced, bare, simple] {
            out.push((s.to_uppercase(), "uuid"));
            out.push((s, "uuid"));
        }
    }
    for t in &secrets.tokens {
        out.push((t.clone(), "resume token"));
    }
    for t in &secrets.tickets {
        out.push((t.clone(), "ticket"));
    }
    out
}

pub fn scan_logs(secrets: &Secrets, logs: &[PathBuf]) -> (u64, u64, Vec<String>) {
    let needles = spellings_of(secrets);
    let mut bytes = 0u64;
    let mut leaks = 0u64;
    let mut where_ = Vec::new();
    for log in logs {
        let Ok(text) = std::fs::read(log) else {
            continue;
        };
        bytes += text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        for (needle, what) in &needles {
            if needle.len() >= 8 && text.contains(needle.as_str()) {
                leaks += 1;
                where_.push(format!(
                    "{what} in {}",
                    log.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
            }
        }
    }
    (bytes, leaks, where_)
}

/// Issues a ticket with the proxy's CLI and uses it (in the open message and as a
/// subprotocol), so that tickets are among the secrets the logs are scanned for.
pub async fn tickets(ctx: &mut Ctx) -> Result<String> {
    let mut out = String::new();
    for (i, via_header) in [false, true].into_iter().enumerate() {
        let ticket = crate::stdout_of(
            std::process::Command::new(ctx.bin.join("prl-proxy"))
                .args(["ticket", "--config"])
                .arg(&ctx.config)
                .args(["--target", "sim", "--origin", &ctx.own_origin]),
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
        if ticket.is_empty() {
            ctx.report
                .fail("tickets: `prl-proxy ticket` printed nothing".to_string());
            continue;
        }
        if let Ok(mut s) = ctx.secrets.lock() {
            s.tickets.push(ticket.clone());
        }
        let mut req = client::open_request("sim", 0);
        let label = if via_header {
            let proto = format!("{}{ticket}", prl_protocol::relay::TICKET_SUBPROTOCOL_PREFIX);
            match client::upgrade_with(
                src(27, i),
                ctx.proxy_addr,
                Some(&ctx.own_origin),
                &[prl_protocol::relay::SUBPROTOCOL, &proto],
            )
            .await
            {
                Upgrade::Ok(mut ws) => {
                    let _ = ws.send(Message::Text(client::open_json(req).into())).await;
                    match client::next_control(&mut ws, client::STEP).await {
                        Some(prl_protocol::relay::ProxyMessage::Opened(_)) => "opened".to_string(),
                        other => format!("{other:?}"),
                    }
                }
                other => format!("{other:?}"),
            }
        } else {
            req.ticket = Some(prl_protocol::relay::Secret(ticket.clone()));
            client::first_message(
                src(27, i),
                ctx.proxy_addr,
                Some(&ctx.own_origin),
                &client::open_json(req),
            )
            .await
            .label()
        };
        let _ = write!(
            out,
            "{} ticket: {label}; ",
            if via_header {
                "subprotocol"
            } else {
                "open-message"
            }
        );
        if label != "opened" {
            ctx.report
                .fail(format!("tickets: a valid ticket was refused: {label}"));
        }
    }
    Ok(out)
}
