//! Lesson 03, `examples/03_heartbeat/`: pings on an interval, a deadline for the
//! pong.

mod common;

use std::time::Duration;

use common::{
    Server, WAIT, close, masked_frame, next, next_data, raw_upgrade,
    read_until_hangup, silent_peer,
};
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "03_heartbeat";

// ANCHOR: silent_peer
#[tokio::test]
async fn a_peer_that_never_answers_is_dropped_within_interval_plus_timeout() {
    let (interval, timeout) =
        (Duration::from_millis(200), Duration::from_millis(300));
    let mut server = Server::start(
        EXAMPLE,
        &["--ping-interval", "200ms", "--pong-timeout", "300ms"],
    )
    .await;
    // A hand-made client on a plain TCP stream: it reads raw bytes until the
    // server closes the TCP connection, but never answers a ping.
    let peer = silent_peer(server.addr, &[]).await;

    // It got exactly one ping (0x89: FIN + opcode 9), carrying the 8-byte ping
    // number 1...
    assert_eq!(peer.received, [0x89, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    // ...and was dropped once the pong was overdue: not before, and not long
    // after.
    let elapsed = peer.dropped_after;
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

    // tokio-tungstenite answers each ping as it reads. Ten pings in, the
    // connection has outlived the first deadline five times over.
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
    tokio::time::timeout(WAIT, tcp.read_exact(&mut ping))
        .await
        .expect("a ping in time")
        .unwrap();
    assert_eq!(ping, [0x89, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    // Answer with a masked Pong (0x8A: FIN + opcode 10) whose payload is not the
    // ping's.
    tcp.write_all(&masked_frame(0x8A, b"nope")).await.unwrap();
    read_until_hangup(&mut tcp).await;
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
