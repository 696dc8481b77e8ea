//! Lesson 03's heartbeat on actix-web and actix-ws.
//!
//! The heartbeat itself is lesson 03's file,
//! `examples/03_heartbeat/heartbeat.rs`: timers and payloads, nothing of axum.
//! actix-ws's `Session` is not a `Sink`, so each send goes through
//! `Heartbeat::within`, which bounds any future that sends. And a peer that
//! is gone has its TCP connection shut down (`Tcp::shut_down`): dropping the
//! session would leave actix-web waiting to write to a peer that does not
//! read.
//!
//! Try it:
//!     cargo run -p ws-stacks --bin actix_03_heartbeat -- \
//!         --ping-interval 2s --pong-timeout 1s

use std::process::ExitCode;

use actix_ws::AggregatedMessage as Message;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use ws_lessons::cli::HeartbeatArgs;
use ws_stacks::ListenArgs;
use ws_stacks::actix::{self, WebSocket};

#[path = "../../examples/03_heartbeat/heartbeat.rs"]
#[allow(
    dead_code,
    reason = "`Heartbeat::send` is for a `Sink`; we use `within`"
)]
mod heartbeat;
use heartbeat::{Beat, Drops, Gone, Heartbeat};

/// Echoes messages and pings every client; a client that does not answer in
/// time is dropped.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    heartbeat: HeartbeatArgs,
}

// actix-web runs the connections on worker threads of its own; this runtime
// only waits for the signal.
#[tokio::main(flavor = "current_thread")]
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
    actix::serve(args.listen.addr, handler, Some(stats)).await
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
        // Each send that can wait on the peer, bounded by the heartbeat.
        let sent = tokio::select! {
            message = socket.messages.recv() => match message {
                Some(Ok(Message::Pong(payload))) => {
                    heartbeat.pong(&payload);
                    Ok(())
                }
                Some(Ok(Message::Text(text))) => {
                    heartbeat.within(socket.session.text(text)).await
                }
                Some(Ok(Message::Binary(bytes))) => {
                    heartbeat.within(socket.session.binary(bytes)).await
                }
                // actix-ws answers no pings: we do.
                Some(Ok(Message::Ping(payload))) => {
                    heartbeat.within(socket.session.pong(&payload)).await
                }
                // Nor Close frames: reply, and have actix-web close the TCP
                // connection once the reply is out.
                Some(Ok(Message::Close(reason))) => {
                    let close = socket.session.close(reason);
                    return match heartbeat.within(close).await {
                        Ok(()) => socket.tcp.stop_reading(),
                        Err(Gone) => socket.tcp.shut_down(),
                    };
                }
                Some(Err(e)) => {
                    return actix::fail(socket.session, e, &socket.tcp).await;
                }
                None => return,
            },

            beat = heartbeat.beat() => match beat {
                Beat::Ping(payload) => {
                    heartbeat.within(socket.session.ping(&payload)).await
                }
                Beat::Missed => Err(Gone),
            },

            () = shutdown.cancelled() => {
                return actix::going_away(socket.session, &socket.tcp).await;
            }
        };
        // No pong, or a send that failed or waited too long. Dropping the
        // session is not enough: actix-web would still wait to write what it
        // holds for a peer that does not read. Shut the TCP connection.
        if sent.is_err() {
            return socket.tcp.shut_down();
        }
    }
}
// ANCHOR_END: handle
