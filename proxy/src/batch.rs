//! Write batching under the browser's WebSocket: tungstenite writes every frame at once
//! (`ws_write_buffer_bytes` 0), so without this each relayed package would be its own socket
//! write (and, over wss, its own TLS record). [`BatchWriter`] collects the frames the relay's
//! writer hands over in one go and writes them with one call at the flush that ends the batch;
//! the buffer is freed once written, so an idle session holds none. Reads pass through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes collected before a write goes through to the socket without waiting for the flush.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct BatchWriter<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` is written.
    pos: usize,
}

impl<S> BatchWriter<S> {
    pub(crate) fn new(inner: S) -> BatchWriter<S> {
        BatchWriter {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> BatchWriter<S> {
    /// Writes the collected bytes; frees the buffer once they are all written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.buf.len() {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.buf = Vec::new();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BatchWriter<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BatchWriter<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() - this.pos + data.len() > BATCH_BYTES {
            // A full batch goes out first (this is the backpressure).
            ready!(this.poll_drain(cx))?;
            if data.len() >= BATCH_BYTES {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_go_out_in_one_piece() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = BatchWriter::new(a);
        w.write_all(b"one ").await.unwrap();
        w.write_all(b"two").await.unwrap();
        // Nothing on the wire before the flush.
        let mut probe = [0u8; 16];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.read(&mut probe)).await;
        assert!(early.is_err(), "bytes went out before the flush");
        w.flush().await.unwrap();
        let n = b.read(&mut probe).await.unwrap();
        assert_eq!(&probe[..n], b"one two");
        // Written: no buffer kept.
        assert_eq!(w.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn a_full_batch_is_written_before_more_is_taken() {
        let (a, mut b) = tokio::io::duplex(4 * BATCH_BYTES);
        let mut w = BatchWriter::new(a);
        let chunk = vec![7u8; BATCH_BYTES / 2 + 1];
        w.write_all(&chunk).await.unwrap();
        w.write_all(&chunk).await.unwrap();
        // The first chunk had to go out to make room for the second.
        let mut got = vec![0u8; chunk.len()];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, chunk);
        assert!(w.buf.len() - w.pos <= BATCH_BYTES);
        // A write larger than a batch goes straight through; shutdown flushes the rest.
        let big = vec![9u8; BATCH_BYTES + 1];
        w.write_all(&big).await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(w.buf.capacity(), 0);
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), chunk.len() + big.len());
    }
}
