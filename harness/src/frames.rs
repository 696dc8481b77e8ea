//! A peer made by hand on a plain TCP stream, for what tokio-tungstenite never
//! does: leave a ping unanswered, send a broken frame, or forget the mask.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::WAIT;
use crate::http::{HttpResponse, read_head};

/// The example request from RFC 6455 section 1.3, whose accept value the RFC
/// gives.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The bit of a frame's first byte that marks its last fragment: `FIN |
/// opcode` is the first byte of an unfragmented message.
pub const FIN: u8 = 0x80;

/// A browser's opening handshake to `/ws`, reduced to what RFC 6455 requires.
pub fn upgrade_request(host: &str) -> String {
    upgrade_request_with(host, &[])
}

/// The opening handshake to `/ws` with extra header lines, such as
/// `("Origin", "http://...")`.
pub fn upgrade_request_with(host: &str, headers: &[(&str, &str)]) -> String {
    upgrade_request_to(host, "/ws", headers)
}

/// The opening handshake to `path` (which may carry a query,
/// `/ws?user=alice`), with extra header lines.
pub fn upgrade_request_to(
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

// ANCHOR: raw_upgrade
/// Performs the opening handshake by hand on a plain TCP stream and returns the
/// stream with the server's response (its head; no body). The stream then speaks
/// raw frames: nothing answers pings for it, which makes it the perfect silent
/// peer.
pub async fn raw_upgrade(addr: SocketAddr) -> (TcpStream, HttpResponse) {
    raw_upgrade_with(addr, &[]).await
}

/// [`raw_upgrade`] with extra header lines.
pub async fn raw_upgrade_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (TcpStream, HttpResponse) {
    let tcp = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    upgrade_on(tcp, addr, headers).await
}

/// The opening handshake on a connected `tcp`, reading no byte past the response
/// head.
async fn upgrade_on(
    mut tcp: TcpStream,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (TcpStream, HttpResponse) {
    let handshake = async {
        let request = upgrade_request_with(&addr.to_string(), headers);
        tcp.write_all(request.as_bytes()).await.expect("write");
        // No frame after the head is consumed.
        let head = read_head(&mut tcp)
            .await
            .expect("the response head is complete");
        let head = String::from_utf8(head).expect("the head is text");
        (tcp, HttpResponse::parse(&head))
    };
    timeout(WAIT, handshake)
        .await
        .expect("the handshake completes in time")
}
// ANCHOR_END: raw_upgrade

/// A client frame with a masked payload: `first` is the byte of FIN, RSV and
/// opcode.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, payload, Some([0x12, 0x34, 0x56, 0x78]))
}

/// A client frame with its payload in the clear, which RFC 6455 forbids clients
/// to send.
pub fn unmasked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    frame(first, payload, None)
}

/// One frame, in the shortest length encoding, masked with `mask` if there is
/// one.
fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut bytes = vec![first];
    match payload.len() {
        n if n < 126 => bytes.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            bytes.extend_from_slice(&key);
            bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => bytes.extend_from_slice(payload),
    }
    bytes
}

/// Reads raw bytes until the server ends the connection, within `WAIT`: what
/// arrived, and how the stream ended (an error for a reset).
async fn read_to_end_within(
    tcp: &mut TcpStream,
) -> (Vec<u8>, std::io::Result<usize>) {
    let mut received = Vec::new();
    let end = timeout(WAIT, tcp.read_to_end(&mut received))
        .await
        .expect("the server hangs up");
    (received, end)
}

/// Reads raw bytes until the server closes the connection cleanly, and returns
/// them.
pub async fn read_until_hangup(tcp: &mut TcpStream) -> Vec<u8> {
    let (received, end) = read_to_end_within(tcp).await;
    assert!(end.is_ok(), "the connection ended with {end:?}");
    received
}

// ANCHOR: silent_peer
/// What a silent peer saw before the server dropped it.
pub struct SilentPeer {
    /// Every byte the server sent after its `101`, raw frames and all.
    pub received: Vec<u8>,
    /// The time from the end of the handshake to the end of the connection.
    pub dropped_after: Duration,
}

/// Upgrades by hand (with extra header lines), then only reads: it never answers
/// a ping, nor anything else, until the server hangs up.
pub async fn silent_peer(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> SilentPeer {
    let (mut tcp, response) = raw_upgrade_with(addr, headers).await;
    assert_eq!(response.status, 101, "{response}");
    let upgraded = Instant::now();
    let received = read_until_hangup(&mut tcp).await;
    SilentPeer {
        received,
        dropped_after: upgraded.elapsed(),
    }
}
// ANCHOR_END: silent_peer

// ANCHOR: stuck_peer
/// A peer that stopped reading, like a laptop whose lid closed: a 4 KiB receive
/// buffer, the handshake, and not one byte read after it. Whatever the server
/// sends piles up in the buffers until they are full, and then the server's next
/// send cannot finish.
pub async fn stuck_peer(addr: SocketAddr, headers: &[(&str, &str)]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (tcp, response) = upgrade_on(tcp, addr, headers).await;
    assert_eq!(response.status, 101, "{response}");
    tcp
}
// ANCHOR_END: stuck_peer

/// Sends `bytes` on an upgraded stream, then reads the server's frames until the
/// connection ends; returns the code of its Close frame, if it sent one.
pub async fn close_code_after(mut tcp: TcpStream, bytes: &[u8]) -> Option<u16> {
    // The server may close before it has read all of what we send: ignore a
    // failed write, and a reset after its frames.
    let _ = tcp.write_all(bytes).await;
    let (received, _) = read_to_end_within(&mut tcp).await;
    // The server's frames: the snapshot, perhaps readings, then the Close.
    let (frames, _) = server_frames(&received);
    frames
        .iter()
        .find(|frame| frame.opcode == 0x8)
        .and_then(|close| {
            (close.payload.len() >= 2)
                .then(|| u16::from_be_bytes([close.payload[0], close.payload[1]]))
        })
}

/// A frame as a server sends it: never masked (RFC 6455, section 5.1).
#[derive(Debug)]
pub struct ServerFrame {
    /// The low four bits of the first byte: 0x1 text, 0x8 close, ...
    pub opcode: u8,
    /// The payload, as it came.
    pub payload: Vec<u8>,
}

/// The complete frames at the front of `bytes`, and how many bytes they take;
/// a frame cut short by the end of `bytes` is left for the next read.
pub fn server_frames(bytes: &[u8]) -> (Vec<ServerFrame>, usize) {
    let mut frames = Vec::new();
    let mut used = 0;
    while let Some((header, length)) = frame_extent(&bytes[used..]) {
        let payload = &bytes[used + header..used + header + length];
        frames.push(ServerFrame {
            opcode: bytes[used] & 0x0F,
            payload: payload.to_vec(),
        });
        used += header + length;
    }
    (frames, used)
}

/// The sizes of the header and the payload of the server frame that `bytes`
/// start with, if all of it is there.
pub fn frame_extent(bytes: &[u8]) -> Option<(usize, usize)> {
    let (header, length) = match *bytes.get(1)? & 0x7F {
        126 => (
            4,
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(
                bytes.get(2..10)?.try_into().ok()?,
            ))
            .ok()?,
        ),
        n => (2, n as usize),
    };
    (bytes.len() >= header + length).then_some((header, length))
}
