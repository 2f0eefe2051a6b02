//! Client and server roles against each other over real loopback sockets.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prl_protocol::codes::cmd;
use prl_protocol::handshake::{ProtocolVersion, SecurityLevel};
use prl_protocol::package::{text_buffer, Package, MNG_HEARTBEAT};
use prl_protocol::{ErrorCode, Uuid};
use prl_transport::{
    accept_tcp, accept_unix, connect, AcceptPolicy, Admission, ClientConfig, Connection, Endpoint,
    KeyExchange, Peer, ServerConfig, Stage, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};

/// A server accepting one client per spawned task; returns its address and the accepted
/// connections (or accept errors).
async fn server(
    config: ServerConfig,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::Receiver<Result<Connection, TransportError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let _ = tx.send(accept_tcp(stream, &config).await).await;
            });
        }
    });
    (addr, rx)
}

fn request(package_type: u32, text: &str) -> Package {
    Package::request(
        package_type,
        Uuid::new_v4(),
        Uuid::new_v4(),
        vec![text_buffer(text)],
    )
}

/// A package a server sent, without the numeric id its IO layer stamped on it.
fn unnumbered(mut p: Package) -> Package {
    assert!(p.header.numeric_id > 0, "a server numbers what it sends");
    p.header.numeric_id = 0;
    p
}

fn client(level: SecurityLevel) -> ClientConfig {
    ClientConfig::new(level).with_budget(Some(Duration::from_secs(10)))
}

#[tokio::test]
async fn every_level_connects_and_exchanges_packages() {
    let (addr, mut accepted) = server(ServerConfig::new().unwrap()).await;
    for level in [
        SecurityLevel::Low,
        SecurityLevel::Normal,
        SecurityLevel::High,
    ] {
        let uuid = Uuid::new_v4();
        let mut c = connect(
            &Endpoint::tcp("127.0.0.1", addr.port()),
            &client(level).with_connection_uuid(uuid),
        )
        .await
        .unwrap();
        let mut s = accepted.recv().await.unwrap().unwrap();
        for info in [c.info(), s.info()] {
            assert_eq!(info.security_level, level);
            assert_eq!(info.cipher, "ADH-AES256-GCM-SHA384");
            assert_eq!(info.tls_version, "TLSv1.2");
            assert_eq!(info.key_exchange, Some(KeyExchange::Dh));
        }
        assert_eq!(c.info().local_connection_uuid, uuid);
        assert_eq!(s.info().peer_connection_uuid, uuid);
        assert_eq!(s.info().peer_version, ProtocolVersion::current());
        assert_eq!(
            c.info().peer_connection_uuid,
            s.info().local_connection_uuid
        );
        assert_eq!(s.info().peer_sender_type.0, 3);
        assert_eq!(c.info().peer_sender_type.0, 2);
        assert!(s.info().peer_uid().is_none());
        // Logs name connections by number; the uuids (a client's is its session id) are
        // redacted in Debug.
        assert_ne!(c.info().connection_id, s.info().connection_id);
        for info in [c.info(), s.info()] {
            let debug = format!("{info:?}");
            assert!(debug.contains("<redacted>"), "{debug}");
            for u in [uuid, c.info().peer_connection_uuid] {
                let text = u.to_string();
                assert!(!debug.contains(&text), "{debug}");
                assert!(!debug.contains(&text.to_uppercase()), "{debug}");
                assert!(!debug.contains(&u.simple().to_string()), "{debug}");
                assert!(!debug.contains(&format!("{:?}", u.as_bytes())), "{debug}");
            }
        }

        let req = request(cmd::USER_LOGIN, "hello");
        c.send(req.clone()).await.unwrap();
        let got = s.recv().await.unwrap().unwrap();
        assert_eq!(got, req);
        // A reply far above one record in both directions.
        let big = Package::request(
            cmd::WS_RESPONSE,
            Uuid::new_v4(),
            Uuid::new_v4(),
            vec![prl_protocol::package::Buffer::raw(vec![7u8; 100_000])],
        );
        s.send(big.clone()).await.unwrap();
        assert_eq!(unnumbered(c.recv().await.unwrap().unwrap()), big);
        // Like the real IO layer, nil ids are filled on send: the sender with our connection
        // uuid, the package uuid with a fresh one.
        c.send(Package::request(
            cmd::USER_PING,
            Uuid::nil(),
            Uuid::nil(),
            vec![],
        ))
        .await
        .unwrap();
        let filled = s.recv().await.unwrap().unwrap();
        assert_eq!(filled.header.sender_uuid, uuid);
        assert!(!filled.header.uuid.is_nil());
        c.close().await;
        assert!(s.recv().await.is_none(), "clean close ends the stream");
    }
}

#[tokio::test]
async fn unix_socket_reports_peer_credentials() {
    let dir = std::env::temp_dir().join(format!("prl-transport-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    let config = ServerConfig::new().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accept_unix(stream, &config).await.unwrap()
    });
    let mut c = connect(&Endpoint::unix(&path), &client(SecurityLevel::High))
        .await
        .unwrap();
    let s = server.await.unwrap();
    // Our own uid: the owner of a file we just created.
    let probe = dir.join("probe");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&probe).unwrap());
    assert_eq!(s.info().peer_uid(), Some(uid));
    assert!(s.info().peer_credentials.unwrap().pid.is_some());
    s.send(request(cmd::WS_RESPONSE, "x")).await.unwrap();
    assert_eq!(
        c.recv().await.unwrap().unwrap().text(0).unwrap().unwrap(),
        "x"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn heartbeats_flow_but_are_never_delivered() {
    let mut config = ServerConfig::new().unwrap();
    config.stream.heartbeat_interval = Some(Duration::from_millis(20));
    let (addr, mut accepted) = server(config).await;
    // Count heartbeat headers the client really receives: a LOW connection carries them in
    // plain 0xFF records, so a tap between the two sees them.
    let tap = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tap_addr = tap.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let (mut down, _) = tap.accept().await.unwrap();
        let mut up = TcpStream::connect(addr).await.unwrap();
        let (mut ur, mut uw) = up.split();
        let (mut dr, mut dw) = down.split();
        let hb = Package::heartbeat().encode();
        let c2s = tokio::io::copy(&mut dr, &mut uw);
        let s2c = async {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = ur.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                let count = all
                    .windows(hb.len())
                    .filter(|w| *w == hb.as_slice())
                    .count();
                seen2.store(count, Ordering::SeqCst);
                dw.write_all(&buf[..n]).await.unwrap();
            }
        };
        let _ = tokio::join!(c2s, s2c);
    });
    let mut c = connect(
        &Endpoint::tcp("127.0.0.1", tap_addr.port()),
        &client(SecurityLevel::Low).with_heartbeat(Some(Duration::from_millis(20))),
    )
    .await
    .unwrap();
    let mut s = accepted.recv().await.unwrap().unwrap();
    wait_until("three heartbeats on the wire", || {
        seen.load(Ordering::SeqCst) >= 3
    })
    .await;
    let req = request(cmd::USER_PING, "after heartbeats");
    c.send(req.clone()).await.unwrap();
    assert_eq!(s.recv().await.unwrap().unwrap(), req);
    s.send(req.clone()).await.unwrap();
    let got = c.recv().await.unwrap().unwrap();
    assert_ne!(got.header.package_type, MNG_HEARTBEAT);
    assert_eq!(unnumbered(got), req);
}

#[tokio::test]
async fn receiver_backpressure_bounds_memory() {
    let mut config = ServerConfig::new().unwrap();
    config.stream.receive_capacity = 1;
    let (addr, mut accepted) = server(config).await;
    let mut cfg = client(SecurityLevel::High);
    cfg.stream.send_capacity = 2;
    let c = connect(&Endpoint::tcp("127.0.0.1", addr.port()), &cfg)
        .await
        .unwrap();
    let mut s = accepted.recv().await.unwrap().unwrap();
    let pkg = |i: u32| {
        Package::request(
            2000 + i,
            Uuid::new_v4(),
            Uuid::nil(),
            vec![prl_protocol::package::Buffer::raw(vec![1u8; 1 << 20])],
        )
    };
    // The server does not read: the sender soon blocks (socket buffers, the task's write
    // buffer and the 2-slot queue are all that holds data).
    let mut sent = 0u32;
    let blocked = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            c.send(pkg(sent)).await.unwrap();
            sent += 1;
        }
    })
    .await;
    assert!(
        blocked.is_err(),
        "send must block while the peer does not read"
    );
    assert!(
        sent < 64,
        "only a bounded number of MiB is in flight ({sent})"
    );
    // Draining the server releases everything, in order.
    for i in 0..sent {
        let p = s.recv().await.unwrap().unwrap();
        assert_eq!(p.header.package_type, 2000 + i);
    }
}

#[tokio::test]
async fn connect_failures_map_to_cant_connect() {
    // Nothing listens on this port.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let e = connect(
        &Endpoint::tcp("127.0.0.1", port),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), "connect");
    assert_eq!(e.prl_code(), ErrorCode::CANT_CONNECT_TO_DISPATCHER);
    // Both loopback families are tried: ::1 refuses as well.
    let e = connect(
        &Endpoint::Addrs(vec![
            format!("[::1]:{port}").parse().unwrap(),
            format!("127.0.0.1:{port}").parse().unwrap(),
        ]),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    let e = connect(
        &Endpoint::unix("/nonexistent/prl.sock"),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert_eq!(e.prl_code(), ErrorCode::CANT_CONNECT_TO_DISPATCHER);
    // A name that cannot resolve (RFC 6761 .invalid); without a resolver this may also run
    // out of budget while resolving. Either way: CANT_CONNECT.
    let e = connect(
        &Endpoint::tcp("prl-sim.invalid", 64000),
        &client(SecurityLevel::Low).with_budget(Some(Duration::from_secs(3))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.stage(), Stage::Resolve, "{e}");
    assert_eq!(e.prl_code(), ErrorCode::CANT_CONNECT_TO_DISPATCHER);
}

#[tokio::test]
async fn budget_expiring_in_each_stage() {
    // A listener that never answers: the plaintext handshake stalls.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let budget = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = connect(
        &Endpoint::tcp("127.0.0.1", silent_addr.port()),
        &client(SecurityLevel::Low).with_budget(Some(budget)),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            e,
            TransportError::Timeout {
                stage: Stage::Handshake,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);

    struct StallTls;
    impl AcceptPolicy for StallTls {
        fn on_client_hello(
            &self,
            _: &Peer,
            _: &prl_protocol::handshake::ServerOutcome,
        ) -> Admission {
            Admission::StallTls
        }
    }
    let mut config = ServerConfig::new().unwrap();
    config.policy = Arc::new(StallTls);
    let (addr, _accepted) = server(config).await;
    let e = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::Low).with_budget(Some(budget)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::Timeout {
                stage: Stage::Tls,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.prl_code(), ErrorCode::SSL_HANDSHAKE_FAILED);
}

#[tokio::test]
async fn refusals_during_the_handshake() {
    // A server demanding HIGH closes the socket on a LOW or NORMAL client.
    let mut config = ServerConfig::new().unwrap();
    config.min_security = SecurityLevel::High;
    let (addr, mut accepted) = server(config).await;
    for level in [SecurityLevel::Low, SecurityLevel::Normal] {
        let e = connect(&Endpoint::tcp("127.0.0.1", addr.port()), &client(level))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "handshake", "{e}");
        assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);
        let refused = accepted.recv().await.unwrap().unwrap_err();
        assert_eq!(refused.kind(), "handshake");
    }
    connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High),
    )
    .await
    .unwrap();

    // A server of another major version: the client reports WRONG_PROTOCOL_VERSION.
    let mut config = ServerConfig::new().unwrap();
    config.version = ProtocolVersion::new(7, 0, "future");
    let (addr, _accepted) = server(config).await;
    let e = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert_eq!(e.prl_code(), ErrorCode::WRONG_PROTOCOL_VERSION);

    // A policy that closes right away.
    struct Refuse;
    impl AcceptPolicy for Refuse {
        fn on_connect(&self, _: &Peer) -> Admission {
            Admission::Close
        }
    }
    let mut config = ServerConfig::new().unwrap();
    config.policy = Arc::new(Refuse);
    let (addr, _accepted) = server(config).await;
    let e = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);
}

#[tokio::test]
async fn broken_streams_are_reported_once() {
    let (addr, mut accepted) = server(ServerConfig::new().unwrap()).await;
    // Garbage below the record layer.
    let mut c = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap();
    let s = accepted.recv().await.unwrap().unwrap();
    let ok = request(cmd::WS_RESPONSE, "before");
    s.send(ok.clone()).await.unwrap();
    s.sender().send_raw_wire(vec![0x42; 64]).await.unwrap();
    assert_eq!(unnumbered(c.recv().await.unwrap().unwrap()), ok);
    let e = c.recv().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), "record", "{e}");
    assert_eq!(e.prl_code(), ErrorCode::WS_DISP_CONNECTION_CLOSED);
    assert!(c.recv().await.is_none());

    // A package with a corrupted header CRC, through TLS.
    let mut c = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High),
    )
    .await
    .unwrap();
    let s = accepted.recv().await.unwrap().unwrap();
    let mut bytes = request(cmd::WS_RESPONSE, "x").encode();
    bytes[80] ^= 0xFF;
    s.sender()
        .send_raw_parts(cmd::WS_RESPONSE, vec![bytes])
        .await
        .unwrap();
    let e = c.recv().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), "package");
    assert!(e.to_string().contains("crc mismatch"), "{e}");
    assert!(c.recv().await.is_none());
    // Sending on the dead connection fails, once its task has ended.
    let sender = c.sender();
    wait_until("the connection's task ended", || sender.is_closed()).await;
    assert_eq!(
        c.send(request(cmd::USER_PING, ""))
            .await
            .unwrap_err()
            .kind(),
        "closed"
    );
}

/// A throwaway self-signed RSA certificate made for this test run.
fn credentials(cn: &str) -> prl_transport::Credentials {
    prl_transport::Credentials::generate_self_signed(cn).unwrap()
}

#[tokio::test]
async fn certificate_mode_over_sockets() {
    use prl_transport::TlsConfig;
    let creds = credentials("prl-host");
    let mut config = ServerConfig::new().unwrap();
    config.tls = TlsConfig::server_with_credentials(&creds).unwrap();
    let (addr, mut accepted) = server(config).await;
    // Same principal on both sides: an RSA suite, a trusted channel.
    let c = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High).with_tls(TlsConfig::client_with_credentials(&creds).unwrap()),
    )
    .await
    .unwrap();
    let mut s = accepted.recv().await.unwrap().unwrap();
    assert_eq!(c.info().key_exchange, Some(KeyExchange::Rsa));
    assert_eq!(c.info().peer_certificate_cn.as_deref(), Some("prl-host"));
    assert_eq!(s.info().peer_certificate_cn.as_deref(), Some("prl-host"));
    assert_eq!(c.info().tls_version, "TLSv1.2");
    let p = request(cmd::USER_LOGIN, "over rsa");
    c.send(p.clone()).await.unwrap();
    assert_eq!(s.recv().await.unwrap().unwrap(), p);
    // An anonymous client still gets anonymous DH from a certificate server.
    let c2 = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High),
    )
    .await
    .unwrap();
    assert_eq!(c2.info().key_exchange, Some(KeyExchange::Dh));
    // A client with another principal fails the post-handshake check.
    let e = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High)
            .with_tls(TlsConfig::client_with_credentials(&credentials("other")).unwrap()),
    )
    .await
    .unwrap_err();
    assert_eq!(e.prl_code(), ErrorCode::SSL_HANDSHAKE_FAILED, "{e}");
}

#[tokio::test]
async fn a_server_numbers_what_it_sends_like_the_real_io_server() {
    // `SocketServerPrivate::sendPackage` stamps `numericId` from one process-wide counter on
    // every package without one (the captured real service sent 1, 2, 3 over two
    // connections); clients send 0.
    let (addr, mut accepted) = server(ServerConfig::new().unwrap()).await;
    let mut c1 = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::Low),
    )
    .await
    .unwrap();
    let mut s1 = accepted.recv().await.unwrap().unwrap();
    let mut c2 = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client(SecurityLevel::High),
    )
    .await
    .unwrap();
    let s2 = accepted.recv().await.unwrap().unwrap();

    c1.send(request(cmd::USER_LOGIN, "up")).await.unwrap();
    assert_eq!(s1.recv().await.unwrap().unwrap().header.numeric_id, 0);

    s1.send(request(cmd::WS_RESPONSE, "down")).await.unwrap();
    let first = c1.recv().await.unwrap().unwrap().header.numeric_id;
    s2.send(request(cmd::WS_RESPONSE, "down")).await.unwrap();
    let second = c2.recv().await.unwrap().unwrap().header.numeric_id;
    s1.send(request(cmd::WS_RESPONSE, "down")).await.unwrap();
    let third = c1.recv().await.unwrap().unwrap().header.numeric_id;
    let ids = [first, second, third];
    assert!(ids[0] > 0, "{ids:?}");
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2],
        "one counter across connections: {ids:?}"
    );

    // A package that already has a numeric id keeps it.
    let mut preset = request(cmd::WS_RESPONSE, "preset");
    preset.header.numeric_id = 7;
    s2.send(preset).await.unwrap();
    assert_eq!(c2.recv().await.unwrap().unwrap().header.numeric_id, 7);
}

/// Waits (bounded: 10 s, polling every 5 ms) until `cond` holds; panics naming `what` after.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
