//! Lesson 06, `examples/06_client`: the standalone client, against the real
//! dashboard and lesson 08, and against a stand-in server. The client runs
//! with `--events`: the tests read what it did from its JSON lines on stdout.

use ws_harness as common;

use std::time::Duration;

use common::{Process, Running};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use ws_lessons::protocol::{Reading, ServerMessage};

const CLIENT: &str = "06_client";
const DASHBOARD: &str = "05_dashboard";

/// Starts the client with `--events` and `args`.
fn spawn(args: &[&str]) -> Process {
    Process::spawn(CLIENT, &[args, &["--events"]].concat())
}

/// The server's message that a `message` event shows, if it is one.
fn shown(event: &Value) -> Option<ServerMessage> {
    let message = (event["event"] == "message").then(|| &event["message"])?;
    Some(serde_json::from_value(message.clone()).expect("a server message"))
}

/// Waits until the client has shown `count` readings; returns them.
async fn readings(client: &mut Process, count: usize) -> Vec<Reading> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        if let Some(ServerMessage::Reading(reading)) =
            shown(&client.next_event().await)
        {
            seen.push(reading);
            if seen.len() == count {
                return seen;
            }
        }
    }
    panic!("fewer than {count} readings among 10000 events");
}

// ANCHOR: reconnect
#[tokio::test]
async fn prints_readings_and_reconnects_when_the_server_comes_back() {
    let mut server = Running::start(DASHBOARD, &["--rate", "40"]).await;
    let url = server.ws_url();
    let mut client = spawn(&[&url, "--max-backoff", "500ms"]);
    client.wait_for_event("connected").await;
    readings(&mut client, 5).await;

    // The server goes away (with Close 1001), and comes back on the same port.
    server.signal(Signal::SIGINT);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    client.wait_for_event("reconnecting").await;
    let addr = server.addr.to_string();
    let _server = Running::start_on(DASHBOARD, &addr, &["--rate", "40"]).await;

    // The client finds it by itself, and the readings flow again.
    let connected = client.wait_for_event("connected").await;
    assert_eq!(connected["url"], url);
    readings(&mut client, 5).await;
}
// ANCHOR_END: reconnect

#[tokio::test]
async fn follows_only_the_sensors_it_is_given() {
    let server =
        Running::start(DASHBOARD, &["--sensors", "4", "--rate", "100"]).await;
    let url = server.ws_url();
    let mut client =
        spawn(&[&url, "--sensor", "sensor-2", "--sensor", "sensor-4"]);
    for reading in readings(&mut client, 20).await {
        let sensor = reading.sensor;
        assert!(sensor == "sensor-2" || sensor == "sensor-4", "{sensor}");
    }
}

/// The kinds of `events`, in order.
fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event"].as_str()).collect()
}

#[tokio::test]
async fn an_unknown_sensor_is_an_error_not_a_retry() {
    let server = Running::start(DASHBOARD, &[]).await;
    let url = server.ws_url();
    let mut client = spawn(&[&url, "--sensor", "sensor-77"]);
    let exited = client.exited().await;
    assert_eq!(exited.code, Some(1));
    // Connected once, shown nothing, never tried again.
    assert_eq!(kinds(&exited.events), ["connected"], "{:?}", exited.events);
    let error = exited.error;
    assert!(
        error.contains("the server has no sensor \"sensor-77\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_an_error_not_a_retry() {
    // Lesson 08 answers an upgrade without the token with 401, and a path
    // it does not serve with 404.
    let server = Running::start("08_production", &["--token", "s3cret"]).await;
    let url = server.ws_url();
    let nope = format!("ws://{}/nope", server.addr);
    for (urls, refusals) in
        [(vec![&url], vec![401]), (vec![&nope, &url], vec![404, 401])]
    {
        let urls: Vec<&str> = urls.into_iter().map(String::as_str).collect();
        let exited = spawn(&urls).exited().await;
        assert_eq!(exited.code, Some(1));
        // One refusal for each URL, with its status, and nothing more.
        let refused: Vec<(&str, u64)> = exited
            .events
            .iter()
            .filter(|event| event["event"] == "refused")
            .filter_map(|event| {
                Some((event["url"].as_str()?, event["status"].as_u64()?))
            })
            .collect();
        assert_eq!(
            refused,
            urls.iter().copied().zip(refusals).collect::<Vec<_>>()
        );
        assert_eq!(exited.events.len(), urls.len(), "{:?}", exited.events);
        // The final error names every URL that refused.
        let error = exited.error;
        assert!(urls.iter().all(|url| error.contains(url)), "{error}");
    }
}

#[tokio::test]
async fn bad_urls_are_refused_with_a_clear_message() {
    for (url, expected) in [
        ("not a url", "not a URL"),
        ("http://127.0.0.1:3000/ws", "expected a URL such as ws://"),
    ] {
        let (status, _, stderr) = common::run_to_exit(CLIENT, &[url]).await;
        assert_eq!(status.code(), Some(2), "{url}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

// ANCHOR: ctrl_c
#[tokio::test]
async fn ctrl_c_closes_with_1000() {
    // A stand-in server on port 0: it greets the client with a snapshot and
    // reports the Close frame it gets back.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let snapshot = r#"{"type":"snapshot","seq":0,"missed":0,"sensors":[]}"#;
        socket.send(Message::text(snapshot)).await.unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
    });

    let mut client = spawn(&[&url]);
    client.wait_for_event("connected").await;
    client.signal(Signal::SIGINT);
    let frame = tokio::time::timeout(common::WAIT, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
    assert!(client.wait_exit(Duration::from_secs(2)).await.success());
}
// ANCHOR_END: ctrl_c
