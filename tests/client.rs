//! Lesson 06, `examples/06_client`: the standalone client, against the real
//! dashboard and lesson 09's rooms, and against stand-in servers.

use ws_harness as common;

use std::time::Duration;

use common::{Process, Running};
use futures::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::Message;

const CLIENT: &str = "06_client";
const DASHBOARD: &str = "05_dashboard";

/// True for a line the client prints for a reading: `sensor-N VALUE` (and maybe
/// ` ALERT`).
fn is_reading(line: &str) -> bool {
    let mut words = line.split(' ');
    let sensor = words.next().unwrap_or_default();
    let value = words.next().unwrap_or_default();
    sensor.starts_with("sensor-")
        && value.parse::<f64>().is_ok()
        && matches!(words.next(), None | Some("ALERT"))
}

/// Waits until the client has printed `count` readings; returns them.
async fn readings(client: &mut Process, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let line = client.next_stdout().await;
        if is_reading(&line) {
            seen.push(line);
            if seen.len() == count {
                return seen;
            }
        }
    }
    panic!("fewer than {count} readings among 10000 lines");
}

// ANCHOR: reconnect
#[tokio::test]
async fn prints_readings_and_reconnects_when_the_server_comes_back() {
    let mut server = Running::start(DASHBOARD, &["--rate", "40"]).await;
    let url = server.ws_url();
    let mut client = Process::spawn(CLIENT, &[&url, "--max-backoff", "500ms"]);
    client.wait_for_stderr("connected to").await;
    readings(&mut client, 5).await;

    // The server goes away (with Close 1001), and comes back on the same port.
    server.signal(Signal::SIGINT);
    assert!(server.wait_exit(Duration::from_secs(2)).await.success());
    client.wait_for_stderr("reconnecting in").await;
    let addr = server.addr.to_string();
    let _server = Running::start_on(DASHBOARD, &addr, &["--rate", "40"]).await;

    // The client finds it by itself, and the readings flow again.
    client.wait_for_stderr("connected to").await;
    readings(&mut client, 5).await;
}
// ANCHOR_END: reconnect

#[tokio::test]
async fn follows_only_the_sensors_it_is_given() {
    let server =
        Running::start(DASHBOARD, &["--sensors", "4", "--rate", "100"]).await;
    let url = server.ws_url();
    let mut client = Process::spawn(
        CLIENT,
        &[&url, "--sensor", "sensor-2", "--sensor", "sensor-4"],
    );
    for line in readings(&mut client, 20).await {
        assert!(
            line.starts_with("sensor-2 ") || line.starts_with("sensor-4 "),
            "{line}"
        );
    }
}

#[tokio::test]
async fn an_unknown_sensor_is_an_error_not_a_retry() {
    let server = Running::start(DASHBOARD, &[]).await;
    let url = server.ws_url();
    let mut client = Process::spawn(CLIENT, &[&url, "--sensor", "sensor-77"]);
    let line = client.wait_for_stderr("error:").await;
    assert!(
        line.contains("the server has no sensor \"sensor-77\""),
        "{line}"
    );
    assert_eq!(client.wait_exit(common::WAIT).await.code(), Some(1));
}

#[tokio::test]
async fn a_refused_upgrade_is_an_error_not_a_retry() {
    // Lesson 08 answers an upgrade without the token with 401, and a path
    // it does not serve with 404.
    let server = Running::start("08_production", &["--token", "s3cret"]).await;
    let url = server.ws_url();
    let nope = format!("ws://{}/nope", server.addr);
    for (urls, refusals) in [
        (vec![&url], vec!["401"]),
        (vec![&nope, &url], vec!["404", "401"]),
    ] {
        let urls: Vec<&str> = urls.into_iter().map(String::as_str).collect();
        let mut client = Process::spawn(CLIENT, &urls);
        let line = client.wait_for_stderr("error:").await;
        for (url, status) in urls.iter().zip(refusals) {
            let refused = format!("{url} refused the upgrade: {status}");
            assert!(line.contains(&refused), "{line}");
        }
        assert_eq!(client.wait_exit(common::WAIT).await.code(), Some(1));
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

    let mut client = Process::spawn(CLIENT, &[&url]);
    client.wait_for_stderr("connected to").await;
    client.signal(Signal::SIGINT);
    let frame = tokio::time::timeout(common::WAIT, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
    assert!(client.wait_exit(Duration::from_secs(2)).await.success());
}
// ANCHOR_END: ctrl_c
