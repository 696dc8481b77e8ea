//! A peer made by hand on a plain TCP stream, for what tokio-tungstenite never does: leave a
//! ping unanswered, for one.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::WAIT;
use super::http::HttpResponse;

/// The example request from RFC 6455 section 1.3, whose accept value the RFC gives.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A browser's opening handshake, reduced to what RFC 6455 requires.
pub fn upgrade_request(host: &str) -> String {
    upgrade_request_with(host, &[])
}

/// The opening handshake with extra header lines, such as `("Origin", "http://...")`.
pub fn upgrade_request_with(host: &str, headers: &[(&str, &str)]) -> String {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

// ANCHOR: raw_upgrade
/// Performs the opening handshake by hand on a plain TCP stream and returns the stream with
/// the server's response (its head; no body). The stream then speaks raw frames: nothing
/// answers pings for it, which makes it the perfect silent peer.
pub async fn raw_upgrade(addr: SocketAddr) -> (TcpStream, HttpResponse) {
    raw_upgrade_with(addr, &[]).await
}

/// [`raw_upgrade`] with extra header lines.
pub async fn raw_upgrade_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (TcpStream, HttpResponse) {
    let handshake = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = upgrade_request_with(&addr.to_string(), headers);
        tcp.write_all(request.as_bytes()).await.expect("write");
        // Read the response head byte by byte, so no frame after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tcp.read_u8().await.expect("the response head is complete");
            head.push(byte);
        }
        let head = String::from_utf8(head).expect("the head is text");
        (tcp, HttpResponse::parse(&head))
    };
    timeout(WAIT, handshake)
        .await
        .expect("the handshake completes in time")
}
// ANCHOR_END: raw_upgrade
