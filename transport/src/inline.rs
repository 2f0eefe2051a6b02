//! A connection driven by its owner's task: the same state machine as a [`crate::Connection`]
//! (record layer, codec, heartbeats, buffers freed when idle), but no task and no queues of its
//! own. A relay that bridges a connection to another socket in one task uses it: a package
//! travels from the socket to the owner with no hand-off between tasks, and an idle
//! connection costs no task, no channel and no buffer.
//!
//! The owner calls [`InlineConnection::next`] in its event loop (it reads the socket only when
//! asked to, so the owner's backpressure is the socket's; it writes queued bytes and sends
//! heartbeats meanwhile) and [`InlineConnection::send`] to queue a package (encoded at once;
//! the owner stops sending while [`InlineConnection::can_send`] is false). `next` is
//! cancel-safe: dropped at any await, nothing is lost.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prl_protocol::package::Package;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::connection::{
    with_scratch, ConnectionInfo, Driver, ReadScratch, GRACEFUL_SHUTDOWN, WRITE_HIGH_WATER,
};
use crate::error::{Stage, TransportError};

/// A byte stream an inline connection runs on (TCP, unix, or anything else).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// What [`InlineConnection::next`] reports.
#[derive(Debug)]
pub enum Event {
    /// A package from the peer (heartbeats are consumed, never reported).
    Package(Box<Package>),
    /// The write backlog fell below the send limit: [`InlineConnection::can_send`] is true
    /// again.
    Writable,
}

/// See the module docs.
pub struct InlineConnection {
    core: Driver,
    rd: ReadHalf<Box<dyn Io>>,
    /// Taken by [`InlineConnection::close`] or the drop's flush.
    wr: Option<WriteHalf<Box<dyn Io>>>,
    heartbeat: Option<Interval>,
    /// How long a drop may spend writing what is queued before the FIN.
    close_grace: Duration,
    info: Arc<ConnectionInfo>,
    send_limit: usize,
    /// The peer closed its side.
    eof: bool,
    /// A failure not yet reported (reported after the packages decoded before it).
    failed: Option<TransportError>,
    /// The failure was reported: the connection is over.
    done: bool,
}

impl fmt::Debug for InlineConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineConnection")
            .field("conn", &self.core.id)
            .field("backlog", &self.backlog())
            .field("pending", &self.core.pending.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl InlineConnection {
    pub(crate) fn new(core: Driver, stream: Box<dyn Io>, info: Arc<ConnectionInfo>) -> Self {
        let heartbeat = core.heartbeat.map(|period| {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker
        });
        let (rd, wr) = tokio::io::split(stream);
        InlineConnection {
            core,
            rd,
            wr: Some(wr),
            heartbeat,
            close_grace: GRACEFUL_SHUTDOWN,
            info,
            send_limit: WRITE_HIGH_WATER,
            eof: false,
            failed: None,
            done: false,
        }
    }

    /// What the handshakes established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A shared handle to the connection info.
    pub fn info_arc(&self) -> Arc<ConnectionInfo> {
        Arc::clone(&self.info)
    }

    /// Sets the write backlog at which [`InlineConnection::can_send`] turns false (at most
    /// [`WRITE_HIGH_WATER`], which is the default).
    pub fn set_send_limit(&mut self, bytes: usize) {
        self.send_limit = bytes.clamp(1, WRITE_HIGH_WATER);
    }

    /// Sets how long dropping the connection may spend writing what is queued (a logoff,
    /// say) before it closes the socket (default 5 s, the IO layer's graceful-shutdown time).
    pub fn set_close_grace(&mut self, grace: Duration) {
        self.close_grace = grace;
    }

    /// A package already received and decoded, without touching the socket.
    pub fn take_ready(&mut self) -> Option<Box<Package>> {
        self.core.pending.pop_front().map(Box::new)
    }

    /// Bytes encoded and not yet written to the socket.
    pub fn backlog(&self) -> usize {
        self.core.wbuf.len() - self.core.wpos
    }

    /// Whether the backlog is below the send limit (the owner should send only then; a
    /// package may take the backlog past the limit once).
    pub fn can_send(&self) -> bool {
        self.backlog() < self.send_limit
    }

    /// Queues a package: checked against the limits and encoded now; written by
    /// [`InlineConnection::next`]. Like the real IO layer, a nil `sender_uuid` becomes our
    /// connection UUID and a nil `uuid` a fresh one.
    pub fn send(&mut self, mut package: Package) -> Result<(), TransportError> {
        if self.done || self.failed.is_some() {
            return Err(TransportError::Closed);
        }
        package
            .check_limits(&self.core.limits)
            .map_err(TransportError::Oversize)?;
        self.core.fill_ids(&mut package);
        self.core.encode(&package)
    }

    /// Drives the connection until there is something to report: the next package (only
    /// when `read`; otherwise the socket is not read), [`Event::Writable`], or the failure
    /// (once). `None` once the peer has closed and every package it sent was taken. Queued
    /// bytes are written and heartbeats sent all the while.
    pub async fn next(&mut self, read: bool) -> Option<Result<Event, TransportError>> {
        loop {
            if read {
                if let Some(p) = self.core.pending.pop_front() {
                    return Some(Ok(Event::Package(Box::new(p))));
                }
            }
            if self.done {
                return None;
            }
            if let Some(e) = self.failed.take() {
                self.done = true;
                return Some(Err(e));
            }
            if read && self.eof {
                self.done = true;
                return None;
            }
            let backlog = self.backlog();
            let was_blocked = backlog >= self.send_limit;
            // A peer that does not read stops being read: whatever it sends may make us
            // write (TLS alerts), so the backlog stays bounded.
            let can_read =
                read && self.core.pending.is_empty() && !self.eof && backlog < WRITE_HIGH_WATER;
            let ticking = self.heartbeat.is_some();
            let writing = backlog > 0 && self.wr.is_some();
            let Self {
                rd, wr, heartbeat, ..
            } = self;
            tokio::select! {
                n = ReadScratch { rd }, if can_read => match n {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        // Consumed before anything else runs on this thread.
                        if let Err(e) = with_scratch(n, |bytes| self.core.on_bytes(bytes)) {
                            self.failed = Some(e);
                        }
                    }
                    Err(e) => self.failed = Some(TransportError::io(Stage::Established, e)),
                },
                w = async {
                    match wr {
                        Some(wr) => wr.write(self.core.wbuf.get(self.core.wpos..).unwrap_or_default()).await,
                        None => Ok(0),
                    }
                }, if writing => match w {
                    Ok(0) => {
                        self.failed = Some(TransportError::io(
                            Stage::Established,
                            std::io::ErrorKind::WriteZero.into(),
                        ))
                    }
                    Ok(n) => {
                        self.core.wpos += n;
                        if self.core.wpos >= self.core.wbuf.len() {
                            // Written: an idle connection keeps no write buffer.
                            self.core.wbuf = Vec::new();
                            self.core.wpos = 0;
                        }
                        if was_blocked && self.can_send() {
                            return Some(Ok(Event::Writable));
                        }
                    }
                    Err(e) => self.failed = Some(TransportError::io(Stage::Established, e)),
                },
                _ = async { if let Some(t) = heartbeat { t.tick().await; } }, if ticking => {
                    // A heartbeat only says "alive" on an idle link: skipped while earlier
                    // bytes are unwritten, so a peer that stops reading does not pile them up.
                    if self.backlog() == 0 {
                        if let Err(e) = self.core.encode(&Package::heartbeat()) {
                            self.failed = Some(e);
                        }
                    }
                }
                else => std::future::pending::<()>().await,
            }
        }
    }

    /// Writes what is queued and closes the write side (FIN; no TLS close_notify, like the
    /// service), within `grace`; then the connection is dropped either way.
    pub async fn close(mut self, grace: Duration) {
        if let Some(wr) = self.wr.take() {
            let rest = std::mem::take(&mut self.core.wbuf).split_off(self.core.wpos);
            flush_and_finish(wr, rest, grace, self.core.id).await;
        }
    }
}

async fn flush_and_finish(mut wr: WriteHalf<Box<dyn Io>>, rest: Vec<u8>, grace: Duration, id: u64) {
    let _ = tokio::time::timeout(grace, async {
        if !rest.is_empty() {
            wr.write_all(&rest).await?;
        }
        wr.shutdown().await
    })
    .await;
    tracing::debug!(conn = id, "connection closed locally");
}

impl Drop for InlineConnection {
    /// Like dropping every handle of a [`crate::Connection`]: what is queued is still written
    /// (within the close grace), then the socket is closed with a FIN.
    fn drop(&mut self) {
        let Some(wr) = self.wr.take() else { return };
        let rest = std::mem::take(&mut self.core.wbuf).split_off(self.core.wpos);
        let (grace, id) = (self.close_grace, self.core.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(flush_and_finish(wr, rest, grace, id));
        }
    }
}
