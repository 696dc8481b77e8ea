//! Lesson 03: heartbeats with `tokio::select!`.
//!
//! What it teaches:
//! - one task, one loop, several things to wait for: the next message, the next ping, the
//!   deadline for the pong, and the shutdown signal; `tokio::select!` takes whichever is first;
//! - branch guards (`, if ...`) that switch a branch on and off: the pong deadline exists only
//!   while a ping is outstanding;
//! - a peer whose pong does not come back within `--pong-timeout` is disconnected, so a
//!   vanished client (a laptop closed, a network cable pulled) stops holding a connection;
//!   a responsive peer stays connected indefinitely.
//!
//! Try it:
//!     cargo run --example 03_heartbeat -- --ping-interval 2s --pong-timeout 1s
//! and open http://127.0.0.1:3000/ : browsers answer pings by themselves, so the page stays
//! connected. `RUST_LOG=debug` shows each ping and pong.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, State};
use axum::response::Response;
use axum::routing::{any, get};
use clap::Parser;
use tokio::time::{Instant, MissedTickBehavior};
use ws_lessons::{Connections, ListenArgs};

// ANCHOR: args
/// Echoes messages and pings every client; a client that does not answer in time is dropped.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// Time between pings (for example 200ms or 30s)
    #[arg(long, default_value = "30s", value_parser = ws_lessons::cli::duration)]
    ping_interval: Duration,
    /// How long to wait for the pong before the peer is considered gone
    #[arg(long, default_value = "10s", value_parser = ws_lessons::cli::duration)]
    pong_timeout: Duration,
}
// ANCHOR_END: args

#[derive(Clone, Copy)]
struct Heartbeat {
    interval: Duration,
    timeout: Duration,
}

#[derive(Clone, FromRef)]
struct AppState {
    connections: Connections,
    heartbeat: Heartbeat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    ws_lessons::init_tracing();

    let connections = Connections::new();
    let state = AppState {
        connections: connections.clone(),
        heartbeat: Heartbeat {
            interval: args.ping_interval,
            timeout: args.pong_timeout,
        },
    };
    let app = Router::new()
        .route("/", get(ws_lessons::page::try_it))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(state);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let connections = state.connections.clone();
    ws.on_upgrade(move |socket| connections.track(handle(socket, state)))
}

// ANCHOR: handle
async fn handle(mut socket: WebSocket, state: AppState) {
    let Heartbeat { interval, timeout } = state.heartbeat;
    // `interval` would fire its first tick at once; the first ping is due one interval in.
    let mut pings = tokio::time::interval_at(Instant::now() + interval, interval);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One ping outstanding at a time: its payload, and the deadline for its pong.
    let mut outstanding: Option<Bytes> = None;
    let pong_deadline = tokio::time::sleep(timeout);
    tokio::pin!(pong_deadline); // `select!` polls it by `&mut` on every turn of the loop
    let mut sent: u64 = 0;

    loop {
        tokio::select! {
            message = socket.recv() => match message {
                // Only the pong that carries our payload answers our ping; a peer may also
                // send unsolicited pongs as its own heartbeat.
                Some(Ok(Message::Pong(payload))) if outstanding.as_ref() == Some(&payload) => {
                    tracing::debug!("pong for ping {sent}");
                    outstanding = None;
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                // The peer is closing. A ping sent now would fail (nothing may follow a
                // Close), so stop sending and read on until the stream ends (lesson 01).
                Some(Ok(Message::Close(_))) => return ws_lessons::finish_close(socket).await,
                // Pings are answered by the library; other pongs are ignored.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },

            // The guard switches the ping timer off while a pong is awaited.
            _ = pings.tick(), if outstanding.is_none() => {
                sent += 1;
                let payload = Bytes::from(sent.to_be_bytes().to_vec());
                if socket.send(Message::Ping(payload.clone())).await.is_err() {
                    return;
                }
                tracing::debug!("ping {sent}");
                outstanding = Some(payload);
                pong_deadline.as_mut().reset(Instant::now() + timeout);
            }

            // Armed only while a ping is outstanding.
            () = &mut pong_deadline, if outstanding.is_some() => {
                // Like `terminate()` in Node's `ws` heartbeat example: a peer that cannot
                // answer a ping will not read a Close frame either, and writing one could
                // block on a full buffer. Dropping the socket closes the TCP connection.
                tracing::info!("no pong within {timeout:?} of ping {sent}; disconnecting");
                return;
            }

            () = state.connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        }
    }
}
// ANCHOR_END: handle
