//! Lesson 07: the same feed over HTTP long polling, for networks that block WebSockets.
//!
//! What it teaches:
//! - long polling: `GET /poll?after=SEQ` answers at once with the readings after `SEQ`, or,
//!   when there are none yet, holds the request until the next reading or `--poll-timeout`;
//! - the `after` bookkeeping that makes it lossless: the client passes back the `next` of
//!   each answer, and a client that polled too seldom is told how many readings it missed;
//! - bounded memory again: the server keeps the last `--history` readings, not all of them;
//! - `tokio::sync::watch` to wake every waiting request when a reading arrives;
//! - `wait=false` turns it into plain polling, which the benchmarks compare it with;
//! - bad parameters get `400 Bad Request` with a JSON body that says what was wrong;
//! - a pending poll returns at once on shutdown, so the server still exits promptly.
//!
//! Try it:
//!     cargo run --example 07_long_polling          # then open http://127.0.0.1:3000/
//!     curl 'http://127.0.0.1:3000/poll?after=0'
//!     curl 'http://127.0.0.1:3000/poll?after=999999'    # 400: ahead of the feed

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use tokio::sync::watch;
use ws_lessons::dashboard::{PollError, PollResponse, ServerMessage, default_threshold};
use ws_lessons::sensor::{Pacer, Simulator};
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// Serves the sensor feed over HTTP long polling: GET /poll?after=SEQ.
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
    /// How many recent readings the server keeps for clients that poll late
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    history: u32,
    /// How long a poll waits for a new reading before it answers with none
    #[arg(long, default_value = "25s", value_parser = ws_lessons::cli::duration)]
    poll_timeout: Duration,
}
// ANCHOR_END: args

/// The most readings one answer carries; a client that is further behind polls again at once.
const MAX_LIMIT: usize = 1000;

// ANCHOR: feed
/// The recent readings, and a signal that carries the number of the latest one.
struct Feed {
    recent: Mutex<VecDeque<ServerMessage>>,
    capacity: usize,
    latest: watch::Sender<u64>,
}

impl Feed {
    fn new(capacity: usize) -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            latest: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ServerMessage>> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, reading: ServerMessage, seq: u64) {
        {
            let mut recent = self.lock();
            if recent.len() == self.capacity {
                recent.pop_front();
            }
            recent.push_back(reading);
        }
        // Wakes every poll that is waiting in `wait_for`.
        self.latest.send_replace(seq);
    }

    /// Up to `limit` readings after `after`, and how many the feed no longer holds.
    fn after(&self, after: u64, limit: usize) -> PollResponse {
        let recent = self.lock();
        let oldest = recent.front().map_or(after + 1, seq_of);
        let missed = oldest.saturating_sub(after + 1);
        let readings: Vec<ServerMessage> = recent
            .iter()
            .skip_while(|reading| seq_of(reading) <= after)
            .take(limit)
            .cloned()
            .collect();
        let next = readings
            .last()
            .map_or(after.max(oldest.saturating_sub(1)), seq_of);
        PollResponse {
            readings,
            next,
            missed,
        }
    }
}

fn seq_of(message: &ServerMessage) -> u64 {
    match message {
        ServerMessage::Reading { seq, .. } => *seq,
        _ => 0,
    }
}
// ANCHOR_END: feed

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    feed: Arc<Feed>,
    poll_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ws_lessons::init_tracing();

    let feed = Arc::new(Feed::new(args.history as usize));
    tokio::spawn(produce(
        Simulator::new(args.sensors.into()),
        args.rate,
        feed.clone(),
    ));

    // No WebSockets here, but the same shutdown signal: a waiting poll answers at once.
    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        feed,
        poll_timeout: args.poll_timeout,
    };
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/poll", get(poll))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    let startup = |local| {
        format!(
            "listening on http://{local}/poll?after=0 (open http://{local}/ in a browser; Ctrl-C to stop)"
        )
    };
    ws_lessons::server::serve_with_startup_line(args.listen.addr, app, connections, startup).await
}

async fn produce(mut simulator: Simulator, rate: f64, feed: Arc<Feed>) {
    let mut pacer = Pacer::new(rate);
    loop {
        for _ in 0..pacer.due().await {
            let (sensor, reading) = simulator.next_indexed();
            let at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64);
            let message = ServerMessage::Reading {
                seq: reading.seq,
                alert: reading.value > default_threshold(sensor),
                sensor: reading.sensor,
                value: reading.value,
                at_ms,
            };
            feed.push(message, reading.seq);
        }
    }
}

// ANCHOR: poll
#[derive(Deserialize)]
struct PollQuery {
    /// The `seq` of the last reading the client has; 0 for a client that has none.
    after: u64,
    /// The most readings to return (default 100).
    limit: Option<usize>,
    /// `false` answers at once even with nothing new: plain polling, for comparison.
    wait: Option<bool>,
}

async fn poll(
    State(app): State<AppState>,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> Response {
    // axum's own rejection is plain text; this API answers in JSON, errors included.
    let Query(PollQuery { after, limit, wait }) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return bad_request(format!("limit must be from 1 to {MAX_LIMIT}, not {limit}"));
    }

    let mut latest = app.feed.latest.subscribe();
    let newest = *latest.borrow_and_update();
    if after > newest {
        // A client from before a restart of the server, most likely.
        return bad_request(format!(
            "after={after} is ahead of the feed, whose latest reading is {newest}; poll with after={newest}"
        ));
    }
    if after == newest && wait.unwrap_or(true) {
        tracing::debug!(after, "a poll is waiting for the next reading");
        // Nothing new yet: hold the request until a reading arrives, the timeout passes, or
        // the server shuts down. `wait_for` checks the current value first, so a reading
        // that arrived since `borrow_and_update` is not missed.
        tokio::select! {
            _ = tokio::time::timeout(app.poll_timeout, latest.wait_for(|seq| *seq > after)) => {}
            () = app.connections.shutting_down() => {}
        }
    }
    Json(app.feed.after(after, limit)).into_response()
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(PollError { error })).into_response()
}
// ANCHOR_END: poll

/// A page that long-polls the feed and lists what arrives, with no external resources.
const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Long polling</title>
<style>body{font:15px/1.4 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
ol{font-family:ui-monospace,monospace;font-size:13px;list-style:none;padding:0}</style></head>
<body><h1>Sensor feed, by long polling</h1><p id="status">polling…</p><ol id="log"></ol>
<script>
"use strict";
let after = 0;
const log = document.getElementById("log"), status = document.getElementById("status");
async function loop() {
  for (;;) {
    try {
      const response = await fetch("/poll?after=" + after);
      const body = await response.json();
      if (!response.ok) { status.textContent = "error: " + body.error; after = 0; continue; }
      if (body.missed > 0) status.textContent = "missed " + body.missed + " readings";
      for (const r of body.readings) {
        const li = document.createElement("li");
        li.textContent = "#" + r.seq + "  " + r.sensor + "  " + r.value.toFixed(2) + (r.alert ? "  ALERT" : "");
        log.prepend(li);
        while (log.childElementCount > 100) log.lastElementChild.remove();
      }
      after = body.next;
      status.textContent = "live (last reading #" + after + ")";
    } catch (e) {
      status.textContent = "server unreachable; retrying";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}
loop();
</script></body></html>"##;
