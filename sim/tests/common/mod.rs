//! Helpers shared by the simulator tests: a simulator on an ephemeral loopback port and a
//! small SDK-like client on `prl-transport`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use prl_protocol::codes::cmd;
use prl_protocol::commands::{
    one_str_command, simple_command, LoginLocalRequest, LoginRequest, Password, Reply,
    PCF_ORIGINAL_CLIENT,
};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::Package;
use prl_protocol::{uuid_string, ErrorCode, Uuid};
use prl_sim::{SimConfig, Simulator, UserDb};
use prl_transport::{connect, ClientConfig, Connection, Endpoint, TransportError};

pub const USER: &str = "testuser";
pub const PASSWORD: &str = "testpass";

/// A config with `testuser:testpass` on 127.0.0.1:0.
pub fn config() -> SimConfig {
    let mut c = SimConfig::new();
    c.tcp = Some("127.0.0.1:0".parse().unwrap());
    c.users
        .add(UserDb::parse_spec(&format!("{USER}:{PASSWORD}")).unwrap())
        .unwrap();
    c
}

pub async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).await.unwrap()
}

/// A fresh directory for unix sockets.
pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("prl-sim-test-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Our own uid: the owner of a file we create.
pub fn own_uid() -> u32 {
    let d = temp_dir();
    let f = d.join("probe");
    std::fs::write(&f, b"").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
    uid
}

pub fn client_config(level: SecurityLevel) -> ClientConfig {
    ClientConfig::new(level).with_budget(Some(Duration::from_secs(10)))
}

/// An SDK-like client: one connection, requests matched by package uuid.
pub struct Client {
    pub conn: Connection,
    /// Packages received while waiting for something else (events, other replies).
    pub backlog: Vec<Package>,
}

impl Client {
    pub async fn connect(sim: &Simulator, level: SecurityLevel) -> Result<Client, TransportError> {
        Self::connect_with(sim, client_config(level)).await
    }

    pub async fn connect_with(
        sim: &Simulator,
        config: ClientConfig,
    ) -> Result<Client, TransportError> {
        let addr = sim.tcp_addr().unwrap();
        let conn = connect(&Endpoint::tcp("127.0.0.1", addr.port()), &config).await?;
        Ok(Client {
            conn,
            backlog: Vec::new(),
        })
    }

    pub async fn connect_unix(sim: &Simulator) -> Result<Client, TransportError> {
        let conn = connect(
            &Endpoint::unix(sim.unix_path().unwrap()),
            &client_config(SecurityLevel::Low),
        )
        .await?;
        Ok(Client {
            conn,
            backlog: Vec::new(),
        })
    }

    pub fn me(&self) -> Uuid {
        self.conn.info().local_connection_uuid
    }

    /// The next package, failing the test after 10 s.
    pub async fn next(&mut self) -> Option<Result<Package, TransportError>> {
        tokio::time::timeout(Duration::from_secs(10), self.conn.recv())
            .await
            .expect("no package within 10 s")
    }

    /// Sends `p` and waits for the reply whose parent is `p.uuid`.
    pub async fn request(&mut self, p: Package) -> Reply {
        let id = p.header.uuid;
        self.conn.send(p).await.unwrap();
        self.reply_to(id).await
    }

    /// Waits for the reply (5001/5003) to `id`, keeping anything else in the backlog.
    pub async fn reply_to(&mut self, id: Uuid) -> Reply {
        if let Some(i) = self.backlog.iter().position(|p| is_reply_to(p, id)) {
            return Reply::parse(&self.backlog.remove(i)).unwrap();
        }
        loop {
            let p = self.next().await.expect("connection closed").unwrap();
            if is_reply_to(&p, id) {
                return Reply::parse(&p).unwrap();
            }
            self.backlog.push(p);
        }
    }

    pub fn login_package(&self, user: &str, password: &str, prev: &str) -> Package {
        LoginRequest {
            user: user.into(),
            password: Password::new(password),
            prev_session_uuid: prev.into(),
            flags: PCF_ORIGINAL_CLIENT,
        }
        .to_package(Uuid::new_v4(), self.me(), true, &mut Uuid::new_v4)
    }

    pub async fn login(&mut self, user: &str, password: &str, prev: &str) -> Reply {
        let p = self.login_package(user, password, prev);
        self.request(p).await
    }

    pub async fn login_ok(&mut self) -> Reply {
        let r = self.login(USER, PASSWORD, "").await;
        assert_eq!(r.code, ErrorCode::SUCCESS, "login failed: {:?}", r.code);
        r
    }

    pub async fn login_local(&mut self, prev: &str) -> Reply {
        let p = LoginLocalRequest {
            application_mode: 0,
            prev_session_uuid: prev.into(),
            flags: PCF_ORIGINAL_CLIENT,
        }
        .to_package(Uuid::new_v4(), self.me(), &mut Uuid::new_v4);
        self.request(p).await
    }

    pub fn simple(&self, package_type: u32) -> Package {
        simple_command(package_type, Uuid::new_v4(), self.me(), &mut Uuid::new_v4)
    }

    pub fn one_str(&self, package_type: u32, value: &str) -> Package {
        one_str_command(
            package_type,
            value,
            Uuid::new_v4(),
            self.me(),
            &mut Uuid::new_v4,
        )
    }

    pub async fn logoff(&mut self) -> Reply {
        let p = self.simple(cmd::USER_LOGOFF);
        self.request(p).await
    }

    /// Waits until the server closes the connection; returns the packages that came first.
    pub async fn until_closed(&mut self) -> Vec<Package> {
        let mut got = Vec::new();
        while let Some(r) = self.next().await {
            match r {
                Ok(p) => got.push(p),
                Err(_) => break,
            }
        }
        got
    }
}

pub fn is_reply_to(p: &Package, id: Uuid) -> bool {
    p.header.parent_uuid == id
        && matches!(
            p.header.package_type,
            cmd::WS_RESPONSE | cmd::WS_BINARY_RESPONSE
        )
}

pub fn session_of(reply: &Reply) -> String {
    reply.login_response().unwrap().session_uuid
}

pub fn braced(u: &Uuid) -> String {
    uuid_string(u)
}

/// A TCP relay between a client and the simulator that records both directions.
pub struct Tap {
    pub addr: std::net::SocketAddr,
    pub client_to_server: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    pub server_to_client: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Directions relayed to their end (0, 1 or 2).
    ended: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Tap {
    pub async fn start(target: std::net::SocketAddr) -> Tap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c2s = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2c = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c2s2, s2c2) = (c2s.clone(), s2c.clone());
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ended_a, ended_b) = (ended.clone(), ended.clone());
        tokio::spawn(async move {
            let (down, _) = listener.accept().await.unwrap();
            let up = tokio::net::TcpStream::connect(target).await.unwrap();
            let (mut dr, mut dw) = down.into_split();
            let (mut ur, mut uw) = up.into_split();
            let a = tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = dr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    c2s2.lock().unwrap().extend_from_slice(&buf[..n]);
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = uw.shutdown().await;
                ended_a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            let b = tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    s2c2.lock().unwrap().extend_from_slice(&buf[..n]);
                    if dw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = dw.shutdown().await;
                ended_b.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            let _ = tokio::join!(a, b);
        });
        Tap {
            addr,
            client_to_server: c2s,
            server_to_client: s2c,
            ended,
        }
    }

    /// Whether both directions were relayed to their end (everything recorded).
    pub fn finished(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst) == 2
    }
}

/// One direction of a recorded connection, taken apart.
#[derive(Debug, Default)]
pub struct Wire {
    /// Payload sizes of the 0xFF records, in order.
    pub plain_records: Vec<usize>,
    /// Types of the IO packages that travelled in plain records.
    pub plain_types: Vec<u32>,
    /// TLS application-data records (0x17) after the handshake.
    pub tls_app_records: usize,
    /// TLS handshake / change-cipher-spec records.
    pub tls_handshake_records: usize,
}

/// Splits a recorded direction: the handshake hello (version, header, routing table), then
/// 5-byte records.
pub fn dissect(bytes: &[u8]) -> Wire {
    use prl_protocol::package::{Limits, PackageDecoder};
    let routes = bytes[100] as usize;
    let mut rest = &bytes[92 + 9 + 16 * routes..];
    let mut wire = Wire::default();
    let mut plain = Vec::new();
    while rest.len() >= 5 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if rest.len() < 5 + len {
            break;
        }
        let (rec, tail) = rest.split_at(5 + len);
        match rec[0] {
            0xFF => {
                assert_eq!(
                    &rec[1..3],
                    &[0x03, 0x00],
                    "plain records are versioned 03 00"
                );
                wire.plain_records.push(len);
                plain.extend_from_slice(&rec[5..]);
            }
            0x17 => {
                assert_eq!(&rec[1..3], &[0x03, 0x03], "tls records are versioned 03 03");
                wire.tls_app_records += 1
            }
            0x14 | 0x16 => wire.tls_handshake_records += 1,
            other => panic!("unexpected record type {other:#04x}"),
        }
        rest = tail;
    }
    let mut dec = PackageDecoder::new(Limits::default());
    dec.push(&plain);
    while let Some(p) = dec.next_package().unwrap() {
        wire.plain_types.push(p.header.package_type);
    }
    wire
}

/// A throwaway self-signed RSA certificate and key (PEM) made for this test run.
pub fn test_certificate(cn: &str) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = prl_transport::Credentials::generate_self_signed(cn)
        .unwrap()
        .to_pem()
        .unwrap();
    (cert, key.to_vec())
}

/// The TCP address from a spawned prl-sim's first ready line (`prl-sim listening on tcp://A`).
pub fn ready_tcp_addr(child: &mut std::process::Child) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader};
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    line.strip_prefix("prl-sim listening on tcp://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (bounded: 10 s, polling every 5 ms) until `cond` holds; panics naming `what` after.
/// For state another task changes (a session ending with its connection, a task finishing):
/// never sleep a fixed time and then assert.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
