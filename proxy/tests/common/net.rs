//! Network helpers of the proxy tests that need no in-process proxy: raw HTTP, WebSocket
//! upgrades from a chosen loopback address, metrics text. `cargo xtask abuse` includes this
//! file too (it drives the release binaries from outside), so it uses nothing of `prl_proxy`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// One raw HTTP/1.1 request; returns (status, lower-cased head, body).
pub async fn http(addr: SocketAddr, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A WebSocket upgrade request with the given Origin and offered subprotocols.
pub fn ws_request(
    url: &str,
    origin: Option<&str>,
    protocols: &[&str],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("{url}/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).unwrap());
    }
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    req
}

pub type Ws = WebSocketStream<TcpStream>;

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8: one
/// machine, several client addresses).
pub async fn tcp_from(from: &str, addr: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    sock.connect(addr).await.unwrap()
}

/// Connect over plain TCP; `Err(status)` when the upgrade is refused.
pub async fn ws_connect(
    addr: SocketAddr,
    origin: Option<&str>,
    protocols: &[&str],
) -> Result<(Ws, Option<String>), u16> {
    ws_connect_from("127.0.0.1", addr, origin, protocols).await
}

/// Connect from the loopback address `from`; `Err(status)` when the upgrade is refused.
pub async fn ws_connect_from(
    from: &str,
    addr: SocketAddr,
    origin: Option<&str>,
    protocols: &[&str],
) -> Result<(Ws, Option<String>), u16> {
    ws_connect_with(from, addr, origin, protocols, &[]).await
}

/// Connect from the loopback address `from` with extra request headers (such as a reverse
/// proxy's `X-Forwarded-For`); `Err(status)` when the upgrade is refused.
pub async fn ws_connect_with(
    from: &str,
    addr: SocketAddr,
    origin: Option<&str>,
    protocols: &[&str],
    headers: &[(&str, &str)],
) -> Result<(Ws, Option<String>), u16> {
    let tcp = tcp_from(from, addr).await;
    let mut req = ws_request(&format!("ws://{addr}"), origin, protocols);
    for (k, v) in headers {
        req.headers_mut().append(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let cfg = WebSocketConfig::default().max_message_size(Some(64 << 20));
    match tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg)).await {
        Ok((ws, resp)) => {
            let proto = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((ws, proto))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

/// A counter value from the metrics text (0 when absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Wait (bounded) until `cond` holds, polling; panics with `what` after 10 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
