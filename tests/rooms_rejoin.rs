//! Lesson 09, `examples/09_rooms`: thresholds as a room's changes, and a client
//! that comes back and asks for what it missed (`join` with `after`).

use ws_harness as common;

use common::{Client, Running, next_json, next_of, send_json};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const EXAMPLE: &str = "09_rooms";

/// Sends `request` and returns the first answer of one of `kinds`.
async fn ask(client: &mut Client, request: Value, kinds: &[&str]) -> Value {
    send_json(client, request).await;
    loop {
        let message = next_json(client).await;
        let kind = message["type"].as_str().unwrap_or_default();
        if kinds.contains(&kind) {
            return message;
        }
    }
}

/// The `seq` of the next `count` readings, checked consecutive.
async fn readings(client: &mut Client, count: usize) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    while seqs.len() < count {
        let reading = next_of(client, "reading").await;
        let seq = reading["seq"].as_u64().expect("a seq");
        if let Some(last) = seqs.last() {
            assert_eq!(seq, last + 1, "a gap");
        }
        seqs.push(seq);
    }
    seqs
}

// ANCHOR: rejoin
#[tokio::test]
async fn a_client_that_comes_back_gets_exactly_what_it_missed() {
    let args = ["--sites", "1", "--rate", "200", "--history", "1000"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut first = server.connect_as("ann").await;
    let join = json!({"type": "join", "room": "site-1"});
    let epoch = ask(&mut first, join, &["snapshot"]).await["epoch"].clone();
    let last = *readings(&mut first, 10).await.last().expect("readings");
    drop(first);

    // Gone for a while, then back: `joined`, and every change since, once.
    let mut again = server.connect_as("ann").await;
    let join = json!({"type": "join", "room": "site-1", "after": last,
        "epoch": epoch});
    let joined = ask(&mut again, join, &["joined", "snapshot"]).await;
    let expected = json!({"type": "joined", "room": "site-1", "after": last,
        "epoch": epoch});
    assert_eq!(joined, expected);
    assert_eq!(readings(&mut again, 50).await[0], last + 1);
}
// ANCHOR_END: rejoin

#[tokio::test]
async fn past_the_history_a_rejoin_gets_a_snapshot_that_counts_the_gap() {
    let args = ["--sites", "1", "--rate", "500", "--history", "10"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut watcher = server.connect_as("ann").await;
    let join = json!({"type": "join", "room": "site-1"});
    let snapshot = ask(&mut watcher, join, &["snapshot"]).await;
    let after = snapshot["seq"].as_u64().expect("a seq");
    readings(&mut watcher, 30).await;

    let mut late = server.connect_as("bob").await;
    let join = json!({"type": "join", "room": "site-1", "after": after});
    let answer = ask(&mut late, join, &["joined", "snapshot"]).await;
    assert_eq!(answer["type"], "snapshot");
    let seq = answer["seq"].as_u64().expect("a seq");
    assert_eq!(
        answer["missed"],
        seq - after,
        "exactly what it cannot replay"
    );
}

// ANCHOR: threshold
#[tokio::test]
async fn a_threshold_is_one_of_the_room_s_changes_for_its_members() {
    let args = ["--sites", "2", "--rate", "100"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut ann = server.connect_as("ann").await;
    let mut bob = server.connect_as("bob").await;
    let mut cid = server.connect_as("cid").await;
    for (client, room) in [
        (&mut ann, "site-1"),
        (&mut bob, "site-1"),
        (&mut cid, "site-2"),
    ] {
        let join = json!({"type": "join", "room": room});
        ask(client, join, &["snapshot"]).await;
    }
    let set = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-3", "threshold": 41.5});
    send_json(&mut ann, set).await;
    for client in [&mut ann, &mut bob] {
        let change = next_of(client, "threshold").await;
        assert_eq!(change["sensor"], "sensor-3");
        assert_eq!(change["threshold"], 41.5);
    }
    // Not a member: an error, and site-2's member heard nothing of it.
    let elsewhere = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-3", "threshold": 1});
    let error = ask(&mut cid, elsewhere, &["error", "threshold"]).await;
    assert_eq!(error["message"], "not in \"site-1\"");
    for (sensor, threshold, expected) in [
        ("sensor-9", 1.0, "unknown sensor \"sensor-9\" in \"site-1\""),
        (
            "sensor-1",
            5000.0,
            "threshold 5000 is out of range (-1000 to 1000)",
        ),
    ] {
        let bad = json!({"type": "set_threshold", "room": "site-1",
            "sensor": sensor, "threshold": threshold});
        let error = ask(&mut ann, bad, &["error"]).await;
        assert_eq!(error["message"], expected);
    }
}
// ANCHOR_END: threshold

#[tokio::test]
async fn after_a_restart_a_rejoin_gets_a_snapshot_of_the_new_numbering() {
    let args = ["--sites", "1", "--rate", "200"];
    let mut server = Running::start(EXAMPLE, &args).await;
    let mut client = server.connect_as("ann").await;
    let join = json!({"type": "join", "room": "site-1"});
    let epoch = ask(&mut client, join, &["snapshot"]).await["epoch"].clone();
    // Far ahead of anything the new server will have reached.
    let last = *readings(&mut client, 300).await.last().expect("readings");
    let addr = server.addr.to_string();
    server.shut_down_with(Signal::SIGTERM, &mut [client]).await;

    let server = Running::start_on(EXAMPLE, &addr, &args).await;
    let mut client = server.connect_as("ann").await;
    let join = json!({"type": "join", "room": "site-1", "after": last,
        "epoch": epoch});
    let answer = ask(&mut client, join, &["joined", "snapshot"]).await;
    assert_eq!(answer["type"], "snapshot", "not `joined`: {answer}");
    assert_ne!(answer["epoch"], epoch, "a new numbering");
    let seq = answer["seq"].as_u64().expect("a seq");
    assert_eq!(readings(&mut client, 5).await[0], seq + 1);
}
