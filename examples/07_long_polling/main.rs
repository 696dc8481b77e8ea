//! Lesson 07: the same feed over HTTP long polling, for networks that block
//! WebSockets.
//!
//! What it teaches:
//! - long polling: `GET /poll?after=SEQ` answers at once with the readings after
//!   `SEQ`, or, when there are none yet, holds the request until the next reading
//!   or `--poll-timeout`;
//! - the `after` bookkeeping that makes it lossless: the client passes back the
//!   `next` of each answer, and a client that polled too seldom is told how many
//!   readings it missed;
//! - bounded memory again: the server keeps the last `--history` readings, not
//!   all of them;
//! - `tokio::sync::watch` to wake every waiting request when a reading arrives;
//! - `wait=false` turns it into plain polling, which the benchmarks compare it
//!   with;
//! - bad parameters get `400 Bad Request` with a JSON body that says what was
//!   wrong;
//! - a pending poll returns at once on shutdown, so the server still exits
//!   promptly.
//!
//! Try it:
//!     cargo run --example 07_long_polling   # then open http://127.0.0.1:3000/
//!     curl 'http://127.0.0.1:3000/poll?after=0'
//!     curl 'http://127.0.0.1:3000/poll?after=999999'    # 400: ahead of the feed

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use ws_lessons::cli::SensorArgs;
use ws_lessons::protocol::{PollError, PollResponse, Reading, unix_ms};
use ws_lessons::sensor::{Sample, Simulator};
use ws_lessons::server::ServerStats;
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// Serves the sensor feed over HTTP long polling: GET /poll?after=SEQ.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    sensors: SensorArgs,
    /// How many recent readings the server keeps for clients that poll late
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    history: u32,
    /// How long a poll waits for a new reading before it answers with none
    #[arg(long, default_value = "25s", value_parser = ws_lessons::cli::duration)]
    poll_timeout: Duration,
}
// ANCHOR_END: args

/// The most readings one answer carries; a client that is further behind polls
/// again at once.
const MAX_LIMIT: usize = 1000;

// ANCHOR: recent_readings
/// The last `--history` readings, oldest first, and a `watch` channel that
/// holds the `seq` of the newest: a waiting poll wakes when it changes.
struct RecentReadings {
    readings: Mutex<VecDeque<Reading>>,
    capacity: usize,
    latest: watch::Sender<u64>,
    /// Polls held open now, for `GET /stats`.
    waiting: AtomicUsize,
}

impl RecentReadings {
    fn new(capacity: usize) -> Self {
        Self {
            readings: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            latest: watch::Sender::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The readings, poisoned or not: no change to them can stop half-way.
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Reading>> {
        self.readings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `reading`, forgetting the oldest once `capacity` are kept.
    fn push(&self, reading: Reading) {
        let seq = reading.seq;
        {
            let mut readings = self.lock();
            if readings.len() == self.capacity {
                readings.pop_front();
            }
            readings.push_back(reading);
        }
        // Wakes every poll that is waiting in `wait_for`.
        self.latest.send_replace(seq);
    }
}
// ANCHOR_END: recent_readings

// ANCHOR: after
impl RecentReadings {
    /// Up to `limit` readings after `after`; `missed` counts those after
    /// `after` that are no longer kept.
    fn after(&self, after: u64, limit: usize) -> PollResponse {
        let kept = self.lock();
        let oldest = kept.front().map_or(after + 1, |reading| reading.seq);
        let missed = oldest.saturating_sub(after + 1);
        let readings: Vec<Reading> = kept
            .iter()
            .skip_while(|reading| reading.seq <= after)
            .take(limit)
            .cloned()
            .collect();
        let next = readings
            .last()
            .map_or(after.max(oldest.saturating_sub(1)), |reading| reading.seq);
        PollResponse {
            readings,
            next,
            missed,
        }
    }
}
// ANCHOR_END: after

/// What a poll needs: the readings, the shutdown signal that cuts its wait
/// short, and how long it may wait.
#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    readings: Arc<RecentReadings>,
    poll_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let readings = Arc::new(RecentReadings::new(args.history as usize));
    let recorder = readings.clone();
    let simulator = Simulator::new(args.sensors.sensors.into());
    tokio::spawn(simulator.run(args.sensors.rate, move |sample| {
        recorder.push(reading_of(sample))
    }));

    // No WebSockets here, but the same shutdown signal: a waiting poll answers at
    // once.
    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        readings,
        poll_timeout: args.poll_timeout,
    };
    let app = Router::new()
        .route("/", get(|| async { Html(include_str!("page.html")) }))
        .route("/poll", get(poll))
        .route("/stats", get(stats))
        .with_state(state);

    let startup = |local| {
        format!(
            "listening on http://{local}/poll?after=0 \
             (open http://{local}/ in a browser; Ctrl-C to stop)"
        )
    };
    ws_lessons::server::serve_with_startup_line(
        args.listen.addr,
        app,
        connections,
        startup,
    )
    .await
}

// ANCHOR: stats
/// What lesson 07's `GET /stats` reports: every lesson's counts (no WebSocket
/// here, so `connections` stays 0), and the polls waiting now.
#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    server: ServerStats,
    /// Polls held open until the next reading, the timeout or the shutdown.
    waiting_polls: usize,
}

async fn stats(State(app): State<AppState>) -> Json<Stats> {
    Json(Stats {
        server: ServerStats::now(&app.connections),
        waiting_polls: app.readings.waiting.load(Ordering::Relaxed),
    })
}

/// A poll counted in `waiting_polls` for as long as this lives: to the end
/// of its wait, or until the client hangs up and axum drops the request.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Self(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
// ANCHOR_END: stats

/// A simulated sample as a poll serves it. There are no thresholds to change
/// here, so each sensor keeps the dashboard's default one.
fn reading_of(sample: Sample) -> Reading {
    Reading {
        seq: sample.seq,
        alert: sample.value > Simulator::default_threshold(sample.index),
        sensor: sample.sensor,
        value: sample.value,
        at_ms: unix_ms(),
    }
}

// ANCHOR: query
#[derive(Deserialize)]
struct PollQuery {
    /// The `seq` of the last reading the client has; 0 for a client that has
    /// none.
    after: u64,
    /// The most readings to return (default 100).
    limit: Option<usize>,
    /// `false` answers at once even with nothing new: plain polling, for
    /// comparison.
    wait: Option<bool>,
}

// ANCHOR_END: query

// ANCHOR: poll
/// `GET /poll`: what is new after `after`, at once or as soon as it exists.
async fn poll(
    State(app): State<AppState>,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> Response {
    // axum's own rejection is plain text; this API answers in JSON, errors
    // included.
    let Query(PollQuery { after, limit, wait }) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return bad_request(format!(
            "limit must be from 1 to {MAX_LIMIT}, not {limit}"
        ));
    }

    let mut latest = app.readings.latest.subscribe();
    let newest = *latest.borrow_and_update();
    if after > newest {
        // A client from before a restart of the server, most likely.
        return bad_request(format!(
            "after={after} is ahead of the feed, whose latest reading is \
             {newest}; poll with after={newest}"
        ));
    }
    if after == newest && wait.unwrap_or(true) {
        tracing::debug!(after, "a poll is waiting for the next reading");
        let _waiting = Waiting::new(&app.readings.waiting);
        // Nothing new yet: hold the request until a reading arrives, the timeout
        // passes, or the server shuts down. `wait_for` checks the current value
        // first, so a reading that arrived since `borrow_and_update` is not
        // missed.
        tokio::select! {
            _ = tokio::time::timeout(
                app.poll_timeout,
                latest.wait_for(|seq| *seq > after),
            ) => {}
            () = app.connections.shutting_down() => {}
        }
    }
    Json(app.readings.after(after, limit)).into_response()
}

/// A 400 whose JSON body says what was wrong: the API's one error format.
fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(PollError { error })).into_response()
}
// ANCHOR_END: poll
