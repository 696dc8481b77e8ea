//! Lesson 02, the other form: one task owns the socket.
//!
//! The same server as `02_split_spawn` (it echoes, and pushes a tick of its own
//! every `--tick`), written the way axum's documentation now recommends: no
//! `split`, no tasks of its own. The connection's handler owns the socket and
//! waits with `tokio::select!` for whichever comes first: a message from the
//! peer, a tick, or the shutdown signal.
//!
//! What it teaches:
//! - reading and writing "at the same time" needs no second task: `recv` is
//!   cancel safe, so it can be one branch of a `select!` among others;
//! - what this form costs, beside split and spawn: one task per connection
//!   instead of three, and one loop that stops reading while a send waits
//!   (the chapter measures both).
//!
//! Try it:
//!     cargo run --example 02_one_owner   # then open http://127.0.0.1:3000/
//!     cargo run --example 02_one_owner -- --tick 200ms   # a faster tick

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{any, get};
use clap::Parser;
use tokio::time::MissedTickBehavior;
use ws_lessons::{Connections, ListenArgs};

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

// ANCHOR: handle
/// Owns the socket: reads, echoes and ticks in one loop, in the connection's
/// own task.
async fn handle(mut socket: WebSocket, state: AppState) {
    let mut ticks = tokio::time::interval(state.tick); // fires at once
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut count: u64 = 0;
    loop {
        // Whichever is ready first. `recv` is cancel safe: when a tick wins, no
        // message is lost, and the next turn of the loop waits for it again.
        let reply = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(data @ (Message::Text(_) | Message::Binary(_)))) => data,
                // The library answers Pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                // Sending fails from here on: read on until the stream ends,
                // which is what sends the library's Close reply.
                Some(Ok(Message::Close(_))) => {
                    return ws_lessons::finish_close(socket).await;
                }
                Some(Err(_)) | None => return, // the connection is gone
            },
            _ = ticks.tick() => {
                count += 1;
                Message::text(format!("tick {count}"))
            }
            () = state.connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        };
        // While this send waits, nothing else in the loop runs: no read, no
        // tick, no shutdown signal.
        if socket.send(reply).await.is_err() {
            return; // the connection is broken
        }
    }
}
// ANCHOR_END: handle
