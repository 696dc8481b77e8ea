//! Lesson 01's echo on actix-web and actix-ws.
//!
//! The loop is lesson 01's, with two more arms: actix-ws answers neither a
//! Ping nor a Close by itself, so the handler does. What axum and the support
//! library gave lesson 01 (the page, the limits, the shutdown with 1001) is in
//! `src/actix.rs`.
//!
//! Try it:
//!     cargo run -p ws-stacks --bin actix_01_echo
//! then open http://127.0.0.1:3000/

use std::process::ExitCode;

use actix_ws::AggregatedMessage as Message;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use ws_stacks::ListenArgs;
use ws_stacks::actix::{self, WebSocket};

/// Echoes every text and binary message back to its sender.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
}

// actix-web runs the connections on worker threads of its own; this runtime
// only waits for the signal.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();
    actix::serve(args.listen.addr, echo, None).await
}

// ANCHOR: echo
/// One loop, one message at a time, as in lesson 01.
async fn echo(socket: WebSocket, shutdown: CancellationToken) {
    let WebSocket {
        mut session,
        mut messages,
        tcp,
    } = socket;
    loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            () = shutdown.cancelled() => {
                return actix::going_away(session, &tcp).await;
            }
        };
        let sent = match message {
            Some(Ok(Message::Text(text))) => session.text(text).await,
            Some(Ok(Message::Binary(bytes))) => session.binary(bytes).await,
            // Pongs are ours to send: actix-ws does not answer pings.
            Some(Ok(Message::Ping(payload))) => session.pong(&payload).await,
            Some(Ok(Message::Pong(_))) => Ok(()),
            // Nor Close frames: reply with the peer's code, and have
            // actix-web close the TCP connection once the reply is out.
            Some(Ok(Message::Close(reason))) => {
                tracing::debug!(?reason, "peer is closing");
                let _ = session.close(reason).await;
                return tcp.stop_reading();
            }
            Some(Err(e)) => return actix::fail(session, e, &tcp).await,
            None => return,
        };
        if sent.is_err() {
            return; // the connection is gone
        }
    }
}
// ANCHOR_END: echo
