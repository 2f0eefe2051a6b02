//! The simulator driven with the real SDK client's bytes (captured from libprlsdk's
//! `PrlSrv_LoginEx` + `PrlSrv_Logoff`; the repository's one copy is `protocol/tests/data/`):
//! its exact hello, then a fresh TLS handshake (a captured one cannot be replayed), then its
//! captured login/logoff package stream routed as its security level says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::Reply;
use prl_protocol::handshake::{ProtocolVersion, RoutingTable, PROTOCOL_VERSION_LEN};
use prl_protocol::package::{Limits, Package, PackageDecoder, MNG_HEARTBEAT};
use prl_protocol::record::RecordLayer;
use prl_protocol::{ErrorCode, Uuid};
use prl_transport::tls::{OpenSslEngine, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WIRE_LOW: &[u8] =
    include_bytes!("../../protocol/tests/data/client-wire-low-login-logoff.bin");
const HELLO_NORMAL: &[u8] = include_bytes!("../../protocol/tests/data/client-hello-normal.bin");
const HELLO_HIGH: &[u8] = include_bytes!("../../protocol/tests/data/client-hello-high.bin");
const STREAM_LOW: &[u8] =
    include_bytes!("../../protocol/tests/data/client-stream-low-login-logoff.bin");
const STREAM_HIGH: &[u8] =
    include_bytes!("../../protocol/tests/data/client-stream-high-login-logoff.bin");
const ACCEPTED_LOGIN_REPLY: &[u8] =
    include_bytes!("../../protocol/tests/data/accepted-login-reply-5003.bin");

fn hello_len(hello: &[u8]) -> usize {
    92 + 9 + 16 * hello[100] as usize
}

fn packages(stream: &[u8]) -> Vec<Package> {
    let mut d = PackageDecoder::new(Limits::default());
    d.push(stream);
    let mut out = Vec::new();
    while let Some(p) = d.next_package().unwrap() {
        out.push(p);
    }
    out
}

struct Raw {
    sock: TcpStream,
    layer: RecordLayer<OpenSslEngine>,
    decoder: PackageDecoder,
    eof: bool,
}

impl Raw {
    /// Sends the captured hello, checks the service's answer, runs TLS.
    async fn handshake(sim: &prl_sim::Simulator, hello: &[u8]) -> (Raw, RoutingTable) {
        let mut sock = TcpStream::connect(sim.tcp_addr().unwrap()).await.unwrap();
        sock.write_all(hello).await.unwrap();
        let mut server = [0u8; 92];
        sock.read_exact(&mut server).await.unwrap();
        let version = ProtocolVersion::from_bytes(&server[..PROTOCOL_VERSION_LEN]).unwrap();
        assert_eq!((version.major, version.minor), (6, 10));
        assert_eq!(
            u32::from_le_bytes(server[72..76].try_into().unwrap()),
            2,
            "Dispatcher"
        );
        assert_ne!(&server[76..92], &[0u8; 16]);
        let mut head = [0u8; 9];
        sock.read_exact(&mut head).await.unwrap();
        let mut table = head.to_vec();
        table.resize(9 + 16 * head[8] as usize, 0);
        sock.read_exact(&mut table[9..]).await.unwrap();
        let accepted = RoutingTable::from_bytes(&table).unwrap();
        let engine = TlsConfig::client().unwrap().engine().unwrap();
        let mut layer = RecordLayer::new(engine, accepted.clone());
        let mut out = Vec::new();
        let mut incoming = Vec::new();
        let mut buf = vec![0u8; 16384];
        while !layer.drive_handshake(&incoming, &mut out).unwrap() {
            sock.write_all(&out).await.unwrap();
            out.clear();
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "service closed during tls");
            incoming = buf[..n].to_vec();
        }
        sock.write_all(&out).await.unwrap();
        (
            Raw {
                sock,
                layer,
                decoder: PackageDecoder::new(Limits::default()),
                eof: false,
            },
            accepted,
        )
    }

    async fn send(&mut self, p: &Package) {
        let mut out = Vec::new();
        self.layer.send_package(p, &mut out).unwrap();
        self.sock.write_all(&out).await.unwrap();
    }

    /// The next package that is not a heartbeat; `None` at EOF.
    async fn next(&mut self) -> Option<Package> {
        let mut buf = vec![0u8; 16384];
        let mut app = Vec::new();
        loop {
            self.layer.receive(&[], &mut app).unwrap();
            self.decoder.push(&app);
            app.clear();
            while let Some(p) = self.decoder.next_package().unwrap() {
                if p.header.package_type != MNG_HEARTBEAT {
                    return Some(p);
                }
            }
            if self.eof {
                return None;
            }
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.sock.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
            if n == 0 {
                self.eof = true;
            }
            self.layer.receive(&buf[..n], &mut app).unwrap();
        }
    }
}

async fn replay(hello: &[u8], stream: &[u8]) -> (Reply, Uuid) {
    let sim = start(config()).await;
    let (mut raw, accepted) = Raw::handshake(&sim, hello).await;
    // The service accepts the client's own table (LOW service): same routes.
    let client_table = RoutingTable::from_bytes(&hello[92..hello_len(hello)]).unwrap();
    for t in [
        cmd::USER_LOGIN,
        cmd::WS_BINARY_RESPONSE,
        MNG_HEARTBEAT,
        200106,
        7000,
        7001,
    ] {
        assert_eq!(accepted.route_for(t), client_table.route_for(t), "type {t}");
    }
    let pkgs = packages(stream);
    let login = pkgs
        .iter()
        .find(|p| p.header.package_type == cmd::USER_LOGIN)
        .unwrap();
    let logoff = pkgs
        .iter()
        .find(|p| p.header.package_type == cmd::USER_LOGOFF)
        .unwrap();
    raw.send(login).await;
    let reply_pkg = raw.next().await.unwrap();
    assert_eq!(reply_pkg.header.package_type, cmd::WS_BINARY_RESPONSE);
    assert_eq!(
        reply_pkg.header.parent_uuid, login.header.uuid,
        "reply names the job"
    );
    // Built from a QDataStream, the real 5003 is a broadcast response: no receiver uuid.
    assert_eq!(reply_pkg.header.receiver_uuid, Uuid::nil());
    let reply = Reply::parse(&reply_pkg).unwrap();
    assert_eq!(
        reply.code,
        ErrorCode::SUCCESS,
        "testuser/testpass from the capture"
    );
    raw.send(logoff).await;
    let bye = Reply::parse(&raw.next().await.unwrap()).unwrap();
    assert_eq!(bye.code, ErrorCode::SUCCESS);
    assert_eq!(bye.opcode, cmd::USER_LOGOFF);
    assert!(
        raw.next().await.is_none(),
        "the service closes after logoff"
    );
    let conn_uuid = Uuid::from_slice(&hello[76..92]).unwrap();
    (reply, conn_uuid)
}

#[tokio::test]
async fn captured_low_client_logs_in_and_off() {
    let hello = &WIRE_LOW[..hello_len(WIRE_LOW)];
    let (reply, conn) = replay(hello, STREAM_LOW).await;
    assert_eq!(
        session_of(&reply),
        braced(&conn),
        "session id = client connection uuid"
    );
}

#[tokio::test]
async fn captured_normal_hello_with_the_captured_stream() {
    let (reply, conn) = replay(HELLO_NORMAL, STREAM_LOW).await;
    assert_eq!(session_of(&reply), braced(&conn));
}

#[tokio::test]
async fn captured_high_client_logs_in_and_off() {
    let (reply, conn) = replay(HELLO_HIGH, STREAM_HIGH).await;
    assert_eq!(session_of(&reply), braced(&conn));
}

#[tokio::test]
async fn login_reply_has_the_shape_the_real_client_accepted() {
    let hello = &WIRE_LOW[..hello_len(WIRE_LOW)];
    let (ours, _) = replay(hello, STREAM_LOW).await;
    let accepted = packages(ACCEPTED_LOGIN_REPLY).remove(0);
    let accepted = Reply::parse(&accepted).unwrap();
    let names = |e: &prl_protocol::event::Event| {
        e.params
            .iter()
            .map(|p| (p.name.clone(), p.param_type.0))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(names(&ours.response), names(&accepted.response));
    let (ours_login, accepted_login) = (ours.login.unwrap(), accepted.login.unwrap());
    // Everything the accepted reply carries, ours carries too (ours adds the remaining
    // server_info_* strings of makeLoginResponsePacket).
    assert!(names(&accepted_login).is_subset(&names(&ours_login)));
    assert_eq!(ours.opcode, accepted.opcode);
    assert_eq!(ours_login.event_type, accepted_login.event_type);
}

#[test]
fn the_captured_low_wire_is_hello_tls_then_plain_parts() {
    // What the real client wrote at LOW: records after TLS are plain 0xFF records, one per
    // package part (header 82, descriptors 8, buffer): the framing the simulator reads.
    let w = dissect(WIRE_LOW);
    assert_eq!(w.tls_app_records, 0);
    assert_eq!(&w.plain_records[..3], &[82, 8, 2559]);
    assert_eq!(w.plain_types.first(), Some(&cmd::USER_LOGIN));
    assert!(w.plain_types.contains(&cmd::USER_LOGOFF));
}
