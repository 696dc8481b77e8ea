//! Lesson 05, `examples/05_dashboard`: the live dashboard, driven by
//! tokio-tungstenite clients.

use ws_harness as common;

use common::{
    Client, Running, next_json, next_of, next_text, send_json, silent_peer,
};
use futures::SinkExt;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "05_dashboard";

/// Connects and returns the client with the snapshot it got first.
async fn connect(server: &Running) -> (Client, Value) {
    let mut client = server.connect().await;
    let snapshot = next_json(&mut client).await;
    assert_eq!(
        snapshot["type"], "snapshot",
        "the first message is a snapshot"
    );
    (client, snapshot)
}

// ANCHOR: snapshot_on_connect
#[tokio::test]
async fn a_client_gets_a_snapshot_first_then_readings() {
    let server =
        Running::start(EXAMPLE, &["--sensors", "3", "--rate", "200"]).await;
    let (mut client, snapshot) = connect(&server).await;
    assert_eq!(snapshot["missed"], 0);
    let names: Vec<&str> = snapshot["sensors"]
        .as_array()
        .expect("a list of sensors")
        .iter()
        .map(|s| s["sensor"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["sensor-1", "sensor-2", "sensor-3"]);

    // The changes after the snapshot follow it without a gap.
    let after = snapshot["seq"].as_u64().expect("a seq");
    for seq in after + 1..=after + 20 {
        let reading = next_json(&mut client).await;
        assert_eq!(reading["type"], "reading");
        assert_eq!(reading["seq"], seq);
    }
}
// ANCHOR_END: snapshot_on_connect

#[tokio::test]
async fn every_client_receives_the_same_readings() {
    let server = Running::start(EXAMPLE, &["--rate", "200"]).await;
    let (mut first, a) = connect(&server).await;
    let (mut second, b) = connect(&server).await;
    // From the later of the two snapshots on, both see the same changes.
    let from = a["seq"].as_u64().max(b["seq"].as_u64()).expect("seqs");
    let mut seen = [Vec::new(), Vec::new()];
    for (client, seen) in [&mut first, &mut second].into_iter().zip(&mut seen) {
        while seen.len() < 10 {
            let reading = next_json(client).await;
            if reading["seq"].as_u64() > Some(from) {
                seen.push(reading);
            }
        }
    }
    assert_eq!(seen[0], seen[1]);
}

// ANCHOR: command_seen_by_all
#[tokio::test]
async fn a_threshold_set_by_one_client_reaches_every_client() {
    let server = Running::start(EXAMPLE, &["--rate", "50"]).await;
    let (mut operator, _) = connect(&server).await;
    let (mut watcher, _) = connect(&server).await;

    let request = json!({
        "type": "set_threshold", "id": 7, "sensor": "sensor-2", "threshold": 30.5
    });
    send_json(&mut operator, request).await;

    assert_eq!(
        next_of(&mut operator, "ack").await,
        json!({"type": "ack", "id": 7})
    );
    for client in [&mut operator, &mut watcher] {
        let change = next_of(client, "threshold").await;
        assert_eq!(
            (&change["sensor"], &change["threshold"]),
            (&json!("sensor-2"), &json!(30.5))
        );
    }
    // A client that connects now finds the new threshold in its snapshot.
    let (_, snapshot) = connect(&server).await;
    assert_eq!(snapshot["sensors"][1]["threshold"], 30.5);
}
// ANCHOR_END: command_seen_by_all

// ANCHOR: bad_input
#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let server = Running::start(EXAMPLE, &["--rate", "20"]).await;
    let (mut client, _) = connect(&server).await;
    let (mut bystander, _) = connect(&server).await;

    let cases: &[(Message, &str)] = &[
        (Message::text("{not json"), "invalid JSON: "),
        (
            Message::text(r#"{"type":"dance","id":1}"#),
            "unknown variant `dance`",
        ),
        (
            Message::text(r#"{"type":"set_threshold","id":2}"#),
            "missing field",
        ),
        (
            Message::text(concat!(
                r#"{"type":"set_threshold","id":3,"#,
                r#""sensor":"sensor-99","threshold":1}"#
            )),
            "unknown sensor \"sensor-99\"",
        ),
        (
            Message::text(concat!(
                r#"{"type":"set_threshold","id":4,"#,
                r#""sensor":"sensor-1","threshold":1e9}"#
            )),
            "threshold 1000000000 is out of range (-1000 to 1000)",
        ),
        (
            Message::text(
                r#"{"type":"subscribe","id":5,"sensors":["sensor-1","nope"]}"#,
            ),
            "unknown sensor \"nope\"",
        ),
        (
            Message::binary(vec![1, 2, 3]),
            "send requests as JSON in text frames",
        ),
    ];
    for (bad, expected) in cases {
        client.send(bad.clone()).await.expect("send");
        let error = next_of(&mut client, "error").await;
        let message = error["message"].as_str().expect("an error message");
        assert!(message.contains(expected), "{bad:?}: got {message:?}");

        // Still usable: a good request right after is carried out.
        send_json(
            &mut client,
            json!({"type": "subscribe", "id": 100, "sensors": []}),
        )
        .await;
        assert_eq!(next_of(&mut client, "ack").await["id"], 100);
    }
    // The other client noticed nothing and is still served.
    assert_eq!(next_json(&mut bystander).await["type"], "reading");
}
// ANCHOR_END: bad_input

#[tokio::test]
async fn unsubscribed_sensors_are_not_sent() {
    let server =
        Running::start(EXAMPLE, &["--sensors", "3", "--rate", "300"]).await;
    let (mut client, _) = connect(&server).await;
    let sensors = ["sensor-1", "sensor-3"];
    let request = json!({"type": "unsubscribe", "id": 1, "sensors": sensors});
    send_json(&mut client, request).await;
    next_of(&mut client, "ack").await;
    for _ in 0..30 {
        assert_eq!(next_of(&mut client, "reading").await["sensor"], "sensor-2");
    }
    send_json(
        &mut client,
        json!({"type": "subscribe", "id": 2, "sensors": ["sensor-3"]}),
    )
    .await;
    next_of(&mut client, "ack").await;
    let mut sensors = std::collections::BTreeSet::new();
    while sensors.len() < 2 {
        let reading = next_of(&mut client, "reading").await;
        assert_ne!(reading["sensor"], "sensor-1");
        sensors.insert(reading["sensor"].as_str().expect("a name").to_owned());
    }
}

// ANCHOR: resync
#[tokio::test]
async fn a_slow_client_is_resynchronised_while_a_fast_one_loses_nothing() {
    // The simulator is all but off and the heartbeat far away: every change
    // comes from the fast client's own requests, a batch at a time.
    let args = common::PACED;
    let server = Running::start(EXAMPLE, &args).await;
    let slow = server.connect_small_buffer().await;
    let (mut fast, snapshot) = connect(&server).await;

    // More changes than the slow client's buffers and the queue can hold, while
    // it reads nothing. The fast one reads each batch back before it asks for
    // more, so it is never more than a batch behind: it must miss nothing.
    let change = json!({"type": "threshold", "seq": 1, "sensor": "sensor-1",
        "threshold": 1.0});
    let total = common::changes_to_overflow(&change);
    let request = |n: usize| {
        json!({"type": "set_threshold", "id": n, "sensor": "sensor-1",
            "threshold": n % 1000})
    };
    common::follow_own_changes(
        &mut fast,
        total,
        common::PACED_QUEUE / 4,
        snapshot["seq"].as_u64().expect("a seq"),
        request,
    )
    .await;

    // The slow client reads what the buffers held, then one snapshot that
    // accounts exactly for what it missed.
    let mut slow = slow;
    let first = next_json(&mut slow).await;
    assert_eq!(first["type"], "snapshot");
    let mut last = first["seq"].as_u64().expect("a seq");
    let (resynchronised, missed) = loop {
        let message = next_json(&mut slow).await;
        let seq = message["seq"].as_u64().expect("a seq");
        if message["type"] == "snapshot" {
            let missed = message["missed"].as_u64().expect("a count");
            assert!(missed > 0);
            assert_eq!(seq, last + missed, "the snapshot counts every miss");
            break (seq, missed);
        }
        assert_eq!(seq, last + 1, "a gap without a snapshot");
        assert!(
            seq < snapshot["seq"].as_u64().unwrap() + total as u64,
            "every change reached the slow client: it never fell behind"
        );
        last = seq;
    };
    // Nothing has changed since: the next change follows the snapshot directly.
    let request = json!({"type": "set_threshold", "id": 0,
        "sensor": "sensor-1", "threshold": 5.0});
    send_json(&mut fast, request).await;
    let next = next_of(&mut slow, "threshold").await;
    assert_eq!(next["seq"], resynchronised + 1, "changes resume after it");
    let stats = server.stats().await;
    assert_eq!(stats["resyncs"], 1, "one resync counted: {stats}");
    assert_eq!(stats["missed_changes"], missed, "what it skipped: {stats}");
}
// ANCHOR_END: resync

// ANCHOR: frames
#[tokio::test]
async fn the_frames_as_they_are_sent() {
    let server =
        Running::start(EXAMPLE, &["--sensors", "1", "--rate", "50"]).await;
    let mut client = server.connect().await;
    let mut frames = vec![next_frame(&mut client, "snapshot").await];
    frames.push(next_frame(&mut client, "reading").await);
    let threshold = json!(
        {"type": "set_threshold", "id": 1, "sensor": "sensor-1", "threshold": 21}
    );
    send_json(&mut client, threshold).await;
    frames.push(next_frame(&mut client, "ack").await);
    frames.push(next_frame(&mut client, "threshold").await);
    let unknown =
        json!({"type": "unsubscribe", "id": 2, "sensors": ["sensor-9"]});
    send_json(&mut client, unknown).await;
    frames.push(next_frame(&mut client, "error").await);
    // What changes from run to run is replaced by its name, in capitals.
    let changing = ["seq", "value", "recent", "alert", "at_ms"];
    let frames: Vec<String> =
        frames.iter().map(|f| redact(f, &changing)).collect();
    insta::assert_snapshot!("frames", frames.join("\n"));
}
// ANCHOR_END: frames

/// The next text frame of type `kind`, exactly as it arrived.
async fn next_frame(client: &mut Client, kind: &str) -> String {
    let start = format!(r#"{{"type":"{kind}""#);
    for _ in 0..10_000 {
        let frame = next_text(client).await;
        if frame.starts_with(&start) {
            return frame;
        }
    }
    panic!("no {kind} frame among 10000");
}

/// `frame` with the value of each `"key":` in `keys` replaced by the key in
/// capitals: `"seq":SEQ`. The rest stays as sent: key order, numbers as numbers.
fn redact(frame: &str, keys: &[&str]) -> String {
    let mut out = frame.to_owned();
    for key in keys {
        let needle = format!("\"{key}\":");
        let mut from = 0;
        while let Some(at) = out[from..].find(&needle) {
            let start = from + at + needle.len();
            let end = start + value_len(&out[start..]);
            out.replace_range(start..end, &key.to_uppercase());
            from = start;
        }
    }
    out
}

/// The length of the JSON value at the start of `text`.
fn value_len(text: &str) -> usize {
    let (mut depth, mut in_string) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '[' | '{' => depth += 1,
            ']' | '}' if depth > 0 => depth -= 1,
            ',' | ']' | '}' => return i,
            _ => {}
        }
    }
    text.len()
}

#[tokio::test]
async fn ctrl_c_sends_1001_to_dashboard_clients() {
    let mut server = Running::start(EXAMPLE, &[]).await;
    let (client, _) = connect(&server).await;
    server.shut_down_with(Signal::SIGINT, &mut [client]).await;
}

#[tokio::test]
async fn a_silent_peer_is_dropped_by_the_heartbeat() {
    let server = Running::start(
        EXAMPLE,
        &[
            "--rate",
            "1",
            "--ping-interval",
            "100ms",
            "--pong-timeout",
            "100ms",
        ],
    )
    .await;
    silent_peer(server.addr, &[]).await;
    let what = "the silent peer is counted as dropped for a missed pong";
    server
        .wait_for_stats(what, |s| s["heartbeat"]["missed_pongs"] == 1)
        .await;
}

// ANCHOR: stuck_peer
#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_even_while_a_send_is_blocked() {
    let mut server = Running::start(EXAMPLE, &Running::PUSHING_FAST).await;
    let bound = Running::STUCK_PEER_BOUND;
    server.drops_a_stuck_peer_within(&[], bound).await;
}
// ANCHOR_END: stuck_peer

#[tokio::test]
async fn a_frame_over_64_kib_ends_the_connection() {
    let server = Running::start(EXAMPLE, &["--rate", "20"]).await;
    let (mut client, _) = connect(&server).await;
    let (mut bystander, _) = connect(&server).await;
    // The frame's header says 100 KiB: refused before its payload is read.
    let big = Message::text("x".repeat(100 * 1024));
    let _ = client.send(big).await;
    use futures::StreamExt;
    let ends = async {
        // Readings may still arrive before the end.
        while let Some(Ok(message)) = client.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    };
    let ended = tokio::time::timeout(common::WAIT, ends).await;
    assert!(ended.is_ok(), "the connection is still open");
    // Everyone else carries on.
    next_of(&mut bystander, "reading").await;
}
