//! Lesson 02, `examples/02_split_spawn.rs`: a reader task and a writer task per
//! connection.

mod common;

use common::{Server, close, next_text};
use futures::SinkExt;
use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::Message;

const EXAMPLE: &str = "02_split_spawn";

#[tokio::test]
async fn echoes_while_it_ticks() {
    let server = Server::start(EXAMPLE, &["--tick", "50ms"]).await;
    let mut client = server.connect().await;

    // The first tick of a tokio interval fires at once.
    assert_eq!(next_text(&mut client).await, "tick 1");
    client.send(Message::text("hello")).await.unwrap();

    // The echo arrives among the ticks, and the ticks go on, in order, around it.
    let mut ticks = vec![1];
    let mut echoed = false;
    for _ in 0..100 {
        let text = next_text(&mut client).await;
        match text.strip_prefix("tick ") {
            Some(n) => ticks.push(n.parse::<u64>().unwrap()),
            None => {
                assert_eq!(text, "hello");
                echoed = true;
            }
        }
        if echoed && ticks.len() >= 4 {
            break;
        }
    }
    assert!(echoed, "the echo arrived");
    assert_eq!(ticks, (1..=ticks.len() as u64).collect::<Vec<_>>());

    let reply = close(&mut client, 1000, "done")
        .await
        .expect("a Close frame");
    assert_eq!(u16::from(reply.code), 1000);
}

// ANCHOR: no_task_left
#[tokio::test]
async fn no_task_outlives_the_connection() {
    let server = Server::start(EXAMPLE, &["--tick", "1h"]).await;
    let idle = server.stats().await;

    let mut client = server.connect().await;
    assert_eq!(next_text(&mut client).await, "tick 1");
    // The handler, the reader and the writer: three tasks more than at rest.
    let busy = idle["tasks"].as_u64().map(|n| n + 3);
    server
        .wait_for_stats("three tasks for one connection", |s| {
            s["connections"] == 1 && s["tasks"].as_u64() == busy
        })
        .await;

    let reply = close(&mut client, 1000, "bye")
        .await
        .expect("a Close frame");
    assert_eq!(u16::from(reply.code), 1000);
    server
        .wait_for_stats("both halves have stopped", |s| {
            s["connections"] == 0 && s["tasks"] == idle["tasks"]
        })
        .await;
}
// ANCHOR_END: no_task_left

#[tokio::test]
async fn a_client_that_vanishes_stops_both_halves() {
    let server = Server::start(EXAMPLE, &["--tick", "1h"]).await;
    let idle = server.stats().await;
    let mut client = server.connect().await;
    assert_eq!(next_text(&mut client).await, "tick 1");
    drop(client); // no Close: the TCP connection just goes away
    server
        .wait_for_stats("both halves have stopped", |s| {
            s["connections"] == 0 && s["tasks"] == idle["tasks"]
        })
        .await;
}

#[tokio::test]
async fn ctrl_c_sends_1001_through_the_writer_and_exits_zero() {
    let mut server = Server::start(EXAMPLE, &["--tick", "1h"]).await;
    let mut client = server.connect().await;
    assert_eq!(next_text(&mut client).await, "tick 1");
    server.shut_down_with(Signal::SIGINT, &mut [client]).await;
}

#[tokio::test]
async fn a_bad_tick_is_refused_with_a_clear_message() {
    let (status, _, stderr) =
        common::run_to_exit(EXAMPLE, &["--tick", "often"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("invalid value 'often' for '--tick"),
        "{stderr}"
    );
    let (status, _, stderr) =
        common::run_to_exit(EXAMPLE, &["--tick", "0s"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("greater than zero"), "{stderr}");
}
