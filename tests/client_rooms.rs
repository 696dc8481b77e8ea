//! Lesson 06's rooms mode, `examples/06_client/rooms.rs`, and its several
//! URLs: against real `09_rooms` servers, and against stand-in servers that
//! send exactly what a test needs (a gap, `joined`, `paused`).

use ws_harness as common;

use common::{Process, Running};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};
use ws_lessons::protocol::{Reading, SensorState};

const CLIENT: &str = "06_client";
const ROOMS: &str = "09_rooms";

/// What the client prints in rooms mode about site-1, as far as these tests
/// care.
#[derive(Debug, PartialEq)]
enum RoomLine {
    /// `site-1 at seq N: ...`
    Snapshot(u64),
    /// `site-1: resuming after seq N`
    Resuming(u64),
    /// `site-1 seq N: ...`, a reading or a threshold
    Change(u64),
    /// Anything else, such as `site-1 watching: client`
    Other(String),
}

fn room_line(line: String) -> RoomLine {
    let rest = line.strip_prefix("site-1").unwrap_or_default();
    let seq = |before: &str| {
        let rest = rest.strip_prefix(before)?;
        rest.split(':').next()?.parse().ok()
    };
    if let Some(seq) = seq(" at seq ") {
        RoomLine::Snapshot(seq)
    } else if let Some(seq) = seq(": resuming after seq ") {
        RoomLine::Resuming(seq)
    } else if let Some(seq) = seq(" seq ") {
        RoomLine::Change(seq)
    } else {
        RoomLine::Other(line)
    }
}

/// Reads what the client prints until a snapshot or a `resuming` line, and
/// returns it; checks on the way that each change is the one after `last`.
async fn changes_until_answer(
    client: &mut Process,
    last: &mut Option<u64>,
) -> RoomLine {
    for _ in 0..10_000 {
        match room_line(client.next_stdout().await) {
            RoomLine::Change(seq) => {
                assert_eq!(last.map_or(seq, |last| last + 1), seq, "a gap");
                *last = Some(seq);
            }
            RoomLine::Other(_) => {}
            answer => return answer,
        }
    }
    panic!("no snapshot or `resuming` among 10000 lines");
}

/// Reads `count` changes, each the one after `last`.
async fn next_changes(client: &mut Process, last: &mut u64, count: usize) {
    let mut seen = 0;
    for _ in 0..10_000 {
        match room_line(client.next_stdout().await) {
            RoomLine::Change(seq) => {
                assert_eq!(seq, *last + 1, "a gap");
                *last = seq;
                seen += 1;
                if seen == count {
                    return;
                }
            }
            RoomLine::Other(_) => {}
            answer => panic!("expected a change, got {answer:?}"),
        }
    }
    panic!("fewer than {count} changes among 10000 lines");
}

/// The next join the client logs as sent.
async fn sent_join(client: &mut Process) -> RoomRequest {
    let line = client.wait_for_stderr("sent {").await;
    let json = line.split_once("sent ").map(|(_, json)| json);
    serde_json::from_str(json.unwrap_or_default()).expect("a request")
}

/// The client's join `id` of site-1: plain, or after change `after` of the
/// numbering that the stand-in servers below call `e1`.
fn join(id: u64, after: Option<u64>) -> RoomRequest {
    let room = "site-1".into();
    let epoch = after.map(|_| "e1".into());
    let id = Some(id);
    RoomRequest::Join {
        id,
        room,
        after,
        epoch,
    }
}

/// The `after` of a join, and whether it names a numbering when it has one.
fn after_of(request: &RoomRequest) -> Option<u64> {
    let RoomRequest::Join { after, epoch, .. } = request else {
        panic!("not a join: {request:?}");
    };
    assert_eq!(after.is_some(), epoch.is_some(), "{request:?}");
    *after
}

// ANCHOR: resume
#[tokio::test]
async fn resumes_a_room_on_the_next_url_after_the_last_change_it_printed() {
    // Two instances of lesson 09, which share nothing.
    let second = Running::start(ROOMS, &["--rate", "300"]).await;
    let first = Running::start(ROOMS, &["--rate", "300"]).await;
    let (one, two) = (first.ws_url(), second.ws_url());
    let room = ["--room", "site-1", "--max-backoff", "100ms"];
    let mut client =
        Process::spawn(CLIENT, &[&[&*one, &two], &room[..]].concat());
    client
        .wait_for_stderr(&format!("connected to {one}?user=client"))
        .await;
    assert_eq!(sent_join(&mut client).await, join(1, None));
    let mut last = None;
    let answer = changes_until_answer(&mut client, &mut last).await;
    let RoomLine::Snapshot(mut seq) = answer else {
        panic!("expected a snapshot first, got {answer:?}");
    };
    next_changes(&mut client, &mut seq, 3).await;

    // The first server dies without a Close: the client moves on to the second
    // URL, and rejoins after the last change it printed.
    first.signal(Signal::SIGKILL);
    client
        .wait_for_stderr(&format!("connected to {two}?user=client"))
        .await;
    let rejoin = sent_join(&mut client).await;
    let mut last = Some(seq);
    let answer = changes_until_answer(&mut client, &mut last).await;
    let after = after_of(&rejoin);
    assert_eq!(after, last, "rejoined after the last change printed");
    // Lesson 09's second instance replays its own changes after that one, or
    // sends a snapshot; the changes then follow on, one by one.
    let mut seq = match answer {
        RoomLine::Resuming(after) => after,
        RoomLine::Snapshot(seq) => seq,
        other => panic!("expected `resuming` or a snapshot, got {other:?}"),
    };
    next_changes(&mut client, &mut seq, 3).await;
    // Its warnings come from a thread of their own: read them all, after it
    // has exited.
    client.signal(Signal::SIGINT);
    assert!(client.wait_exit(common::WAIT).await.success());
    let log = client.stderr_to_end().await;
    assert!(!log.iter().any(|line| line.contains("gap in")), "{log:#?}");
}
// ANCHOR_END: resume

#[tokio::test]
async fn a_url_that_refuses_the_upgrade_is_left_for_the_next_one() {
    let server = Running::start(ROOMS, &[]).await;
    let (nope, url) = (format!("ws://{}/nope", server.addr), server.ws_url());
    let args = [&*nope, &url, "--room", "site-1", "--user", "alice"];
    let mut client =
        Process::spawn(CLIENT, &[&args[..], &["--max-backoff", "50ms"]].concat());
    let refused = client.wait_for_stderr("refused the upgrade").await;
    assert!(
        refused.contains(&format!("{nope}?user=alice refused the upgrade: 404")),
        "{refused}"
    );
    client
        .wait_for_stderr(&format!("connected to {url}?user=alice"))
        .await;
    let snapshot = client.wait_for_stdout("site-1 at seq").await;
    assert!(snapshot.ends_with("(watching: alice)"), "{snapshot}");

    // With the server gone, each round tries the one URL left: never again
    // the one that refused.
    server.signal(Signal::SIGKILL);
    for _ in 0..3 {
        let failed = client.wait_for_stderr("cannot connect to").await;
        assert!(failed.contains(&url) && !failed.contains(&nope), "{failed}");
    }
}

#[tokio::test]
async fn an_unknown_room_is_an_error_not_a_retry() {
    let server = Running::start(ROOMS, &["--sites", "2"]).await;
    let url = server.ws_url();
    let rooms = ["--room", "site-1", "--room", "site-3"];
    let mut client = Process::spawn(CLIENT, &[&[&*url], &rooms[..]].concat());
    let line = client.wait_for_stderr("error:").await;
    assert!(
        line.ends_with(
            "the server refused to join site-3: unknown room \"site-3\""
        ),
        "{line}"
    );
    assert_eq!(client.wait_exit(common::WAIT).await.code(), Some(1));
}

/// A stand-in server's side of one connection: accepts it, reads the client's
/// first request, sends `messages`, and closes; all within `WAIT`.
async fn stand_in(
    listener: &TcpListener,
    messages: impl IntoIterator<Item = RoomMessage>,
) -> RoomRequest {
    let serve = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let request = match socket.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a join, got {other:?}"),
        };
        for message in messages {
            socket.send(Message::text(message.to_json())).await.unwrap();
        }
        socket.close(None).await.unwrap();
        while let Some(Ok(_)) = socket.next().await {}
        request
    };
    let served = tokio::time::timeout(common::WAIT, serve).await;
    served.expect("the client connects, joins and leaves in time")
}

fn reading(seq: u64) -> RoomMessage {
    let (sensor, value, alert, at_ms) = ("sensor-1".into(), 20.5, false, 0);
    let reading = Reading {
        seq,
        sensor,
        value,
        alert,
        at_ms,
    };
    RoomMessage::Reading {
        room: "site-1".into(),
        reading,
    }
}

fn joined(after: u64) -> RoomMessage {
    let (room, epoch) = ("site-1".into(), "e1".into());
    let id = None; // as from a server that does not carry ids back
    RoomMessage::Joined {
        id,
        room,
        after,
        epoch,
    }
}

fn snapshot(seq: u64, missed: u64) -> RoomMessage {
    let sensor = SensorState {
        sensor: "sensor-1".into(),
        value: Some(20.5),
        threshold: 30.0,
        recent: vec![],
    };
    let (room, users) = ("site-1".into(), vec!["client".into()]);
    RoomMessage::Snapshot {
        id: None,
        room,
        seq,
        missed,
        epoch: "e1".into(),
        users,
        sensors: vec![sensor],
    }
}

// ANCHOR: continuity
#[tokio::test]
async fn checks_each_change_and_rejoins_after_the_last_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        // Change 7 never comes.
        let first = [snapshot(5, 0), reading(6), reading(8)];
        let first = stand_in(&listener, first).await;
        let reason = "Redis is away".to_owned();
        let second = [
            joined(8),
            reading(9),
            RoomMessage::Paused { reason },
            RoomMessage::Resumed,
            snapshot(20, 11),
            reading(21),
        ];
        (first, stand_in(&listener, second).await)
    });
    let args = [&*url, "--room", "site-1", "--max-backoff", "50ms"];
    let mut client = Process::spawn(CLIENT, &args);
    let mut printed = Vec::new();
    for _ in 0..10 {
        printed.push(client.next_stdout().await);
    }
    assert_eq!(
        printed,
        [
            "site-1 at seq 5: sensor-1 20.5 (watching: client)",
            "site-1 seq 6: sensor-1 20.5",
            "site-1 seq 8: sensor-1 20.5",
            "site-1: resuming after seq 8",
            "site-1 seq 9: sensor-1 20.5",
            "paused: Redis is away",
            "resumed",
            "site-1: missed 11 changes",
            "site-1 at seq 20: sensor-1 20.5 (watching: client)",
            "site-1 seq 21: sensor-1 20.5",
        ]
    );
    let (first, second) = tokio::time::timeout(common::WAIT, server)
        .await
        .unwrap()
        .unwrap();
    // Each join has an id of its own.
    assert_eq!((first, second), (join(1, None), join(2, Some(8))));

    // One warning, for the one gap.
    let gap = client.wait_for_stderr("gap in").await;
    assert!(
        gap.ends_with("gap in site-1: expected seq 7, got 8"),
        "{gap}"
    );
    client.signal(Signal::SIGINT);
    assert!(client.wait_exit(common::WAIT).await.success());
    let log = client.stderr_to_end().await;
    assert!(!log.iter().any(|line| line.contains("gap in")), "{log:#?}");
}
// ANCHOR_END: continuity

#[tokio::test]
async fn reconnects_first_to_the_url_that_last_worked() {
    let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (at_a, at_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let (url_a, url_b) = (format!("ws://{at_a}/ws"), format!("ws://{at_b}/ws"));
    let args = [&*url_a, &url_b, "--room", "site-1", "--max-backoff", "50ms"];
    let mut client = Process::spawn(CLIENT, &args);

    // A serves one connection and goes away: the client moves on to B.
    stand_in(&a, [snapshot(1, 0)]).await;
    drop(a);
    client
        .wait_for_stderr(&format!("cannot connect to {url_a}"))
        .await;
    // A comes back while B serves; then B closes the connection.
    let a = TcpListener::bind(at_a).await.unwrap();
    stand_in(&b, [joined(1)]).await;

    // The next round starts with B, the URL that last worked.
    let next = tokio::time::timeout(common::WAIT, async {
        tokio::select! {
            _ = a.accept() => "A",
            _ = b.accept() => "B",
        }
    });
    assert_eq!(next.await.unwrap(), "B");
}

#[tokio::test]
async fn only_an_error_with_a_join_s_id_is_a_refused_join() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let args = [&*url, "--room", "site-1", "--max-backoff", "50ms"];
    let mut client = Process::spawn(CLIENT, &args);
    // Errors about something else come first: one without an id, one with
    // an id the client never sent. Then the one for its join.
    let error = |id, message: &str| RoomMessage::error(id, message);
    let messages = [
        error(None, "3 notices were dropped"),
        error(Some(99), "not in \"site-2\""),
        error(Some(1), "a connection may be in at most 16 rooms"),
    ];
    assert_eq!(stand_in(&listener, messages).await, join(1, None));
    assert_eq!(client.wait_exit(common::WAIT).await.code(), Some(1));
    // The log lines come from a thread of their own, and the final error
    // directly: their order is not fixed, so look at the whole of stderr.
    let stderr = client.stderr_to_end().await;
    for warning in ["3 notices were dropped", "not in \"site-2\""] {
        assert!(
            stderr.iter().any(|line| line.ends_with(warning)),
            "{stderr:#?}"
        );
    }
    let refused = "error: the server refused to join site-1: a connection may \
                   be in at most 16 rooms";
    assert!(stderr.iter().any(|line| line == refused), "{stderr:#?}");
}
