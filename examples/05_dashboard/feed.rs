//! One dashboard connection: a snapshot, then every change the client follows,
//! its requests answered on the same socket, lesson 03's heartbeat, and an ending
//! that tells the peer why. Lesson 08 includes this file and runs the same loop
//! on a socket wrapped in its defences.

use std::sync::Arc;

use axum::extract::FromRef;
use axum::extract::ws::Message;
use axum::response::Html;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::cli::{HeartbeatArgs, QueueArgs, SensorArgs};
use ws_lessons::protocol::ServerMessage;
use ws_lessons::sensor::Simulator;
use ws_lessons::server::{Ended, ServerStats};
use ws_lessons::{Connections, Socket};

use crate::heartbeat::{Beat, Drops, Heartbeat, HeartbeatStats};
use crate::state::{Dashboard, Resync, ResyncStats, Subscription};

// ANCHOR: args
/// The dashboard's flags, which lesson 08 shares.
#[derive(clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub sensors: SensorArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
}
// ANCHOR_END: args

/// What every connection shares: the shutdown signal, the dashboard, and the
/// heartbeat's settings and counts.
#[derive(Clone, FromRef)]
pub struct Feed {
    pub connections: Connections,
    pub dashboard: Arc<Dashboard>,
    pub heartbeat: HeartbeatArgs,
    pub heartbeat_drops: Drops,
}

impl Feed {
    /// Starts the dashboard, with simulated sensors recording readings into it
    /// for as long as the server runs.
    pub fn start(args: &DashboardArgs, connections: Connections) -> Self {
        let simulator = Simulator::new(args.sensors.sensors.into());
        let queue = args.queue.capacity();
        let dashboard = Dashboard::new(simulator.sensors(), queue);
        let dashboard = Arc::new(dashboard);
        let recorder = dashboard.clone();
        tokio::spawn(simulator.run(args.sensors.rate, move |sample| {
            recorder.record_reading(sample.index, sample.value)
        }));
        Self {
            connections,
            dashboard,
            heartbeat: args.heartbeat,
            heartbeat_drops: Drops::default(),
        }
    }

    /// What `GET /stats` reports now.
    pub fn stats(&self) -> FeedStats {
        FeedStats {
            server: ServerStats::now(&self.connections),
            heartbeat: self.heartbeat_drops.stats(),
            resyncs: self.dashboard.resync_stats(),
        }
    }
}

/// `GET /`: the dashboard page.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

// ANCHOR: stats
/// What the dashboard's `GET /stats` reports: every lesson's counts, the
/// peers the heartbeat dropped (lesson 03), and the clients resynchronised.
#[derive(Debug, Serialize)]
pub struct FeedStats {
    #[serde(flatten)]
    server: ServerStats,
    heartbeat: HeartbeatStats,
    #[serde(flatten)]
    resyncs: ResyncStats,
}
// ANCHOR_END: stats

// ANCHOR: run
/// Serves one client until its connection ends, and says why it ended.
pub async fn run(socket: &mut impl Socket, feed: &Feed) -> Ended {
    let Subscription {
        mut changes,
        seq: mut last_seq,
        snapshot,
    } = feed.dashboard.subscribe();
    let mut heartbeat = Heartbeat::new(feed.heartbeat, &feed.heartbeat_drops);
    if heartbeat
        .send(socket, Message::Text(snapshot))
        .await
        .is_err()
    {
        return Ended::Gone;
    }
    // A new client follows every sensor until it says otherwise.
    let mut following = vec![true; feed.dashboard.sensor_count()];

    loop {
        let outgoing = tokio::select! {
            change = changes.recv() => match change {
                // Already covered by a snapshot this client was sent.
                Ok(change) if change.seq <= last_seq => continue,
                Ok(change) => {
                    last_seq = change.seq;
                    let follows = following.get(change.sensor) == Some(&true);
                    if !(change.for_everyone || follows) {
                        continue;
                    }
                    Message::Text(change.json)
                }
                // This client fell more than the channel holds behind. A fresh
                // snapshot brings it up to date and says how much it missed.
                Err(RecvError::Lagged(_)) => {
                    let Resync { seq, missed, snapshot } =
                        feed.dashboard.resync(last_seq);
                    tracing::info!(missed, "resynchronising a slow client");
                    last_seq = seq;
                    Message::Text(snapshot)
                }
                Err(RecvError::Closed) => return Ended::Gone,
            },
            // ANCHOR_END: run
            // ANCHOR: requests
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let reply = feed.dashboard.answer(&text, &mut following);
                    Message::Text(reply.to_json().into())
                }
                Some(Ok(Message::Binary(_))) => {
                    let message = "send requests as JSON in text frames";
                    let message = message.to_owned();
                    let error = ServerMessage::Error { id: None, message };
                    Message::Text(error.to_json().into())
                }
                Some(Ok(Message::Pong(payload))) => {
                    heartbeat.pong(&payload);
                    continue;
                }
                Some(Ok(Message::Ping(_))) => continue, // answered by the library
                Some(Ok(Message::Close(_))) => return Ended::PeerClosed,
                Some(Err(e)) => return Ended::Failed(e),
                None => return Ended::Gone,
            },

            beat = heartbeat.beat() => match beat {
                Beat::Ping(payload) => Message::Ping(payload),
                Beat::Missed => return Ended::Gone,
            },

            () = feed.connections.shutting_down() => return Ended::ShuttingDown,
        };
        // Not `socket.send`: a send to a peer that stopped reading never
        // finishes, and while the loop waits here nothing else, not even the pong
        // deadline, is polled. The heartbeat's send gives up in time (lesson 03).
        if heartbeat.send(socket, outgoing).await.is_err() {
            return Ended::Gone;
        }
    }
}
// ANCHOR_END: requests
