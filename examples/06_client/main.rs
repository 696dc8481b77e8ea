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
//! - resuming with no gap: in rooms mode (lessons 09 and 10) the client rejoins
//!   each room with `after`, the last change it printed, and checks that every
//!   change follows the one before;
//! - a polite exit: Ctrl-C sends Close 1000 and waits, briefly, for the server's
//!   reply;
//! - `wss://` with rustls: the system's roots, a private CA with `--ca`, and a
//!   certificate that does not verify as a final error, never a retry.
//!
//! Try it, with the dashboard running (`cargo run --example 05_dashboard`):
//!     cargo run --example 06_client
//!     cargo run --example 06_client -- ws://127.0.0.1:3000/ws --sensor sensor-1
//! Stop and restart the dashboard, and watch the client reconnect. With two
//! instances of lesson 09 or 10 on ports 3000 and 3001:
//!     cargo run --example 06_client -- ws://127.0.0.1:3000/ws \
//!         ws://127.0.0.1:3001/ws --room site-1 --user alice
//! Over TLS, with a server started with `--tls-cert` and `--tls-key`:
//!     cargo run --example 06_client -- wss://localhost:3000/ws --ca ca.pem

use std::process::ExitCode;
use std::time::Duration;

use axum::http::Uri;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use ws_lessons::protocol::{ClientMessage, Reading, ServerMessage};

mod rooms;
mod tls;
mod urls;

use rooms::Rooms;
use urls::Urls;

// ANCHOR: args
/// Follows a dashboard server's sensors, or rooms of lessons 09 and 10, and
/// prints every change.
#[derive(Parser)]
struct Args {
    /// The server's WebSocket URLs, tried in turn from the one that last worked
    #[arg(default_value = "ws://127.0.0.1:3000/ws", value_parser = websocket_url)]
    urls: Vec<Uri>,
    /// A sensor to follow (repeat for more); all sensors when none is given
    #[arg(long = "sensor", value_name = "NAME")]
    sensors: Vec<String>,
    /// A room of lesson 09 or 10 to follow instead (repeat for more)
    #[arg(long = "room", value_name = "NAME", conflicts_with = "sensors")]
    rooms: Vec<String>,
    /// Who to connect as, with --room: `?user=NAME` on every URL
    #[arg(
        long,
        default_value = "client",
        requires = "rooms",
        value_parser = user_name
    )]
    user: String,
    /// The longest wait between two rounds of attempts to reconnect
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    max_backoff: Duration,
    /// A private CA to trust for wss:// URLs (PEM), besides the system's roots
    #[arg(long, value_name = "PATH", value_parser = tls::ca_file)]
    ca: Option<tls::Ca>,
}

/// Accepts `ws://` and `wss://HOST[:PORT]/PATH` and explains what is wrong with
/// anything else.
fn websocket_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|e| format!("not a URL ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("ws" | "wss"), Some(_)) => Ok(uri),
        _ => Err("expected a URL such as ws://127.0.0.1:3000/ws".into()),
    }
}
// ANCHOR_END: args

/// Accepts the names lessons 09 and 10 accept, which need no escaping in a URL.
fn user_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
    match (1..=32).contains(&text.len()) && text.chars().all(allowed) {
        true => Ok(text.to_owned()),
        false => Err("expected 1 to 32 characters of a-z, 0-9, _ and -".into()),
    }
}

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
    let _logs = ws_lessons::init_tracing();

    // One signal for the whole program, watched wherever it is waiting.
    let interrupted = CancellationToken::new();
    if let Err(e) = ws_lessons::server::cancel_on_signal(interrupted.clone()) {
        eprintln!("error: cannot listen for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    let mut urls = Urls::new(&args);
    let mut follower = Follower::new(&args);
    let mut attempt: u32 = 0;
    loop {
        let ended = tokio::select! {
            connected = urls.connect() => match connected {
                Ok(socket) => {
                    attempt = 0;
                    follow(socket, &mut follower, &interrupted).await
                }
                Err(ended) => ended,
            },
            () = interrupted.cancelled() => Ended::Interrupted,
        };
        match ended {
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
/// One connection, from the first request to its end.
async fn follow(
    mut socket: Socket,
    follower: &mut Follower,
    interrupted: &CancellationToken,
) -> Ended {
    for request in follower.greeting() {
        if let Err(e) = socket.send(Message::text(&request)).await {
            return Ended::Lost(format!("the connection failed: {e}"));
        }
        tracing::info!("sent {request}");
    }
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
        match follower.read(&text) {
            Ok(None) => {}
            Ok(Some(request)) => {
                if let Err(e) = socket.send(Message::text(request)).await {
                    return Ended::Lost(format!("the connection failed: {e}"));
                }
            }
            Err(why) => {
                close(&mut socket).await;
                return Ended::Failed(why);
            }
        }
    }
}
// ANCHOR_END: follow

/// What the client follows, and what it has seen: all that outlives one
/// connection.
enum Follower {
    /// Lesson 05's dashboard: these sensors, or all when none is given.
    Sensors(Vec<String>),
    /// Rooms of lessons 09 and 10.
    Rooms(Rooms),
}

impl Follower {
    fn new(args: &Args) -> Self {
        match args.rooms.is_empty() {
            true => Self::Sensors(args.sensors.clone()),
            false => Self::Rooms(Rooms::new(&args.rooms)),
        }
    }

    /// What to send as soon as connected.
    fn greeting(&mut self) -> Vec<String> {
        match self {
            Self::Sensors(_) => Vec::new(),
            Self::Rooms(rooms) => rooms.joins(),
        }
    }

    /// Prints one message. Returns a request to send back, or why to give up.
    fn read(&mut self, text: &str) -> Result<Option<String>, String> {
        match self {
            Self::Sensors(sensors) => read_dashboard(sensors, text),
            Self::Rooms(rooms) => rooms.read(text).map(|()| None),
        }
    }
}

fn json(request: &impl Serialize) -> String {
    serde_json::to_string(request).expect("a request always serializes")
}

// ANCHOR: messages
/// One message of lesson 05's dashboard, for a client that follows `sensors`.
fn read_dashboard(
    sensors: &[String],
    text: &str,
) -> Result<Option<String>, String> {
    let wanted =
        |name: &str| sensors.is_empty() || sensors.iter().any(|s| s == name);
    match serde_json::from_str::<ServerMessage>(text) {
        Ok(ServerMessage::Snapshot {
            seq,
            missed,
            sensors: states,
        }) => {
            let names: Vec<&str> =
                states.iter().map(|s| s.sensor.as_str()).collect();
            if let Some(unknown) =
                sensors.iter().find(|s| !names.contains(&s.as_str()))
            {
                let known = names.join(", ");
                return Err(format!(
                    "the server has no sensor {unknown:?} (it has {known})"
                ));
            }
            if missed > 0 {
                println!("resynchronised after missing {missed} changes");
            }
            for sensor in states.iter().filter(|s| wanted(&s.sensor)) {
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
                .filter(|n| !wanted(n))
                .map(|n| n.to_string())
                .collect();
            if !others.is_empty() {
                let id = seq;
                return Ok(Some(json(&ClientMessage::Unsubscribe {
                    id,
                    sensors: others,
                })));
            }
        }
        // ANCHOR_END: messages
        // ANCHOR: updates
        Ok(ServerMessage::Reading(Reading {
            sensor,
            value,
            alert,
            ..
        })) if wanted(&sensor) => {
            println!("{sensor} {value}{}", if alert { " ALERT" } else { "" });
        }
        Ok(ServerMessage::Threshold {
            sensor, threshold, ..
        }) if wanted(&sensor) => {
            println!("{sensor} alert threshold is now {threshold}");
        }
        Ok(ServerMessage::Error { message, .. }) => {
            tracing::warn!("the server says: {message}")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("not a dashboard message ({e}): {text}"),
    }
    Ok(None)
}
// ANCHOR_END: updates

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
