//! The drain in one process: where a turn falls, the close codes, and lesson
//! 02's reader and writer tasks closing at their turns.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use futures::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite;

use super::*;

#[test]
fn a_turn_falls_within_what_is_left_of_the_drain() {
    let began = Instant::now();
    let over = Duration::from_secs(10);
    let end = began + over;
    let fractions = [0.0, 0.25, 0.5, 0.999_999, 1.0 - f64::EPSILON];
    // Opened before the drain: anywhere in it.
    let before = began.checked_sub(Duration::from_secs(60)).unwrap_or(began);
    assert_eq!(turn_at(began, over, before, 0.0), began);
    assert_eq!(turn_at(began, over, before, 0.5), began + over / 2);
    for fraction in fractions {
        let at = turn_at(began, over, before, fraction);
        assert!(began <= at && at < end, "{fraction}: {:?}", at - began);
    }
    // Opened during the drain: in what was left of it.
    let opened = began + Duration::from_secs(8);
    assert_eq!(turn_at(began, over, opened, 0.5), opened + over / 10);
    for fraction in fractions {
        let at = turn_at(began, over, opened, fraction);
        assert!(opened <= at && at < end, "{fraction}: {:?}", at - began);
    }
    // Opened after the drain's end: at once.
    let late = end + Duration::from_secs(1);
    assert_eq!(turn_at(began, over, late, 0.7), late);
}

/// How late a timer may fire on a machine busy with other work, as in the
/// tests of `tests/` (`common::LATE`).
const LATE: Duration = Duration::from_secs(3);

/// Waits for `n` exits of `drain`, each in a task of its own, and returns
/// the codes they close with.
async fn codes(drain: &Drain, n: usize) -> Vec<u16> {
    let mut exits = JoinSet::new();
    for _ in 0..n {
        let exit = drain.exit();
        exits.spawn(async move { exit.due().await.code });
    }
    let all = tokio::time::timeout(LATE, exits.join_all());
    all.await.expect("every exit was due in time")
}

#[tokio::test]
async fn a_shutdown_without_a_drain_closes_every_connection_with_1001() {
    let connections = Connections::new();
    let drain = Drain::new(connections.clone(), Duration::from_secs(60));
    connections.shut_down();
    assert_eq!(codes(&drain, 5).await, [1001; 5]);
    assert!(!drain.draining());
}

#[tokio::test]
async fn a_shutdown_during_a_drain_closes_the_rest_at_once_with_1012() {
    let connections = Connections::new();
    let drain = Drain::new(connections.clone(), Duration::from_secs(60));
    let (sigterm, tracked) = (CancellationToken::new(), connections.clone());
    // A connection that stays open, so that the drain does not end by itself.
    let _open = tokio::spawn(tracked.track(std::future::pending::<()>()));
    let draining = tokio::spawn(drain.clone().on(sigterm.clone()));
    sigterm.cancel();
    while !drain.draining() {
        tokio::task::yield_now().await;
    }
    // A second signal: what `serve` does on it.
    connections.shut_down();
    assert_eq!(codes(&drain, 5).await, [1012; 5]);
    let ended = tokio::time::timeout(LATE, draining).await;
    ended.expect("the drain ended").expect("without a panic");
}

// ANCHOR: split
/// Lesson 02's shape: a reader task and a writer task. The writer is the
/// one that closes, so it gets the connection's [`Exit`].
async fn split(socket: WebSocket, exit: Exit) {
    let (mut sink, mut stream) = socket.split();
    let mut halves = JoinSet::new();
    halves.spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    halves.spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        loop {
            let tick = tokio::select! {
                frame = exit.due() => {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                _ = ticks.tick() => Message::text("tick"),
            };
            if sink.send(tick).await.is_err() {
                return;
            }
        }
    });
    // Whichever half ends first, the other gets a moment (the reader, to
    // read the peer's Close reply), then both are stopped.
    halves.join_next().await;
    let _ = tokio::time::timeout(
        ws_lessons::server::CLOSE_TIMEOUT,
        halves.join_next(),
    )
    .await;
    halves.shutdown().await;
}
// ANCHOR_END: split

/// The test server's state: the drain, and how many connections opened.
#[derive(Clone)]
struct Split {
    drain: Drain,
    opened: Arc<AtomicUsize>,
}

/// How many connections the test opens, and where their turns fall: the
/// n-th of them at n/CLIENTS of the way through the drain.
const CLIENTS: usize = 8;

async fn upgrade(ws: WebSocketUpgrade, State(server): State<Split>) -> Response {
    let n = server.opened.fetch_add(1, Ordering::Relaxed);
    let exit = server.drain.exit_at(n as f64 / CLIENTS as f64);
    let connections = server.drain.connections.clone();
    ws.on_upgrade(move |socket| connections.track(split(socket, exit)))
}

/// When a client got its Close frame, and the code in it.
struct Closed {
    at: Instant,
    code: u16,
}

/// Reads a client until the server's Close frame and then the end of the
/// stream, each read bounded.
async fn closed(
    mut client: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
) -> Closed {
    let end = Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(end, client.next()).await;
        match next.expect("a Close frame in time") {
            Some(Ok(tungstenite::Message::Close(frame))) => {
                let at = Instant::now();
                let code = frame.map_or(1005, |frame| u16::from(frame.code));
                let rest = tokio::time::timeout(LATE, client.next()).await;
                assert!(matches!(rest, Ok(None)), "no clean end: {rest:?}");
                return Closed { at, code };
            }
            Some(Ok(_)) => continue,
            other => panic!("the stream ended without a Close: {other:?}"),
        }
    }
}

#[tokio::test]
async fn lesson_02s_writer_task_closes_at_its_connections_turn_with_1012() {
    let over = Duration::from_secs(4);
    let (sigterm, connections) = (CancellationToken::new(), Connections::new());
    let drain = Drain::new(connections.clone(), over);
    let opened = Arc::new(AtomicUsize::new(0));
    let state = Split {
        drain: drain.clone(),
        opened,
    };
    let app = Router::new().route("/ws", any(upgrade)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let shutdown = connections.clone();
    tokio::spawn(async move {
        let serving = axum::serve(listener, app);
        let _ = serving
            .with_graceful_shutdown(async move { shutdown.shutting_down().await })
            .await;
    });
    let mut watchers = Vec::new();
    for _ in 0..CLIENTS {
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let (client, _) = tokio::time::timeout(LATE, connect)
            .await
            .expect("connected in time")
            .expect("connected");
        watchers.push(tokio::spawn(closed(client, over + LATE)));
    }

    let signalled = Instant::now();
    tokio::spawn(drain.clone().on(sigterm.clone()));
    sigterm.cancel();
    let mut closes = Vec::new();
    for watcher in watchers {
        closes.push(watcher.await.expect("the watcher did not fail"));
    }
    let offsets: Vec<u128> = closes
        .iter()
        .map(|c| (c.at - signalled).as_millis())
        .collect();
    for (n, closed) in closes.iter().enumerate() {
        assert_eq!(closed.code, 1012, "closes at {offsets:?} ms");
        // Never before its turn, and not long after it.
        let turn = signalled + over.mul_f64(n as f64 / CLIENTS as f64);
        assert!(closed.at >= turn, "{n} closed early: {offsets:?} ms");
        assert!(closed.at < turn + LATE, "{n} closed late: {offsets:?} ms");
    }
    // So the first closed at least half a second before the last: turns of
    // 0 and 3.5 s, and a timer at most 3 s late.
    let first = closes[0].at;
    assert!(closes[CLIENTS - 1].at - first >= over / 8, "{offsets:?} ms");
    // The drain ended as the last connection closed, and shut down.
    let ended = tokio::time::timeout(LATE, connections.shutting_down());
    ended.await.expect("the drain shut the server down");
}
