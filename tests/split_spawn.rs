//! Lesson 02 in its two forms: `examples/02_split_spawn.rs`, a reader task and
//! a writer task per connection, and `examples/02_one_owner.rs`, one task that
//! owns the socket. The same contract tests run against both; the tests after
//! them measure what each form costs.

use ws_harness as common;

use std::time::Duration;

use common::{Program, Running, close, masked_frame, next_text, stuck_peer};
use futures::SinkExt;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const SPLIT_AND_SPAWN: Program = Program::Example("02_split_spawn");
const ONE_OWNER: Program = Program::Example("02_one_owner");

// ANCHOR: programs
common::contract! {
    tests [
        echoes_while_it_ticks,
        a_client_that_vanishes_leaves_no_task_behind,
        ctrl_c_sends_1001_and_exits_zero,
        a_bad_tick_is_refused_with_a_clear_message,
    ]
    programs {
        split_and_spawn: SPLIT_AND_SPAWN,
        one_owner: ONE_OWNER,
    }
}
// ANCHOR_END: programs

async fn echoes_while_it_ticks(program: Program) {
    let server = Running::start(program, &["--tick", "50ms"]).await;
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

async fn a_client_that_vanishes_leaves_no_task_behind(program: Program) {
    let server = Running::start(program, &["--tick", "1h"]).await;
    let idle = server.stats().await;
    let mut client = server.connect().await;
    assert_eq!(next_text(&mut client).await, "tick 1");
    drop(client); // no Close: the TCP connection just goes away
    server
        .wait_for_stats("every task of the connection has stopped", |s| {
            s["connections"] == 0 && s["tasks"] == idle["tasks"]
        })
        .await;
}

async fn ctrl_c_sends_1001_and_exits_zero(program: Program) {
    let mut server = Running::start(program, &["--tick", "1h"]).await;
    let mut client = server.connect().await;
    assert_eq!(next_text(&mut client).await, "tick 1");
    server.shut_down_with(Signal::SIGINT, &mut [client]).await;
}

async fn a_bad_tick_is_refused_with_a_clear_message(program: Program) {
    let (status, _, stderr) =
        common::run_to_exit(program, &["--tick", "often"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("invalid value 'often' for '--tick"),
        "{stderr}"
    );
    let (status, _, stderr) =
        common::run_to_exit(program, &["--tick", "0s"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("greater than zero"), "{stderr}");
}

// What each form costs. First, tasks: the runtime's count in `/stats`.

// ANCHOR: tasks
#[tokio::test]
async fn split_and_spawn_runs_three_tasks_per_connection() {
    // The connection's handler, its reader and its writer.
    tasks_per_connection_are(SPLIT_AND_SPAWN, 3).await;
}

#[tokio::test]
async fn one_owner_runs_one_task_per_connection() {
    // The connection's handler, which owns the socket.
    tasks_per_connection_are(ONE_OWNER, 1).await;
}

/// Opens two connections and checks that each adds `per_connection` tasks to
/// the runtime's count, and that no task outlives them once they close.
async fn tasks_per_connection_are(program: Program, per_connection: u64) {
    let server = Running::start(program, &["--tick", "1h"]).await;
    let idle = server.stats().await["tasks"]
        .as_u64()
        .expect("a task count");

    let mut clients = [server.connect().await, server.connect().await];
    for client in &mut clients {
        assert_eq!(next_text(client).await, "tick 1");
    }
    let busy = idle + 2 * per_connection;
    server
        .wait_for_stats("the tasks of two connections", |s| {
            s["connections"] == 2 && s["tasks"] == busy
        })
        .await;

    for client in &mut clients {
        let reply = close(client, 1000, "bye").await.expect("a Close frame");
        assert_eq!(u16::from(reply.code), 1000);
    }
    server
        .wait_for_stats("no task outlives its connection", |s| {
            s["connections"] == 0 && s["tasks"] == idle
        })
        .await;
}
// ANCHOR_END: tasks

// Then a peer that stops reading. It sends `SENT` messages of `SIZE` bytes, far
// more than the buffers between it and the server hold once the echoes stop
// moving (a Linux send buffer grows to 4 MiB by default), and then the end of
// its stream: a TCP half-close, its FIN. Only then does it read.

/// How many messages the stuck peer sends: fewer than lesson 02's channel
/// holds (32), so that the split form's reader can read them all.
const SENT: usize = 24;
/// The size of each, 1 MiB.
const SIZE: usize = 1 << 20;

// ANCHOR: stuck
#[tokio::test]
async fn split_and_spawn_reads_on_for_a_stuck_peer_and_drops_what_it_queued() {
    let saw = stuck_peer_sends_then_ends(SPLIT_AND_SPAWN, common::WAIT).await;
    // The writer waits in `send`, but the reader reads on: every message and
    // the end of the stream, while the peer reads nothing. The connection ends.
    assert!(
        saw.closed_while_stuck,
        "the server saw the end of the stream"
    );
    // The echoes still queued in the channel went with it.
    assert!(
        saw.echoes < SENT,
        "{} of {SENT} echoes came back",
        saw.echoes
    );
}

#[tokio::test]
async fn one_owner_stops_reading_a_stuck_peer_and_drops_nothing() {
    let watch = Duration::from_secs(1);
    let saw = stuck_peer_sends_then_ends(ONE_OWNER, watch).await;
    // One loop: while its `send` waits, nothing is read, not even the end.
    assert!(!saw.closed_while_stuck, "the server closed a stuck peer");
    // Once the peer reads, the loop goes on where it stopped: nothing was lost.
    assert_eq!(saw.echoes, SENT);
}
// ANCHOR_END: stuck

/// What the stuck peer saw.
struct StuckPeerSaw {
    /// Whether the server closed the connection while the peer read nothing.
    closed_while_stuck: bool,
    /// How many echoes reached the peer once it read.
    echoes: usize,
}

/// Connects a [`stuck_peer`] that writes `SENT` messages and its FIN, then
/// watches `/stats` for at most `watch` for the connection to end; then reads to
/// the end of the connection.
async fn stuck_peer_sends_then_ends(
    program: Program,
    watch: Duration,
) -> StuckPeerSaw {
    let server = Running::start(program, &["--tick", "1h"]).await;
    let (mut reading, mut writing) =
        stuck_peer(server.addr, &[]).await.into_split();

    // In a task of its own: when the server stops reading, so does this write.
    let frame = masked_frame(0x82, &[7; SIZE]);
    let writer = tokio::spawn(async move {
        for _ in 0..SENT {
            writing.write_all(&frame).await?;
        }
        writing.shutdown().await
    });

    let ended = server.wait_for_stats_within(
        common::WAIT,
        "the stuck peer is closed",
        |s| s["connections"] == 0,
    );
    let closed_while_stuck = timeout(watch, ended).await.is_ok();

    let echoes = binary_frames_until_the_end(&mut reading).await;
    let written = timeout(common::WAIT, writer).await;
    assert!(
        matches!(written, Ok(Ok(Ok(())))),
        "the peer's writes finish once it reads: {written:?}"
    );
    StuckPeerSaw {
        closed_while_stuck,
        echoes,
    }
}

/// Reads the server's frames as they come until the connection ends, and counts
/// the whole binary frames of `SIZE` bytes among them (the ticks are text).
async fn binary_frames_until_the_end(reading: &mut OwnedReadHalf) -> usize {
    let mut payload = vec![0; SIZE];
    let count = async {
        let mut count = 0;
        loop {
            let mut head = [0; 2];
            if reading.read_exact(&mut head).await.is_err() {
                return count; // the end, between two frames
            }
            // A server's frames are not masked: the length follows at once.
            let length = match head[1] & 0x7F {
                126 => u64::from(reading.read_u16().await.unwrap_or(0)),
                127 => reading.read_u64().await.unwrap_or(0),
                n => u64::from(n),
            };
            let length = usize::try_from(length).expect("a length in memory");
            assert!(length <= SIZE, "a frame of {length} bytes");
            if reading.read_exact(&mut payload[..length]).await.is_err() {
                return count; // the end, in the middle of a frame
            }
            if head[0] & 0x0F == 0x2 && length == SIZE {
                count += 1;
            }
        }
    };
    timeout(common::WAIT, count)
        .await
        .expect("the server ends the connection")
}
