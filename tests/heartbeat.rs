//! Lesson 03, `examples/03_heartbeat/`: pings on an interval, a deadline for the
//! pong. The same tests, one body each, run against lesson 03 on the other
//! stacks (`stacks/`, with `--features stacks`).

use ws_harness as common;

use std::time::Duration;

use common::{
    Program, Running, WAIT, close, masked_frame, next, next_data, raw_upgrade,
    read_until_hangup, silent_peer,
};
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

common::contract! {
    tests [
        a_peer_that_never_answers_is_dropped_within_interval_plus_timeout,
        a_responsive_peer_stays_connected,
        an_unsolicited_pong_does_not_count_as_the_answer,
        a_peer_that_stops_reading_is_dropped_while_data_flows,
        durations_are_validated,
        keeps_the_contract_of_every_server,
    ]
    programs {
        lesson_03: Program::Example("03_heartbeat"),
        #[cfg(feature = "stacks")]
        tungstenite: Program::Stack("tungstenite_03_heartbeat"),
        #[cfg(feature = "stacks")]
        actix: Program::Stack("actix_03_heartbeat"),
    }
}

// ANCHOR: silent_peer
async fn a_peer_that_never_answers_is_dropped_within_interval_plus_timeout(
    program: Program,
) {
    let (interval, timeout) =
        (Duration::from_millis(200), Duration::from_millis(300));
    let server = Running::start(
        program,
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
        elapsed < interval + timeout + common::LATE,
        "after {elapsed:?}"
    );
    // The server counts the peer it dropped, and why.
    let what = "the missed pong is counted";
    let stats = server.wait_for_stats(what, missed_pongs(1)).await;
    assert_eq!(stats["heartbeat"]["blocked_sends"], 0, "{stats}");
}

/// `/stats` counts `n` peers dropped for a missed pong.
fn missed_pongs(n: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |stats| stats["heartbeat"]["missed_pongs"] == n
}
// ANCHOR_END: silent_peer

async fn a_responsive_peer_stays_connected(program: Program) {
    let server = Running::start(
        program,
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

async fn an_unsolicited_pong_does_not_count_as_the_answer(program: Program) {
    let server = Running::start(
        program,
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
    let what = "the pong that did not answer is counted as missed";
    server.wait_for_stats(what, missed_pongs(1)).await;
}

// ANCHOR: stuck_peer
/// A peer that sends and never reads: the echoes pile up in the buffers until
/// the server's send cannot finish. Only a deadline on that send lets the server
/// notice (lesson 03's `Heartbeat::send`); without one, its loop waits in the
/// send for ever, and the peer's writes block for ever too.
async fn a_peer_that_stops_reading_is_dropped_while_data_flows(program: Program) {
    // No ping is due within the test, and a send may wait 500 ms: a peer
    // dropped in time was dropped by the deadline on a blocked send.
    let args = ["--ping-interval", "30s", "--pong-timeout", "500ms"];
    let server = Running::start(program, &args).await;
    let mut peer = common::stuck_peer(server.addr, &[]).await;

    // Write 16 KiB messages until a write fails: once the server drops the
    // connection, with our data unread, its kernel answers with a reset.
    let message = masked_frame(0x82, &[7; 16 * 1024]);
    let writing = async {
        for _ in 0..100_000 {
            if let Err(e) = peer.write_all(&message).await {
                return e;
            }
        }
        panic!("100,000 messages written: the server reads without echoing");
    };
    let bound = Duration::from_secs(20);
    let error = tokio::time::timeout(bound, writing)
        .await
        .unwrap_or_else(|_| panic!("the peer still connected after {bound:?}"));
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    let what = "the peer is counted as dropped for a blocked send";
    let stats = server
        .wait_for_stats(what, |s| s["heartbeat"]["blocked_sends"] == 1)
        .await;
    assert_eq!(stats["heartbeat"]["missed_pongs"], 0, "{stats}");
}
// ANCHOR_END: stuck_peer

async fn durations_are_validated(program: Program) {
    let (status, _, stderr) =
        common::run_to_exit(program, &["--ping-interval", "30 parsecs"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--ping-interval"), "{stderr}");
    let (status, stdout, _) = common::run_to_exit(program, &["--help"]).await;
    assert!(status.success());
    assert!(
        stdout.contains("[default: 30s]") && stdout.contains("[default: 10s]"),
        "{stdout}"
    );
}

/// The command-line contract of lesson 01, which lesson 03 keeps as well: the
/// page, a plain GET refused, a bad address refused, the connection closed
/// after a client's Close, and Close 1001 on SIGTERM.
async fn keeps_the_contract_of_every_server(program: Program) {
    let (status, _, stderr) = common::run_to_exit(program, &["nowhere"]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    let mut server = Running::start(program, &[]).await;
    assert_eq!(server.get("/").await.status, 200);
    assert_eq!(server.get("/ws").await.status, 400);
    server.hangs_up_after_a_clients_close().await;
    let client = server.connect().await;
    server
        .shut_down_with(nix::sys::signal::Signal::SIGTERM, &mut [client])
        .await;
}
