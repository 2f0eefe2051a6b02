//! The writer: the browser-side writer task (a bounded queue drained into the WebSocket).
//! Its queue is counted in a [`ByteBudget`], and whatever way the task ends, its queued bytes
//! go back to the budget. (Toward the service the link hands packages straight to the
//! transport connection's own bounded queue, counted the same way: see `open`.)

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use prl_protocol::relay::{ProxyMessage, RelayError, RelayErrorKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::budget::ByteBudget;
use crate::config::LimitsConfig;

/// How long a close waits for the error and close frame to be written.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Outgoing frames of the writer task (queued boxed: a tokio channel allocates its slots 32
/// at a time whatever its bound, so an idle session's queue should hold pointers).
#[derive(Debug)]
pub(crate) enum Out {
    Binary(Bytes),
    Text(String),
    Close(CloseFrame),
}

/// The browser-side writer: a task draining a bounded queue into the WebSocket. Pings skip
/// the queue (a browser that is busy reading a backlog still gets them, and its pongs tell
/// it apart from a dead one).
///
/// Every write is bounded in time (`limits.write_stall_ms`): a browser that takes no byte
/// for that long ends the writer, which the relay sees as a gone browser. Every hand-off to
/// the queue is bounded the same way, and closing aborts the task, so a browser that stops
/// reading cannot pin a session, its socket or its queued bytes.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) tx: mpsc::Sender<Box<Out>>,
    pub(crate) ping: Arc<Notify>,
    pub(crate) budget: Arc<ByteBudget>,
    task: tokio::task::JoinHandle<()>,
    stall: Duration,
}

impl Writer {
    /// `budget` counts the queued packages (its parent: all browsers together).
    pub(crate) fn spawn<S>(
        sink: SplitSink<WebSocketStream<S>, Message>,
        limits: &LimitsConfig,
        budget: Arc<ByteBudget>,
    ) -> Writer
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits.queue_packages);
        let ping = Arc::new(Notify::new());
        let stall = Duration::from_millis(limits.write_stall_ms);
        let queue = BudgetedQueue::new(rx, Arc::clone(&budget));
        let task = tokio::spawn(write_loop(sink, queue, Arc::clone(&ping), stall));
        Writer {
            tx,
            ping,
            budget,
            task,
            stall,
        }
    }

    /// Queue a message, waiting at most the stall limit for room.
    async fn send(&self, out: Out) -> bool {
        matches!(
            tokio::time::timeout(self.stall, self.tx.send(Box::new(out))).await,
            Ok(Ok(()))
        )
    }

    pub(crate) async fn text(&self, message: &ProxyMessage) -> bool {
        self.send(Out::Text(message.to_json())).await
    }

    /// Queue a package (counted in the byte budget until written).
    pub(crate) async fn package(&self, data: Bytes) -> bool {
        let n = data.len();
        self.budget.add(n);
        match tokio::time::timeout(self.stall, self.tx.send(Box::new(Out::Binary(data)))).await {
            Ok(Ok(())) => true,
            _ => {
                self.budget.sub(n);
                false
            }
        }
    }

    /// Send a typed error, close, and wait (briefly) for it to be written.
    pub(crate) async fn fail(self, error: RelayError) {
        if error.kind == RelayErrorKind::Closed {
            // The service closes after every logoff: routine, and "upstream connection
            // closed" is logged anyway.
            tracing::debug!(kind = error.kind.as_str(), message = %error.message, "relay error");
        } else {
            tracing::info!(kind = error.kind.as_str(), message = %error.message, "relay error");
        }
        let code = match error.kind {
            RelayErrorKind::LimitReached => CloseCode::Size,
            RelayErrorKind::Internal => CloseCode::Error,
            RelayErrorKind::Closed => CloseCode::Normal,
            RelayErrorKind::ProtocolViolation => CloseCode::Protocol,
            _ => CloseCode::Policy,
        };
        let deadline = Instant::now() + CLOSE_GRACE.min(self.stall);
        let _ = tokio::time::timeout_at(
            deadline,
            self.tx
                .send(Box::new(Out::Text(ProxyMessage::Error(error).to_json()))),
        )
        .await;
        self.finish(code, deadline).await;
    }

    pub(crate) async fn close(self, code: CloseCode) {
        let deadline = Instant::now() + CLOSE_GRACE.min(self.stall);
        self.finish(code, deadline).await;
    }

    /// Queue the close frame and let the task write what it can until `deadline`; then
    /// abort it (its queue's bytes return to the budget when the task is dropped).
    async fn finish(mut self, code: CloseCode, deadline: Instant) {
        let frame = Box::new(Out::Close(CloseFrame {
            code,
            reason: "".into(),
        }));
        let _ = tokio::time::timeout_at(deadline, self.tx.send(frame)).await;
        drop(self.tx);
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// What an item of a budgeted queue holds against its byte budget.
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Box<Out> {
    fn weight(&self) -> usize {
        match &**self {
            Out::Binary(d) => d.len(),
            Out::Text(_) | Out::Close(_) => 0,
        }
    }
}

/// A writer task's end of its queue (toward the browser or toward the service). Whatever way
/// the task ends (finished, stalled, aborted), dropping it returns every queued or
/// half-written byte to the budget.
#[derive(Debug)]
struct BudgetedQueue<T: Weight> {
    rx: mpsc::Receiver<T>,
    budget: Arc<ByteBudget>,
    /// Bytes of the item being written.
    in_flight: usize,
}

impl<T: Weight> BudgetedQueue<T> {
    fn new(rx: mpsc::Receiver<T>, budget: Arc<ByteBudget>) -> Self {
        BudgetedQueue {
            rx,
            budget,
            in_flight: 0,
        }
    }
}

impl<T: Weight> Drop for BudgetedQueue<T> {
    fn drop(&mut self) {
        self.rx.close();
        let mut n = std::mem::take(&mut self.in_flight);
        while let Ok(item) = self.rx.try_recv() {
            n += item.weight();
        }
        if n > 0 {
            self.budget.sub(n);
        }
    }
}

/// Most bytes of queued packages written as one batch (one flush, one socket write).
const BATCH_BYTES: usize = crate::batch::BATCH_BYTES;

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: BudgetedQueue<Box<Out>>,
    ping: Arc<Notify>,
    stall: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    'run: loop {
        let first = tokio::select! {
            biased;
            _ = ping.notified() => {
                if !matches!(tokio::time::timeout(stall, sink.send(Message::Ping(Bytes::new()))).await, Ok(Ok(()))) {
                    break;
                }
                continue;
            }
            out = queue.rx.recv() => match out {
                Some(out) => out,
                None => break,
            },
        };
        // This message and whatever else is queued now, up to a batch, then one flush: the
        // whole batch must make progress within the stall limit.
        let mut closing = false;
        let result = tokio::time::timeout(stall, async {
            let mut next = Some(first);
            let mut batch = 0;
            while let Some(out) = next.take() {
                let message = match *out {
                    Out::Binary(data) => {
                        let n = data.len();
                        queue.in_flight += n;
                        batch += n;
                        Message::Binary(data)
                    }
                    Out::Text(t) => Message::Text(t.into()),
                    Out::Close(frame) => {
                        closing = true;
                        Message::Close(Some(frame))
                    }
                };
                sink.feed(message).await?;
                if closing || batch >= BATCH_BYTES {
                    break;
                }
                next = queue.rx.try_recv().ok();
            }
            sink.flush().await
        })
        .await;
        let written = std::mem::take(&mut queue.in_flight);
        queue.budget.sub(written);
        match result {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break 'run,
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(
                    stall_ms = stall.as_millis() as u64,
                    "browser write stalled; treated as gone"
                );
                break;
            }
        }
    }
    // Refuse further hand-offs at once (the relay sees a gone browser), then give the
    // socket a bounded chance to close cleanly.
    drop(queue);
    let _ = tokio::time::timeout(stall.min(CLOSE_GRACE), sink.close()).await;
}
