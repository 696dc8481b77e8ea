//! Lesson 07, `examples/07_long_polling/`: the feed over HTTP long polling.

use ws_harness as common;

use std::time::{Duration, Instant};

use common::{Running, http_get};
use nix::sys::signal::Signal;
use serde_json::Value;

const EXAMPLE: &str = "07_long_polling";

/// `GET path`; returns the status code and the JSON body.
async fn get_json(server: &Running, path: &str) -> (u16, Value) {
    let response = server.get(path).await;
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type
            .to_ascii_lowercase()
            .starts_with("application/json"),
        "{response}"
    );
    (response.status, response.json())
}

fn seqs(answer: &Value) -> Vec<u64> {
    answer["readings"]
        .as_array()
        .expect("a list of readings")
        .iter()
        .map(|r| r["seq"].as_u64().expect("a seq"))
        .collect()
}

// ANCHOR: waits
#[tokio::test]
async fn a_poll_with_nothing_new_waits_for_the_next_reading() {
    let server = Running::start(EXAMPLE, &["--rate", "5"]).await;
    // Catch up first: after this, the client has everything the server has.
    let (_, first) = get_json(&server, "/poll?after=0").await;
    let mut after = first["next"].as_u64().expect("next");
    // An answer that came back empty would be a plain poll, not a long one.
    // Bounded: at 5 readings a second the next one is never far, but a reading
    // can land between polls.
    for _ in 0..10 {
        let (status, answer) =
            get_json(&server, &format!("/poll?after={after}")).await;
        assert_eq!(status, 200);
        let got = seqs(&answer);
        assert!(
            !got.is_empty(),
            "the poll answered without a reading: {answer}"
        );
        if got == [after + 1] {
            assert_eq!(answer["next"], after + 1);
            return;
        }
        after = answer["next"].as_u64().expect("next");
    }
    panic!("never caught up with the feed");
}
// ANCHOR_END: waits

#[tokio::test]
async fn a_poll_that_times_out_answers_with_nothing_and_the_same_after() {
    // One reading every 100 s: the 200 ms poll timeout comes first.
    let server =
        Running::start(EXAMPLE, &["--rate", "0.01", "--poll-timeout", "200ms"])
            .await;
    let (_, first) = get_json(&server, "/poll?after=0").await;
    let after = first["next"].as_u64().expect("next");
    let started = Instant::now();
    let (status, answer) =
        get_json(&server, &format!("/poll?after={after}")).await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&answer), Vec::<u64>::new());
    assert_eq!(answer["next"], after);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it did not wait"
    );
    // The poll that timed out no longer counts as waiting.
    let stats = server.stats().await;
    assert_eq!(stats["waiting_polls"], 0, "{stats}");
}

#[tokio::test]
async fn wait_false_answers_at_once_even_with_nothing_new() {
    // One reading every 100 s: a waiting poll would take the whole 60 s timeout.
    let server =
        Running::start(EXAMPLE, &["--rate", "0.01", "--poll-timeout", "60s"])
            .await;
    let (status, answer) = get_json(&server, "/poll?after=0&wait=false").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&answer), Vec::<u64>::new());
    assert_eq!(answer["next"], 0);
}

// ANCHOR: bookkeeping
#[tokio::test]
async fn following_next_loses_nothing_between_polls() {
    let server = Running::start(EXAMPLE, &["--rate", "500"]).await;
    let mut after = 0;
    let mut all = Vec::new();
    for _ in 0..30 {
        let (status, answer) =
            get_json(&server, &format!("/poll?after={after}&limit=7")).await;
        assert_eq!(status, 200);
        assert_eq!(answer["missed"], 0);
        let got = seqs(&answer);
        assert!(got.len() <= 7, "limit is respected");
        all.extend(got);
        after = answer["next"].as_u64().expect("next");
    }
    let first = all[0];
    assert_eq!(
        all,
        (first..first + all.len() as u64).collect::<Vec<_>>(),
        "no gaps, no repeats"
    );
}
// ANCHOR_END: bookkeeping

#[tokio::test]
async fn a_client_that_polls_too_seldom_is_told_what_it_missed() {
    let server =
        Running::start(EXAMPLE, &["--rate", "2000", "--history", "10"]).await;
    // Wait until the feed has moved well past the history.
    let mut after = 0;
    while after < 100 {
        let (_, answer) =
            get_json(&server, &format!("/poll?after={after}")).await;
        after = answer["next"].as_u64().expect("next");
    }
    let (_, answer) = get_json(&server, "/poll?after=0").await;
    let missed = answer["missed"].as_u64().expect("missed");
    assert!(missed > 0);
    assert_eq!(
        seqs(&answer)[0],
        missed + 1,
        "the answer starts right after what was missed"
    );
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_json_error() {
    let server = Running::start(EXAMPLE, &["--rate", "5"]).await;
    for (path, expected) in [
        ("/poll", "missing field `after`"),
        ("/poll?after=abc", "after: invalid digit"),
        ("/poll?after=-1", "after: invalid digit"),
        (
            "/poll?after=0&limit=0",
            "limit must be from 1 to 1000, not 0",
        ),
        (
            "/poll?after=0&limit=5000",
            "limit must be from 1 to 1000, not 5000",
        ),
        ("/poll?after=99999999", "is ahead of the feed"),
    ] {
        let (status, body) = get_json(&server, path).await;
        assert_eq!(status, 400, "{path}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains(expected), "{path}: {error}");
    }
}

#[tokio::test]
async fn a_waiting_poll_answers_at_once_on_shutdown() {
    // One reading every 100 s, the first of them 100 s from now: a poll waits.
    let mut server =
        Running::start(EXAMPLE, &["--rate", "0.01", "--poll-timeout", "60s"])
            .await;
    let idle = server.stats().await;
    assert_eq!(idle["waiting_polls"], 0, "{idle}");
    let after = 0;
    let addr = server.addr;
    let waiting = tokio::spawn(async move {
        http_get(addr, &format!("/poll?after={after}")).await
    });
    let what = "the poll is waiting";
    server
        .wait_for_stats(what, |s| s["waiting_polls"] == 1)
        .await;
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    let response = waiting.await.expect("the poll task");
    assert_eq!(response.status, 200, "{response}");
}
