//! Lesson 09, `examples/09_rooms`: rooms, presence, notices, a slow member
//! and shutdown, driven by tokio-tungstenite clients.

use ws_harness as common;

use common::{Client, Running, WAIT, join, next_json, next_of, send_json};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

const EXAMPLE: &str = "09_rooms";

/// The next `presence` message, as its list of users.
async fn presence(client: &mut Client) -> Vec<String> {
    let presence = next_of(client, "presence").await;
    serde_json::from_value(presence["users"].clone()).expect("a list of names")
}

/// Sends `request` and returns the `error` that answers it.
async fn error_for(client: &mut Client, request: Value) -> String {
    send_json(client, request).await;
    let error = next_of(client, "error").await;
    error["message"].as_str().expect("a message").to_owned()
}

// ANCHOR: bad_names
#[tokio::test]
async fn a_bad_user_name_is_refused_before_the_upgrade() {
    let server = Running::start(EXAMPLE, &[]).await;
    let too_long = "a".repeat(33);
    for query in [
        "",
        "?user=",
        "?user=Alice",
        "?user=al%20ice",
        "?user=b%C3%A9",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("?user={too_long}")])
    {
        let url = format!("ws://{}/ws{query}", server.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "for {query:?}");
            }
            other => panic!("{query:?} was not refused: {other:?}"),
        }
    }
    // The longest name, with every kind of character allowed, is let in.
    server.connect_as(&format!("{}_0-9", "a".repeat(28))).await;
}
// ANCHOR_END: bad_names

// ANCHOR: isolation
#[tokio::test]
async fn a_room_s_readings_reach_its_members_and_no_one_else() {
    let args = ["--sites", "3", "--sensors", "2", "--rate", "300"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut alice = server.connect_as("alice").await;
    let mut bob = server.connect_as("bob").await;
    let first = join(&mut alice, "site-1").await;
    join(&mut bob, "site-2").await;
    let sensors: Vec<&str> = first["sensors"]
        .as_array()
        .expect("a list of sensors")
        .iter()
        .map(|s| s["sensor"].as_str().expect("a name"))
        .collect();
    assert_eq!(sensors, ["sensor-1", "sensor-2"], "each site's own sensors");

    // Each room's changes are numbered by the room, without a gap.
    for (client, room, after) in [
        (&mut alice, "site-1", first["seq"].as_u64()),
        (&mut bob, "site-2", None),
    ] {
        let mut last = after;
        for _ in 0..30 {
            let message = next_json(client).await;
            if message["type"] != "reading" {
                continue;
            }
            assert_eq!(message["room"], room, "a reading of another room");
            let seq = message["seq"].as_u64().expect("a seq");
            if let Some(last) = last {
                assert_eq!(seq, last + 1, "a gap in {room}");
            }
            last = Some(seq);
        }
    }
}
// ANCHOR_END: isolation

#[tokio::test]
async fn a_connection_follows_several_rooms_and_leaves_one() {
    let args = ["--sites", "3", "--sensors", "1", "--rate", "300"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut alice = server.connect_as("alice").await;
    join(&mut alice, "site-1").await;
    join(&mut alice, "site-3").await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let reading = next_of(&mut alice, "reading").await;
        let room = reading["room"].as_str().expect("a room").to_owned();
        assert_ne!(room, "site-2");
        seen.insert(room);
    }
    send_json(&mut alice, json!({"type": "leave", "room": "site-1"})).await;
    let left = next_of(&mut alice, "left").await;
    assert_eq!(left["room"], "site-1");
    // Nothing of site-1 follows its `left`.
    for _ in 0..50 {
        let message = next_json(&mut alice).await;
        assert_ne!(message["room"], "site-1", "after leaving: {message}");
    }
}

// ANCHOR: presence
#[tokio::test]
async fn presence_lists_each_user_once_and_follows_leaves_and_disconnects() {
    let server = Running::start(EXAMPLE, &["--rate", "1"]).await;
    let mut bob = server.connect_as("bob").await;
    let mut alice = server.connect_as("alice").await;
    let mut alice_too = server.connect_as("alice").await;
    join(&mut bob, "site-1").await;
    assert_eq!(presence(&mut bob).await, ["bob"]);
    let snapshot = join(&mut alice, "site-1").await;
    assert_eq!(snapshot["users"], json!(["alice", "bob"]));
    assert_eq!(presence(&mut bob).await, ["alice", "bob"]);
    join(&mut alice_too, "site-1").await;
    assert_eq!(presence(&mut bob).await, ["alice", "bob"], "alice once");

    // One of alice's tabs leaves: she is still there.
    send_json(&mut alice, json!({"type": "leave", "room": "site-1"})).await;
    assert_eq!(presence(&mut bob).await, ["alice", "bob"]);
    // Her other tab disconnects without a word: now she is gone.
    drop(alice_too);
    assert_eq!(presence(&mut bob).await, ["bob"]);
    let stats = server
        .wait_for_stats("alice's tabs", |s| s["users"] == 2)
        .await;
    assert_eq!(stats["rooms"], 1);
}
// ANCHOR_END: presence

// ANCHOR: notices
#[tokio::test]
async fn a_notice_reaches_every_tab_of_its_user_and_no_one_else() {
    let server = Running::start(EXAMPLE, &["--rate", "1"]).await;
    let mut tabs = [
        server.connect_as("alice").await,
        server.connect_as("alice").await,
    ];
    let mut carol = server.connect_as("carol").await;
    let mut bob = server.connect_as("bob").await;
    // Each connection registers its user in its own task, a moment after its
    // handshake: a notice sent before that finds no one.
    let what = "four tabs of three users";
    server
        .wait_for_stats(what, |s| s["connections"] == 4 && s["users"] == 3)
        .await;
    let notice =
        json!({"type": "notify", "user": "alice", "text": "look at site-2"});
    send_json(&mut bob, notice).await;
    let sent = next_of(&mut bob, "sent").await;
    assert_eq!(sent, json!({"type": "sent", "to": "alice", "tabs": 2}));
    for tab in &mut tabs {
        let got = next_of(tab, "notice").await;
        assert_eq!(
            got,
            json!({"type": "notice", "from": "bob", "text": "look at site-2"})
        );
    }
    // The first notice carol gets is the one for her, not alice's.
    let to_carol = json!({"type": "notify", "user": "carol", "text": "hi carol"});
    send_json(&mut bob, to_carol).await;
    assert_eq!(next_of(&mut carol, "notice").await["text"], "hi carol");

    let nobody = json!({"type": "notify", "user": "dave", "text": "hi"});
    let error = error_for(&mut carol, nobody).await;
    assert_eq!(error, r#""dave" is not connected"#);
}
// ANCHOR_END: notices

#[tokio::test]
async fn a_notice_is_1_to_1000_characters() {
    let server = Running::start(EXAMPLE, &["--rate", "1"]).await;
    let mut alice = server.connect_as("alice").await;
    let longest = "é".repeat(1000);
    let notify =
        |text: &str| json!({"type": "notify", "user": "alice", "text": text});
    send_json(&mut alice, notify(&longest)).await;
    assert_eq!(
        next_of(&mut alice, "notice").await["text"],
        longest.as_str()
    );
    for text in ["", &"x".repeat(1001)] {
        let error = error_for(&mut alice, notify(text)).await;
        assert!(
            error.starts_with("a notice is 1 to 1000 characters"),
            "{error}"
        );
    }
}

// ANCHOR: bad_input
#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let args = ["--sites", "20", "--rate", "1"];
    let server = Running::start(EXAMPLE, &args).await;
    let mut alice = server.connect_as("alice").await;
    let cases = [
        (
            json!({"type": "join", "room": "site-99"}),
            "unknown room \"site-99\"",
        ),
        (
            json!({"type": "leave", "room": "site-1"}),
            "not in \"site-1\"",
        ),
        (
            json!({"type": "dance"}),
            "invalid message: unknown variant `dance`",
        ),
        (
            json!({"type": "join"}),
            "invalid message: missing field `room`",
        ),
        (
            json!({"type": "join", "room": "site-1", "x": 1}),
            "unknown field `x`",
        ),
    ];
    for (request, expected) in cases {
        let error = error_for(&mut alice, request).await;
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
    alice.send(Message::text("{not json")).await.expect("send");
    let error = next_of(&mut alice, "error").await;
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid JSON"))
    );
    alice.send(Message::binary(vec![1, 2])).await.expect("send");
    next_of(&mut alice, "error").await;

    for site in 1..=16 {
        join(&mut alice, &format!("site-{site}")).await;
    }
    let again =
        error_for(&mut alice, json!({"type": "join", "room": "site-3"})).await;
    assert_eq!(again, "already in \"site-3\"");
    let more =
        error_for(&mut alice, json!({"type": "join", "room": "site-17"})).await;
    assert!(more.contains("at most 16 rooms"), "{more}");
    // Still usable: a leave and a join go through.
    send_json(&mut alice, json!({"type": "leave", "room": "site-1"})).await;
    next_of(&mut alice, "left").await;
    join(&mut alice, "site-17").await;
}
// ANCHOR_END: bad_input

// ANCHOR: no_leak
#[tokio::test]
async fn five_hundred_clients_coming_and_going_leave_nothing_behind() {
    let args = ["--sites", "10", "--rate", "200"];
    let server = Running::start(EXAMPLE, &args).await;
    let idle = server.stats().await;
    let clients = (0..500).map(|n| {
        let server = &server;
        async move {
            let mut client = server.connect_as(&format!("user-{}", n % 50)).await;
            let mut joined = Vec::new();
            for _ in 0..rand::random_range(1..8) {
                let room = format!("site-{}", rand::random_range(1..=10));
                if joined.contains(&room) {
                    send_json(
                        &mut client,
                        json!({"type": "leave", "room": room}),
                    )
                    .await;
                    next_of(&mut client, "left").await;
                    joined.retain(|r| *r != room);
                } else {
                    join(&mut client, &room).await;
                    joined.push(room);
                }
            }
            // Half close politely, half just vanish.
            if n % 2 == 0 {
                let _ = client.close(None).await;
            }
        }
    });
    // Fifty at a time: enough to race joins and leaves, and not so many
    // handshakes at once that a busy machine's accept queue overflows.
    let all = futures::stream::iter(clients)
        .buffer_unordered(50)
        .collect::<Vec<()>>();
    tokio::time::timeout(WAIT * 6, all)
        .await
        .expect("500 clients in time");
    let after = server
        .wait_for_stats("everyone gone", |s| {
            s["connections"] == 0 && s["rooms"] == 0 && s["users"] == 0
        })
        .await;
    server
        .wait_for_stats("the idle task count", |s| s["tasks"] == idle["tasks"])
        .await;
    assert_eq!(after["rooms"], 0);
}
// ANCHOR_END: no_leak

// ANCHOR: resync
#[tokio::test]
async fn a_slow_member_is_resynchronised_with_an_exact_missed() {
    // As in lesson 05's test: every change comes from the fast member's own
    // requests, a batch at a time, so it cannot fall behind.
    let args = [&["--sites", "1"][..], &common::PACED].concat();
    let server = Running::start(EXAMPLE, &args).await;
    assert_eq!(server.stats().await["resyncs"], 0);
    let mut slow = server.connect_small_buffer_to("/ws?user=slow").await;
    let mut fast = server.connect_as("fast").await;
    let snapshot = join(&mut slow, "site-1").await;
    let last = join(&mut fast, "site-1").await["seq"]
        .as_u64()
        .expect("a seq");
    next_of(&mut fast, "presence").await;

    // While the slow member reads nothing, the fast one makes and follows more
    // changes than the slow one's buffers and the queue hold.
    let change = json!({"type": "threshold", "room": "site-1", "seq": 1,
        "sensor": "sensor-1", "threshold": 1.0});
    let total = common::changes_to_overflow(&change);
    let request = |n: usize| {
        json!({"type": "set_threshold", "room": "site-1",
            "sensor": "sensor-1", "threshold": n % 1000})
    };
    common::follow_own_changes(
        &mut fast,
        total,
        common::PACED_QUEUE / 4,
        last,
        request,
    )
    .await;

    // The slow member reads what the buffers held, then one snapshot that
    // counts exactly what it missed, then the next change.
    let mut last = snapshot["seq"].as_u64().expect("a seq");
    let resynchronised = loop {
        let message = next_json(&mut slow).await;
        let Some(seq) = message["seq"].as_u64() else {
            continue; // a presence message: not a change
        };
        if message["type"] == "snapshot" {
            assert_eq!(message["room"], "site-1");
            assert!(seq > last);
            assert_eq!(message["missed"], seq - last, "an exact count");
            break seq;
        }
        assert_eq!(seq, last + 1, "a gap without a snapshot");
        assert!(
            seq < snapshot["seq"].as_u64().unwrap() + total as u64,
            "every change reached the slow member: it never fell behind"
        );
        last = seq;
    };
    let request = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-1", "threshold": 5.0});
    send_json(&mut fast, request).await;
    let next = next_of(&mut slow, "threshold").await;
    assert_eq!(next["seq"], resynchronised + 1, "changes resume after it");
    // Counted where an operator sees it: in `GET /stats`.
    let resyncs = server.stats().await["resyncs"].as_u64();
    assert!(resyncs >= Some(1), "resyncs in /stats: {resyncs:?}");
}
// ANCHOR_END: resync

#[tokio::test]
async fn the_new_messages_as_they_are_sent() {
    let server = Running::start(EXAMPLE, &["--sites", "1", "--rate", "1"]).await;
    let mut alice = server.connect_as("alice").await;
    let mut frames = Vec::new();
    send_json(&mut alice, json!({"type": "join", "room": "site-1"})).await;
    let snapshot = next_of(&mut alice, "snapshot").await;
    frames.push(snapshot.clone());
    frames.push(next_of(&mut alice, "presence").await);
    send_json(
        &mut alice,
        json!({"type": "notify", "user": "alice", "text": "hi"}),
    )
    .await;
    frames.push(next_of(&mut alice, "sent").await);
    frames.push(next_of(&mut alice, "notice").await);
    let reading = next_of(&mut alice, "reading").await;
    frames.push(reading.clone());
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-2", "threshold": 41.5});
    send_json(&mut alice, threshold).await;
    frames.push(next_of(&mut alice, "threshold").await);
    let leave = json!({"type": "leave", "room": "site-1"});
    send_json(&mut alice, leave.clone()).await;
    frames.push(next_of(&mut alice, "left").await);
    send_json(&mut alice, leave).await;
    frames.push(next_of(&mut alice, "error").await);
    let rejoin = json!({"type": "join", "room": "site-1",
        "after": reading["seq"], "epoch": snapshot["epoch"]});
    send_json(&mut alice, rejoin).await;
    frames.push(next_of(&mut alice, "joined").await);
    insta::assert_json_snapshot!(frames, {
        "[].seq" => "[seq]",
        "[].after" => "[seq]",
        "[].epoch" => "[epoch]",
        "[].at_ms" => "[time]",
        "[].value" => "[value]",
        "[].sensor" => "[sensor]",
        "[].alert" => "[alert]",
        "[].sensors[].value" => "[value]",
        "[].sensors[].recent" => "[recent]",
    });
}

#[tokio::test]
async fn sigterm_sends_1001_to_every_member() {
    let mut server = Running::start(EXAMPLE, &[]).await;
    let mut alice = server.connect_as("alice").await;
    join(&mut alice, "site-1").await;
    let bob = server.connect_as("bob").await;
    server
        .shut_down_with(Signal::SIGTERM, &mut [alice, bob])
        .await;
}
