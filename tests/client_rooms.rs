//! The rooms client, `examples/10_rooms_client`, and its several URLs:
//! against real `09_rooms` servers, and against stand-in servers that send
//! exactly what a test needs (a gap, `joined`, `paused`). The client runs with
//! `--events`: the tests read what it did from its JSON lines on stdout.

use ws_harness as common;

use common::{Process, Running};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};
use ws_lessons::protocol::{Reading, SensorState};

const CLIENT: &str = "10_rooms_client";
const ROOMS: &str = "09_rooms";

/// Starts the client with `--events` and `args`.
fn spawn(args: &[&str]) -> Process {
    Process::spawn(CLIENT, &[args, &["--events"]].concat())
}

/// The message of site-1 that an event shows, if it is one; a gap the client
/// reports fails the test.
fn shown(event: &Value) -> Option<RoomMessage> {
    assert_ne!(event["event"], "gap", "the client reports a gap");
    let message = (event["event"] == "message").then(|| &event["message"])?;
    let message = serde_json::from_value(message.clone()).expect("a message");
    match &message {
        RoomMessage::Snapshot { room, .. }
        | RoomMessage::Joined { room, .. }
        | RoomMessage::Reading { room, .. }
        | RoomMessage::Threshold { room, .. } => {
            (room == "site-1").then_some(message)
        }
        _ => None,
    }
}

/// The number of a change of site-1 that an event shows, if it is one.
fn change(event: &Value) -> Option<u64> {
    match shown(event)? {
        RoomMessage::Reading { reading, .. } => Some(reading.seq),
        RoomMessage::Threshold { seq, .. } => Some(seq),
        _ => None,
    }
}

/// A test of an event: true for the events of this kind.
fn is(kind: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event| event["event"] == kind
}

/// True for a snapshot or `joined` of site-1: the answer to a join.
fn is_answer(event: &Value) -> bool {
    shown(event).is_some() && change(event).is_none()
}

/// Reads the client's events up to the first that `stop` accepts, and
/// returns it. On the way, checks that each change of site-1 is the one after
/// `last` (and moves `last` on), and that no snapshot or `joined` comes
/// unless `stop` waits for it.
async fn follow_until(
    client: &mut Process,
    last: &mut Option<u64>,
    stop: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..10_000 {
        let event = client.next_event().await;
        if let Some(seq) = change(&event) {
            assert_eq!(last.map_or(seq, |last| last + 1), seq, "a gap");
            *last = Some(seq);
        }
        if stop(&event) {
            return event;
        }
        assert!(!is_answer(&event), "unexpected: {event}");
    }
    panic!("no such event among 10000");
}

/// Reads `count` changes, each the one after `last`.
async fn next_changes(
    client: &mut Process,
    last: &mut Option<u64>,
    count: usize,
) {
    for _ in 0..count {
        follow_until(client, last, |event| change(event).is_some()).await;
    }
}

/// The request that a `sent` event reports.
fn request(sent: &Value) -> RoomRequest {
    serde_json::from_value(sent["request"].clone()).expect("a request")
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
async fn resumes_a_room_on_the_next_url_after_the_last_change_it_showed() {
    // Two instances of lesson 09, which share nothing.
    let second = Running::start(ROOMS, &["--rate", "300"]).await;
    let first = Running::start(ROOMS, &["--rate", "300"]).await;
    let (one, two) = (first.ws_url(), second.ws_url());
    let mut client =
        spawn(&[&one, &two, "--room", "site-1", "--max-backoff", "100ms"]);
    let mut last = None;
    let connected = follow_until(&mut client, &mut last, is("connected")).await;
    assert_eq!(connected["url"], format!("{one}?user=client"));
    let sent = follow_until(&mut client, &mut last, is("sent")).await;
    assert_eq!(request(&sent), join(1, None));
    let answer = follow_until(&mut client, &mut last, is_answer).await;
    let Some(RoomMessage::Snapshot { seq, .. }) = shown(&answer) else {
        panic!("expected a snapshot first, got {answer}");
    };
    last = Some(seq);
    next_changes(&mut client, &mut last, 3).await;

    // The first server dies without a Close: the client moves on to the second
    // URL, and rejoins after the last change it showed.
    first.signal(Signal::SIGKILL);
    let connected = follow_until(&mut client, &mut last, is("connected")).await;
    assert_eq!(connected["url"], format!("{two}?user=client"));
    let rejoin = follow_until(&mut client, &mut last, is("sent")).await;
    let after = after_of(&request(&rejoin));
    assert_eq!(after, last, "rejoined after the last change shown");
    // Lesson 09's second instance replays its own changes after that one, or
    // sends a snapshot; the changes then follow on, one by one.
    let answer = follow_until(&mut client, &mut last, is_answer).await;
    last = match shown(&answer) {
        Some(RoomMessage::Joined { after, .. }) => Some(after),
        Some(RoomMessage::Snapshot { seq, .. }) => Some(seq),
        _ => panic!("expected `joined` or a snapshot, got {answer}"),
    };
    next_changes(&mut client, &mut last, 3).await;
    // And no gap reported, up to its exit.
    client.signal(Signal::SIGINT);
    assert!(client.wait_exit(common::WAIT).await.success());
    client
        .events_to_end()
        .await
        .iter()
        .for_each(|event| _ = shown(event));
}
// ANCHOR_END: resume

#[tokio::test]
async fn a_url_that_refuses_the_upgrade_is_left_for_the_next_one() {
    let server = Running::start(ROOMS, &[]).await;
    let (nope, url) = (format!("ws://{}/nope", server.addr), server.ws_url());
    let args = [&*nope, &url, "--room", "site-1", "--user", "alice"];
    let mut client = spawn(&[&args[..], &["--max-backoff", "50ms"]].concat());
    let (nope, url) = (format!("{nope}?user=alice"), format!("{url}?user=alice"));
    let refused = client.wait_for_event("refused").await;
    assert_eq!(
        (&refused["url"], &refused["status"]),
        (&json!(nope), &json!(404))
    );
    let connected = client.wait_for_event("connected").await;
    assert_eq!(connected["url"], url);
    let snapshot = client.events_until(&mut Vec::new(), is_answer).await;
    let Some(RoomMessage::Snapshot { users, .. }) = shown(&snapshot) else {
        panic!("expected a snapshot, got {snapshot}");
    };
    assert_eq!(users, ["alice"]);

    // With the server gone, each round tries the one URL left: never again
    // the one that refused.
    server.signal(Signal::SIGKILL);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let failed = client.events_until(&mut seen, is("unreachable")).await;
        assert_eq!(failed["url"], url);
    }
    let tried = seen.iter().filter_map(|event| event["url"].as_str());
    assert!(tried.into_iter().all(|tried| tried == url), "{seen:?}");
}

#[tokio::test]
async fn an_unknown_room_is_an_error_not_a_retry() {
    let server = Running::start(ROOMS, &["--sites", "2"]).await;
    let url = server.ws_url();
    let rooms = ["--room", "site-1", "--room", "site-3"];
    let exited = spawn(&[&[&*url], &rooms[..]].concat()).exited().await;
    assert_eq!(exited.code, Some(1));
    let refused = "the server refused to join site-3: unknown room \"site-3\"";
    assert!(exited.error.ends_with(refused), "{}", exited.error);
    // One connection, never tried again.
    let events = exited.events;
    let connected = events.iter().filter(|event| is("connected")(event));
    assert_eq!(connected.count(), 1, "{events:?}");
    assert!(!events.iter().any(is("reconnecting")), "{events:?}");
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
    // Two connections' worth of messages; change 7 never comes.
    let first = vec![snapshot(5, 0), reading(6), reading(8)];
    let paused = RoomMessage::Paused {
        reason: "Redis is away".into(),
    };
    let second = vec![joined(8), reading(9), paused, RoomMessage::Resumed];
    let second = [second, vec![snapshot(20, 11), reading(21)]].concat();
    // The client shows each one, and reports the gap before change 8.
    let message = |m: &RoomMessage| json!({"event": "message", "message": m});
    let mut expected: Vec<Value> =
        first.iter().chain(&second).map(message).collect();
    let gap = json!({"event": "gap", "room": "site-1", "expected": 7, "got": 8});
    expected.insert(2, gap);
    let server = tokio::spawn(async move {
        let first = stand_in(&listener, first).await;
        (first, stand_in(&listener, second).await)
    });
    let mut client = spawn(&[&url, "--room", "site-1", "--max-backoff", "50ms"]);
    let mut seen = Vec::new();
    let last = expected.last().cloned();
    client
        .events_until(&mut seen, |e| Some(e) == last.as_ref())
        .await;
    seen.retain(|e| is("message")(e) || is("gap")(e));
    assert_eq!(seen, expected);
    let (first, second) = tokio::time::timeout(common::WAIT, server)
        .await
        .unwrap()
        .unwrap();
    // Each join has an id of its own.
    assert_eq!((first, second), (join(1, None), join(2, Some(8))));

    // One gap, no other, up to its exit.
    client.signal(Signal::SIGINT);
    assert!(client.wait_exit(common::WAIT).await.success());
    let events = client.events_to_end().await;
    assert!(!events.iter().any(is("gap")), "{events:?}");
}
// ANCHOR_END: continuity

#[tokio::test]
async fn reconnects_first_to_the_url_that_last_worked() {
    let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (at_a, at_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let (url_a, url_b) = (format!("ws://{at_a}/ws"), format!("ws://{at_b}/ws"));
    let args = [&*url_a, &url_b, "--room", "site-1", "--max-backoff", "50ms"];
    let mut client = spawn(&args);

    // A serves one connection and goes away: the client moves on to B.
    stand_in(&a, [snapshot(1, 0)]).await;
    drop(a);
    let failed = client.wait_for_event("unreachable").await;
    assert_eq!(failed["url"], format!("{url_a}?user=client"));
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
    let mut client = spawn(&[&url, "--room", "site-1", "--max-backoff", "50ms"]);
    // Errors about something else come first: one without an id, one with
    // an id the client never sent. Then the one for its join.
    let error = |id, message: &str| RoomMessage::error(id, message);
    let others = [
        error(None, "3 notices were dropped"),
        error(Some(99), "not in \"site-2\""),
    ];
    let refusal = error(Some(1), "a connection may be in at most 16 rooms");
    let messages = [&others[..], &[refusal]].concat();
    assert_eq!(stand_in(&listener, messages).await, join(1, None));
    let exited = client.exited().await;
    assert_eq!(exited.code, Some(1));
    // The others are shown, as warnings; the refusal ends the client.
    let message = |message| json!({"event": "message", "message": message});
    let shown: Vec<&Value> =
        exited.events.iter().filter(|e| is("message")(e)).collect();
    assert_eq!(shown, others.map(message).iter().collect::<Vec<_>>());
    let refused = "error: the server refused to join site-1: a connection may \
                   be in at most 16 rooms";
    assert_eq!(exited.error, refused);
}
