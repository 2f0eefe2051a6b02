//! Read-ahead under the browser's WebSocket: tungstenite reads at most `ws_read_buffer_bytes`
//! (1 KiB by default, kept small because it is allocated for every connection) per call, so a
//! browser package of a little more than that (a typical request: an event XML of about a
//! kilobyte) took two socket reads, and a large one a read per kilobyte. [`ReadAhead`] reads
//! the socket into this thread's scratch buffer ([`SCRATCH_BYTES`], shared by every
//! connection on the thread) and hands the caller what fits; only the rest, if any, is kept,
//! and freed once taken, so an idle connection holds nothing. Writes pass through.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes one socket read takes.
pub(crate) const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// One per thread: a task reads into it and takes what it read before it yields.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_BYTES].into_boxed_slice());
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Bytes read from the socket that the caller has not taken yet (empty, and unallocated,
    /// most of the time).
    rest: Vec<u8>,
    /// How much of `rest` is taken.
    pos: usize,
}

impl<S> ReadAhead<S> {
    pub(crate) fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            rest: Vec::new(),
            pos: 0,
        }
    }

    /// Moves kept bytes into `buf`; frees the storage once all are taken.
    fn take_rest(&mut self, buf: &mut ReadBuf<'_>) {
        let available = self.rest.get(self.pos..).unwrap_or_default();
        let n = available.len().min(buf.remaining());
        buf.put_slice(available.get(..n).unwrap_or_default());
        self.pos += n;
        if self.pos >= self.rest.len() {
            self.rest = Vec::new();
            self.pos = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.rest.len() {
            this.take_rest(buf);
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= SCRATCH_BYTES {
            // Room for a whole read: nothing to gain from the scratch.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut tmp = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut tmp) {
                Poll::Ready(Ok(())) => {
                    let read = tmp.filled();
                    let n = read.len().min(buf.remaining());
                    buf.put_slice(read.get(..n).unwrap_or_default());
                    if let Some(more) = read.get(n..).filter(|more| !more.is_empty()) {
                        this.rest = more.to_vec();
                        this.pos = 0;
                    }
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A reader that counts the reads that reach it.
    struct Counting<R> {
        inner: R,
        reads: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    #[tokio::test]
    async fn small_reads_take_one_socket_read_and_keep_nothing_afterwards() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut r = ReadAhead::new(Counting {
            inner: &data[..],
            reads: 0,
        });
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = r.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        // One read of the 3000 bytes, one that found the end.
        assert_eq!(r.inner.reads, 2);
        assert_eq!(r.rest.capacity(), 0);
    }

    #[tokio::test]
    async fn large_reads_go_straight_through_and_writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut r = ReadAhead::new(a);
        b.write_all(&[5u8; 100]).await.unwrap();
        let mut big = vec![0u8; SCRATCH_BYTES];
        let n = r.read(&mut big).await.unwrap();
        assert_eq!(&big[..n], &[5u8; 100][..]);
        assert_eq!(r.rest.capacity(), 0);
        r.write_all(b"back").await.unwrap();
        r.flush().await.unwrap();
        let mut four = [0u8; 4];
        b.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"back");
    }
}
