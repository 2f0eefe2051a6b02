//! `cargo xtask abuse`: Open relay.

use super::*;

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
        let answer = ctx.first_message(src(2, i), &first).await;
        let label = answer.label();
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
