//! Lesson 11's drain (`--drain`, `examples/11_deploy/drain.rs`): a restart
//! without a stampede. SIGTERM turns `GET /ready` to 503 at once, then closes
//! each connection with 1012 (service restart) at a moment of its own, spread
//! over the drain, and the process exits when the last one has gone or the
//! drain's time is up. Ctrl-C still closes every connection at once with 1001.
//! With a real Redis (`redis-server`, started by each test on a free port).
#![cfg(feature = "with-redis")]

use ws_harness as common;

use std::time::Duration;

use common::{Client, Redis, Running, close, next, next_json, send_json};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "11_deploy";

/// The clients of each test.
const CLIENTS: usize = 10;

/// An instance that produces readings, on its own Redis, with `--drain
/// drain`.
async fn instance(redis: &Redis, drain: &str) -> Running {
    let url = redis.url();
    let args = [
        "--redis",
        &url,
        "--produce",
        "--sites",
        "2",
        "--rate",
        "100",
        "--drain",
        drain,
    ];
    Running::start(EXAMPLE, &args).await
}

/// `n` clients, each in a room: the readings keep each handler's loop turning,
/// so that it asks its `Exit` afresh many times during the drain.
async fn clients(server: &Running, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut client = server.connect_as(&format!("u{i}")).await;
        let room = format!("site-{}", i % 2 + 1);
        send_json(&mut client, json!({"type": "join", "room": room})).await;
        while !matches!(
            next_json(&mut client).await["type"].as_str(),
            Some("snapshot" | "joined")
        ) {}
        clients.push(client);
    }
    let what = "every client is connected";
    server.wait_for_stats(what, |s| s["connections"] == n).await;
    clients
}

/// When a client got the server's Close frame, and its code.
#[derive(Debug)]
struct Closed {
    at: Instant,
    code: u16,
}

/// Reads `client`, in a task of its own, until the server's Close frame and
/// then the end of the stream (the closing handshake completed), each read
/// bounded by `WAIT`.
fn watch(mut client: Client) -> JoinHandle<Closed> {
    tokio::spawn(async move {
        loop {
            match next(&mut client).await {
                Some(Message::Close(frame)) => {
                    let at = Instant::now();
                    let code = frame.map_or(1005, |frame| u16::from(frame.code));
                    if let Some(message) = next(&mut client).await {
                        panic!("a message after Close: {message:?}");
                    }
                    return Closed { at, code };
                }
                Some(_) => continue,
                None => panic!("the stream ended without a Close frame"),
            }
        }
    })
}

/// Every watcher's [`Closed`], in the order the clients connected.
async fn closes(watchers: Vec<JoinHandle<Closed>>) -> Vec<Closed> {
    let mut closes = Vec::new();
    for watcher in watchers {
        closes.push(watcher.await.expect("the client's watcher did not fail"));
    }
    closes
}

/// The closes, as milliseconds after `from`, for assertion messages.
fn offsets(closes: &[Closed], from: Instant) -> Vec<u128> {
    let mut offsets: Vec<u128> =
        closes.iter().map(|c| (c.at - from).as_millis()).collect();
    offsets.sort_unstable();
    offsets
}

#[tokio::test]
async fn sigterm_turns_ready_to_503_before_any_socket_closes() {
    let redis = Redis::start().await;
    // A drain of 1,000 hours, cut short below. The 503 arrives a few
    // milliseconds after the signal; the first of ten random turns in 1,000
    // hours falls within 10 ms of it about once in 36 million runs.
    let mut server = instance(&redis, "1000h").await;
    let watchers: Vec<_> = clients(&server, CLIENTS)
        .await
        .into_iter()
        .map(watch)
        .collect();
    assert_eq!(server.get("/ready").await.status, 200);

    server.signal(Signal::SIGTERM);
    let unready = Duration::from_secs(2);
    let unready_at = server.wait_for_status("/ready", 503, unready).await;

    // A second signal cuts the drain short: the rest close at once, still
    // with 1012, and the process exits as after Ctrl-C.
    let cut = Instant::now();
    server.signal(Signal::SIGTERM);
    let closes = closes(watchers).await;
    for closed in &closes {
        assert_eq!(closed.code, 1012, "a Close 1012 for everyone");
        assert!(
            closed.at > unready_at,
            "a client got its Close before /ready said 503: {:?} ms after it",
            offsets(&closes, unready_at)
        );
    }
    let left = Duration::from_secs(2).saturating_sub(cut.elapsed());
    let status = server.wait_exit(left).await;
    assert!(status.success(), "exit status {status}");
}

// ANCHOR: spread
#[tokio::test]
async fn a_drain_spreads_the_1012s_over_its_time_then_exits() {
    let redis = Redis::start().await;
    let drain = Duration::from_secs(2);
    let mut server = instance(&redis, "2s").await;
    let watchers: Vec<_> = clients(&server, 2 * CLIENTS)
        .await
        .into_iter()
        .map(watch)
        .collect();

    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let unready_at = server.wait_for_status("/ready", 503, drain).await;
    let closes = closes(watchers).await;
    let offsets = offsets(&closes, signalled);
    let codes: Vec<u16> = closes.iter().map(|c| c.code).collect();
    assert!(codes.iter().all(|&code| code == 1012), "codes: {codes:?}");

    let first = closes.iter().map(|c| c.at).min().expect("closes");
    let last = closes.iter().map(|c| c.at).max().expect("closes");
    // Spread out: twenty turns drawn at random over 2 s all fall within
    // 300 ms of one another with a probability below 1e-14, and all in its
    // first half with one of about 1e-6. All at once (the shutdown of every
    // other lesson) takes a few milliseconds; a turn drawn afresh each time a
    // handler's loop asks (some 50 times a second here) comes within the
    // first few hundred.
    assert!(
        last - first >= Duration::from_millis(300),
        "the closes came together, at {offsets:?} ms"
    );
    assert!(
        last - signalled >= drain / 2,
        "only early closes, at {offsets:?} ms"
    );
    // Within the drain, give or take a busy machine's scheduler.
    assert!(last - signalled < drain + common::LATE, "at {offsets:?} ms");
    // The instance kept serving while its connections closed one by one, and
    // said 503.
    assert!(unready_at < last, "503 only after the last close");
    // It exits once the last connection has gone: within the drain and its
    // grace.
    let left =
        (drain + Duration::from_secs(2)).saturating_sub(signalled.elapsed());
    let status = server.wait_exit(left).await;
    assert!(status.success(), "exit status {status}");
}
// ANCHOR_END: spread

#[tokio::test]
async fn a_drain_ends_when_the_last_client_has_gone() {
    let redis = Redis::start().await;
    let mut server = instance(&redis, "1h").await;
    let mut clients = clients(&server, 3).await;
    server.signal(Signal::SIGTERM);
    let unready = Duration::from_secs(2);
    server.wait_for_status("/ready", 503, unready).await;
    // The clients leave on their own (as a page does when its user closes
    // it), long before the drain's hour is up.
    for client in &mut clients {
        close(client, 1000, "bye").await;
    }
    let left = Instant::now();
    let status = server.wait_exit(Duration::from_secs(2)).await;
    assert!(status.success(), "exit status {status}");
    assert!(left.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn ctrl_c_closes_every_connection_at_once_with_1001_despite_the_drain() {
    let redis = Redis::start().await;
    let mut server = instance(&redis, "1h").await;
    let mut clients = clients(&server, CLIENTS).await;
    // The contract of every lesson: 1001 for each, an exit within 2 s.
    server.shut_down_with(Signal::SIGINT, &mut clients).await;
}
