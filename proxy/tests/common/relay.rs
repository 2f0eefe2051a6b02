//! Relay helpers against prl-sim: a simulator, and a "browser" speaking the relay protocol.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::*;
use prl_proxy::ProxyHandle;

use futures_util::{SinkExt, StreamExt};
use prl_protocol::codes::cmd;
use prl_protocol::commands::{self, LoginRequest, Password, Reply};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, Opened, ProxyMessage, RelayError, ResumeRequest,
    Resumed, Secret, Target, RELAY_VERSION,
};
use prl_protocol::{parse_uuid, ErrorCode, Uuid};
use prl_sim::{SimConfig, Simulator, UserDb};
use tokio_tungstenite::tungstenite::Message;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-Passw0rd!";

/// A simulator on an ephemeral port with one user.
pub async fn sim_with(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut c = SimConfig::new();
    c.tcp = Some("127.0.0.1:0".parse().unwrap());
    c.users
        .add(UserDb::parse_spec(&format!("{USER}:{PASSWORD}")).unwrap())
        .unwrap();
    c.heartbeat_interval = Duration::from_secs(10);
    tweak(&mut c);
    Simulator::start(c).await.expect("sim")
}

pub async fn sim() -> Simulator {
    sim_with(|_| {}).await
}

/// Proxy TOML with the simulator as named target "sim".
pub fn sim_target(sim: &Simulator) -> String {
    let a = sim.tcp_addr().unwrap();
    format!(
        "[[policy.target]]\nname = \"sim\"\nhost = \"{}\"\nport = {}\n",
        a.ip(),
        a.port()
    )
}

/// A browser: the relay WebSocket plus package accounting.
pub struct Browser {
    pub ws: Ws,
    pub opened: Option<Opened>,
    pub token: String,
    pub received: u64,
    pub conn_uuid: Uuid,
}

pub fn open_request(host: &str, level: SecurityLevel) -> OpenRequest {
    OpenRequest {
        version: RELAY_VERSION,
        target: Target {
            host: host.into(),
            port: 0,
        },
        security_level: level,
        timeout_ms: 5000,
        mode: ConnectMode::Remote,
        ticket: None,
        restore: None,
    }
}

impl Browser {
    /// Connect with the proxy's own origin and send `first`; returns the browser after
    /// `opened`/`resumed`, or the relay error.
    pub async fn connect(
        h: &ProxyHandle,
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        Browser::connect_addr(h.local_addr(), first).await
    }

    /// Same, by address (plain ws, with the listener's own origin).
    pub async fn connect_addr(
        addr: std::net::SocketAddr,
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        Browser::connect_from(addr, &format!("http://{addr}"), first).await
    }

    /// Same, from a page of `origin`.
    pub async fn connect_from(
        addr: std::net::SocketAddr,
        origin: &str,
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        Browser::connect_via("127.0.0.1", addr, origin, first).await
    }

    /// Same, from the loopback client address `ip`.
    pub async fn connect_via(
        ip: &str,
        addr: std::net::SocketAddr,
        origin: &str,
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        Browser::connect_with(ip, addr, origin, &[], first).await
    }

    /// Same, with extra request headers (a reverse proxy's forwarding headers).
    pub async fn connect_with(
        ip: &str,
        addr: std::net::SocketAddr,
        origin: &str,
        headers: &[(&str, &str)],
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        Browser::connect_offering(ip, addr, origin, &["prl-relay.v1"], headers, first).await
    }

    /// Same, offering the subprotocols `protocols` (relay versions).
    pub async fn connect_offering(
        ip: &str,
        addr: std::net::SocketAddr,
        origin: &str,
        protocols: &[&str],
        headers: &[(&str, &str)],
        first: ClientMessage,
    ) -> Result<(Browser, ProxyMessage), RelayError> {
        let (mut ws, _) = ws_connect_with(ip, addr, Some(origin), protocols, headers)
            .await
            .unwrap();
        ws.send(Message::Text(first.to_json().into()))
            .await
            .unwrap();
        let reply = next_control(&mut ws).await;
        match &reply {
            ProxyMessage::Error(e) => Err(e.clone()),
            ProxyMessage::Opened(o) => {
                let b = Browser {
                    conn_uuid: parse_uuid(&o.connection_uuid).unwrap(),
                    token: o.resume_token.expose().to_string(),
                    opened: Some(o.clone()),
                    received: 0,
                    ws,
                };
                Ok((b, reply))
            }
            ProxyMessage::Resumed(r) => {
                let b = Browser {
                    ws,
                    opened: None,
                    token: r.resume_token.expose().to_string(),
                    received: 0,
                    conn_uuid: Uuid::nil(),
                };
                Ok((b, reply))
            }
        }
    }

    /// Open "sim" at a low security level from the loopback client address `ip`.
    pub async fn open_via(h: &ProxyHandle, ip: &str) -> Result<Browser, RelayError> {
        Browser::open_with(h, ip, &[]).await
    }

    /// Open "sim" at a low security level from the loopback address `ip` with extra request
    /// headers.
    pub async fn open_with(
        h: &ProxyHandle,
        ip: &str,
        headers: &[(&str, &str)],
    ) -> Result<Browser, RelayError> {
        let addr = h.local_addr();
        let req = open_request("sim", SecurityLevel::Low);
        Browser::connect_with(
            ip,
            addr,
            &format!("http://{addr}"),
            headers,
            ClientMessage::Open(req),
        )
        .await
        .map(|(b, _)| b)
    }

    pub async fn open(h: &ProxyHandle, req: OpenRequest) -> Result<Browser, RelayError> {
        Browser::open_addr(h.local_addr(), req).await
    }

    /// Open from a page of `origin`.
    pub async fn open_from(
        h: &ProxyHandle,
        origin: &str,
        req: OpenRequest,
    ) -> Result<Browser, RelayError> {
        Browser::connect_from(h.local_addr(), origin, ClientMessage::Open(req))
            .await
            .map(|(b, _)| b)
    }

    /// Open by address.
    pub async fn open_addr(
        addr: std::net::SocketAddr,
        req: OpenRequest,
    ) -> Result<Browser, RelayError> {
        Browser::connect_addr(addr, ClientMessage::Open(req))
            .await
            .map(|(b, _)| b)
    }

    /// Resume with this browser's token and count; returns the new browser and `resumed`.
    pub async fn resume(
        h: &ProxyHandle,
        token: &str,
        received: u64,
        conn_uuid: Uuid,
    ) -> Result<(Browser, Resumed), RelayError> {
        let (mut b, reply) = Browser::connect(
            h,
            ClientMessage::Resume(ResumeRequest {
                version: RELAY_VERSION,
                token: Secret(token.into()),
                received,
            }),
        )
        .await?;
        let ProxyMessage::Resumed(r) = reply else {
            panic!("expected resumed")
        };
        b.received = received;
        b.conn_uuid = conn_uuid;
        Ok((b, r))
    }

    pub async fn send(&mut self, p: &Package) {
        self.ws
            .send(Message::Binary(p.encode().into()))
            .await
            .unwrap();
    }

    /// The next package (panics on a control message or a timeout).
    pub async fn recv(&mut self) -> Package {
        match self.next().await {
            Ok(p) => p,
            Err(e) => panic!("expected a package, got error {e:?}"),
        }
    }

    /// The next package, or the relay error (or a synthetic `closed` error on close).
    pub async fn next(&mut self) -> Result<Package, RelayError> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("timed out waiting for the proxy");
            match m {
                Some(Ok(Message::Binary(b))) => {
                    self.received += 1;
                    return Ok(Package::decode(&b, &Limits::default()).unwrap());
                }
                Some(Ok(Message::Text(t))) => match ProxyMessage::from_json(&t).unwrap() {
                    ProxyMessage::Error(e) => return Err(e),
                    other => panic!("unexpected control message {other:?}"),
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => {
                    return Err(RelayError::new(
                        prl_protocol::relay::RelayErrorKind::Closed,
                        "websocket closed",
                    ))
                }
            }
        }
    }

    /// Next package answering `job`, skipping others.
    pub async fn reply_to(&mut self, job: Uuid) -> Result<Reply, RelayError> {
        loop {
            let p = self.next().await?;
            if p.header.parent_uuid == job
                && (p.header.package_type == cmd::WS_RESPONSE
                    || p.header.package_type == cmd::WS_BINARY_RESPONSE)
            {
                return Ok(Reply::parse(&p).unwrap());
            }
        }
    }

    pub fn login_package(&self, user: &str, password: &str, prev: &str) -> (Uuid, Package) {
        let job = Uuid::new_v4();
        let req = LoginRequest {
            user: user.into(),
            password: Password::new(password),
            prev_session_uuid: prev.into(),
            flags: commands::PCF_ORIGINAL_CLIENT,
        };
        (
            job,
            req.to_package(job, self.conn_uuid, true, &mut Uuid::new_v4),
        )
    }

    /// Log in successfully; the session UUID.
    pub async fn login_ok(&mut self, prev: &str) -> String {
        let reply = self.login(USER, PASSWORD, prev).await.unwrap();
        assert_eq!(reply.code, ErrorCode::SUCCESS);
        reply.login_response().unwrap().session_uuid
    }

    /// Log in; the reply's code.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
        prev: &str,
    ) -> Result<Reply, RelayError> {
        let (job, p) = self.login_package(user, password, prev);
        self.send(&p).await;
        self.reply_to(job).await
    }

    /// A ping (2052) round trip.
    pub async fn ping(&mut self) -> Result<ErrorCode, RelayError> {
        let job = Uuid::new_v4();
        let p = commands::simple_command(cmd::USER_PING, job, self.conn_uuid, &mut Uuid::new_v4);
        self.send(&p).await;
        Ok(self.reply_to(job).await?.code)
    }
}

/// A browser with an open connection to the target "sim" at `level`.
pub async fn opened(h: &ProxyHandle, level: SecurityLevel) -> Browser {
    Browser::open(h, open_request("sim", level)).await.unwrap()
}

/// A browser logged in as [`USER`] through the target "sim" at `level`, and its session UUID
/// (which is the proxy's connection UUID).
pub async fn logged_in(h: &ProxyHandle, level: SecurityLevel) -> (Browser, String) {
    let mut b = opened(h, level).await;
    let session = b.login_ok("").await;
    assert_eq!(
        session,
        prl_protocol::uuid_string(&b.conn_uuid),
        "the session is the connection uuid"
    );
    (b, session)
}

/// The relay error the proxy sends next on `ws`.
pub async fn next_relay_error(ws: &mut Ws) -> RelayError {
    match next_control(ws).await {
        ProxyMessage::Error(e) => e,
        other => panic!("expected a relay error, got {other:?}"),
    }
}

pub async fn next_control(ws: &mut Ws) -> ProxyMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("timed out waiting for a control message");
        match m {
            Some(Ok(Message::Text(t))) => return ProxyMessage::from_json(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a control message, got {other:?}"),
        }
    }
}
