//! The writers: the browser-side writer task (a bounded queue drained into the WebSocket) and
//! the bridge between a link and its transport connection (a bounded queue toward the
//! service, a reader task from it). Every queue is counted in a [`ByteBudget`], and whatever
//! way a writer task ends, its queued bytes go back to the budget.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use prl_protocol::package::Package;
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

use super::open::{transport_error, During};

/// How long a close waits for the error and close frame to be written.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Outgoing frames of the writer task.
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
    pub(crate) tx: mpsc::Sender<Out>,
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
            tokio::time::timeout(self.stall, self.tx.send(out)).await,
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
        match tokio::time::timeout(self.stall, self.tx.send(Out::Binary(data))).await {
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
                .send(Out::Text(ProxyMessage::Error(error).to_json())),
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
        let frame = Out::Close(CloseFrame {
            code,
            reason: "".into(),
        });
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

impl Weight for Out {
    fn weight(&self) -> usize {
        match self {
            Out::Binary(d) => d.len(),
            Out::Text(_) | Out::Close(_) => 0,
        }
    }
}

impl Weight for Box<Package> {
    fn weight(&self) -> usize {
        self.encoded_len()
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

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut queue: BudgetedQueue<Out>,
    ping: Arc<Notify>,
    stall: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let out = tokio::select! {
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
        let result = match out {
            Out::Binary(data) => {
                let n = data.len();
                queue.in_flight = n;
                let r = tokio::time::timeout(stall, sink.send(Message::Binary(data))).await;
                queue.in_flight = 0;
                queue.budget.sub(n);
                r
            }
            Out::Text(t) => tokio::time::timeout(stall, sink.send(Message::Text(t.into()))).await,
            Out::Close(frame) => {
                let _ = tokio::time::timeout(stall, sink.send(Message::Close(Some(frame)))).await;
                break;
            }
        };
        match result {
            Ok(Ok(())) => {}
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

/// Packages toward the service (boxed: a tokio channel allocates slots for 32 values whatever
/// its bound, and a package is large, so idle sessions should not pay for that).
pub(crate) type ToService = mpsc::Sender<Box<Package>>;
/// Packages (or the failure) from the service.
pub(crate) type FromService = mpsc::Receiver<Result<Box<Package>, RelayError>>;

/// Bridge the transport connection to two bounded channels owned by the link.
pub(crate) fn spawn_upstream(
    conn: prl_transport::Connection,
    budget: Arc<ByteBudget>,
) -> (ToService, FromService, UpstreamTasks) {
    let (sender, mut receiver, _info) = conn.split();
    let (to_tx, to_rx) = mpsc::channel::<Box<Package>>(4);
    let (from_tx, from_rx) = mpsc::channel::<Result<Box<Package>, RelayError>>(4);
    let mut queue = BudgetedQueue::new(to_rx, budget);
    let writer = tokio::spawn(async move {
        while let Some(p) = queue.rx.recv().await {
            let n = p.encoded_len();
            queue.in_flight = n;
            let r = sender.send(*p).await;
            queue.in_flight = 0;
            queue.budget.sub(n);
            if r.is_err() {
                break;
            }
        }
        drop(queue);
        let _ = sender.close().await;
    });
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = from_tx.closed() => break,
                r = receiver.recv() => match r {
                    Some(Ok(p)) => {
                        if from_tx.send(Ok(Box::new(p))).await.is_err() {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = from_tx.send(Err(transport_error(&e, During::Established))).await;
                        break;
                    }
                    None => break,
                },
            }
        }
    });
    let tasks = UpstreamTasks {
        writer: writer.abort_handle(),
        reader: reader.abort_handle(),
    };
    (to_tx, from_rx, tasks)
}

/// The two tasks bridging a link to its transport connection.
#[derive(Debug)]
pub(crate) struct UpstreamTasks {
    writer: tokio::task::AbortHandle,
    reader: tokio::task::AbortHandle,
}

impl UpstreamTasks {
    /// The link is gone: the reader stops now; the writer may flush what is queued
    /// (a logoff, say) for at most `grace`, then it is aborted (a service that does not
    /// read cannot keep the task and its queued packages).
    pub(crate) fn end(&self, grace: Duration) {
        self.reader.abort();
        let writer = self.writer.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    writer.abort();
                });
            }
            Err(_) => writer.abort(),
        }
    }
}
