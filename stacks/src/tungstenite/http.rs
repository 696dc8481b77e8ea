//! The little HTTP that a bare tokio-tungstenite server needs: read a request
//! head, answer `GET /` with the try-it page, anything else but an upgrade
//! with an error, and give an upgrade to tungstenite with the head it has
//! already read put back in front of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// The longest request head we read; browsers send well under 2 KiB.
const MAX_HEAD: usize = 8 * 1024;
/// A client has this long to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`route`] did with a connection.
pub enum Route<S> {
    /// A WebSocket upgrade, for tungstenite's handshake.
    Upgrade(Rewind<S>),
    /// It was answered (the page, or an error) and is finished.
    Answered,
}

// ANCHOR: route
/// Reads the request head from `tcp` and routes it; `GET /stats` is answered
/// with what `stats` makes, if there is a `stats`.
pub async fn route<S>(
    mut tcp: S,
    stats: Option<&(dyn Fn() -> String + Send + Sync)>,
) -> Route<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reading = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut tcp));
    let head = match reading.await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
            let answer =
                text(431, "Request Header Fields Too Large", &e.to_string());
            let _ = tcp.write_all(&answer).await;
            return Route::Answered;
        }
        Ok(Err(e)) => {
            tracing::debug!("no request head: {e}");
            return Route::Answered;
        }
        Err(_) => return Route::Answered, // too slow: drop it
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let answer = match request.parse(&head) {
        Ok(httparse::Status::Complete(_)) if is_upgrade(&request) => {
            return Route::Upgrade(Rewind::new(head.freeze(), tcp));
        }
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.and_then(|p| p.split('?').next());
            match (request.method, path) {
                (Some("GET"), Some("/")) => page(),
                (Some("GET"), Some("/stats")) => match stats {
                    Some(stats) => {
                        response(200, "OK", "application/json", &stats())
                    }
                    None => text(404, "Not Found", "not found"),
                },
                (_, Some("/")) => text(405, "Method Not Allowed", "GET only"),
                (_, Some("/ws")) => {
                    text(400, "Bad Request", "expected a WebSocket upgrade")
                }
                _ => text(404, "Not Found", "not found"),
            }
        }
        _ => text(400, "Bad Request", "malformed request"),
    };
    let _ = tcp.write_all(&answer).await;
    let _ = tcp.shutdown().await;
    Route::Answered
}
// ANCHOR_END: route

/// Reads until the blank line that ends a request head (and whatever came
/// with it), at most [`MAX_HEAD`] bytes.
async fn read_head(tcp: &mut (impl AsyncRead + Unpin)) -> io::Result<BytesMut> {
    let mut head = BytesMut::with_capacity(1024);
    loop {
        if tcp.read_buf(&mut head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            let message = format!("a request head over {MAX_HEAD} bytes");
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
    }
}

/// `Upgrade: websocket`, in any case, among the headers.
fn is_upgrade(request: &httparse::Request) -> bool {
    request.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("upgrade")
            && header.value.eq_ignore_ascii_case(b"websocket")
    })
}

/// `200 OK` with the try-it page.
fn page() -> Vec<u8> {
    response(
        200,
        "OK",
        "text/html; charset=utf-8",
        ws_lessons::page::TRY_IT,
    )
}

/// An error status with a line of text.
fn text(status: u16, reason: &str, body: &str) -> Vec<u8> {
    response(status, reason, "text/plain; charset=utf-8", body)
}

fn response(status: u16, reason: &str, kind: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ANCHOR: only_ws
/// tungstenite's handshake callback: it sees the request and may refuse it
/// with any response. Upgrades are for `/ws` only.
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's `Callback` trait fixes this signature"
)]
pub fn only_ws(
    request: &Request,
    response: Response,
) -> Result<Response, ErrorResponse> {
    if request.uri().path() == "/ws" {
        return Ok(response);
    }
    let mut refused = ErrorResponse::new(Some("no WebSocket here".into()));
    *refused.status_mut() = StatusCode::NOT_FOUND;
    Err(refused)
}
// ANCHOR_END: only_ws

// ANCHOR: rewind
/// A stream with bytes already read from it put back in front: tungstenite's
/// handshake reads the request head again from here. The bytes are freed
/// once read.
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            self.prefix = Bytes::new(); // let the buffer go
        }
        Poll::Ready(Ok(()))
    }
}
// ANCHOR_END: rewind

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
