//! Connecting, reconnecting with backoff and jitter, one connection from its
//! first message to its end, and a polite exit on Ctrl-C: all that a client
//! does whatever it follows.

use std::process::ExitCode;
use std::time::Duration;

use axum::http::Uri;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::events::{self, Connection, Sent};
use crate::tls;
use crate::urls::Urls;

// ANCHOR: args
/// Where to connect, and how: the arguments every client here takes.
#[derive(clap::Args)]
pub struct Connect {
    /// The server's WebSocket URLs, tried in turn from the one that last worked
    #[arg(default_value = "ws://127.0.0.1:3000/ws", value_parser = websocket_url)]
    pub urls: Vec<Uri>,
    /// The longest wait between two rounds of attempts to reconnect
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    pub max_backoff: Duration,
    /// A private CA to trust for wss:// URLs (PEM), besides the system's roots
    #[arg(long, value_name = "PATH", value_parser = tls::ca_file)]
    pub ca: Option<tls::Ca>,
    /// Print every event as one JSON object per line, for a program to read
    #[arg(long)]
    pub events: bool,
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

/// A client's end of a WebSocket, over TCP or TLS.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection, or a round of attempts, ended: what to do next.
pub enum NextStep {
    /// The user pressed Ctrl-C: exit, with status 0.
    Quit,
    /// The server went away or the connection broke: wait, then reconnect.
    Reconnect(String),
    /// The server cannot give us what we asked for, and reconnecting would
    /// not help: exit with this error, and status 1.
    GiveUp(String),
}

// ANCHOR: run
/// Connects to `urls` (as `connect` says) and hands each connection to
/// `follow`, again and again, until Ctrl-C or a reason to give up.
pub async fn run(
    connect: &Connect,
    urls: Vec<String>,
    mut follow: impl AsyncFnMut(Socket, &CancellationToken) -> NextStep,
) -> ExitCode {
    events::init(connect.events);
    // One signal for the whole program, watched wherever it is waiting.
    let interrupted = CancellationToken::new();
    if let Err(e) = ws_lessons::server::cancel_on_signal(interrupted.clone()) {
        eprintln!("error: cannot listen for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    let mut urls = Urls::new(urls, connect.ca.as_ref());
    let mut attempt: u32 = 0;
    loop {
        let next = tokio::select! {
            connected = urls.connect() => match connected {
                Ok(socket) => {
                    attempt = 0;
                    follow(socket, &interrupted).await
                }
                Err(next) => next,
            },
            () = interrupted.cancelled() => NextStep::Quit,
        };
        match next {
            NextStep::Quit => return ExitCode::SUCCESS,
            NextStep::GiveUp(why) => {
                eprintln!("error: {why}");
                return ExitCode::FAILURE;
            }
            NextStep::Reconnect(why) => {
                let delay = backoff(attempt, connect.max_backoff);
                let delay_ms = delay.as_millis().try_into().unwrap_or(u64::MAX);
                events::warn(&Connection::Reconnecting {
                    why: &why,
                    delay_ms,
                });
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = interrupted.cancelled() => return ExitCode::SUCCESS,
                }
            }
        }
    }
}
// ANCHOR_END: run

// ANCHOR: backoff
/// Exponential backoff with "full jitter": a random wait between zero and 0.5 s ×
/// 2^attempt, capped. Without the randomness, every client that lost the same
/// server would retry in lockstep, and hit it together each time.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let ceiling = Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(max);
    ceiling.mul_f64(rand::random_range(0.0..=1.0))
}
// ANCHOR_END: backoff

// ANCHOR: follow
/// One connection, to its end: each text message goes to `read`, which
/// returns a request to send back, or why to give up.
pub async fn follow<R: Serialize>(
    mut socket: Socket,
    mut read: impl FnMut(&str) -> Result<Option<R>, String>,
    interrupted: &CancellationToken,
) -> NextStep {
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = interrupted.cancelled() => {
                close(&mut socket).await;
                return NextStep::Quit;
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
                return NextStep::Reconnect(format!(
                    "the server closed the connection ({why})"
                ));
            }
            // Pings are answered by tungstenite as we read.
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return NextStep::Reconnect(format!(
                    "the connection failed: {e}"
                ));
            }
            None => return NextStep::Reconnect("the connection ended".into()),
        };
        match read(&text) {
            Ok(None) => {}
            Ok(Some(request)) => {
                if let Err(next) = send(&mut socket, &request).await {
                    return next;
                }
            }
            Err(why) => {
                close(&mut socket).await;
                return NextStep::GiveUp(why);
            }
        }
    }
}
// ANCHOR_END: follow

// ANCHOR: send
/// Sends `request` as JSON, and reports it; a failure ends the connection.
pub async fn send(
    socket: &mut Socket,
    request: &impl Serialize,
) -> Result<(), NextStep> {
    let json = serde_json::to_string(request).expect("a request serializes");
    if let Err(e) = socket.send(Message::text(json)).await {
        return Err(NextStep::Reconnect(format!("the connection failed: {e}")));
    }
    events::info(&Sent { request });
    Ok(())
}
// ANCHOR_END: send

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
