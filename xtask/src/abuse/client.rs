//! A scripted "browser" for the abuse suite: WebSocket upgrades from any loopback address,
//! the relay's `open` / `resume`, logins built with the shared codec, raw frames where a real
//! browser would never send them. Every call is bounded in time and reports failures as
//! values (a flood must not stop the suite).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use prl_protocol::codes::cmd;
use prl_protocol::commands::{LoginRequest, Password, Reply, PCF_ORIGINAL_CLIENT};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, ProxyMessage, ResumeRequest, Secret, Target,
    RELAY_VERSION, SUBPROTOCOL,
};
use prl_protocol::{parse_uuid, Uuid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{ws_request, Ws};

/// Longest any single step of a scripted browser may take.
pub const STEP: Duration = Duration::from_secs(15);

/// A TCP connection to `to` from the loopback address `from`.
pub async fn tcp_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(STEP, sock.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// How an upgrade attempt ended.
#[derive(Debug)]
pub enum Upgrade {
    Ok(Box<Ws>),
    /// HTTP status of a refused upgrade.
    Status(u16),
    /// Connection failure or anything else.
    Failed(String),
}

/// The relay upgrade from `from` with `origin` (own origin unless told), subprotocol offered.
pub async fn upgrade(from: IpAddr, proxy: SocketAddr, origin: Option<&str>) -> Upgrade {
    upgrade_with(from, proxy, origin, &[SUBPROTOCOL]).await
}

pub async fn upgrade_with(
    from: IpAddr,
    proxy: SocketAddr,
    origin: Option<&str>,
    protocols: &[&str],
) -> Upgrade {
    let tcp = match tcp_from(from, proxy).await {
        Ok(t) => t,
        Err(e) => return Upgrade::Failed(format!("connect: {e}")),
    };
    let req = ws_request(&format!("ws://{proxy}"), origin, protocols);
    let cfg = WebSocketConfig::default().max_message_size(Some(64 << 20));
    match tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg)),
    )
    .await
    {
        Ok(Ok((ws, _))) => Upgrade::Ok(Box::new(ws)),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Upgrade::Status(resp.status().as_u16())
        }
        Ok(Err(e)) => Upgrade::Failed(e.to_string()),
        Err(_) => Upgrade::Failed("upgrade timed out".into()),
    }
}

/// An `open` of `host:port` at LOW with a 3 s connect budget.
pub fn open_request(host: &str, port: u16) -> OpenRequest {
    OpenRequest {
        version: RELAY_VERSION,
        target: Target {
            host: host.into(),
            port,
        },
        security_level: SecurityLevel::Low,
        timeout_ms: 3000,
        mode: ConnectMode::Remote,
        ticket: None,
        restore: None,
    }
}

/// The next control message, skipping pings; `None` on close, error or timeout.
pub async fn next_control(ws: &mut Ws, within: Duration) -> Option<ProxyMessage> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return ProxyMessage::from_json(&t).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// What the proxy answered to a first message.
#[derive(Debug)]
pub enum Answer {
    Opened {
        ws: Box<Ws>,
        conn: Uuid,
        token: String,
    },
    Resumed,
    /// A relay error's kind.
    Refused(String),
    /// An HTTP status instead of the upgrade.
    Http(u16),
    /// Closed without an answer, timed out, or could not connect.
    Nothing(String),
}

impl Answer {
    /// `opened`, `resumed`, the error kind, `http_<status>` or `no_answer`.
    pub fn label(&self) -> String {
        match self {
            Answer::Opened { .. } => "opened".into(),
            Answer::Resumed => "resumed".into(),
            Answer::Refused(kind) => kind.clone(),
            Answer::Http(s) => format!("http_{s}"),
            Answer::Nothing(why) => format!("no_answer ({why})"),
        }
    }
}

/// Upgrade from `from` with `origin` and send `first` as text; the proxy's answer.
pub async fn first_message(
    from: IpAddr,
    proxy: SocketAddr,
    origin: Option<&str>,
    first: &str,
) -> Answer {
    let mut ws = match upgrade(from, proxy, origin).await {
        Upgrade::Ok(ws) => ws,
        Upgrade::Status(s) => return Answer::Http(s),
        Upgrade::Failed(e) => return Answer::Nothing(e),
    };
    if let Err(e) = ws.send(Message::Text(first.to_string().into())).await {
        return Answer::Nothing(e.to_string());
    }
    match next_control(&mut ws, STEP).await {
        Some(ProxyMessage::Opened(o)) => match parse_uuid(&o.connection_uuid) {
            Some(conn) => Answer::Opened {
                ws,
                conn,
                token: o.resume_token.expose().to_string(),
            },
            None => Answer::Nothing("opened without a connection uuid".into()),
        },
        Some(ProxyMessage::Resumed(_)) => Answer::Resumed,
        Some(ProxyMessage::Error(e)) => Answer::Refused(e.kind.as_str().to_string()),
        None => Answer::Nothing("closed without an answer".into()),
    }
}

pub fn open_json(req: OpenRequest) -> String {
    ClientMessage::Open(req).to_json()
}

pub fn resume_json(token: &str, received: u64) -> String {
    ClientMessage::Resume(ResumeRequest {
        version: RELAY_VERSION,
        token: Secret(token.into()),
        received,
    })
    .to_json()
}

/// A login package of connection `conn`: (job uuid, package).
pub fn login_package(conn: Uuid, user: &str, password: &str, prev: &str) -> (Uuid, Package) {
    let job = Uuid::new_v4();
    let req = LoginRequest {
        user: user.into(),
        password: Password::new(password),
        prev_session_uuid: prev.into(),
        flags: PCF_ORIGINAL_CLIENT,
    };
    (job, req.to_package(job, conn, true, &mut Uuid::new_v4))
}

/// What came back for a request.
#[derive(Debug)]
pub enum Outcome {
    Reply(Box<Reply>),
    /// The relay error kind the proxy closed with.
    Refused(String),
    /// Closed or timed out without an answer.
    Nothing(String),
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Reply(r) => format!("reply {:#010x}", r.code.0),
            Outcome::Refused(k) => k.clone(),
            Outcome::Nothing(why) => format!("no_answer ({why})"),
        }
    }
}

/// Sends `p` and waits for the reply to `job` (other packages skipped).
pub async fn request(ws: &mut Ws, p: &Package, job: Uuid, within: Duration) -> Outcome {
    if let Err(e) = ws.send(Message::Binary(p.encode().into())).await {
        return Outcome::Nothing(e.to_string());
    }
    reply_to(ws, job, within).await
}

/// Waits for the reply to `job`.
pub async fn reply_to(ws: &mut Ws, job: Uuid, within: Duration) -> Outcome {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                let Ok(p) = Package::decode(&b, &Limits::default()) else {
                    return Outcome::Nothing("undecodable package from the proxy".into());
                };
                let reply_type = p.header.package_type == cmd::WS_RESPONSE
                    || p.header.package_type == cmd::WS_BINARY_RESPONSE;
                if p.header.parent_uuid == job && reply_type {
                    return match Reply::parse(&p) {
                        Ok(r) => Outcome::Reply(Box::new(r)),
                        Err(e) => Outcome::Nothing(format!("bad reply: {e}")),
                    };
                }
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                return match ProxyMessage::from_json(&t) {
                    Ok(ProxyMessage::Error(e)) => Outcome::Refused(e.kind.as_str().to_string()),
                    _ => Outcome::Nothing("unexpected control message".into()),
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Outcome::Nothing(e.to_string()),
            Ok(None) => return Outcome::Nothing("closed".into()),
            Err(_) => return Outcome::Nothing("timed out".into()),
        }
    }
}

/// After sending something hostile: the relay error the proxy closed with, if any.
pub async fn closing_error(ws: &mut Ws, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match ProxyMessage::from_json(&t) {
                Ok(ProxyMessage::Error(e)) => return e.kind.as_str().to_string(),
                _ => return "unexpected_control".into(),
            },
            Ok(Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return "closed_without_error".into()
            }
            Ok(Some(Ok(Message::Frame(_)))) => continue,
            Err(_) => return "still_open".into(),
        }
    }
}

/// One raw HTTP request (any bytes); the status of the response head (0 when none within 5 s).
pub async fn raw_status(from: IpAddr, proxy: SocketAddr, request: &[u8]) -> u16 {
    let Ok(mut s) = tcp_from(from, proxy).await else {
        return 0;
    };
    if s.write_all(request).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A WebSocket upgrade request written by hand, with these extra header lines.
pub fn upgrade_request(proxy: SocketAddr, extra_headers: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {proxy}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n{extra_headers}\r\n"
    )
    .into_bytes()
}

/// A masked client frame: `fin`, `opcode`, payload; `declared` overrides the length field.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], declared: Option<u64>) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | (opcode & 0x0F)];
    let len = declared.unwrap_or(payload.len() as u64);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}
