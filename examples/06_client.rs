//! Lesson 06: a standalone dashboard client with tokio-tungstenite.
//!
//! What it teaches:
//! - tokio-tungstenite is the tool for a client outside axum: `connect_async`,
//!   then the same `Stream` and `Sink` of messages as on the server;
//! - the dashboard's protocol from the client's side (the types in
//!   `src/protocol.rs`);
//! - reconnecting when the server goes away, with exponential backoff and jitter,
//!   so that a thousand clients do not come back at the same instant;
//! - a polite exit: Ctrl-C sends Close 1000 and waits, briefly, for the server's
//!   reply.
//!
//! Try it, with the dashboard running (`cargo run --example 05_dashboard`):
//!     cargo run --example 06_client
//!     cargo run --example 06_client -- ws://127.0.0.1:3000/ws --sensor sensor-1
//! Stop and restart the dashboard, and watch the client reconnect.

use std::process::ExitCode;
use std::time::Duration;

use axum::http::Uri;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use ws_lessons::protocol::{ClientMessage, Reading, ServerMessage};

// ANCHOR: args
/// Follows a dashboard server's sensors and prints every change.
#[derive(Parser)]
struct Args {
    /// The dashboard's WebSocket URL
    #[arg(default_value = "ws://127.0.0.1:3000/ws", value_parser = websocket_url)]
    url: Uri,
    /// A sensor to follow (repeat for more); all sensors when none is given
    #[arg(long = "sensor", value_name = "NAME")]
    sensors: Vec<String>,
    /// The longest wait between two attempts to reconnect
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    max_backoff: Duration,
}

/// Accepts `ws://HOST[:PORT]/PATH` and explains what is wrong with anything else.
fn websocket_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("ws"), Some(_)) => Ok(uri),
        (Some("wss"), _) => {
            Err("wss:// needs TLS, and this example is built without it".into())
        }
        _ => Err("expected a URL such as ws://127.0.0.1:3000/ws".into()),
    }
}
// ANCHOR_END: args

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
enum Ended {
    /// The user pressed Ctrl-C: do not reconnect.
    Interrupted,
    /// The server went away or the connection broke: reconnect.
    Lost(String),
    /// The server cannot give us what we asked for: reconnecting would not help.
    Failed(String),
}

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ws_lessons::init_tracing();

    // One signal for the whole program, watched wherever it is waiting.
    let interrupted = CancellationToken::new();
    if let Err(e) = ws_lessons::server::cancel_on_signal(interrupted.clone()) {
        eprintln!("error: cannot listen for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    let mut attempt: u32 = 0;
    loop {
        match follow(&args, &mut attempt, &interrupted).await {
            Ended::Interrupted => return ExitCode::SUCCESS,
            Ended::Failed(why) => {
                eprintln!("error: {why}");
                return ExitCode::FAILURE;
            }
            Ended::Lost(why) => {
                let delay = backoff(attempt, args.max_backoff);
                tracing::warn!("{why}; reconnecting in {delay:.1?}");
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = interrupted.cancelled() => return ExitCode::SUCCESS,
                }
            }
        }
    }
}

/// Exponential backoff with "full jitter": a random wait between zero and 0.5 s ×
/// 2^attempt, capped. Without the randomness, every client that lost the same
/// server would retry in lockstep, and hit it together each time.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(max);
    ceiling.mul_f64(rand::random_range(0.0..=1.0))
}
// ANCHOR_END: main

// ANCHOR: follow
/// One connection, from the handshake to its end.
async fn follow(
    args: &Args,
    attempt: &mut u32,
    interrupted: &CancellationToken,
) -> Ended {
    let connecting = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(args.url.to_string()),
    );
    let mut socket = tokio::select! {
        connected = connecting => match connected {
            Ok(Ok((socket, _response))) => socket,
            // A 4xx answer to the handshake (401, 403, 404) says this URL will
            // not work, however often we try.
            Ok(Err(tungstenite::Error::Http(response)))
                if response.status().is_client_error() =>
            {
                let (url, status) = (&args.url, response.status());
                let why = format!("{url} refused the upgrade: {status}");
                return Ended::Failed(why);
            }
            Ok(Err(e)) => {
                let url = &args.url;
                return Ended::Lost(format!("cannot connect to {url}: {e}"));
            }
            Err(_) => {
                let url = &args.url;
                return Ended::Lost(format!("no answer from {url} in 10 s"));
            }
        },
        () = interrupted.cancelled() => return Ended::Interrupted,
    };
    tracing::info!("connected to {}", args.url);
    *attempt = 0;
    // ANCHOR_END: follow

    // ANCHOR: read
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = interrupted.cancelled() => {
                close(&mut socket).await;
                return Ended::Interrupted;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                // tungstenite replies to the Close; reading on sends the reply.
                let why = frame.map_or("no reason".to_owned(), |f| {
                    format!("{} {}", f.code, f.reason)
                });
                let reply =
                    async { while let Some(Ok(_)) = socket.next().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), reply).await;
                return Ended::Lost(format!(
                    "the server closed the connection ({why})"
                ));
            }
            // Pings are answered by tungstenite as we read.
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return Ended::Lost(format!("the connection failed: {e}"));
            }
            None => return Ended::Lost("the connection ended".into()),
        };
        // ANCHOR_END: read
        // ANCHOR: messages
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Snapshot {
                seq,
                missed,
                sensors,
            }) => {
                let names: Vec<&str> =
                    sensors.iter().map(|s| s.sensor.as_str()).collect();
                if let Some(unknown) =
                    args.sensors.iter().find(|s| !names.contains(&s.as_str()))
                {
                    close(&mut socket).await;
                    let known = names.join(", ");
                    return Ended::Failed(format!(
                        "the server has no sensor {unknown:?} (it has {known})"
                    ));
                }
                if missed > 0 {
                    println!("resynchronised after missing {missed} changes");
                }
                for sensor in sensors.iter().filter(|s| wanted(args, &s.sensor)) {
                    let value =
                        sensor.value.map_or("-".to_owned(), |v| v.to_string());
                    println!(
                        "{} {value} (alert above {}) at seq {seq}",
                        sensor.sensor, sensor.threshold
                    );
                }
                // Follow only the sensors asked for: stop the others.
                let others: Vec<String> = names
                    .iter()
                    .filter(|n| !wanted(args, n))
                    .map(|n| n.to_string())
                    .collect();
                if !others.is_empty() {
                    let request = ClientMessage::Unsubscribe {
                        id: seq,
                        sensors: others,
                    };
                    let json = serde_json::to_string(&request)
                        .expect("a request always serializes");
                    if let Err(e) = socket.send(Message::text(json)).await {
                        return Ended::Lost(format!(
                            "the connection failed: {e}"
                        ));
                    }
                }
            }
            // ANCHOR_END: messages
            // ANCHOR: updates
            Ok(ServerMessage::Reading(Reading {
                sensor,
                value,
                alert,
                ..
            })) if wanted(args, &sensor) => {
                println!("{sensor} {value}{}", if alert { " ALERT" } else { "" });
            }
            Ok(ServerMessage::Threshold {
                sensor, threshold, ..
            }) if wanted(args, &sensor) => {
                println!("{sensor} alert threshold is now {threshold}");
            }
            Ok(ServerMessage::Error { message, .. }) => {
                tracing::warn!("the server says: {message}")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("not a dashboard message ({e}): {text}"),
        }
    }
}
// ANCHOR_END: updates

fn wanted(args: &Args, sensor: &str) -> bool {
    args.sensors.is_empty() || args.sensors.iter().any(|s| s == sensor)
}

// ANCHOR: close
/// Sends Close 1000 and reads until the server's reply, for at most a second.
async fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_ok() {
        let reply = async { while let Some(Ok(_)) = socket.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), reply).await;
    }
}
// ANCHOR_END: close
