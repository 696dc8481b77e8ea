//! Lesson 03: heartbeats with `tokio::select!`.
//!
//! What it teaches:
//! - one task, one loop, several things to wait for: the next message, the next
//!   ping, the deadline for the pong, and the shutdown signal; `tokio::select!`
//!   takes whichever is first;
//! - branch guards (`, if ...`) that switch a branch on and off: the pong
//!   deadline exists only while a ping is outstanding;
//! - a peer whose pong does not come back within `--pong-timeout` is
//!   disconnected, so a vanished client (a laptop closed, a network cable pulled)
//!   stops holding a connection; a responsive peer stays connected indefinitely;
//! - counting what it drops, and why, in `GET /stats` (`heartbeat`): an
//!   operator, or a test, learns it from a number, not from a log line's words.
//!
//! The heartbeat itself is in `heartbeat.rs` beside this file, so that lessons 05
//! and 08 can reuse it; this file is the server that uses it.
//!
//! Try it:
//!     cargo run --example 03_heartbeat -- --ping-interval 2s --pong-timeout 1s
//! and open http://127.0.0.1:3000/ : browsers answer pings by themselves, so the
//! page stays connected. `RUST_LOG=debug` shows each ping and pong.

use std::process::ExitCode;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use serde::Serialize;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::server::ServerStats;
use ws_lessons::{Connections, ListenArgs};

mod heartbeat;
use heartbeat::{Beat, Drops, Heartbeat, HeartbeatStats};

// ANCHOR: args
/// Echoes messages and pings every client; a client that does not answer in time
/// is dropped.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
}
// ANCHOR_END: args

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    heartbeat: HeartbeatArgs,
    drops: Drops,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        heartbeat: args.heartbeat,
        drops: Drops::default(),
    };
    let app = Router::new()
        .route("/", get(ws_lessons::page::try_it))
        .route("/ws", any(upgrade))
        .route("/stats", get(stats))
        .with_state(state);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

// ANCHOR: stats
/// What lesson 03's `GET /stats` reports: every lesson's counts, and the
/// peers the heartbeat dropped, under `heartbeat`.
#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    server: ServerStats,
    heartbeat: HeartbeatStats,
}

async fn stats(
    State(connections): State<Connections>,
    State(drops): State<Drops>,
) -> Json<Stats> {
    Json(Stats {
        server: ServerStats::now(&connections),
        heartbeat: drops.stats(),
    })
}
// ANCHOR_END: stats

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
) -> Response {
    let connections = state.connections.clone();
    ws.on_upgrade(move |socket| connections.track(handle(socket, state)))
}

// ANCHOR: handle
async fn handle(mut socket: WebSocket, state: AppState) {
    let mut heartbeat = Heartbeat::new(state.heartbeat, &state.drops);
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Pong(payload))) => heartbeat.pong(&payload),
                // Sends go through the heartbeat, which bounds how long one may
                // wait: a peer that stops reading would otherwise block it
                // forever.
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if heartbeat.send(&mut socket, message).await.is_err() {
                        return;
                    }
                }
                // The peer is closing. A ping sent now would fail (nothing may
                // follow a Close), so stop sending and read on until the stream
                // ends (lesson 01).
                Some(Ok(Message::Close(_))) => {
                    return ws_lessons::finish_close(socket).await;
                }
                // Pings are answered by the library.
                Some(Ok(Message::Ping(_))) => {}
                Some(Err(_)) | None => return,
            },

            beat = heartbeat.beat() => match beat {
                Beat::Ping(payload) => {
                    let ping = Message::Ping(payload);
                    if heartbeat.send(&mut socket, ping).await.is_err() {
                        return;
                    }
                }
                // Like `terminate()` in Node's `ws` heartbeat example: a peer
                // that cannot answer a ping will not read a Close frame either,
                // and writing one could block on a full buffer. Dropping the
                // socket closes the TCP connection.
                Beat::Missed => return,
            },

            () = state.connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        }
    }
}
// ANCHOR_END: handle
