//! Lesson 08 against slowloris (`examples/08_production/http.rs`): request
//! heads that never complete, idle keep-alive connections, and more
//! connections than the cap, all from raw TCP sockets.

use ws_harness as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, HttpResponse, Running, WAIT, next};
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "08_production";

/// The start of a request head, and no end to it.
const HALF_A_HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\n";

/// The header timeout of [`impatient_server`]: short, to keep the tests quick,
/// but not so short that the tests' own requests (`/stats`, an upgrade) could
/// miss it on a machine busy with a build (`common::LATE`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// An echo server (no token) whose request heads must arrive within
/// [`HEADER_TIMEOUT`].
async fn impatient_server() -> Running {
    let args = ["--no-auth", "--echo", "--header-timeout", "3s"];
    Running::start(EXAMPLE, &args).await
}

/// Proof that a WebSocket still works: a message comes back.
async fn echoes(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
    let echo = next(client).await;
    assert_eq!(echo, Some(Message::text(text)), "the echo of {text:?}");
}

/// Reads until the server ends the connection, within `WAIT`: what arrived
/// before the end (a reset ends it too).
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = timeout(WAIT, tcp.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(read.is_ok(), "still open after {WAIT:?}: {text:?}");
    received
}

/// One HTTP/1.1 connection kept alive, for several requests in a row.
struct KeepAlive(TcpStream);

impl KeepAlive {
    async fn open(addr: SocketAddr) -> KeepAlive {
        KeepAlive(TcpStream::connect(addr).await.expect("connect"))
    }

    /// `GET path` on this connection, and its response, read to the end of
    /// its body (by its Content-Length) but not beyond.
    async fn get(&mut self, path: &str) -> HttpResponse {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.0.write_all(request.as_bytes()).await.expect("write");
        let read = async {
            let mut bytes = Vec::new();
            let mut chunk = [0; 4096];
            loop {
                let n = self.0.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed mid-response: {bytes:?}");
                bytes.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&bytes);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = HttpResponse::parse(&format!("{head}\r\n\r\n"))
                        .header("content-length")
                        .and_then(|n| n.parse::<usize>().ok())
                        .expect("a Content-Length");
                    if body.len() >= length {
                        return HttpResponse::parse(&text);
                    }
                }
            }
        };
        timeout(WAIT, read).await.expect("the response in time")
    }

    /// `GET /stats` on this connection.
    async fn stats(&mut self) -> serde_json::Value {
        self.get("/stats").await.json()
    }

    /// Polls `/stats` on this connection until `ready` holds (within `WAIT`).
    async fn wait_for_stats(
        &mut self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        let deadline = Instant::now() + WAIT;
        loop {
            every.tick().await;
            let stats = self.stats().await;
            if ready(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: /stats reads {stats}");
        }
    }
}

// ANCHOR: never_completes
#[tokio::test]
async fn a_head_that_never_completes_is_closed_after_the_header_timeout() {
    let server = impatient_server().await;
    let mut client = server.connect().await;

    let opened = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(HALF_A_HEAD).await.expect("write");
    let received = until_closed(&mut slow).await;
    let closed_after = opened.elapsed();

    assert!(received.is_empty(), "no response: {received:?}");
    assert!(closed_after >= HEADER_TIMEOUT, "{closed_after:?}");
    let stats = server.stats().await;
    assert_eq!(stats["http"]["header_timeouts"], 1, "{stats}");
    // The WebSocket, older than the timeout, is not bound by it.
    echoes(&mut client, "still here").await;
}
// ANCHOR_END: never_completes

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = impatient_server().await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let received = until_closed(&mut silent).await;
    assert!(received.is_empty(), "no response: {received:?}");
    assert!(opened.elapsed() >= HEADER_TIMEOUT);
}

// ANCHOR: trickle
#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_closed_all_the_same() {
    let server = impatient_server().await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    // A head that never ends, one byte every 100 ms: each byte arrives well
    // within the timeout, but the head as a whole does not.
    let endless = HALF_A_HEAD.iter().chain(b"X-Slow: a\r\n".iter().cycle());
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let mut sent = 0;
    let mut received = [0; 64];
    for byte in endless.take(100) {
        tokio::select! {
            _ = every.tick() => {}
            read = slow.read(&mut received) => {
                assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
                break;
            }
        }
        if slow.write_all(&[*byte]).await.is_err() {
            break; // closed (reset) under our write
        }
        sent += 1;
    }
    // 100 bytes would take 10 s: far more than the header timeout.
    assert!(sent < 100, "the connection took all {sent} bytes");
    let stats = server.stats().await;
    assert_eq!(stats["http"]["header_timeouts"], 1, "{stats}");
}
// ANCHOR_END: trickle

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = impatient_server().await;
    let mut connection = KeepAlive::open(server.addr).await;
    // Two requests on one connection: it is kept alive...
    for _ in 0..2 {
        let response = connection.get("/stats").await;
        assert_eq!(response.status, 200, "{response}");
        assert_eq!(response.header("connection"), None, "{response}");
    }
    // ...and closed once it has waited the header timeout for a third.
    let received = until_closed(&mut connection.0).await;
    assert!(received.is_empty(), "nothing more: {received:?}");
    let stats = server.stats().await;
    assert_eq!(stats["http"]["header_timeouts"], 1, "{stats}");
}

// ANCHOR: cap
#[tokio::test]
async fn beyond_the_cap_a_connection_is_closed_at_once_and_websockets_carry_on() {
    let args = [
        "--no-auth",
        "--echo",
        "--max-http-connections",
        "2",
        "--header-timeout",
        "60s",
    ];
    let server = Running::start(EXAMPLE, &args).await;
    let mut client = server.connect().await;
    // One connection for /stats, kept alive (a new one for each request
    // would count too), until the upgraded WebSocket has given its place back.
    let mut stats = KeepAlive::open(server.addr).await;
    stats
        .wait_for_stats("the WebSocket's place is free", |s| {
            s["connections"] == 1 && s["http"]["open"] == 1
        })
        .await;
    // A slow head takes the second place...
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(HALF_A_HEAD).await.expect("write");
    stats
        .wait_for_stats("the slow head is counted", |s| s["http"]["open"] == 2)
        .await;

    // ...so a third connection is closed as soon as it is accepted, long
    // before any timeout.
    let opened = Instant::now();
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    let _ = third
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let received = until_closed(&mut third).await;
    assert!(received.is_empty(), "no response: {received:?}");
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "{:?}",
        opened.elapsed()
    );
    let counts = stats.stats().await;
    assert_eq!(counts["http"]["refused"], 1, "{counts}");

    // The WebSocket does not count against the cap, and carries on.
    echoes(&mut client, "unaffected").await;
    // When the slow head goes, its place is free for a new connection.
    drop(slow);
    stats
        .wait_for_stats("the slow head's place is free", |s| {
            s["http"]["open"] == 1
        })
        .await;
    let response = server.get("/stats").await;
    assert_eq!(response.status, 200, "{response}");
}
// ANCHOR_END: cap

#[tokio::test]
async fn a_normal_upgrade_and_plain_http_work_as_before() {
    let server = impatient_server().await;
    let mut client = server.connect().await;
    echoes(&mut client, "hello").await;
    let response = server.get("/login").await;
    assert_eq!(response.status, 200, "{response}");
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(stats["http"]["header_timeouts"], 0, "{stats}");
}
