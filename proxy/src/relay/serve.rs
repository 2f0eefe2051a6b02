//! Serving one browser WebSocket: the first message (`open` or `resume`) within the
//! first-message deadline, `opened` / `resumed` and the replay, then the attached link until it
//! ends; a gone browser leaves its link parked for a resume.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use prl_protocol::relay::{
    ClientMessage, Opened, ProxyMessage, RelayError, RelayErrorKind, Resumed, Secret, RELAY_VERSION,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::budget::ByteBudget;
use crate::config::LimitsConfig;

use super::link::{attached, detach_or_close, End, ServiceLink, WsRead};
use super::writer::Writer;
use super::{err, evicted, open, Context, Pool};

/// A browser WebSocket with its link attached: what the session's task holds while it
/// relays.
struct Session<S> {
    ctx: Context,
    stream: WsRead<S>,
    link: Box<ServiceLink>,
    writer: Writer<S>,
}

/// Serve one browser WebSocket.
pub(crate) async fn serve<S>(ws: WebSocketStream<S>, ctx: Context)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: the first message, the open or resume and the replay live only until the link
    // is attached, the end only after it is detached; inline, their states would set the size
    // of every session's task (about 1 KiB more) for its whole life.
    let Some(mut session) = Box::pin(start(ws, ctx)).await else {
        return;
    };
    session.ctx.state.metrics.sessions_active.inc();
    let end = attached(&mut session.link, &mut session.stream, &mut session.writer).await;
    session.ctx.state.metrics.sessions_active.dec();
    Box::pin(finish(session, end)).await;
}

/// The first message within its deadline, the open or resume, `opened` / `resumed` and the
/// replay: the attached session, or `None` once the connection was answered and closed.
async fn start<S>(ws: WebSocketStream<S>, ctx: Context) -> Option<Session<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let active = ctx.state.active();
    let limits = active.config.limits.clone();
    let (sink, mut stream) = ws.split();
    let budget = ByteBudget::new(
        limits.queue_bytes,
        Some(ctx.state.metrics.queued_bytes.clone()),
        Some(Arc::clone(&ctx.hub.to_browsers)),
    );
    let mut writer = Writer::new(sink, &limits, budget);
    // A browser sends its first message as soon as the socket is open: a connection that
    // does not holds a pre-auth slot for at most this long.
    // A full pre-auth pool may give this connection's slot to another client meanwhile.
    let first = tokio::select! {
        first = tokio::time::timeout(
            Duration::from_millis(limits.first_message_timeout_ms),
            next_data(&mut stream),
        ) => first,
        () = ctx.slots.preauth_evicted() => {
            writer.fail(evicted(Pool::Preauth)).await;
            return None;
        }
    };
    let message = match first {
        Err(_) => {
            ctx.state.metrics.reject("first_message_timeout");
            writer
                .fail(err(
                    RelayErrorKind::LimitReached,
                    format!(
                        "no open or resume message within {} ms of the upgrade",
                        limits.first_message_timeout_ms
                    ),
                ))
                .await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Err(e))) => {
            let e = ws_read_error(&e, &limits);
            ctx.state.metrics.reject(e.kind.as_str());
            writer.fail(e.for_version(ctx.version)).await;
            return None;
        }
        Ok(Some(Ok(Message::Text(text)))) => match ClientMessage::from_json(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                ctx.state.metrics.reject("protocol_violation");
                writer
                    .fail(err(RelayErrorKind::ProtocolViolation, e.to_string()))
                    .await;
                return None;
            }
        },
        Ok(Some(Ok(_))) => {
            ctx.state.metrics.reject("protocol_violation");
            writer
                .fail(err(
                    RelayErrorKind::ProtocolViolation,
                    "the first message must be an open or resume control message",
                ))
                .await;
            return None;
        }
    };
    // Boxed: the connect's state (resolve, TCP, handshake, TLS) is large and lives only
    // until `opened`; inline it would stay in every session's task for its whole life.
    let opened = match message {
        // Until `opened`, the connection still holds its pre-auth slot: an eviction cancels
        // the open (and its upstream connection, if any).
        ClientMessage::Open(req) => tokio::select! {
            opened = Box::pin(open::open(&ctx, &active, req)) => {
                opened.map(|link| (link, Vec::new(), false))
            }
            () = ctx.slots.preauth_evicted() => {
                writer.fail(evicted(Pool::Preauth)).await;
                return None;
            }
        },
        ClientMessage::Resume(req) => Box::pin(open::resume(&ctx, req))
            .await
            .map(|(link, replay)| (link, replay, true)),
    };
    let (mut link, replay, resumed) = match opened {
        Ok(x) => x,
        Err(refused) => {
            ctx.state.metrics.reject(refused.reason);
            writer.fail(refused.error.for_version(ctx.version)).await;
            return None;
        }
    };
    // Opened or resumed: this connection no longer counts as pre-auth.
    ctx.slots.release_preauth();
    link.slots = Arc::clone(&ctx.slots);
    // In a cluster both name this instance: the browser resumes here.
    let instance = ctx.state.shared.public_url().map(str::to_string);
    let hello = if !resumed {
        ProxyMessage::Opened(opened_message(&link, instance))
    } else {
        ProxyMessage::Resumed(Resumed {
            version: RELAY_VERSION,
            resume_token: Secret(link.token.expose().to_string()),
            replayed: replay.len() as u64,
            instance,
        })
    }
    .for_version(ctx.version);
    if !writer.text(&hello).await {
        detach_or_close(link);
        return None;
    }
    for data in replay {
        if !writer.package(data).await {
            detach_or_close(link);
            return None;
        }
    }
    link.sent_mark = link.ring.last_seq();
    Some(Session {
        ctx,
        stream,
        link,
        writer,
    })
}

/// The end of an attached session: the browser hears why, then the link closes or is kept
/// for a resume.
async fn finish<S>(session: Session<S>, end: End)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Dropped in reverse: the link (unless kept), then the browser's stream.
    let Session {
        ctx,
        stream: _stream,
        link,
        writer,
    } = session;
    match end {
        End::Failed(e) => {
            writer.fail(e.for_version(ctx.version)).await;
        }
        End::BrowserClosed => {
            writer.close(CloseCode::Normal).await;
        }
        End::BrowserGone => {
            writer.close(CloseCode::Away).await;
            detach_or_close(link);
        }
    }
}

async fn next_data<S>(stream: &mut WsRead<S>) -> Option<Result<Message, WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match stream.next().await? {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            other => return Some(other),
        }
    }
}

/// The relay error for a failed WebSocket read.
pub(super) fn ws_read_error(e: &WsError, limits: &LimitsConfig) -> RelayError {
    match e {
        WsError::Capacity(_) => err(
            RelayErrorKind::LimitReached,
            format!(
                "websocket message or frame too large: limits are {} bytes per message, {} per frame",
                limits.max_message_bytes, limits.max_frame_bytes
            ),
        ),
        WsError::Io(io)
            if io
                .get_ref()
                .is_some_and(|e| e.is::<crate::firstcap::FirstMessageTooLong>()) =>
        {
            err(
                RelayErrorKind::LimitReached,
                format!(
                    "first message too long: the open or resume message is at most {} bytes",
                    prl_protocol::relay::MAX_CONTROL_LEN
                ),
            )
        }
        _ => err(RelayErrorKind::ProtocolViolation, "websocket protocol error"),
    }
}

fn opened_message(link: &ServiceLink, instance: Option<String>) -> Opened {
    Opened {
        version: RELAY_VERSION,
        connection_uuid: link.conn_uuid_text.clone(),
        service_protocol: link.facts.service_protocol.clone(),
        service_build: link.facts.service_build.clone(),
        security_level: link.facts.security_level,
        cipher: link.facts.cipher.clone(),
        tls_version: link.facts.tls_version.clone(),
        resume_token: Secret(link.token.expose().to_string()),
        resume_window_ms: u32::try_from(link.resume.window_ms).unwrap_or(u32::MAX),
        instance,
    }
}
