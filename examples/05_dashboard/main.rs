//! Lesson 05: the live sensor dashboard.
//!
//! What it teaches, putting lessons 01 to 04 together:
//! - shared state (the latest reading and alert threshold of every sensor) behind
//!   a `std::sync::Mutex` that is never held across an `.await`;
//! - fan-out done right: each change is serialized once, and the same bytes go to
//!   every client through a `broadcast` channel;
//! - a consistent start: a client subscribes to the channel and takes its
//!   snapshot under the same lock, so it neither misses nor repeats a change;
//! - a client that falls behind is resynchronised with a fresh snapshot that says
//!   how many changes it missed, never silently dropped; one that stops reading
//!   altogether is dropped by the heartbeat's send deadline (lesson 03);
//! - requests on the same connection (`subscribe`, `unsubscribe`,
//!   `set_threshold`), answered with `ack` or `error`; bad input never closes the
//!   connection or touches other clients;
//! - the heartbeat of lesson 03 and the shutdown of lesson 01.
//!
//! The lesson is in three files: `state.rs` holds the shared state (the sensors,
//! the channel of changes, the answers to requests), `feed.rs` one connection's
//! loop, and this file the server around them. Lesson 08 reuses the first two as
//! they are. The heartbeat is lesson 03's (`../03_heartbeat/heartbeat.rs`), and
//! the wire protocol, which the client of lesson 06 shares, is in
//! `src/protocol.rs`.
//!
//! Try it:
//!     cargo run --example 05_dashboard   # then open http://127.0.0.1:3000/
//!     cargo run --example 05_dashboard -- --sensors 8 --rate 20

use std::process::ExitCode;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use ws_lessons::{Connections, ListenArgs};

mod feed;
#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
mod state;

use feed::{DashboardArgs, Feed, FeedStats};

/// A live dashboard of simulated sensors: every change is pushed to every browser
/// at once.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    dashboard: DashboardArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let connections = Connections::new();
    let feed = Feed::start(&args.dashboard, connections.clone());
    let app = Router::new()
        .route("/", get(feed::page))
        .route("/ws", any(upgrade))
        .route("/stats", get(stats))
        .with_state(feed);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

// ANCHOR: upgrade
async fn upgrade(ws: WebSocketUpgrade, State(feed): State<Feed>) -> Response {
    let connections = feed.connections.clone();
    // Clients send small requests. tungstenite checks a frame's declared length
    // against `max_frame_size` before it reads the frame, and a message's length
    // against `max_message_size` as its frames arrive: with both at 64 KiB, a
    // client cannot make the server buffer more (the default is 16 MiB).
    ws.max_frame_size(64 * 1024)
        .max_message_size(64 * 1024)
        // A 4 KiB read buffer instead of the default 128 KiB, which is
        // zero-filled and kept for the connection's life: 40 MB for 10,000
        // dashboards, not 1.3 GB.
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connections.track(handle(socket, feed)))
}

async fn handle(mut socket: WebSocket, feed: Feed) {
    let ended = feed::run(&mut socket, &feed).await;
    ws_lessons::server::end(socket, ended).await;
}
// ANCHOR_END: upgrade

/// `GET /stats`, as JSON: `{"connections":1,"tasks":5,"heartbeat":{...},
/// "resyncs":0,"missed_changes":0}`, with `"tls":{...}` when it serves TLS.
async fn stats(State(feed): State<Feed>) -> Json<FeedStats> {
    Json(feed.stats())
}
