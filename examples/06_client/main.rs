//! Lesson 06: a standalone dashboard client with tokio-tungstenite.
//!
//! What it teaches:
//! - tokio-tungstenite is the tool for a client outside axum: `connect_async`,
//!   then the same `Stream` and `Sink` of messages as on the server;
//! - the dashboard's protocol from the client's side (the types in
//!   `src/protocol.rs`);
//! - reconnecting when the server goes away, with exponential backoff and jitter,
//!   so that a thousand clients do not come back at the same instant, and to
//!   another server when there are several;
//! - a polite exit: Ctrl-C sends Close 1000 and waits, briefly, for the server's
//!   reply;
//! - `wss://` with rustls: the system's roots, a private CA with `--ca`, and a
//!   certificate that does not verify as a final error, never a retry;
//! - output for people and for programs: text by default, and with `--events`
//!   one JSON object per event, which is what the tests read.
//!
//! Try it, with the dashboard running (`cargo run --example 05_dashboard`):
//!     cargo run --example 06_client
//!     cargo run --example 06_client -- ws://127.0.0.1:3000/ws --sensor sensor-1
//!     cargo run --example 06_client -- --events
//! Stop and restart the dashboard, and watch the client reconnect. Over TLS,
//! with a server started with `--tls-cert` and `--tls-key`:
//!     cargo run --example 06_client -- wss://localhost:3000/ws --ca ca.pem

use std::fmt::{self, Display};
use std::process::ExitCode;

use axum::http::Uri;
use clap::Parser;
use ws_lessons::protocol::{ClientMessage, Reading, SensorState, ServerMessage};

mod events;
mod reconnect;
mod tls;
mod urls;

use events::Shown;
use reconnect::{Connect, follow};

// ANCHOR: args
/// Follows a dashboard server's sensors, and prints every change.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    connect: Connect,
    /// A sensor to follow (repeat for more); all sensors when none is given
    #[arg(long = "sensor", value_name = "NAME")]
    sensors: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();
    let urls = args.connect.urls.iter().map(Uri::to_string).collect();
    let sensors = args.sensors;
    reconnect::run(&args.connect, urls, async |socket, interrupted| {
        let read = |text: &str| read_dashboard(&sensors, text);
        follow(socket, read, interrupted).await
    })
    .await
}
// ANCHOR_END: args

// ANCHOR: messages
/// Shows one message of lesson 05's dashboard, for a client that follows
/// `sensors` (all of them when empty). Returns a request to send back, or why
/// to give up.
fn read_dashboard(
    sensors: &[String],
    text: &str,
) -> Result<Option<ClientMessage>, String> {
    let wanted =
        |name: &str| sensors.is_empty() || sensors.iter().any(|s| s == name);
    let message = match serde_json::from_str::<ServerMessage>(text) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!("not a dashboard message ({e}): {text}");
            return Ok(None);
        }
    };
    match message {
        ServerMessage::Snapshot {
            seq,
            missed,
            sensors: all,
        } => {
            let names: Vec<String> =
                all.iter().map(|s| s.sensor.clone()).collect();
            if let Some(unknown) = sensors.iter().find(|s| !names.contains(s)) {
                let known = names.join(", ");
                return Err(format!(
                    "the server has no sensor {unknown:?} (it has {known})"
                ));
            }
            let (followed, others) =
                all.into_iter().partition(|s| wanted(&s.sensor));
            let shown = ServerMessage::Snapshot {
                seq,
                missed,
                sensors: followed,
            };
            events::show(&Shown { message: &shown });
            // Follow only the sensors asked for: stop the others.
            let others: Vec<String> =
                others.into_iter().map(|s| s.sensor).collect();
            if !others.is_empty() {
                // The snapshot's `seq` as the request's id: a new one for
                // each snapshot, and it tells which snapshot the ack answers.
                let (id, sensors) = (seq, others);
                return Ok(Some(ClientMessage::Unsubscribe { id, sensors }));
            }
        }
        // ANCHOR_END: messages
        // ANCHOR: updates
        ServerMessage::Reading(Reading { ref sensor, .. })
        | ServerMessage::Threshold { ref sensor, .. }
            if wanted(sensor) =>
        {
            events::show(&Shown { message: &message })
        }
        ServerMessage::Error { .. } => events::warn(&Shown { message: &message }),
        // The `ack` of an unsubscribe, and the sensors it does not follow.
        _ => {}
    }
    Ok(None)
}

/// How a person reads the dashboard's messages.
impl Display for Shown<'_, ServerMessage> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message {
            ServerMessage::Snapshot {
                seq,
                missed,
                sensors,
            } => {
                if *missed > 0 {
                    writeln!(f, "resynchronised after missing {missed} changes")?;
                }
                let line = |s: &SensorState| {
                    let value = s.value.map_or("-".into(), |v| v.to_string());
                    let (sensor, above) = (&s.sensor, s.threshold);
                    format!("{sensor} {value} (alert above {above}) at seq {seq}")
                };
                let lines: Vec<String> = sensors.iter().map(line).collect();
                f.write_str(&lines.join("\n"))
            }
            ServerMessage::Reading(Reading {
                sensor,
                value,
                alert,
                ..
            }) => {
                let alert = if *alert { " ALERT" } else { "" };
                write!(f, "{sensor} {value}{alert}")
            }
            ServerMessage::Threshold {
                sensor, threshold, ..
            } => write!(f, "{sensor} alert threshold is now {threshold}"),
            ServerMessage::Error { message, .. } => {
                write!(f, "the server says: {message}")
            }
            ServerMessage::Ack { id } => write!(f, "request {id} done"),
        }
    }
}
// ANCHOR_END: updates
