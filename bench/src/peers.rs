//! The peers prl-proxy is compared with: generic WebSocket-to-TCP tunnels in front of the
//! service, with the client speaking IOService itself over the WebSocket byte stream (the
//! design a user would build without prl-proxy: prl-transport over a WebSocket adapter, which
//! in a browser would be the whole IOService stack, ADH TLS included, in WASM).
//!
//! - **websockify** (PyPI `websockify`): `websockify LISTEN TARGET`, binary frames.
//! - **wstunnel** (npm `wstunnel`, mhzed's Node.js tunnel; the Rust `wstunnel` is not on
//!   crates.io, PyPI or npm): `wstunnel -s LISTEN -t TARGET`, subprotocol `tunnel-protocol`.
//!
//! `cargo xtask bench` installs both into the target directory (a venv, an npm prefix) and
//! hands their programs to the suite in [`WEBSOCKIFY_ENV`] and [`WSTUNNEL_ENV`]; a peer whose
//! variable is unset is left out of the run (and the report says so).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::BenchError;

/// The websockify program (`<venv>/bin/websockify`).
pub const WEBSOCKIFY_ENV: &str = "PRL_BENCH_WEBSOCKIFY";
/// The wstunnel program (`<prefix>/node_modules/.bin/wstunnel`).
pub const WSTUNNEL_ENV: &str = "PRL_BENCH_WSTUNNEL";

/// Which tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// websockify (Python).
    Websockify,
    /// wstunnel (Node.js, npm).
    Wstunnel,
}

impl PeerKind {
    /// Both, in report order.
    pub const ALL: [PeerKind; 2] = [PeerKind::Websockify, PeerKind::Wstunnel];

    /// Name in reports (`websockify`, `wstunnel`).
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Websockify => "websockify",
            PeerKind::Wstunnel => "wstunnel",
        }
    }

    fn env(self) -> &'static str {
        match self {
            PeerKind::Websockify => WEBSOCKIFY_ENV,
            PeerKind::Wstunnel => WSTUNNEL_ENV,
        }
    }

    /// The installed program, if `cargo xtask bench` provided one.
    pub fn program(self) -> Option<PathBuf> {
        std::env::var_os(self.env())
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    }

    /// The subprotocol the tunnel expects.
    fn subprotocol(self) -> &'static str {
        match self {
            PeerKind::Websockify => "binary",
            PeerKind::Wstunnel => "tunnel-protocol",
        }
    }
}

/// A running tunnel process in front of one TCP target (killed when dropped).
#[derive(Debug)]
pub struct Peer {
    kind: PeerKind,
    addr: SocketAddr,
    child: Child,
}

/// Picks a free loopback port (the peers take a port number, not 0).
fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Peer {
    /// Starts `kind` (program `program`) listening on a free loopback port, tunnelling to
    /// `target`; returns once it accepts connections.
    pub async fn start(
        kind: PeerKind,
        program: &Path,
        target: SocketAddr,
    ) -> Result<Peer, BenchError> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(program);
        match kind {
            PeerKind::Websockify => {
                cmd.arg(&listen).arg(target.to_string());
            }
            PeerKind::Wstunnel => {
                cmd.arg("-s").arg(&listen).arg("-t").arg(target.to_string());
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let peer = Peer { kind, addr, child };
        // Ready when it accepts a TCP connection (bounded: 200 tries, 50 ms apart).
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(peer);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Unexpected {
            what: "peer start",
            detail: format!("{} did not listen on {addr} within 10 s", kind.name()),
        })
    }

    /// Which tunnel.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// Its listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (for memory figures; websockify forks one child per connection).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Opens the tunnel's WebSocket from loopback address `from` (any when `None`) and
    /// returns it as a byte stream.
    pub async fn connect_from(
        &self,
        from: Option<std::net::IpAddr>,
    ) -> Result<WsBytes<TcpStream>, BenchError> {
        let tcp = crate::tcp_connect(self.addr, from).await?;
        let mut request = format!("ws://{}/", self.addr).into_client_request()?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(self.kind.subprotocol()),
        );
        // Every frame goes straight to the socket: prl-transport writes whole records and
        // never calls flush.
        let config = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_message_size(Some(64 << 20));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(config)).await?;
        Ok(WsBytes::new(ws))
    }
}

/// A WebSocket as a byte stream: each write becomes one binary message, reads return the
/// payloads of the binary messages in order (pings are answered by tungstenite, a close is
/// the end of the stream). This is the adapter a user would put under an IOService client.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    rest: Bytes,
    /// A written message may still sit in tungstenite's buffer.
    unflushed: bool,
    eof: bool,
}

impl<S> std::fmt::Debug for WsBytes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsBytes")
            .field("rest", &self.rest.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<S> WsBytes<S> {
    fn new(ws: WebSocketStream<S>) -> Self {
        WsBytes {
            ws,
            rest: Bytes::new(),
            unflushed: false,
            eof: false,
        }
    }
}

fn ws_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    fn poll_pending_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unflushed {
            ready!(Pin::new(&mut self.ws).poll_flush(cx)).map_err(ws_io)?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The transport polls reads all the time and writes only when it has bytes: finish
        // a write the socket did not take at once from here.
        if let Poll::Ready(Err(e)) = this.poll_pending_flush(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            if !this.rest.is_empty() {
                let n = this.rest.len().min(buf.remaining());
                buf.put_slice(&this.rest[..n]);
                this.rest.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.rest = b,
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending_flush(cx))?;
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_io)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(data)))
            .map_err(ws_io)?;
        this.unflushed = true;
        // Usually written already (write buffer 0); otherwise the next read or write
        // finishes it.
        let _ = this.poll_pending_flush(cx);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending_flush(cx))?;
        Pin::new(&mut this.ws).poll_close(cx).map_err(ws_io)
    }
}
