//! The relay session (placeholder until prl-protocol's relay module and prl-transport land).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::server::{ConnPermits, Shared};
use crate::ticket::Claims;

/// Everything the upgrade learned about a browser connection.
#[derive(Debug)]
#[allow(dead_code)]
pub(crate) struct Context {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub origin: String,
    pub header_claims: Option<Claims>,
    pub permits: Arc<ConnPermits>,
}

/// A relay session (filled in with the upstream connection).
#[derive(Debug)]
pub struct Session;

/// Serve one browser WebSocket.
pub(crate) async fn serve<S>(mut ws: WebSocketStream<S>, ctx: Context)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Duration::from_millis(ctx.shared.runtime().config.limits.handshake_timeout_ms);
    let _ = tokio::time::timeout(deadline, ws.next()).await;
    let _ = ws.send(Message::Close(None)).await;
}
