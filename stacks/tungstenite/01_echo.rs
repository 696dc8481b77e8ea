//! Lesson 01's echo on tokio-tungstenite alone, with no HTTP framework.
//!
//! The handler is lesson 01's, message for message; what axum and the support
//! library gave lesson 01 (routing, the page, shutdown) is in
//! `src/tungstenite.rs` and `src/tungstenite/http.rs`.
//!
//! Try it:
//!     cargo run -p ws-stacks --bin tungstenite_01_echo
//! then open http://127.0.0.1:3000/

use std::process::ExitCode;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use ws_stacks::ListenArgs;
use ws_stacks::tungstenite::{self, WebSocket};

/// Echoes every text and binary message back to its sender.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();
    tungstenite::serve(args.listen.addr, echo, None).await
}

// ANCHOR: echo
/// One loop, one message at a time, as in lesson 01.
async fn echo(mut socket: WebSocket, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = shutdown.cancelled() => {
                return tungstenite::going_away(socket).await;
            }
        };
        match message {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            // Pongs to pings are queued by tungstenite, as under axum. `Frame`
            // only comes from a raw-frame API that this server does not use.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Frame(_))) => {}
            // Read on: the Close reply goes out on the next read.
            Some(Ok(Message::Close(frame))) => {
                tracing::debug!(?frame, "peer is closing")
            }
            Some(Err(e)) => {
                tracing::debug!("connection error: {e}");
                return;
            }
            None => return,
        }
    }
}
// ANCHOR_END: echo
