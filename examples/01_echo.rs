//! Lesson 01: a minimal echo server.
//!
//! What it teaches:
//! - the upgrade: a `GET /ws` becomes a WebSocket through axum's
//!   `WebSocketUpgrade` extractor and `on_upgrade`;
//! - `recv` and `send` on the upgraded `WebSocket`;
//! - which frames to echo (Text and Binary) and which to leave to the library
//!   (Ping, Pong);
//! - the close: keep reading after the peer's Close until the stream ends, so
//!   that the library's Close reply is sent.
//!
//! Try it:
//!     cargo run --example 01_echo            # then open http://127.0.0.1:3000/
//!     cargo run --example 01_echo -- 127.0.0.1:0   # any free port

use std::process::ExitCode;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{any, get};
use clap::Parser;
use ws_lessons::{Connections, ListenArgs};

/// Echoes every text and binary message back to its sender.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
}

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let connections = Connections::new();
    let app = Router::new()
        .route("/", get(ws_lessons::page::try_it))
        .route("/ws", any(upgrade))
        .route("/stats", get(ws_lessons::server::stats))
        .with_state(connections.clone());

    ws_lessons::serve(args.listen.addr, app, connections).await
}
// ANCHOR_END: main

// ANCHOR: upgrade
/// The HTTP half: accept the upgrade and hand the socket to `echo`, which runs
/// in a task of its own.
async fn upgrade(
    ws: WebSocketUpgrade,
    State(connections): State<Connections>,
) -> Response {
    // 3 KiB instead of tungstenite's 128 KiB, which every idle client would keep.
    ws.read_buffer_size(3 * 1024).on_upgrade(move |socket| {
        connections.track(echo(socket, connections.clone()))
    })
}
// ANCHOR_END: upgrade

// ANCHOR: echo
/// The WebSocket half: one loop, one message at a time.
async fn echo(mut socket: WebSocket, connections: Connections) {
    loop {
        // The next message, or the server's shutdown, whichever comes first.
        let message = tokio::select! {
            message = socket.recv() => message,
            () = connections.shutting_down() => {
                return ws_lessons::going_away(socket).await;
            }
        };

        match message {
            // Data frames: send them straight back.
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(message).await.is_err() {
                    return; // the peer is gone; there is no one left to tell
                }
            }
            // tungstenite has already queued the Pong for this Ping. Echoing the
            // frame would send the peer an unsolicited Ping (or Pong) of its own.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            // The peer started the closing handshake. The library queued our
            // Close reply; it goes out on the next `recv`, which then returns
            // `None`. Returning here instead would drop the socket with the reply
            // unsent, and the peer would see 1006.
            Some(Ok(Message::Close(frame))) => {
                tracing::debug!(?frame, "peer is closing")
            }
            // A protocol error or a broken connection: nothing more can be read.
            Some(Err(e)) => {
                tracing::debug!("connection error: {e}");
                return;
            }
            // The stream has ended: the close handshake is complete (or the TCP
            // stream is gone).
            None => return,
        }
    }
}
// ANCHOR_END: echo
