//! hyper answers a request head it cannot parse by itself, inside its connection state
//! machine, with no hook to shape the answer: a bare `400`, `414` or `431` with
//! `content-length: 0` (a header value holding a NUL or DEL byte, a raw non-ASCII byte
//! in the path, a head past its read buffer). API Gateway answers those with its JSON
//! `{"message": …}`, as the local API answers everything that does parse.
//! [`JsonErrors`] wraps the socket and swaps such a bare answer, as hyper writes it, for
//! the JSON one; nothing else that is written is touched (every other answer of the
//! local API has a body).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket whose bare parse-error answers go out as API Gateway's JSON ones.
pub struct JsonErrors<S> {
    inner: S,
    swap: Option<Swap>,
}

/// The answer being written in place of hyper's.
struct Swap {
    bytes: Vec<u8>,
    sent: usize,
    /// How many bytes of hyper's the answer stands for (what hyper is told was written).
    stands_for: usize,
}

impl<S> JsonErrors<S> {
    pub fn new(inner: S) -> JsonErrors<S> {
        JsonErrors { inner, swap: None }
    }
}

/// API Gateway's answer in place of `written`, if `written` is one of hyper's bare
/// parse-error answers.
fn replacement(written: &[u8]) -> Option<Vec<u8>> {
    // Cheapest tests first: every answer the local API writes passes through here.
    let (status, message) = match written.get(..13)? {
        b"HTTP/1.1 400 " => (400, "Bad Request"),
        b"HTTP/1.1 414 " => (414, "Request-URI Too Long"),
        b"HTTP/1.1 431 " => (431, "Request Header Fields Too Large"),
        _ => return None,
    };
    const BODILESS: &[u8] = b"\r\ncontent-length: 0\r\n";
    let lower = written.to_ascii_lowercase();
    if !written.ends_with(b"\r\n\r\n") || !lower.windows(BODILESS.len()).any(|w| w == BODILESS) {
        return None;
    }
    let body = serde_json::json!({ "message": message }).to_string();
    let answer = format!(
        "HTTP/1.1 {status} {message}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-content-type-options: nosniff\r\n{}: {}\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        crate::REQUEST_ID_HEADER,
        ulid::Ulid::generate(),
    );
    Some(answer.into_bytes())
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Writes what is left of the swapped answer; `Ready(Ok(n))` for hyper's `n` bytes
    /// once all of it is out.
    fn poll_swap(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let JsonErrors { inner, swap } = self;
        let Some(answer) = swap.as_mut() else { return Poll::Ready(Ok(0)) };
        while answer.sent < answer.bytes.len() {
            match ready!(Pin::new(&mut *inner).poll_write(cx, &answer.bytes[answer.sent..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => answer.sent += n,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        let stands_for = answer.stands_for;
        *swap = None;
        Poll::Ready(Ok(stands_for))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.swap.is_none() {
            match replacement(buf) {
                Some(bytes) => self.swap = Some(Swap { bytes, sent: 0, stands_for: buf.len() }),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.poll_swap(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.swap.is_none() {
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            match (filled.next(), filled.next()) {
                // hyper writes a bodiless answer's head as one buffer.
                (Some(only), None) => return self.poll_write(cx, only),
                _ => return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            }
        }
        self.poll_swap(cx)
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

    #[test]
    fn only_hypers_bare_parse_error_answers_are_swapped() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let swapped = String::from_utf8(replacement(bare).expect("swapped")).unwrap();
        assert!(swapped.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{swapped}");
        assert!(swapped.contains("content-type: application/json\r\n"), "{swapped}");
        assert!(swapped.ends_with(r#"{"message":"Request Header Fields Too Large"}"#), "{swapped}");
        for kept in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 25\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert!(replacement(kept).is_none(), "{}", String::from_utf8_lossy(kept));
        }
    }
}
