//! A minimal WebSocket client for the load generator: the handshake and frames by
//! hand, so that the client costs as little as possible and the same for every
//! server under test.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use ws_harness::{
    FIN, HttpResponse, masked_frame, read_head, upgrade_request_to,
};

/// An open WebSocket connection, counting the bytes that cross it.
pub struct Conn {
    tcp: TcpStream,
    pub bytes_in: u64,
    pub bytes_out: u64,
    payload: Vec<u8>,
}

impl Conn {
    /// Connects to `ws://addr/ws` and completes the opening handshake.
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        Conn::open_with(addr, None).await
    }

    /// As `open`, to `ws://addr` + `path` (such as `/ws?user=alice`).
    pub async fn open_path(
        addr: SocketAddr,
        path: &str,
    ) -> std::io::Result<Conn> {
        Conn::connect(addr, path, None).await
    }

    /// As `open`, with the socket's receive buffer set to `receive_buffer` bytes
    /// first (the kernel doubles it, and no longer grows it on its own): a client
    /// that stops reading then holds little in its kernel, as a machine that went
    /// to sleep holds nothing.
    pub async fn open_with(
        addr: SocketAddr,
        receive_buffer: Option<u32>,
    ) -> std::io::Result<Conn> {
        Conn::connect(addr, "/ws", receive_buffer).await
    }

    /// Connects to `ws://addr` + `path`, with the receive buffer set first if
    /// asked, and completes the opening handshake.
    async fn connect(
        addr: SocketAddr,
        path: &str,
        receive_buffer: Option<u32>,
    ) -> std::io::Result<Conn> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.set_nodelay(true)?;
        let mut tcp = socket.connect(addr).await?;
        let request = upgrade_request_to(&addr.to_string(), path, &[]);
        tcp.write_all(request.as_bytes()).await?;
        let head = read_head(&mut tcp).await?;
        if !head.starts_with(b"HTTP/1.1 101") {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        Ok(Conn {
            tcp,
            bytes_in: head.len() as u64,
            bytes_out: request.len() as u64,
            payload: Vec::new(),
        })
    }

    /// Writes a frame made by `ws_harness::masked_frame`.
    pub async fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.bytes_out += frame.len() as u64;
        self.tcp.write_all(frame).await
    }

    /// Reads one (unmasked, server) frame; returns its opcode. The payload is in
    /// `payload()`. A Ping is answered with its Pong at once, as a browser does,
    /// and then returned.
    pub async fn read_frame(&mut self) -> std::io::Result<u8> {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await?;
        let length = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                self.tcp.read_exact(&mut ext).await?;
                self.bytes_in += 2;
                u16::from_be_bytes(ext) as usize
            }
            127 => {
                let mut ext = [0u8; 8];
                self.tcp.read_exact(&mut ext).await?;
                self.bytes_in += 8;
                u64::from_be_bytes(ext) as usize
            }
            n => n as usize,
        };
        self.payload.resize(length, 0);
        self.tcp.read_exact(&mut self.payload).await?;
        self.bytes_in += 2 + length as u64;
        let opcode = head[0] & 0x0F;
        if opcode == OPCODE_PING {
            let pong = masked_frame(FIN | OPCODE_PONG, &self.payload);
            self.write(&pong).await?;
        }
        Ok(opcode)
    }

    /// The payload of the frame `read_frame` read last.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// The opcode of a text frame, which carries the examples' JSON messages.
pub const OPCODE_TEXT: u8 = 0x1;
/// The opcode of a Close frame.
pub const OPCODE_CLOSE: u8 = 0x8;
/// The opcode of a Ping frame, which `Conn::read_frame` answers.
pub const OPCODE_PING: u8 = 0x9;
/// The opcode of a Pong frame.
pub const OPCODE_PONG: u8 = 0xA;

/// The number after `"key":` in a JSON text, without parsing all of it.
pub fn json_number(text: &[u8], key: &str) -> Option<u64> {
    let needle = format!("\"{key}\":");
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find(&needle)? + needle.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Plain HTTP/1.1 GET on a kept-alive connection: returns the body; counts bytes
/// both ways.
pub struct Http {
    tcp: TcpStream,
    addr: SocketAddr,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Http {
    /// Connects to `addr`, which the following requests reuse.
    pub async fn open(addr: SocketAddr) -> std::io::Result<Http> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(Http {
            tcp,
            addr,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    /// `GET path`; the response must have a Content-Length (no chunked bodies).
    pub async fn get(&mut self, path: &str) -> std::io::Result<Vec<u8>> {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.tcp.write_all(request.as_bytes()).await?;
        self.bytes_out += request.len() as u64;
        let head = read_head(&mut self.tcp).await?;
        let length: usize = HttpResponse::parse(&String::from_utf8_lossy(&head))
            .header("content-length")
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        let mut body = vec![0; length];
        self.tcp.read_exact(&mut body).await?;
        self.bytes_in += (head.len() + length) as u64;
        Ok(body)
    }
}
