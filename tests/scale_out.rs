//! Lesson 10, `examples/10_scale_out`: two and three instances sharing a real
//! Redis (`redis-server`, started by each test on a free port).
#![cfg(feature = "with-redis")]

use ws_harness as common;

use common::{
    Client, Process, Redis, Running, answer_to, is_room_change, next_json,
    next_of, run_to_exit, send_json,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const EXAMPLE: &str = "10_scale_out";

/// An instance on the shared Redis; the first of a test produces.
async fn instance(redis: &Redis, produce: bool, extra: &[&str]) -> Running {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--sites", "2", "--rate", "200"];
    if produce {
        args.push("--produce");
    }
    args.extend_from_slice(extra);
    Running::start(EXAMPLE, &args).await
}

/// Joins `room`, and returns the answer (a snapshot, or `joined`).
async fn join(client: &mut Client, room: &str, after: Option<u64>) -> Value {
    let mut request = json!({"type": "join", "room": room});
    if let Some(after) = after {
        request["after"] = after.into();
    }
    send_json(client, request).await;
    join_answer(client).await
}

/// The answer to a join just sent: a snapshot, or `joined`.
async fn join_answer(client: &mut Client) -> Value {
    loop {
        let message = next_json(client).await;
        if matches!(message["type"].as_str(), Some("snapshot" | "joined")) {
            return message;
        }
    }
}

/// Reads `presence` messages until one lists `users`; fails if none of the
/// next `most` does.
async fn presence_until(client: &mut Client, users: Value, most: usize) {
    let mut seen = Value::Null;
    for _ in 0..most {
        seen = next_of(client, "presence").await["users"].clone();
        if seen == users {
            return;
        }
    }
    assert_eq!(seen, users, "no presence lists them");
}

/// The next `count` changes (readings and thresholds) as (type, seq),
/// checking that they are consecutive.
async fn changes(client: &mut Client, count: usize) -> Vec<(String, u64)> {
    let mut seen: Vec<(String, u64)> = Vec::new();
    while seen.len() < count {
        let message = next_json(client).await;
        let kind = message["type"].as_str().unwrap_or_default().to_owned();
        if kind != "reading" && kind != "threshold" {
            continue;
        }
        let seq = message["seq"].as_u64().expect("a seq");
        if let Some((_, last)) = seen.last() {
            assert_eq!(seq, last + 1, "a gap after {last}: {message}");
        }
        seen.push((kind, seq));
    }
    seen
}

#[tokio::test]
async fn start_up_without_redis_is_a_one_line_error() {
    let args = ["127.0.0.1:0", "--redis", "redis://127.0.0.1:1"];
    let (status, stdout, stderr) = run_to_exit(EXAMPLE, &args).await;
    assert!(!status.success());
    assert!(stdout.is_empty(), "no start-up line: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: cannot reach Redis at redis://127.0.0.1:1")
    );
}

// ANCHOR: one_order
#[tokio::test]
async fn every_instance_delivers_the_same_changes_in_the_same_order() {
    let redis = Redis::start().await;
    let a = instance(&redis, true, &[]).await;
    let b = instance(&redis, false, &[]).await;
    let c = instance(&redis, false, &[]).await;
    let mut clients = Vec::new();
    for (server, user) in [(&a, "ann"), (&b, "bob"), (&c, "cid")] {
        let mut client = server.connect_as(user).await;
        join(&mut client, "site-1", None).await;
        clients.push(client);
    }
    // A threshold set through c reaches every instance as one of the changes.
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-2", "threshold": 99.5});
    send_json(&mut clients[2], threshold).await;
    let mut seen = Vec::new();
    for client in &mut clients {
        let at = next_of(client, "threshold").await;
        assert_eq!(at["threshold"], 99.5);
        let at = at["seq"].as_u64().expect("a seq");
        seen.push((at, changes(client, 50).await));
    }
    assert!(
        seen.iter().all(|(at, _)| *at == seen[0].0),
        "one seq: {seen:?}"
    );
    assert!(seen.iter().all(|(_, c)| *c == seen[0].1), "one order");
}
// ANCHOR_END: one_order

#[tokio::test]
async fn presence_and_notices_cross_instances() {
    let redis = Redis::start().await;
    let a = instance(&redis, true, &[]).await;
    let b = instance(&redis, false, &[]).await;
    let mut alice_a = a.connect_as("alice").await;
    let mut alice_b = b.connect_as("alice").await;
    let mut bob = b.connect_as("bob").await;
    // Each connection registers its user a moment after its handshake.
    b.wait_for_stats("alice and bob on b", |s| s["users"] == 2)
        .await;
    join(&mut alice_a, "site-1", None).await;
    join(&mut bob, "site-1", None).await;
    // bob, on b, sees alice, who is on a.
    presence_until(&mut bob, json!(["alice", "bob"]), 100).await;

    let notice = json!({"type": "notify", "user": "alice", "text": "hello"});
    send_json(&mut bob, notice).await;
    let sent = next_of(&mut bob, "sent").await;
    assert_eq!(sent, json!({"type": "sent", "to": "alice", "instances": 2}));
    for tab in [&mut alice_a, &mut alice_b] {
        let got = next_of(tab, "notice").await;
        assert_eq!(
            got,
            json!({"type": "notice", "from": "bob", "text": "hello"})
        );
    }
    let nobody = json!({"type": "notify", "user": "dave", "text": "hi"});
    send_json(&mut bob, nobody).await;
    let error = next_of(&mut bob, "error").await;
    assert_eq!(error["message"], "\"dave\" is not connected");

    // alice's instance a dies: within seconds, bob sees her gone.
    drop(alice_b);
    a.signal(Signal::SIGKILL);
    // A dead instance's users go.
    presence_until(&mut bob, json!(["bob"]), 1000).await;
}

// ANCHOR: resume
#[tokio::test]
async fn a_client_resumes_on_another_instance_after_a_sigkill() {
    let redis = Redis::start().await;
    let producer = instance(&redis, true, &[]).await;
    let doomed = instance(&redis, false, &[]).await;
    let mut client = doomed.connect_as("ann").await;
    join(&mut client, "site-1", None).await;
    let last = changes(&mut client, 20).await.last().expect("changes").1;

    doomed.signal(Signal::SIGKILL);
    // The client moves to the other instance and asks for what followed.
    let mut client = producer.connect_as("ann").await;
    let answer = join(&mut client, "site-1", Some(last)).await;
    assert_eq!(answer["type"], "joined", "{answer}");
    let next = changes(&mut client, 1).await[0].1;
    assert_eq!(next, last + 1, "no gap, nothing twice");
}
// ANCHOR_END: resume

// ANCHOR: client_moves
#[tokio::test]
async fn the_rooms_client_moves_to_another_instance_without_a_gap() {
    let redis = Redis::start().await;
    let doomed = instance(&redis, false, &[]).await;
    let producer = instance(&redis, true, &[]).await;
    let (first, second) = (doomed.ws_url(), producer.ws_url());
    let args = [&*first, &second, "--room", "site-1", "--events"];
    let mut client = Process::spawn(
        "10_rooms_client",
        &[&args[..], &["--max-backoff", "100ms"]].concat(),
    );
    let mut seen = Vec::new();
    let connected = client
        .events_until(&mut seen, |e| e["event"] == "connected")
        .await;
    assert_eq!(connected["url"], format!("{first}?user=client"));
    client.events_until(&mut seen, is_room_change).await;

    doomed.signal(Signal::SIGKILL);
    let connected = client
        .events_until(&mut seen, |e| e["event"] == "connected")
        .await;
    assert_eq!(connected["url"], format!("{second}?user=client"));
    // The other instance has the same changes under the same numbers.
    let kind = |e: &Value| e["message"]["type"].as_str().map(str::to_owned);
    let answer = client
        .events_until(&mut seen, |e| {
            matches!(kind(e).as_deref(), Some("snapshot" | "joined"))
        })
        .await;
    assert_eq!(answer["message"]["type"], "joined", "{answer}");
    for _ in 0..20 {
        client.events_until(&mut seen, is_room_change).await;
    }
    // Every event up to its exit: no change was missed or repeated.
    client.signal(Signal::SIGINT);
    assert!(client.wait_exit(common::WAIT).await.success());
    seen.extend(client.events_to_end().await);
    let gaps = seen.iter().filter(|e| e["event"] == "gap");
    assert_eq!(gaps.count(), 0, "no change was missed or repeated");
}

// ANCHOR_END: client_moves

#[tokio::test]
async fn an_instance_started_later_replays_what_came_before_it() {
    let redis = Redis::start().await;
    let producer = instance(&redis, true, &[]).await;
    let mut client = producer.connect_as("ann").await;
    let snapshot = join(&mut client, "site-1", None).await;
    let last = changes(&mut client, 20).await.last().expect("changes").1;
    // Fifty more changes happen before the new instance starts.
    changes(&mut client, 50).await;

    // A new instance (a restarted one, say) loads the room from Redis, and
    // its history with it: the changes after `last` are replayed, not lost
    // to a snapshot.
    let late = instance(&redis, false, &[]).await;
    let mut client = late.connect_as("ann").await;
    let mut rejoin = json!({"type": "join", "room": "site-1", "after": last});
    rejoin["epoch"] = snapshot["epoch"].clone();
    send_json(&mut client, rejoin).await;
    let answer = next_of(&mut client, "joined").await;
    assert_eq!(answer["after"], last);
    assert_eq!(changes(&mut client, 1).await[0].1, last + 1);
}

#[tokio::test]
async fn a_client_too_far_behind_gets_a_snapshot_with_an_exact_missed() {
    let redis = Redis::start().await;
    let server = instance(&redis, true, &["--history", "10"]).await;
    let mut client = server.connect_as("ann").await;
    let snapshot = join(&mut client, "site-1", None).await;
    let after = snapshot["seq"].as_u64().expect("a seq");
    changes(&mut client, 30).await;
    let mut other = server.connect_as("bob").await;
    let answer = join(&mut other, "site-1", Some(after)).await;
    assert_eq!(answer["type"], "snapshot", "{answer}");
    let seq = answer["seq"].as_u64().expect("a seq");
    assert_eq!(answer["missed"], seq - after);
}

// ANCHOR: redis_restart
#[tokio::test]
async fn a_redis_restart_pauses_updates_and_loses_nothing() {
    let mut redis = Redis::start().await;
    let _producer = instance(&redis, true, &[]).await;
    let server = instance(&redis, false, &[]).await;
    let mut client = server.connect_as("ann").await;
    join(&mut client, "site-1", None).await;
    let last = changes(&mut client, 10).await.last().expect("changes").1;

    redis.stop().await;
    // Changes the instance had before Redis went may still arrive after
    // `paused` (two channels, no order between them); none may be missing.
    let mut last_before = last;
    let expect = |message: &Value, last_before: &mut u64| {
        if message["type"] == "reading" {
            let seq = message["seq"].as_u64().expect("a seq");
            assert_eq!(seq, *last_before + 1, "{message}");
            *last_before = seq;
        }
    };
    loop {
        let message = next_json(&mut client).await;
        expect(&message, &mut last_before);
        if message["type"] == "paused" {
            break;
        }
    }
    assert_eq!(server.get("/ready").await.status, 503);
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 1, "/stats still works");
    assert_eq!(stats["outages"], 1, "and counts the outage: {stats}");

    redis.start_again().await;
    loop {
        let message = next_json(&mut client).await;
        expect(&message, &mut last_before);
        if message["type"] == "resumed" {
            break;
        }
    }
    let after = changes(&mut client, 10).await;
    assert_eq!(
        after[0].1,
        last_before + 1,
        "carries on where it stopped: {after:?}"
    );
    assert_eq!(server.get("/ready").await.status, 200);
}
// ANCHOR_END: redis_restart

#[tokio::test]
async fn while_redis_is_away_thresholds_and_notices_get_an_error() {
    let mut redis = Redis::start().await;
    let server = instance(&redis, false, &[]).await;
    let mut client = server.connect_as("ann").await;
    join(&mut client, "site-1", None).await;
    redis.stop().await;
    next_of(&mut client, "paused").await;
    // Refused at once: the instance knows that Redis is away.
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-2", "threshold": 40.0});
    send_json(&mut client, threshold).await;
    let error = next_of(&mut client, "error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("updates are paused"), "{error}");
    // Tried, and refused when Redis does not answer.
    let notice = json!({"type": "notify", "user": "ann", "text": "hi"});
    send_json(&mut client, notice).await;
    let error = next_of(&mut client, "error").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("notices are paused"), "{error}");
}

#[tokio::test]
async fn a_redis_that_lost_its_data_starts_a_new_numbering() {
    let mut redis = Redis::start().await;
    let _producer = instance(&redis, true, &[]).await;
    let server = instance(&redis, false, &[]).await;
    let mut client = server.connect_as("ann").await;
    let snapshot = join(&mut client, "site-1", None).await;
    let last = changes(&mut client, 20).await.last().expect("changes").1;

    redis.stop().await;
    let data = redis.dir().join("appendonlydir");
    std::fs::remove_dir_all(data).expect("Redis's data is gone");
    redis.start_again().await;
    // The room's count starts again at 1, in a new numbering, and the client
    // is told with a snapshot rather than fed changes it cannot place.
    let renumbered = next_of(&mut client, "snapshot").await;
    assert_ne!(renumbered["epoch"], snapshot["epoch"]);
    let seq = renumbered["seq"].as_u64().expect("a seq");
    assert_eq!(changes(&mut client, 5).await[0].1, seq + 1);

    // A client that was away rejoins with what it had, in the old numbering:
    // a snapshot of the new one, never `joined` and changes it cannot place.
    let mut away = server.connect_as("bob").await;
    let rejoin = json!({"type": "join", "room": "site-1", "after": last,
        "epoch": snapshot["epoch"]});
    send_json(&mut away, rejoin).await;
    let answer = join_answer(&mut away).await;
    assert_eq!(answer["type"], "snapshot", "{answer}");
    assert_eq!(answer["epoch"], renumbered["epoch"]);
    assert_eq!(answer["missed"], 0, "nothing counts across numberings");
}

/// Ctrl-C, the shutdown contract of every lesson, with Redis behind (lesson
/// 11 drains on SIGTERM instead: tests/drain.rs).
#[tokio::test]
async fn ctrl_c_sends_1001_with_redis_behind() {
    let redis = Redis::start().await;
    let mut server = instance(&redis, true, &[]).await;
    let mut client = server.connect_as("ann").await;
    join(&mut client, "site-1", None).await;
    server.shut_down_with(Signal::SIGINT, &mut [client]).await;
}

#[tokio::test]
async fn a_request_is_answered_by_the_instance_that_took_it() {
    let redis = Redis::start().await;
    let a = instance(&redis, true, &[]).await;
    let b = instance(&redis, false, &[]).await;
    let mut ann = a.connect_as("ann").await;
    let mut bob = b.connect_as("bob").await;
    let join = json!({"type": "join", "room": "site-1"});
    assert_eq!(
        answer_to(&mut ann, 1, join.clone()).await["type"],
        "snapshot"
    );
    assert_eq!(answer_to(&mut bob, 1, join).await["type"], "snapshot");
    // bob sees ann: a has written who it has, so a notice can find her.
    presence_until(&mut bob, json!(["ann", "bob"]), 100).await;

    // a takes ann's threshold and acks it; Redis carries the change to b,
    // and bob gets the change, without the id.
    let threshold = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-1", "threshold": 77.5});
    let ack = answer_to(&mut ann, 2, threshold).await;
    assert_eq!(ack, json!({"type": "ack", "id": 2}));
    let change = next_of(&mut bob, "threshold").await;
    assert_eq!(
        (change["threshold"].as_f64(), change.get("id")),
        (Some(77.5), None)
    );

    // b takes bob's notice to ann, who is on a: b answers it. Had bob been
    // sent ann's `ack`, `answer_to` would find it here, an answer to another
    // request.
    let notify = json!({"type": "notify", "user": "ann", "text": "hi"});
    let sent = answer_to(&mut bob, 3, notify).await;
    assert_eq!(
        sent,
        json!({"type": "sent", "id": 3, "to": "ann", "instances": 1})
    );
    let notice = next_of(&mut ann, "notice").await;
    assert_eq!(
        notice,
        json!({"type": "notice", "from": "bob", "text": "hi"})
    );
    // And an error from b carries bob's id.
    let unknown = json!({"type": "set_threshold", "room": "site-1",
        "sensor": "sensor-9", "threshold": 1.0});
    let error = answer_to(&mut bob, 4, unknown).await;
    assert_eq!(error["type"], "error", "{error}");
}
