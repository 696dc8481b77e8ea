//! Lesson 04: backpressure, or what to do with a client slower than the data.
//!
//! What it teaches:
//! - a producer (simulated sensors, `--rate` readings per second) must never wait
//!   for a consumer: one stalled browser tab would stall every client;
//! - so each client's backlog needs a bound and an explicit policy, chosen with
//!   `--policy`:
//!   - `drop-oldest`: a bounded queue per client (`--queue` readings); when it
//!     overflows the oldest readings go. A `tokio::sync::broadcast` channel is
//!     exactly this: one shared ring buffer, and a receiver that falls behind
//!     gets `RecvError::Lagged(n)`.
//!   - `latest`: only the newest reading is kept, the right choice for a gauge
//!     on a dashboard. A `tokio::sync::watch` channel holds one value; a slow
//!     client skips to the newest.
//!   - `disconnect`: every client gets every reading, or is sent Close 1008 with
//!     a reason, and dropped if even the Close cannot be written within
//!     `--deadline`.
//! - nothing is lost silently: a client is told how many readings it missed.
//! - each reading is serialized once and the same bytes are shared by every
//!   client.
//!
//! Pausing the producer is the fourth policy, and the right one when there is a
//! single consumer (a file upload, a database cursor). With many clients it lets
//! the slowest set everyone's pace, so this server does not offer it.
//!
//! Try it:
//!     cargo run --example 04_backpressure -- --rate 20 --policy latest
//! and open http://127.0.0.1:3000/ ; raise `--rate` to see the page fall behind.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code,
};
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{any, get};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::timeout;
use ws_lessons::sensor::{Pacer, Sample, Simulator};
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// Streams simulated sensor readings to every client, with an explicit policy for
/// slow ones.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// What to do with a client that cannot keep up
    #[arg(long, value_enum, default_value_t = Policy::DropOldest)]
    policy: Policy,
    /// Readings produced per second, across all sensors
    #[arg(long, default_value_t = 100.0, value_parser = ws_lessons::cli::rate)]
    rate: f64,
    /// How many readings a client may fall behind (drop-oldest and disconnect),
    /// rounded up to a power of two as tokio's broadcast channel does
    #[arg(
        long,
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    queue: u32,
    /// How long one write may take before a client counts as too slow
    /// (disconnect)
    #[arg(long, default_value = "1s", value_parser = ws_lessons::cli::duration)]
    deadline: Duration,
    /// Number of simulated sensors
    #[arg(
        long,
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    sensors: u16,
}
// ANCHOR_END: args

// ANCHOR: policy
/// How a connection treats a client that reads more slowly than the sensors
/// produce.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Policy {
    /// Keep the newest `--queue` readings per client; drop the oldest
    DropOldest,
    /// Keep only the newest reading
    Latest,
    /// Deliver everything, or close the client with 1008
    Disconnect,
}
// ANCHOR_END: policy

// ANCHOR: wire
/// What a client receives, as JSON text frames with a `"type"` field.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToClient<'a> {
    /// `{"type":"reading","seq":7,"sensor":"sensor-3","value":30.9}`
    Reading(&'a Sample),
    /// `{"type":"missed","count":42}`: this many readings were not delivered to
    /// you.
    Missed { count: u64 },
}

/// A reading serialized once. Cloning it clones a reference-counted buffer, not
/// the text, so sending it to a thousand clients costs one serialization.
#[derive(Clone, Default)]
struct Published {
    seq: u64,
    json: Utf8Bytes,
}

impl ToClient<'_> {
    fn to_json(&self) -> Utf8Bytes {
        // Strings and numbers always serialize (serde_json writes a NaN as null).
        serde_json::to_string(self)
            .expect("a ToClient always serializes")
            .into()
    }
}

fn missed(count: u64) -> Message {
    Message::Text(ToClient::Missed { count }.to_json())
}
// ANCHOR_END: wire

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    policy: Policy,
    deadline: Duration,
    queue: broadcast::Sender<Published>,
    latest: watch::Receiver<Published>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    // The two ways to hand readings to clients, fed by one producer: a bounded
    // ring buffer (drop-oldest, disconnect) and a single slot that always holds
    // the newest (latest).
    let (queue, _) =
        broadcast::channel(ws_lessons::cli::broadcast_capacity(args.queue));
    let (newest, latest) = watch::channel(Published::default());
    tokio::spawn(produce(
        args.rate,
        args.sensors.into(),
        queue.clone(),
        newest,
    ));

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        policy: args.policy,
        deadline: args.deadline,
        queue,
        latest,
    };
    let app = Router::new()
        .route("/", get(ws_lessons::page::try_it))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    tracing::info!(policy = ?args.policy, rate = args.rate, "producing readings");
    ws_lessons::serve(args.listen.addr, app, connections).await
}

// ANCHOR: produce
/// The producer never waits for a client: `broadcast::Sender::send` and
/// `watch::Sender::send_replace` return at once, however slow the readers are.
async fn produce(
    rate: f64,
    sensors: usize,
    queue: broadcast::Sender<Published>,
    newest: watch::Sender<Published>,
) {
    let mut simulator = Simulator::new(sensors);
    let mut pacer = Pacer::new(rate);
    loop {
        for _ in 0..pacer.due().await {
            let reading = simulator.next_sample();
            let published = Published {
                seq: reading.seq,
                json: ToClient::Reading(&reading).to_json(),
            };
            // `send` fails only when no client is subscribed; the reading is
            // simply not needed.
            let _ = queue.send(published.clone());
            newest.send_replace(published);
        }
    }
}
// ANCHOR_END: produce

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
) -> Response {
    let connections = state.connections.clone();
    ws.on_upgrade(move |socket| {
        connections.track(async move {
            match state.policy {
                Policy::DropOldest => {
                    drop_oldest(
                        socket,
                        state.queue.subscribe(),
                        state.connections,
                    )
                    .await
                }
                Policy::Latest => {
                    keep_latest(socket, state.latest, state.connections).await
                }
                Policy::Disconnect => {
                    disconnect_when_slow(
                        socket,
                        state.queue.subscribe(),
                        state.deadline,
                        state.connections,
                    )
                    .await
                }
            }
        })
    })
}

// ANCHOR: incoming
/// What the client sent while we were waiting to send it readings.
enum Incoming {
    /// Nothing that needs an answer from us (a Ping is answered by the library).
    Ignore,
    /// The client started the closing handshake: stop sending and finish it.
    Closing,
    /// The connection is gone.
    Gone,
}

fn incoming(message: Option<Result<Message, axum::Error>>) -> Incoming {
    match message {
        Some(Ok(Message::Close(_))) => Incoming::Closing,
        Some(Ok(_)) => Incoming::Ignore, // this feed takes no input
        Some(Err(_)) | None => Incoming::Gone,
    }
}
// ANCHOR_END: incoming

// ANCHOR: drop_oldest
async fn drop_oldest(
    mut socket: WebSocket,
    mut readings: broadcast::Receiver<Published>,
    connections: Connections,
) {
    loop {
        let outgoing = tokio::select! {
            reading = readings.recv() => match reading {
                Ok(reading) => Message::Text(reading.json),
                // The ring buffer has moved past this client: its oldest `count`
                // readings are gone. Say so, then carry on from the oldest
                // reading still in the buffer.
                Err(RecvError::Lagged(count)) => missed(count),
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => match incoming(message) {
                Incoming::Ignore => continue,
                Incoming::Closing => {
                    return ws_lessons::finish_close(socket).await;
                }
                Incoming::Gone => return,
            },
            () = connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        };
        // While this waits on a client that does not read, nothing else grows:
        // the producer goes on writing into the fixed-size ring, over the
        // readings this client has not had.
        if socket.send(outgoing).await.is_err() {
            return;
        }
    }
}
// ANCHOR_END: drop_oldest

// ANCHOR: keep_latest
async fn keep_latest(
    mut socket: WebSocket,
    mut latest: watch::Receiver<Published>,
    connections: Connections,
) {
    // What is there now counts as seen: a new client has missed nothing.
    let mut last_seq = latest.borrow_and_update().seq;
    loop {
        let reading = tokio::select! {
            changed = latest.changed() => match changed {
                // `borrow_and_update` marks the value seen; clone it so no borrow
                // of the channel is held across the `send` below.
                Ok(()) => latest.borrow_and_update().clone(),
                Err(_) => return, // the producer has stopped
            },
            message = socket.recv() => match incoming(message) {
                Incoming::Ignore => continue,
                Incoming::Closing => {
                    return ws_lessons::finish_close(socket).await;
                }
                Incoming::Gone => return,
            },
            () = connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        };
        // Every value replaced before this client got to it was skipped.
        let skipped = reading.seq.saturating_sub(last_seq + 1);
        last_seq = reading.seq;
        if skipped > 0 && socket.send(missed(skipped)).await.is_err() {
            return;
        }
        if socket.send(Message::Text(reading.json)).await.is_err() {
            return;
        }
    }
}
// ANCHOR_END: keep_latest

// ANCHOR: disconnect
async fn disconnect_when_slow(
    mut socket: WebSocket,
    mut readings: broadcast::Receiver<Published>,
    deadline: Duration,
    connections: Connections,
) {
    loop {
        let reading = tokio::select! {
            reading = readings.recv() => match reading {
                Ok(reading) => reading,
                Err(RecvError::Lagged(count)) => {
                    let reason = format!("too slow: {count} readings behind");
                    return disconnect(socket, deadline, reason).await;
                }
                Err(RecvError::Closed) => return,
            },
            message = socket.recv() => match incoming(message) {
                Incoming::Ignore => continue,
                Incoming::Closing => {
                    return ws_lessons::finish_close(socket).await;
                }
                Incoming::Gone => return,
            },
            () = connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        };
        match timeout(deadline, socket.send(Message::Text(reading.json))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return, // the connection is broken
            Err(_) => {
                let reason = format!("too slow: a write took over {deadline:?}");
                return disconnect(socket, deadline, reason).await;
            }
        }
    }
}

/// Closes with 1008 (policy violation) and a reason. A client that is not reading
/// at all cannot take even the Close frame; then the deadline drops it without
/// one.
async fn disconnect(mut socket: WebSocket, deadline: Duration, reason: String) {
    tracing::info!("disconnecting a slow client: {reason}");
    let close = Message::Close(Some(CloseFrame {
        code: close_code::POLICY,
        reason: reason.into(),
    }));
    match timeout(deadline, socket.send(close)).await {
        Ok(Ok(())) => ws_lessons::finish_close(socket).await,
        Ok(Err(_)) => {} // the connection is already broken
        Err(_) => tracing::info!(
            "the Close could not be written within {deadline:?}; dropping"
        ),
    }
}
// ANCHOR_END: disconnect
