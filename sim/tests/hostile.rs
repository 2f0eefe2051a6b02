//! Many hostile connections at once (garbage, bad hellos, oversize declarations, half-sent
//! packages, slow readers that flood requests and never read, idle sockets) against the
//! `prl-sim` binary: a normal client is still served promptly, the hostile connections the
//! simulator can refuse are closed, and its memory stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::simple_command;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Package, HEADER_LEN};
use prl_protocol::{ErrorCode, Uuid};
use prl_transport::{connect, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_prl-sim");
const EACH: usize = 30;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak and current resident memory of a process, in KiB (`VmHWM`, `VmRSS`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A header for a package of `package_type` with `buffers` buffers (valid CRC).
fn header(package_type: u32, buffers: u32) -> Vec<u8> {
    let p = Package::request(package_type, Uuid::new_v4(), Uuid::new_v4(), vec![]);
    p.header.to_bytes(buffers).to_vec()
}

/// Whether the server closed the socket (EOF or reset) within `limit`, discarding data.
async fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    let mut sink = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn normal_client(endpoint: &Endpoint) -> Duration {
    let t = Instant::now();
    let mut c = Client {
        conn: connect(endpoint, &client_config(SecurityLevel::Normal))
            .await
            .unwrap(),
        backlog: Vec::new(),
    };
    c.login_ok().await;
    let p = c.simple(cmd::USER_PING);
    assert_eq!(c.request(p).await.code, ErrorCode::UNIMPLEMENTED);
    assert_eq!(c.logoff().await.code, ErrorCode::SUCCESS);
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_leave_a_normal_client_served_with_bounded_memory() {
    let mut child = Child(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--user", "testuser:testpass"])
            .args(["--heartbeat-ms", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let addr = ready_tcp_addr(&mut child.0);
    let endpoint = Endpoint::tcp("127.0.0.1", addr.port());
    normal_client(&endpoint).await;
    let (_, baseline) = memory_kib(pid);

    // Garbage instead of a hello, and hellos with a wrong magic: refused at the handshake.
    let mut refused = Vec::new();
    for i in 0..EACH {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let junk: Vec<u8> = (0..64 * 1024).map(|n| (n * 7 + i) as u8).collect();
        let _ = s.write_all(&junk).await;
        refused.push(s);
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut hello = b"XRLT".to_vec();
        hello.resize(200, 0xEE);
        let _ = s.write_all(&hello).await;
        refused.push(s);
    }
    // Idle sockets that never say anything (they hold a slot until the handshake budget).
    let mut idle = Vec::new();
    for _ in 0..EACH {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Established connections declaring a 1 GiB buffer, or 4096 buffers: refused when the
    // header and descriptors are in, before any body is buffered.
    let mut oversize = Vec::new();
    for i in 0..EACH {
        let c = connect(&endpoint, &client_config(SecurityLevel::Low))
            .await
            .unwrap();
        let parts = if i % 2 == 0 {
            let mut d = 0u32.to_le_bytes().to_vec();
            d.extend_from_slice(&(1u32 << 30).to_le_bytes());
            vec![header(cmd::USER_PING, 1), d]
        } else {
            vec![header(cmd::USER_PING, 4096)]
        };
        c.sender()
            .send_raw_parts(cmd::USER_PING, parts)
            .await
            .unwrap();
        oversize.push(c);
    }
    // Packages declared just under the 1 MiB limit, half sent and never finished: the most a
    // connection's decoder holds.
    let mut half = Vec::new();
    for _ in 0..EACH {
        let c = connect(&endpoint, &client_config(SecurityLevel::High))
            .await
            .unwrap();
        let size = (1u32 << 20) - (HEADER_LEN as u32) - 8;
        let mut d = 0u32.to_le_bytes().to_vec();
        d.extend_from_slice(&size.to_le_bytes());
        let body = vec![0x41u8; size as usize / 2];
        c.sender()
            .send_raw_parts(cmd::USER_PING, vec![header(cmd::USER_PING, 1), d, body])
            .await
            .unwrap();
        half.push(c);
    }
    // Slow readers: logged in, flooding requests, never reading a reply (the client side
    // stops reading its socket once one package waits).
    let mut floods = Vec::new();
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    for _ in 0..EACH {
        let mut config = client_config(SecurityLevel::Normal);
        config.stream.receive_capacity = 1;
        let mut c = Client {
            conn: connect(&endpoint, &config).await.unwrap(),
            backlog: Vec::new(),
        };
        c.login_ok().await;
        let me = c.me();
        let sender = c.conn.sender();
        let sent = sent.clone();
        floods.push((
            c,
            tokio::spawn(async move {
                loop {
                    let p = simple_command(cmd::USER_PING, Uuid::new_v4(), me, &mut Uuid::new_v4);
                    if sender.send(p).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }),
        ));
    }
    // Wait until the floods have filled every buffer on the way: no flood got a package out
    // for 250 ms (bounded: 20 s).
    let t0 = Instant::now();
    let mut last = u64::MAX;
    loop {
        let now = sent.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the floods never stalled ({now} packages sent)"
        );
        last = now;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("floods stalled after {last} packages in {:?}", t0.elapsed());

    // A normal client is served promptly meanwhile, several times.
    for _ in 0..3 {
        let took = normal_client(&endpoint).await;
        eprintln!("normal client: {took:?}");
        assert!(took < Duration::from_secs(5), "normal client took {took:?}");
    }
    // The refused and oversize connections were closed by the simulator.
    for s in &mut refused {
        assert!(closed_by_server(s, Duration::from_secs(5)).await);
    }
    for c in &mut oversize {
        let got = tokio::time::timeout(Duration::from_secs(5), c.recv())
            .await
            .expect("the simulator closes an oversize declaration");
        assert!(!matches!(got, Some(Ok(_))), "{got:?}");
    }
    // Memory: the hostile connections cost a bounded amount. Each slow reader holds at most
    // the write backlog bound (256 KiB) plus a few queued packages, each half-sent package
    // under 1 MiB; refused connections nothing. (Measured: about 30 MiB in all.)
    let (peak, now) = memory_kib(pid);
    let grown = peak.saturating_sub(baseline);
    eprintln!("sim memory: baseline {baseline} KiB, peak {peak} KiB, now {now} KiB");
    let bound = EACH as u64 * (1024 + 2 * 300) + 64 * 1024;
    assert!(
        grown < bound,
        "peak grew by {grown} KiB (bound {bound} KiB)"
    );

    // Hostile clients leaving changes nothing for the others.
    for (_, flood) in &floods {
        flood.abort();
    }
    drop((floods, half, oversize, idle, refused));
    normal_client(&endpoint).await;
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(!logs.contains("panicked"), "{logs}");
}
