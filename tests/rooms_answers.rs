//! Lesson 09, `examples/09_rooms`: every request may carry an `id`, and then
//! gets exactly one answer that carries it back, success or error; without
//! an `id`, nothing changes.

use ws_harness as common;

use common::{Running, answer_to, join, next_json, next_of, send_json};
use serde_json::json;

const EXAMPLE: &str = "09_rooms";

// ANCHOR: ids
#[tokio::test]
async fn each_request_with_an_id_is_answered_with_that_id() {
    let server = Running::start(EXAMPLE, &["--sites", "2", "--rate", "20"]).await;
    let mut alice = server.connect_as("alice").await;
    let mut bob = server.connect_as("bob").await;
    let join = json!({"type": "join", "room": "site-1"});
    let snapshot = answer_to(&mut alice, 1, join.clone()).await;
    assert_eq!(
        (&snapshot["type"], &snapshot["room"]),
        (&json!("snapshot"), &json!("site-1"))
    );
    answer_to(&mut bob, 1, join).await;

    // A threshold has no answer of its own but `ack`; the change goes to
    // every member (alice too, before or after her `ack`), without the id.
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-2", "threshold": 41.5});
    let ack = answer_to(&mut alice, 2, threshold).await;
    assert_eq!(ack, json!({"type": "ack", "id": 2}));
    let change = next_of(&mut bob, "threshold").await;
    assert_eq!(
        (change["threshold"].as_f64(), change.get("id")),
        (Some(41.5), None)
    );

    let notify = json!({"type": "notify", "user": "bob", "text": "hi"});
    let sent = answer_to(&mut alice, 3, notify).await;
    assert_eq!(
        sent,
        json!({"type": "sent", "id": 3, "to": "bob", "tabs": 1})
    );
    let notice = next_of(&mut bob, "notice").await;
    assert_eq!(
        notice,
        json!({"type": "notice", "from": "alice", "text": "hi"})
    );

    let leave = json!({"type": "leave", "room": "site-1"});
    let left = answer_to(&mut alice, 4, leave).await;
    assert_eq!(left, json!({"type": "left", "id": 4, "room": "site-1"}));
    // A rejoin is answered by `joined` (or by a snapshot, past the history).
    let seq = snapshot["seq"].as_u64().expect("a seq");
    let rejoin = json!({"type": "join", "room": "site-1", "after": seq,
        "epoch": snapshot["epoch"]});
    let joined = answer_to(&mut alice, 5, rejoin).await;
    assert_eq!(
        (&joined["type"], &joined["after"]),
        (&json!("joined"), &json!(seq))
    );
}
// ANCHOR_END: ids

#[tokio::test]
async fn a_bad_request_with_an_id_gets_an_error_with_that_id() {
    let server = Running::start(EXAMPLE, &["--sites", "2", "--rate", "1"]).await;
    let mut alice = server.connect_as("alice").await;
    answer_to(&mut alice, 1, json!({"type": "join", "room": "site-1"})).await;
    let cases = [
        (json!({"type": "join", "room": "site-9"}), "unknown room"),
        (json!({"type": "join", "room": "site-1"}), "already in"),
        (json!({"type": "leave", "room": "site-2"}), "not in"),
        (
            json!({"type": "set_threshold", "room": "site-1",
                "sensor": "sensor-1", "threshold": 5000}),
            "out of range",
        ),
        (
            json!({"type": "set_threshold", "room": "site-1",
                "sensor": "sensor-9", "threshold": 5}),
            "unknown sensor",
        ),
        (
            json!({"type": "set_threshold", "room": "site-2",
                "sensor": "sensor-1", "threshold": 5}),
            "not in",
        ),
        (
            json!({"type": "notify", "user": "dave", "text": "hi"}),
            "not connected",
        ),
        (
            json!({"type": "notify", "user": "alice", "text": ""}),
            "a notice is",
        ),
        // Requests the server cannot read still have their id read.
        (
            json!({"type": "join", "room": "site-2", "x": 1}),
            "unknown field",
        ),
        (json!({"type": "leave"}), "missing field"),
        (json!({"type": "dance"}), "unknown variant"),
    ];
    for (id, (request, expected)) in (2..).zip(cases) {
        let error = answer_to(&mut alice, id, request).await;
        assert_eq!(error["type"], "error", "{error}");
        let message = error["message"].as_str().expect("a message");
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // An id that is not a number cannot be carried back.
    send_json(
        &mut alice,
        json!({"type": "leave", "id": "x", "room": "site-1"}),
    )
    .await;
    let error = next_of(&mut alice, "error").await;
    assert_eq!(error.get("id"), None, "{error}");
}

#[tokio::test]
async fn without_an_id_a_threshold_goes_through_unanswered() {
    let server = Running::start(EXAMPLE, &["--sites", "1", "--rate", "1"]).await;
    let mut alice = server.connect_as("alice").await;
    join(&mut alice, "site-1").await;
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-1", "threshold": 12.5});
    send_json(&mut alice, threshold).await;
    // Requests are answered in order: an `ack` for the threshold would come
    // before the answer to the next request.
    let notify = json!({"type": "notify", "user": "alice", "text": "next"});
    send_json(&mut alice, notify).await;
    for _ in 0..10_000 {
        let message = next_json(&mut alice).await;
        assert_ne!(message["type"], "ack", "{message}");
        assert_eq!(message.get("id"), None, "{message}");
        if message["type"] == "sent" {
            return;
        }
    }
    panic!("no `sent` among 10000 messages");
}

#[tokio::test]
async fn the_answers_with_ids_as_they_are_sent() {
    let server = Running::start(EXAMPLE, &["--sites", "1", "--rate", "1"]).await;
    let mut alice = server.connect_as("alice").await;
    let mut frames = Vec::new();
    for (id, request) in (1..).zip([
        json!({"type": "join", "room": "site-1"}),
        json!({"type": "set_threshold", "room": "site-1",
            "sensor": "sensor-1", "threshold": 25.0}),
        json!({"type": "notify", "user": "alice", "text": "hi"}),
        json!({"type": "leave", "room": "site-1"}),
        json!({"type": "leave", "room": "site-1"}),
    ]) {
        frames.push(answer_to(&mut alice, id, request).await);
    }
    insta::assert_json_snapshot!(frames, {
        "[].seq" => "[seq]",
        "[].epoch" => "[epoch]",
        "[].sensors[].value" => "[value]",
        "[].sensors[].recent" => "[recent]",
    });
}
