//! Lesson 03, `examples/03_heartbeat.rs`: pings on an interval, a deadline for the pong.

mod common;

use std::time::{Duration, Instant};

use common::{Server, close, next, next_data, raw_upgrade};
use futures::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "03_heartbeat";

// ANCHOR: silent_peer
#[tokio::test]
async fn a_peer_that_never_answers_is_dropped_within_interval_plus_timeout() {
    let (interval, timeout) = (Duration::from_millis(200), Duration::from_millis(300));
    let mut server = Server::start(
        EXAMPLE,
        &["--ping-interval", "200ms", "--pong-timeout", "300ms"],
    )
    .await;
    // A hand-made client on a plain TCP stream: it reads, but never answers a ping.
    let (mut tcp, response) = raw_upgrade(server.addr).await;
    assert_eq!(response.status, 101, "{response}");
    let upgraded = Instant::now();

    // Read raw bytes until the server closes the TCP connection.
    let mut received = Vec::new();
    let read = tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut received)).await;
    let elapsed = upgraded.elapsed();
    assert!(read.expect("the server hangs up").is_ok());

    // It got exactly one ping (0x89: FIN + opcode 9), carrying the 8-byte ping number 1...
    assert_eq!(received, [0x89, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    // ...and was dropped once the pong was overdue: not before, and not long after.
    assert!(
        elapsed >= interval + timeout,
        "dropped early, after {elapsed:?}"
    );
    assert!(
        elapsed < interval + timeout + Duration::from_secs(1),
        "after {elapsed:?}"
    );
    server.wait_for_log("no pong within 300ms of ping 1").await;
}
// ANCHOR_END: silent_peer

#[tokio::test]
async fn a_responsive_peer_stays_connected() {
    let server = Server::start(
        EXAMPLE,
        &["--ping-interval", "50ms", "--pong-timeout", "50ms"],
    )
    .await;
    let mut client = server.connect().await;

    // tokio-tungstenite answers each ping as it reads. Ten pings in, the connection has
    // outlived the first deadline five times over.
    for n in 1..=10u64 {
        assert_eq!(
            next(&mut client).await,
            Some(Message::Ping(n.to_be_bytes().to_vec().into()))
        );
    }
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
    let reply = close(&mut client, 1000, "").await.expect("a Close frame");
    assert_eq!(u16::from(reply.code), 1000);
}

#[tokio::test]
async fn an_unsolicited_pong_does_not_count_as_the_answer() {
    let mut server = Server::start(
        EXAMPLE,
        &["--ping-interval", "100ms", "--pong-timeout", "200ms"],
    )
    .await;
    let (mut tcp, _) = raw_upgrade(server.addr).await;
    let mut ping = [0; 10];
    tcp.read_exact(&mut ping).await.unwrap();
    assert_eq!(ping, [0x89, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    // Answer with a masked Pong (mask key 0) whose payload is not the ping's: "nope".
    use tokio::io::AsyncWriteExt;
    tcp.write_all(&[0x8A, 0x84, 0, 0, 0, 0, b'n', b'o', b'p', b'e'])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(common::WAIT, tcp.read_to_end(&mut rest)).await;
    assert!(read.expect("the server hangs up").is_ok());
    server.wait_for_log("no pong within 200ms of ping 1").await;
}

#[tokio::test]
async fn durations_are_validated() {
    let (status, _, stderr) =
        common::run_to_exit(EXAMPLE, &["--ping-interval", "30 parsecs"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--ping-interval"), "{stderr}");
    let (status, stdout, _) = common::run_to_exit(EXAMPLE, &["--help"]).await;
    assert!(status.success());
    assert!(
        stdout.contains("[default: 30s]") && stdout.contains("[default: 10s]"),
        "{stdout}"
    );
}
