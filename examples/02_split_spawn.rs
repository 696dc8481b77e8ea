//! Lesson 02: split the socket and spawn a task for each half.
//!
//! What it teaches:
//! - why split: this server echoes like lesson 01 *and* pushes a message of its
//!   own (a tick every `--tick`), so reading and writing must happen
//!   independently;
//! - `StreamExt::split` gives a `SplitSink` and a `SplitStream` (from the
//!   `futures` traits: the halves are read with `next()` and written with
//!   `send()`, not `recv()`);
//! - a reader task and a writer task joined by a bounded `tokio::sync::mpsc`
//!   channel;
//! - no task outlives the connection: when one half ends, the other is stopped
//!   and awaited.
//!
//! Try it:
//!     cargo run --example 02_split_spawn   # then open http://127.0.0.1:3000/
//!     cargo run --example 02_split_spawn -- --tick 200ms   # a faster tick

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{any, get};
use clap::Parser;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{MissedTickBehavior, timeout};
use ws_lessons::server::{CLOSE_TIMEOUT, going_away_frame};
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// Echoes every text and binary message, and sends a tick of its own every
/// --tick.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// How often the server pushes a tick to every client (for example 200ms or
    /// 1s)
    #[arg(long, default_value = "1s", value_parser = ws_lessons::cli::duration)]
    tick: Duration,
}
// ANCHOR_END: args

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    tick: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        tick: args.tick,
    };
    let app = Router::new()
        .route("/", get(ws_lessons::page::try_it))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
) -> Response {
    let connections = state.connections.clone();
    ws.on_upgrade(move |socket| connections.track(handle(socket, state)))
}

/// Which half of the connection finished first.
enum Half {
    Reader,
    Writer,
}

// ANCHOR: handle
async fn handle(socket: WebSocket, state: AppState) {
    let (sink, stream) = socket.split();
    // Bounded: when the writer cannot keep up, `send` in the reader waits, the
    // reader stops reading, and TCP pushes back on the peer. An unbounded channel
    // would queue instead.
    let (echoes, to_write) = mpsc::channel(32);

    // A JoinSet owns its tasks: it can stop them all, and dropping it aborts them
    // too, so not even a panic in this function can leave one running.
    let mut halves = JoinSet::new();
    halves.spawn(read(stream, echoes));
    halves.spawn(write(sink, to_write, state.tick, state.connections));

    // The first half to finish decides how the connection ends.
    if let Some(Ok(Half::Writer)) = halves.join_next().await {
        // The writer sent Close (shutdown) or could no longer write. Give the
        // reader a moment to read the peer's Close reply, which completes the
        // closing handshake.
        let _ = timeout(CLOSE_TIMEOUT, halves.join_next()).await;
    }
    // Otherwise the reader saw the stream end: there is no one left to write to.

    // Abort whatever is still running and wait until it has stopped.
    halves.shutdown().await;
}
// ANCHOR_END: handle

// ANCHOR: read
/// Reads until the stream ends, passing data messages to the writer to be echoed.
async fn read(
    mut stream: SplitStream<WebSocket>,
    echoes: mpsc::Sender<Message>,
) -> Half {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if echoes.send(message).await.is_err() {
                    break; // the writer has stopped
                }
            }
            // The library answers these. After a Close we keep reading, as in
            // lesson 01, until the stream ends: that is what flushes the
            // library's Close reply.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    Half::Reader
}
// ANCHOR_END: read

// ANCHOR: write
/// Owns the sink: writes the echoes from the reader and a tick of its own.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut echoes: mpsc::Receiver<Message>,
    every: Duration,
    connections: Connections,
) -> Half {
    let mut ticks = tokio::time::interval(every); // the first tick fires at once
    // A client that stalls gets the next tick on time, not a burst of the ones it
    // missed.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut count: u64 = 0;
    loop {
        let message = tokio::select! {
            echo = echoes.recv() => match echo {
                Some(message) => message,
                None => break, // the reader has finished: nothing more to echo
            },
            _ = ticks.tick() => {
                count += 1;
                Message::text(format!("tick {count}"))
            }
            () = connections.shutting_down() => {
                let _ = sink.send(going_away_frame()).await;
                break;
            }
        };
        if sink.send(message).await.is_err() {
            break; // the connection is broken
        }
    }
    Half::Writer
}
// ANCHOR_END: write
