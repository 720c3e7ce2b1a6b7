//! A connection's two clocks, as API Gateway keeps them: how long a keep-alive
//! connection may sit idle between requests, and how long a request's line and headers
//! may take from their first byte.
//!
//! hyper has one timer for both (`header_read_timeout` runs from the end of the last
//! answer to the end of the next head), so a client that sleeps 10 s between requests
//! on one connection — the baseline's k6 script does — lost its connection just as it
//! sent. [`Paced`] wraps the socket instead and watches the bytes: it knows when a head
//! begins (the first byte after an answer) and ends (the blank line), and when an
//! answer goes out. hyper's own header timer is turned off (see [`crate::serve`]).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): nothing of the next head has come yet.
    Idle,
    /// A head has begun and has not ended; `line` counts the bytes of the line being
    /// read, CRs left out, so an empty line ends the head.
    Head { line: usize, lines: usize },
    /// The head is in: the body and the answer are the gateway layer's to time.
    Request,
}

/// A socket whose reads fail with [`io::ErrorKind::TimedOut`] when it has sat idle past
/// `idle`, or when a head that has begun has not ended within `head`.
pub struct Paced<S> {
    inner: S,
    idle: Duration,
    head: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Paced<S> {
    pub fn new(inner: S, idle: Duration, head: Duration) -> Paced<S> {
        Paced { inner, idle, head, phase: Phase::Idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn start(&mut self, phase: Phase, limit: Duration) {
        self.phase = phase;
        self.deadline.as_mut().reset(Instant::now() + limit);
    }

    /// Follows the head through the bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let (line, lines) = match self.phase {
                Phase::Request => return,
                Phase::Idle => {
                    self.start(Phase::Head { line: 0, lines: 0 }, self.head);
                    (0, 0)
                }
                Phase::Head { line, lines } => (line, lines),
            };
            self.phase = match byte {
                b'\r' => Phase::Head { line, lines },
                // A blank line before the request line is skipped by the parser too.
                b'\n' if line == 0 && lines > 0 => Phase::Request,
                b'\n' => Phase::Head { line: 0, lines: lines + usize::from(line > 0) },
                _ => Phase::Head { line: line + 1, lines },
            };
        }
    }

    /// An answer is going out: unless it is an interim one (`100 Continue`), the
    /// request is over and the connection is idle from now.
    fn answering(&mut self, first: &[u8]) {
        if self.phase == Phase::Request && !first.is_empty() && !first.starts_with(b"HTTP/1.1 1") {
            self.start(Phase::Idle, self.idle);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = self.get_mut();
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.phase != Phase::Request => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let what = if self.phase == Phase::Idle { "idle past" } else { "a request head took past" };
                    let limit = if self.phase == Phase::Idle { self.idle } else { self.head };
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("{what} {limit:?}"))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.answering(buf);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]).unwrap_or_default();
            self.answering(first);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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

    fn paced() -> Paced<tokio::io::Empty> {
        Paced::new(tokio::io::empty(), Duration::from_secs(60), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn a_head_ends_at_its_blank_line_however_the_reads_split_it() {
        let mut conn = paced();
        for piece in [&b"GET / HTTP/1.1\r"[..], b"\nHost: x\r\n", b"\r", b"\n"] {
            assert_ne!(conn.phase, Phase::Request, "not ended before {piece:?}");
            conn.saw(piece);
        }
        assert_eq!(conn.phase, Phase::Request);
        let mut bare = paced();
        bare.saw(b"\r\nGET / HTTP/1.1\nHost: x\n\n");
        assert_eq!(bare.phase, Phase::Request, "bare LFs and a leading blank line, as the parser takes them");
    }

    #[tokio::test]
    async fn an_answer_makes_the_connection_idle_but_an_interim_one_does_not() {
        let mut conn = paced();
        conn.saw(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        conn.answering(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(conn.phase, Phase::Request);
        conn.saw(b"{\"a\":\n\n1}");
        assert_eq!(conn.phase, Phase::Request, "a body's blank lines are not a head");
        conn.answering(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(conn.phase, Phase::Idle);
        conn.answering(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(conn.phase, Phase::Idle, "only an answer to a request idles");
        conn.saw(b"G");
        assert!(matches!(conn.phase, Phase::Head { .. }));
    }
}
