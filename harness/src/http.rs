//! HTTP/1.1 on a plain TCP stream, one request per connection, so that a test
//! sees the response as the server wrote it: its status, its headers and its
//! body.

use std::fmt;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::WAIT;

/// An HTTP response, parsed just enough for a test to check it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code, `101` or `404`.
    pub status: u16,
    /// The status line and the header lines as they arrived, up to and with the
    /// blank line.
    pub head: String,
    /// Each header's name and value, in the order they arrived.
    pub headers: Vec<(String, String)>,
    /// Everything after the head.
    pub body: String,
}

impl HttpResponse {
    /// Parses `text`, a response from its status line on; panics on anything but
    /// HTTP/1.1.
    pub fn parse(text: &str) -> HttpResponse {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end to the response head: {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| {
                panic!("not an HTTP/1.1 status line: {status_line:?}")
            });
        let headers = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("not a header line: {line:?}"));
                (name.to_owned(), value.trim().to_owned())
            })
            .collect();
        HttpResponse {
            status,
            head: format!("{head}\r\n\r\n"),
            headers,
            body: body.to_owned(),
        }
    }

    /// The value of the header `name`, which matches whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body, parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self}"))
    }
}

/// The response as it arrived, for assertion messages.
impl fmt::Display for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.head, self.body)
    }
}

/// Reads a response head from `stream` byte by byte, up to and with its blank
/// line, so that nothing after it is consumed: the first frames after a `101`,
/// the body after a `200`.
pub async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await?);
    }
    Ok(head)
}

/// `GET path` on a new connection to `addr`.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    exchange(addr, &request).await
}

/// `POST path` with a form body (`name=value&...`) on a new connection to `addr`.
pub async fn http_post_form(
    addr: SocketAddr,
    path: &str,
    form: &str,
) -> HttpResponse {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    exchange(addr, &request).await
}

/// Writes `request` on a new TCP connection and reads until the server closes it.
async fn exchange(addr: SocketAddr, request: &str) -> HttpResponse {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.expect("read response");
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = timeout(WAIT, exchange)
        .await
        .expect("the response arrives in time");
    HttpResponse::parse(&response)
}
