//! Lesson 03's heartbeat on tokio-tungstenite alone.
//!
//! The heartbeat itself is lesson 03's file,
//! `examples/03_heartbeat/heartbeat.rs`: timers and payloads, nothing of axum.
//! The loop is lesson 03's, with tungstenite's `Message`.
//!
//! Try it:
//!     cargo run -p ws-stacks --bin tungstenite_03_heartbeat -- \
//!         --ping-interval 2s --pong-timeout 1s

use std::process::ExitCode;

use clap::Parser;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use ws_lessons::cli::HeartbeatArgs;
use ws_stacks::ListenArgs;
use ws_stacks::tungstenite::{self, WebSocket};

#[path = "../../examples/03_heartbeat/heartbeat.rs"]
mod heartbeat;
use heartbeat::{Beat, Drops, Heartbeat};

/// Echoes messages and pings every client; a client that does not answer in
/// time is dropped.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();
    let (heartbeat, drops) = (args.heartbeat, Drops::default());
    let stats = ws_stacks::heartbeat_stats({
        let drops = drops.clone();
        move || drops.stats()
    });
    let handler = move |socket, shutdown| {
        handle(socket, shutdown, heartbeat, drops.clone())
    };
    tungstenite::serve(args.listen.addr, handler, Some(stats)).await
}

// ANCHOR: handle
async fn handle(
    mut socket: WebSocket,
    shutdown: CancellationToken,
    args: HeartbeatArgs,
    drops: Drops,
) {
    let mut heartbeat = Heartbeat::new(args, &drops);
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Pong(payload))) => heartbeat.pong(&payload),
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if heartbeat.send(&mut socket, message).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    return tungstenite::finish_close(socket).await;
                }
                // Pings are answered by the library.
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Err(_)) | None => return,
            },

            beat = heartbeat.beat() => match beat {
                Beat::Ping(payload) => {
                    let ping = Message::Ping(payload);
                    if heartbeat.send(&mut socket, ping).await.is_err() {
                        return;
                    }
                }
                // Dropping the socket closes the TCP connection.
                Beat::Missed => return,
            },

            () = shutdown.cancelled() => {
                return tungstenite::going_away(socket).await;
            }
        }
    }
}
// ANCHOR_END: handle
