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
//! The wire protocol is defined once, with serde, in `src/dashboard.rs`.
//!
//! Try it:
//!     cargo run --example 05_dashboard                 # then open http://127.0.0.1:3000/
//!     cargo run --example 05_dashboard -- --sensors 8 --rate 20

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::{Html, Response};
use axum::routing::{any, get};
use clap::Parser;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};
use ws_lessons::dashboard::{ClientMessage, SensorState, ServerMessage, THRESHOLD_RANGE};
use ws_lessons::sensor::{Pacer, Simulator};
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

// ANCHOR: state
/// The server's state: what every sensor reads now, and the channel of changes.
struct Dashboard {
    state: Mutex<Sensors>,
    changes: broadcast::Sender<Change>,
}

struct Sensors {
    /// The number of the last change; every reading and threshold change gets the next one.
    seq: u64,
    sensors: Vec<SensorState>,
}

/// A change, serialized once. Cloning it for a thousand clients clones a reference count.
#[derive(Clone)]
struct Change {
    seq: u64,
    /// Which sensor changed, so that a client can skip sensors it does not follow without
    /// parsing the JSON.
    sensor: usize,
    /// Threshold changes go to every client; readings only to those that follow the sensor.
    for_everyone: bool,
    json: Utf8Bytes,
}
// ANCHOR_END: state

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
    tokio::spawn(produce(simulator, args.rate, dashboard.clone()));

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

// ANCHOR: dashboard
impl Dashboard {
    fn new(names: &[String], queue: usize) -> Self {
        let sensors = names
            .iter()
            .enumerate()
            .map(|(index, name)| SensorState {
                sensor: name.clone(),
                value: None,
                threshold: ws_lessons::dashboard::default_threshold(index),
            })
            .collect();
        let (changes, _) = broadcast::channel(queue);
        Self {
            state: Mutex::new(Sensors { seq: 0, sensors }),
            changes,
        }
    }

    /// The lock is only ever held for a few instructions, never across an `.await`, so a
    /// `std::sync::Mutex` is right here (and cheaper than tokio's). A panic while holding it
    /// cannot leave the state half-changed, so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Sensors> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new client's starting point: a snapshot, and a receiver for every change after it.
    /// Both are taken under one lock, so no change falls between them.
    fn subscribe(&self) -> (broadcast::Receiver<Change>, u64, Utf8Bytes) {
        let state = self.lock();
        let changes = self.changes.subscribe();
        let snapshot = Self::snapshot_json(&state, 0);
        (changes, state.seq, snapshot)
    }

    /// A snapshot for a client that last saw change `last_seq`.
    fn resync(&self, last_seq: u64) -> (u64, Utf8Bytes) {
        let state = self.lock();
        let missed = state.seq.saturating_sub(last_seq);
        (state.seq, Self::snapshot_json(&state, missed))
    }

    fn snapshot_json(state: &Sensors, missed: u64) -> Utf8Bytes {
        let snapshot = ServerMessage::Snapshot {
            seq: state.seq,
            missed,
            sensors: state.sensors.clone(),
        };
        snapshot.to_json().into()
    }

    /// Records a change and broadcasts it, serialized once, under the lock: changes reach the
    /// channel in the order of their numbers.
    fn publish(
        &self,
        sensor: usize,
        change: impl FnOnce(&mut SensorState, u64) -> (ServerMessage, bool),
    ) {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        let (message, for_everyone) = change(&mut state.sensors[sensor], seq);
        let json = message.to_json().into();
        // `send` fails only when no client is connected; the state is up to date regardless.
        let _ = self.changes.send(Change {
            seq,
            sensor,
            for_everyone,
            json,
        });
    }

    fn record_reading(&self, sensor: usize, value: f64) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        self.publish(sensor, |state, seq| {
            state.value = Some(value);
            let reading = ServerMessage::Reading {
                seq,
                sensor: state.sensor.clone(),
                value,
                alert: value > state.threshold,
                at_ms,
            };
            (reading, false)
        });
    }

    fn set_threshold(&self, sensor: usize, threshold: f64) {
        self.publish(sensor, |state, seq| {
            state.threshold = threshold;
            let change = ServerMessage::Threshold {
                seq,
                sensor: state.sensor.clone(),
                threshold,
            };
            (change, true)
        });
    }

    /// The index of the sensor called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        self.lock().sensors.iter().position(|s| s.sensor == name)
    }
}
// ANCHOR_END: dashboard

/// Produces `rate` readings a second for as long as the server runs.
async fn produce(mut simulator: Simulator, rate: f64, dashboard: Arc<Dashboard>) {
    let mut pacer = Pacer::new(rate);
    loop {
        for _ in 0..pacer.due().await {
            let (sensor, reading) = simulator.next_indexed();
            dashboard.record_reading(sensor, reading.value);
        }
    }
}

async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let connections = state.connections.clone();
    // Clients send small requests; refuse anything larger than this before buffering it.
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| connections.track(handle(socket, state)))
}

// ANCHOR: handle
async fn handle(mut socket: WebSocket, app: AppState) {
    let (mut changes, mut last_seq, snapshot) = app.dashboard.subscribe();
    if socket.send(Message::Text(snapshot)).await.is_err() {
        return;
    }
    // A new client follows every sensor until it says otherwise.
    let mut following = vec![true; app.dashboard.lock().sensors.len()];

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
                    let reply = answer(&app.dashboard, &text, &mut following);
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

// ANCHOR: answer
/// Carries out one request and says how it went. Nothing a client sends can panic here or
/// change another client's subscriptions; bad input gets an `error` and the connection stays.
fn answer(dashboard: &Dashboard, text: &str, following: &mut [bool]) -> ServerMessage {
    let request = match ClientMessage::parse(text) {
        Ok(request) => request,
        Err(message) => return ServerMessage::Error { id: None, message },
    };
    let id = request.id();
    let result = match request {
        ClientMessage::Subscribe { sensors, .. } => follow(dashboard, &sensors, following, true),
        ClientMessage::Unsubscribe { sensors, .. } => follow(dashboard, &sensors, following, false),
        ClientMessage::SetThreshold {
            sensor, threshold, ..
        } => {
            match (
                dashboard.find(&sensor),
                THRESHOLD_RANGE.contains(&threshold),
            ) {
                (None, _) => Err(format!("unknown sensor {sensor:?}")),
                (Some(_), false) => Err(format!(
                    "threshold {threshold} is out of range ({} to {})",
                    THRESHOLD_RANGE.start(),
                    THRESHOLD_RANGE.end()
                )),
                (Some(index), true) => {
                    dashboard.set_threshold(index, threshold);
                    Ok(())
                }
            }
        }
    };
    match result {
        Ok(()) => ServerMessage::Ack { id },
        Err(message) => ServerMessage::Error {
            id: Some(id),
            message,
        },
    }
}

/// Follows or stops following `sensors`: all of them, or none if one is unknown.
fn follow(
    dashboard: &Dashboard,
    sensors: &[String],
    following: &mut [bool],
    on: bool,
) -> Result<(), String> {
    let indices = sensors
        .iter()
        .map(|name| {
            dashboard
                .find(name)
                .ok_or_else(|| format!("unknown sensor {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for index in indices {
        following[index] = on;
    }
    Ok(())
}
// ANCHOR_END: answer
