//! Clients that keep up by construction, not by the machine's luck, for the
//! tests of slow clients: the "fast" client beside the one that stalls.
//!
//! A server's own producer (the sensor simulator) runs at its rate whatever the
//! test does, so on a busy machine a test client meant to keep up can fall
//! behind and be resynchronised too. Two ways out:
//! - where the protocol lets a client make changes (05, 09), the fast client
//!   makes every change with a request of its own, a batch at a time, and reads
//!   the whole batch back before it asks for more: it is never more than one
//!   batch behind ([`follow_own_changes`]);
//! - where it does not (04), the fast client only moves bytes from its socket
//!   into memory while the producer runs, and the test reads them as messages
//!   afterwards ([`Drain`]).

use std::net::SocketAddr;

use futures::SinkExt;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::WAIT;
use crate::client::{Client, next_json};
use crate::frames::{frame_extent, raw_upgrade, server_frames};

/// The server's `--queue` in [`PACED`]: how far a client may fall behind.
pub const PACED_QUEUE: usize = 1024;

/// The flags of a server whose changes the test makes: the simulator all but
/// off, a queue of [`PACED_QUEUE`], and a heartbeat too slow to interfere (a
/// peer that reads nothing must be resynchronised, not dropped).
pub const PACED: [&str; 8] = [
    "--rate",
    "0.001",
    "--queue",
    "1024",
    "--ping-interval",
    "10m",
    "--pong-timeout",
    "10m",
];

/// How many changes like `sample` make a peer that reads none of them fall
/// behind: more than the path to it can hold before the server's send blocks,
/// and twice the queue after that.
///
/// The path holds at most what the kernel lets a socket's send buffer grow to
/// (the maximum of `net.ipv4.tcp_wmem`), the 4 KiB receive buffer of
/// `Running::connect_small_buffer`, and 64 KiB for the segment in flight and
/// the library's write buffer.
pub fn changes_to_overflow(sample: &Value) -> usize {
    let frame_bytes = sample.to_string().len() + 2;
    let send_buffer_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|limits| {
            limits.split_whitespace().nth(2)?.parse::<usize>().ok()
        })
        .unwrap_or(4 * 1024 * 1024);
    let path = send_buffer_max + 4096 + 64 * 1024;
    path.div_ceil(frame_bytes) + 2 * PACED_QUEUE
}

/// Sends `requests` as Text messages, flushed once at the end.
pub async fn send_batch(
    client: &mut Client,
    requests: impl IntoIterator<Item = Value>,
) {
    for request in requests {
        client
            .feed(Message::text(request.to_string()))
            .await
            .expect("send");
    }
    client.flush().await.expect("flush");
}

// ANCHOR: follow_own_changes
/// Makes `total` changes with `client`'s own requests, `request(n)` for the
/// n-th, `batch` at a time, and reads each batch of `threshold` changes back
/// before it sends the next. Every change must follow the one before it, from
/// `last`: the client misses nothing. Messages without a `seq` (an `ack`,
/// `presence`) are passed over. Returns the `seq` of the last change.
pub async fn follow_own_changes(
    client: &mut Client,
    total: usize,
    batch: usize,
    mut last: u64,
    request: impl Fn(usize) -> Value,
) -> u64 {
    for first in (0..total).step_by(batch) {
        send_batch(client, (first..first + batch).map(&request)).await;
        let mut changes = 0;
        while changes < batch {
            let message = next_json(client).await;
            let Some(seq) = message["seq"].as_u64() else {
                continue;
            };
            assert_eq!(seq, last + 1, "the fast client missed a change");
            last = seq;
            changes += usize::from(message["type"] == "threshold");
        }
    }
    last
}
// ANCHOR_END: follow_own_changes

// ANCHOR: drain
/// A client whose only work while the producer runs is a read of up to 256 KiB
/// at a time into memory, and a walk over the frame headers to count them: it
/// takes a tiny share of a core, so it keeps up with any rate a server in a
/// test can send at, however busy the machine. The test parses what it got
/// afterwards, at its leisure.
pub struct Drain {
    tcp: TcpStream,
    received: Vec<u8>,
    /// How far the frame headers in `received` have been walked.
    walked: usize,
}

impl Drain {
    /// Upgrades by hand on a plain TCP connection.
    pub async fn connect(addr: SocketAddr) -> Self {
        let (tcp, response) = raw_upgrade(addr).await;
        assert_eq!(response.status, 101, "{response}");
        Drain {
            tcp,
            received: Vec::new(),
            walked: 0,
        }
    }

    /// Reads until at least `count` more frames have arrived, each read within
    /// `WAIT`, and returns every complete frame as a message.
    pub async fn messages(&mut self, count: usize) -> Vec<Message> {
        let mut chunk = vec![0; 256 * 1024];
        let mut complete = 0;
        while complete < count {
            let read = timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("the server sends in time")
                .expect("the connection holds");
            assert_ne!(read, 0, "the server hung up");
            self.received.extend_from_slice(&chunk[..read]);
            while let Some((header, length)) =
                frame_extent(&self.received[self.walked..])
            {
                self.walked += header + length;
                complete += 1;
            }
        }
        let (frames, used) = server_frames(&self.received[..self.walked]);
        self.received.drain(..used);
        self.walked = 0;
        frames.into_iter().map(to_message).collect()
    }
}

/// A frame as tungstenite would have given it.
fn to_message(frame: crate::frames::ServerFrame) -> Message {
    match frame.opcode {
        0x1 => Message::text(String::from_utf8(frame.payload).expect("UTF-8")),
        0x8 => Message::Close(frame.payload.get(..2).map(|code| {
            CloseFrame {
                code: u16::from_be_bytes([code[0], code[1]]).into(),
                reason: String::from_utf8_lossy(&frame.payload[2..])
                    .into_owned()
                    .into(),
            }
        })),
        0x9 => Message::Ping(frame.payload.into()),
        0xA => Message::Pong(frame.payload.into()),
        _ => Message::Binary(frame.payload.into()),
    }
}
// ANCHOR_END: drain
