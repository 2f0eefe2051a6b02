//! The writer toward the browser: a bounded queue drained into the WebSocket by the session's
//! own task. It has no task of its own: the attached loop polls it beside its other work
//! ([`Writer::poll_write`]), so a package read from the service is written to the browser in
//! the same wake-up, without a hand-off to another task, and a session is one task.
//!
//! Its queue is counted in a [`ByteBudget`], and whatever way the session ends, its queued
//! bytes go back to the budget. (Toward the service the link hands packages straight to the
//! transport connection's own bounded queue, counted the same way: see `open`.)

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt};
use prl_protocol::relay::{ProxyMessage, RelayError, RelayErrorKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::budget::ByteBudget;
use crate::config::LimitsConfig;

/// How long a close waits for the error and close frame to be written.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Most bytes of queued packages written as one batch (one flush, one socket write).
const BATCH_BYTES: usize = crate::batch::BATCH_BYTES;

/// A queued message toward the browser.
#[derive(Debug)]
enum Out {
    Binary(Bytes),
    Text(String),
    Close(CloseFrame),
}

/// The browser-side writer: a bounded queue (`limits.queue_packages` messages, the packages'
/// bytes counted in a budget) and the WebSocket's sink. Pings skip the queue (a browser that
/// is busy reading a backlog still gets them, and its pongs tell it apart from a dead one).
///
/// Every write is bounded in time (`limits.write_stall_ms`): from the moment the writer has
/// something to write, each batch (at most [`BATCH_BYTES`] of packages, then one flush) must
/// be written within that limit, or [`Writer::stall_deadline`] passes and the relay treats the
/// browser as gone. Every wait for room in the queue is bounded the same way, and closing is
/// bounded by [`CLOSE_GRACE`], so a browser that stops reading cannot pin a session, its socket
/// or its queued bytes.
pub(crate) struct Writer<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    queue: VecDeque<Out>,
    /// Most messages queued (`limits.queue_packages`).
    capacity: usize,
    /// Counts the bytes of queued and unflushed packages (its parent: all browsers together).
    pub(crate) budget: Arc<ByteBudget>,
    /// Bytes of packages handed to the sink since its last flush.
    in_flight: usize,
    /// Something was handed to the sink since its last flush.
    unflushed: bool,
    /// A flush is under way: nothing more is handed to the sink until it completes (the batch
    /// buffer under tungstenite keeps what it has written until it is all written, so feeding
    /// it during a flush would grow it past a batch).
    flushing: bool,
    /// A ping is to be sent.
    ping_due: bool,
    /// A close frame was handed to the sink: nothing more is written.
    closed: bool,
    /// The socket failed or the write stalled: nothing more is written.
    failed: bool,
    stall: Duration,
    /// When the batch being written counts as stalled (set while there is work).
    stall_at: Option<Instant>,
}

impl<S> fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &self.queue.len())
            .field("in_flight", &self.in_flight)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<S> Writer<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// `budget` counts the queued packages (its parent: all browsers together).
    pub(crate) fn new(
        sink: SplitSink<WebSocketStream<S>, Message>,
        limits: &LimitsConfig,
        budget: Arc<ByteBudget>,
    ) -> Writer<S> {
        Writer {
            sink,
            queue: VecDeque::new(),
            capacity: limits.queue_packages.max(1),
            budget,
            in_flight: 0,
            unflushed: false,
            flushing: false,
            ping_due: false,
            closed: false,
            failed: false,
            stall: Duration::from_millis(limits.write_stall_ms),
            stall_at: None,
        }
    }

    /// The write stall limit.
    pub(crate) fn stall(&self) -> Duration {
        self.stall
    }

    /// Room for one more package: in the queue and in the byte budgets.
    pub(crate) fn has_room(&self) -> bool {
        !self.failed && !self.queue_full() && self.budget.has_room()
    }

    /// The queue holds its most messages.
    pub(crate) fn queue_full(&self) -> bool {
        self.queue.len() >= self.capacity
    }

    /// Something waits to be written or flushed.
    pub(crate) fn busy(&self) -> bool {
        !self.failed
            && (self.ping_due || self.unflushed || (!self.closed && !self.queue.is_empty()))
    }

    /// When the write in progress counts as stalled; `None` while there is nothing to write.
    pub(crate) fn stall_deadline(&self) -> Option<Instant> {
        self.stall_at.filter(|_| self.busy())
    }

    /// The write in progress has stalled past the limit (see [`Writer::stall_deadline`]).
    pub(crate) fn is_stalled(&self, now: Instant) -> bool {
        self.stall_deadline().is_some_and(|at| now >= at)
    }

    /// Starts the stall clock if it is not running.
    fn start_clock(&mut self) {
        if self.stall_at.is_none() {
            self.stall_at = Some(Instant::now() + self.stall);
        }
    }

    fn enqueue(&mut self, out: Out) {
        self.queue.push_back(out);
        self.start_clock();
    }

    /// Queues a package, counted in the byte budget until written. The caller has checked
    /// [`Writer::has_room`] (or waited for it).
    pub(crate) fn push_package(&mut self, data: Bytes) {
        self.budget.add(data.len());
        self.enqueue(Out::Binary(data));
    }

    /// Asks for a ping (at most one waits).
    pub(crate) fn ping(&mut self) {
        if !self.failed {
            self.ping_due = true;
            self.start_clock();
        }
    }

    /// Stops writing for good (the socket failed, or a write stalled): the queued and
    /// unflushed bytes go back to the budget.
    pub(crate) fn give_up(&mut self) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.ping_due = false;
        self.stall_at = None;
        let queued: usize = self.queue.drain(..).map(|o| weight(&o)).sum();
        self.queue = VecDeque::new();
        let n = std::mem::take(&mut self.in_flight) + queued;
        if n > 0 {
            self.budget.sub(n);
        }
    }

    /// Writes what is queued (the ping first, then the queue in batches, each flushed): ready
    /// with `Ok` once everything is written and flushed, with `Err` once the socket failed (the
    /// writer has then given up). Cancel-safe: what was handed to the sink stays there and the
    /// next call goes on from it.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if self.failed {
            return Poll::Ready(Err(()));
        }
        match ready!(self.poll_write_inner(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(_) => {
                self.give_up();
                Poll::Ready(Err(()))
            }
        }
    }

    fn poll_write_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        loop {
            let next_message = !self.closed
                && !self.flushing
                && (self.ping_due || (!self.queue.is_empty() && self.in_flight < BATCH_BYTES));
            if next_message {
                ready!(Pin::new(&mut self.sink).poll_ready(cx))?;
                let message = if std::mem::take(&mut self.ping_due) {
                    Message::Ping(Bytes::new())
                } else {
                    match self.queue.pop_front() {
                        Some(Out::Binary(data)) => {
                            self.in_flight += data.len();
                            Message::Binary(data)
                        }
                        Some(Out::Text(t)) => Message::Text(t.into()),
                        Some(Out::Close(frame)) => {
                            self.closed = true;
                            Message::Close(Some(frame))
                        }
                        None => continue,
                    }
                };
                Pin::new(&mut self.sink).start_send(message)?;
                self.unflushed = true;
                continue;
            }
            if self.unflushed {
                self.flushing = true;
                ready!(Pin::new(&mut self.sink).poll_flush(cx))?;
                self.flushing = false;
                self.unflushed = false;
                let written = std::mem::take(&mut self.in_flight);
                if written > 0 {
                    self.budget.sub(written);
                }
                // The batch is written: the next one gets the whole limit.
                self.stall_at = None;
                if self.busy() {
                    self.start_clock();
                    continue;
                }
            }
            self.stall_at = None;
            if self.queue.is_empty() && self.queue.capacity() > 0 {
                // An idle session keeps no queue storage.
                self.queue = VecDeque::new();
            }
            return Poll::Ready(Ok(()));
        }
    }

    /// Writes until the queue has room for one more message; false if the socket failed or
    /// no room came within the stall limit (the writer has then given up).
    async fn room_for_one(&mut self) -> bool {
        if self.failed {
            return false;
        }
        if !self.queue_full() {
            return true;
        }
        let stall = self.stall;
        let room = tokio::time::timeout(
            stall,
            poll_fn(|cx| match self.poll_write(cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok()),
                Poll::Pending if !self.queue_full() => Poll::Ready(true),
                Poll::Pending => Poll::Pending,
            }),
        )
        .await;
        match room {
            Ok(true) => true,
            Ok(false) => false,
            Err(_) => {
                self.give_up();
                false
            }
        }
    }

    /// Queues a control message, waiting at most the stall limit for room.
    pub(crate) async fn text(&mut self, message: &ProxyMessage) -> bool {
        if !self.room_for_one().await {
            return false;
        }
        self.enqueue(Out::Text(message.to_json()));
        true
    }

    /// Queues a package (counted in the byte budget until written), waiting at most the stall
    /// limit for room in the queue.
    pub(crate) async fn package(&mut self, data: Bytes) -> bool {
        if !self.room_for_one().await {
            return false;
        }
        self.push_package(data);
        true
    }

    /// Send a typed error, close, and wait (briefly) for it to be written.
    pub(crate) async fn fail(mut self, error: RelayError) {
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
        let queued = tokio::time::timeout_at(deadline, self.room_for_one()).await;
        if matches!(queued, Ok(true)) {
            self.enqueue(Out::Text(ProxyMessage::Error(error).to_json()));
        }
        self.finish(code, deadline).await;
    }

    /// Close with `code`, and wait (briefly) for what is queued and the close frame to be
    /// written.
    pub(crate) async fn close(self, code: CloseCode) {
        let deadline = Instant::now() + CLOSE_GRACE.min(self.stall);
        self.finish(code, deadline).await;
    }

    /// Queue the close frame (after whatever is queued), write until `deadline`, then close
    /// the socket's writing side; a writer that gave up writes nothing more. The socket is
    /// dropped with the writer and the session's stream.
    async fn finish(mut self, code: CloseCode, deadline: Instant) {
        if self.failed {
            return;
        }
        self.enqueue(Out::Close(CloseFrame {
            code,
            reason: "".into(),
        }));
        let _ = tokio::time::timeout_at(deadline, async {
            if poll_fn(|cx| self.poll_write(cx)).await.is_ok() {
                let _ = self.sink.close().await;
            }
        })
        .await;
    }
}

/// The bytes a queued message holds against the budget.
fn weight(out: &Out) -> usize {
    match out {
        Out::Binary(d) => d.len(),
        Out::Text(_) | Out::Close(_) => 0,
    }
}

impl<S> Drop for Writer<S> {
    /// Whatever way the session ends, its queued and unflushed bytes go back to the budget.
    fn drop(&mut self) {
        let queued: usize = self.queue.iter().map(weight).sum();
        let n = std::mem::take(&mut self.in_flight) + queued;
        if n > 0 {
            self.budget.sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A writer (a queue of 4, a stall limit of `stall_ms`) on the server end of an in-memory
    /// socket of `capacity` bytes, its budget, and the browser's end.
    async fn pair(
        capacity: usize,
        stall_ms: u64,
    ) -> (
        Writer<tokio::io::DuplexStream>,
        Arc<ByteBudget>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(capacity);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let browser = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let (sink, _stream) = server.split();
        let limits = LimitsConfig {
            queue_packages: 4,
            write_stall_ms: stall_ms,
            ..LimitsConfig::default()
        };
        let budget = ByteBudget::new(1 << 20, None, None);
        let writer = Writer::new(sink, &limits, Arc::clone(&budget));
        (writer, budget, browser)
    }

    /// One poll of the writer, as a select! branch would make it.
    fn poll_once<S: AsyncRead + AsyncWrite + Unpin>(w: &mut Writer<S>) -> Poll<Result<(), ()>> {
        w.poll_write(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn queued_packages_reach_the_browser_in_order_and_leave_the_budget() {
        let (mut w, budget, mut browser) = pair(1 << 16, 10_000).await;
        assert!(!w.busy() && w.stall_deadline().is_none());
        for i in 0..3u8 {
            w.push_package(Bytes::from(vec![i; 100]));
        }
        w.ping();
        assert_eq!(budget.used(), 300);
        assert!(w.busy() && w.stall_deadline().is_some());
        assert!(w.has_room());
        w.push_package(Bytes::from_static(b"x"));
        assert!(w.queue_full() && !w.has_room());
        poll_fn(|cx| w.poll_write(cx)).await.unwrap();
        assert_eq!(budget.used(), 0);
        assert!(!w.busy() && w.stall_deadline().is_none() && w.has_room());
        // The ping skips the queue.
        assert!(matches!(browser.next().await, Some(Ok(Message::Ping(_)))));
        for i in 0..3u8 {
            match browser.next().await {
                Some(Ok(Message::Binary(d))) => assert_eq!(d, vec![i; 100]),
                other => panic!("{other:?}"),
            }
        }
        w.close(CloseCode::Normal).await;
        assert!(matches!(browser.next().await, Some(Ok(Message::Binary(_)))));
        assert!(matches!(browser.next().await, Some(Ok(Message::Close(_)))));
    }

    #[tokio::test]
    async fn a_browser_that_takes_nothing_stalls_the_writer_which_gives_its_bytes_back() {
        let (mut w, budget, _browser) = pair(64, 10_000).await;
        for _ in 0..3 {
            w.push_package(Bytes::from(vec![7; 1000]));
        }
        let pending = poll_once(&mut w);
        assert!(pending.is_pending());
        assert_eq!(budget.used(), 3000);
        // The write is bounded: once the stall limit passes, it counts as stalled.
        let at = w.stall_deadline().unwrap();
        assert!(!w.is_stalled(Instant::now()));
        assert!(w.is_stalled(at));
        assert!(at - Instant::now() <= w.stall());
        w.give_up();
        assert_eq!(budget.used(), 0);
        assert!(!w.busy() && !w.has_room());
        assert!(poll_fn(|cx| w.poll_write(cx)).await.is_err());
        // A writer that gave up closes at once.
        tokio::time::timeout(Duration::from_millis(100), w.close(CloseCode::Away))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn nothing_more_is_handed_to_the_socket_while_a_flush_is_under_way() {
        let (mut w, budget, _browser) = pair(64, 10_000).await;
        w.push_package(Bytes::from(vec![1; 500]));
        assert!(poll_once(&mut w).is_pending());
        assert_eq!(w.in_flight, 500);
        // The queue takes more, but the socket gets it only once the flush is done.
        w.push_package(Bytes::from(vec![2; 700]));
        assert!(poll_once(&mut w).is_pending());
        assert_eq!((w.in_flight, w.queue.len()), (500, 1));
        assert_eq!(budget.used(), 1200);
    }

    #[tokio::test]
    async fn dropping_a_writer_returns_its_queued_and_unflushed_bytes() {
        let (mut w, budget, _browser) = pair(64, 10_000).await;
        w.push_package(Bytes::from(vec![1; 500]));
        w.push_package(Bytes::from(vec![2; 700]));
        assert!(poll_once(&mut w).is_pending());
        assert_eq!(budget.used(), 1200);
        drop(w);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn waiting_for_room_is_bounded_by_the_stall_limit() {
        let (mut w, budget, _browser) = pair(64, 50).await;
        // A batch of 80 KiB handed to the socket, which takes 64 bytes of it.
        for _ in 0..2 {
            assert!(w.package(Bytes::from(vec![3; 40 << 10])).await);
        }
        assert!(poll_once(&mut w).is_pending());
        for _ in 0..4 {
            assert!(w.package(Bytes::from(vec![4; 1000])).await);
        }
        assert!(w.queue_full());
        assert_eq!(budget.used(), (80 << 10) + 4000);
        // The browser takes nothing: no room comes, and the writer gives up after the limit.
        assert!(
            !w.text(&ProxyMessage::Error(RelayError::new(
                RelayErrorKind::Closed,
                "x"
            )))
            .await
        );
        assert_eq!(budget.used(), 0);
    }
}
