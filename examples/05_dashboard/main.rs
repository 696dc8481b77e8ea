//! Lesson 05: the live sensor dashboard.
//!
//! What it teaches, putting lessons 01 to 04 together:
//! - shared state (the latest reading and alert threshold of every sensor) behind a
//!   `std::sync::Mutex` that is never held across an `.await`;
//! - fan-out done right: each change is serialized once, and the same bytes go to every
//!   client through a `broadcast` channel;
//! - a consistent start: a client subscribes to the channel and takes its snapshot under the
//!   same lock, so it neither misses nor repeats a change;
//! - a client that falls behind is resynchronised with a fresh snapshot that says how many
//!   changes it missed, never silently dropped;
//! - requests on the same connection (`subscribe`, `unsubscribe`, `set_threshold`), answered
//!   with `ack` or `error`; bad input never closes the connection or touches other clients;
//! - the heartbeat of lesson 03 and the shutdown of lesson 01.
//!
//! This file is the server: its flags and one connection's loop. The wire protocol and the
//! state it shares with lesson 08 (`Dashboard`: the sensors, the channel of changes, the
//! simulated producer, the answers to requests) are in `src/dashboard.rs`, and the book
//! walks through both.
//!
//! Try it:
//!     cargo run --example 05_dashboard                 # then open http://127.0.0.1:3000/
//!     cargo run --example 05_dashboard -- --sensors 8 --rate 20

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::{Html, Response};
use axum::routing::{any, get};
use clap::Parser;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};
use ws_lessons::dashboard::{Dashboard, ServerMessage};
use ws_lessons::sensor::Simulator;
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// A live dashboard of simulated sensors: every change is pushed to every browser at once.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// Number of simulated sensors
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    sensors: u16,
    /// Readings per second, across all sensors
    #[arg(long, default_value_t = 4.0, value_parser = ws_lessons::cli::rate)]
    rate: f64,
    /// How many changes a client may fall behind before it is resynchronised
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    queue: u32,
    /// Time between pings
    #[arg(long, default_value = "30s", value_parser = ws_lessons::cli::duration)]
    ping_interval: Duration,
    /// How long to wait for the pong before the peer is considered gone
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    pong_timeout: Duration,
}
// ANCHOR_END: args

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    dashboard: Arc<Dashboard>,
    heartbeat: Heartbeat,
}

#[derive(Clone, Copy)]
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ws_lessons::init_tracing();

    let simulator = Simulator::new(args.sensors.into());
    let dashboard = Arc::new(Dashboard::new(simulator.sensors(), args.queue as usize));
    tokio::spawn(dashboard.clone().simulate(simulator, args.rate));

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        dashboard,
        heartbeat: Heartbeat {
            interval: args.ping_interval,
            timeout: args.pong_timeout,
        },
    };
    let app = Router::new()
        .route("/", get(|| async { Html(include_str!("dashboard.html")) }))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

/// Produces `rate` readings a second for as long as the server runs.
async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let connections = state.connections.clone();
    // Clients send small requests; refuse anything larger than this before buffering it.
    ws.max_message_size(64 * 1024)
        // A 4 KiB read buffer instead of the default 128 KiB, which is zero-filled and kept for
        // the connection's life: with 10,000 dashboards open, 40 MB instead of 1.3 GB.
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connections.track(handle(socket, state)))
}

// ANCHOR: handle
async fn handle(mut socket: WebSocket, app: AppState) {
    let (mut changes, mut last_seq, snapshot) = app.dashboard.subscribe();
    if socket.send(Message::Text(snapshot)).await.is_err() {
        return;
    }
    // A new client follows every sensor until it says otherwise.
    let mut following = vec![true; app.dashboard.sensor_count()];

    let Heartbeat { interval, timeout } = app.heartbeat;
    let mut pings = tokio::time::interval_at(Instant::now() + interval, interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outstanding: Option<Bytes> = None;
    let pong_deadline = tokio::time::sleep(timeout);
    tokio::pin!(pong_deadline);
    let mut ping_count: u64 = 0;

    loop {
        let outgoing = tokio::select! {
            change = changes.recv() => match change {
                // Already covered by a snapshot this client was sent.
                Ok(change) if change.seq <= last_seq => continue,
                Ok(change) => {
                    last_seq = change.seq;
                    if !(change.for_everyone || following[change.sensor]) {
                        continue;
                    }
                    Message::Text(change.json)
                }
                // This client fell more than the channel's capacity behind. A fresh snapshot
                // brings it up to date and says how many changes it missed.
                Err(RecvError::Lagged(_)) => {
                    let (seq, snapshot) = app.dashboard.resync(last_seq);
                    tracing::info!(missed = seq - last_seq, "resynchronising a slow client");
                    last_seq = seq;
                    Message::Text(snapshot)
                }
                Err(RecvError::Closed) => return,
            },

            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    let reply = app.dashboard.answer(&text, &mut following);
                    Message::Text(reply.to_json().into())
                }
                Some(Ok(Message::Binary(_))) => {
                    let message = "send requests as JSON in text frames".to_owned();
                    Message::Text(ServerMessage::Error { id: None, message }.to_json().into())
                }
                Some(Ok(Message::Pong(payload))) if outstanding.as_ref() == Some(&payload) => {
                    outstanding = None;
                    continue;
                }
                Some(Ok(Message::Close(_))) => return ws_lessons::finish_close(socket).await,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return,
            },

            _ = pings.tick(), if outstanding.is_none() => {
                ping_count += 1;
                let payload = Bytes::from(ping_count.to_be_bytes().to_vec());
                outstanding = Some(payload.clone());
                pong_deadline.as_mut().reset(Instant::now() + timeout);
                Message::Ping(payload)
            }

            () = &mut pong_deadline, if outstanding.is_some() => {
                tracing::info!("no pong within {timeout:?}; disconnecting");
                return;
            }

            () = app.connections.shutting_down() => return ws_lessons::going_away(socket).await,
        };
        if socket.send(outgoing).await.is_err() {
            return;
        }
    }
}
// ANCHOR_END: handle
