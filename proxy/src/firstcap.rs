//! A cap on the browser's first WebSocket message, checked from the frame headers as they
//! arrive: the first message must be a control message (`open` / `resume`, at most
//! [`MAX_CONTROL_LEN`] bytes), so a frame announcing more is refused at once instead of
//! being buffered up to the general message limit (1 MiB) before any authentication.
//! After the first data message is complete, bytes pass through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prl_protocol::relay::MAX_CONTROL_LEN;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The I/O error raised when the first message is announced longer than the control limit.
#[derive(Debug, thiserror::Error)]
#[error("first message too long: over {MAX_CONTROL_LEN} bytes announced before authentication")]
pub(crate) struct FirstMessageTooLong;

#[derive(Debug)]
enum State {
    /// Collecting a frame header (at most 14 bytes).
    Header { buf: [u8; 14], have: usize },
    /// Skipping a frame's payload.
    Payload { left: u64, ends_message: bool },
    /// The first data message is complete.
    Done,
}

/// Wraps the upgraded socket of one browser connection (server side: frames from the browser
/// are masked).
#[derive(Debug)]
pub(crate) struct FirstMessageCap<S> {
    inner: S,
    state: State,
    /// Payload bytes of the first data message announced so far.
    total: u64,
}

impl<S> FirstMessageCap<S> {
    pub(crate) fn new(inner: S) -> FirstMessageCap<S> {
        FirstMessageCap {
            inner,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            total: 0,
        }
    }

    /// Follow the frames in `bytes`; an error once the first message is too long.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), FirstMessageTooLong> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Payload { left, ends_message } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = bytes.get(n as usize..).unwrap_or_default();
                    if *left == 0 {
                        self.state = if *ends_message {
                            State::Done
                        } else {
                            State::Header {
                                buf: [0; 14],
                                have: 0,
                            }
                        };
                    }
                }
                State::Header { buf, have } => {
                    if let (Some(slot), Some(b)) = (buf.get_mut(*have), bytes.first()) {
                        *slot = *b;
                        *have += 1;
                        bytes = bytes.get(1..).unwrap_or_default();
                    }
                    if *have < 2 {
                        continue;
                    }
                    let len7 = buf[1] & 0x7f;
                    let ext = match len7 {
                        126 => 2,
                        127 => 8,
                        _ => 0,
                    };
                    let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
                    if *have < 2 + ext + mask {
                        continue;
                    }
                    let len = match ext {
                        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
                        8 => u64::from_be_bytes([
                            buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9],
                        ]),
                        _ => u64::from(len7),
                    };
                    let fin = buf[0] & 0x80 != 0;
                    let opcode = buf[0] & 0x0f;
                    // 0 continuation, 1 text, 2 binary; 8-10 are control frames.
                    let data = opcode < 8;
                    if data {
                        self.total = self.total.saturating_add(len);
                        if self.total > MAX_CONTROL_LEN as u64 {
                            return Err(FirstMessageTooLong);
                        }
                    }
                    let ends_message = data && fin;
                    self.state = if len == 0 && ends_message {
                        State::Done
                    } else if len == 0 {
                        State::Header {
                            buf: [0; 14],
                            have: 0,
                        }
                    } else {
                        State::Payload {
                            left: len,
                            ends_message,
                        }
                    };
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstMessageCap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if matches!(this.state, State::Done) {
                    return Poll::Ready(Ok(()));
                }
                let new = buf.filled().get(before..).unwrap_or_default();
                match this.scan(new) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstMessageCap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![(u8::from(fin) << 7) | opcode];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= 0xffff {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn an_announced_oversize_first_message_is_refused_from_its_header() {
        let mut c = FirstMessageCap::new(());
        assert!(c.scan(&header(true, 1, 1 << 20)).is_err());
    }

    #[test]
    fn fragments_add_up_and_control_frames_do_not_count() {
        let mut c = FirstMessageCap::new(());
        let mut bytes = header(true, 9, 100); // a ping
        bytes.extend(vec![0; 100]);
        bytes.extend(header(false, 1, 5000));
        bytes.extend(vec![0; 5000]);
        // Fed a byte at a time, as a slow socket might.
        for b in &bytes {
            c.scan(std::slice::from_ref(b)).unwrap();
        }
        assert!(c.scan(&header(true, 0, 4000)).is_err());
    }

    #[test]
    fn after_the_first_message_everything_passes() {
        let mut c = FirstMessageCap::new(());
        let mut bytes = header(true, 1, MAX_CONTROL_LEN as u64);
        bytes.extend(vec![0; MAX_CONTROL_LEN]);
        bytes.extend(header(true, 2, 1 << 20));
        c.scan(&bytes).unwrap();
        assert!(matches!(c.state, State::Done));
        c.scan(&header(true, 2, 16 << 20)).unwrap();
    }
}
