//! Serving WebSockets with tokio-tungstenite alone: what axum and the support
//! library did for lesson 01 and 03, written out.
//!
//! tokio-tungstenite speaks the WebSocket protocol over a stream it is given;
//! everything around that is ours: accepting connections, telling a browser's
//! `GET /` from an upgrade ([`http`]), a task per connection, and a shutdown
//! that tells each handler and waits for it.

use std::net::SocketAddr;
use std::process::ExitCode;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ws_lessons::server::{CLOSE_TIMEOUT, SHUTDOWN_GRACE};

use crate::Stats;

pub mod http;

use http::{Rewind, Route};

/// An accepted WebSocket: the TCP stream, behind the bytes of the request
/// head that were read to route it.
pub type WebSocket = WebSocketStream<Rewind<TcpStream>>;

/// The settings of every connection: lesson 01's 3 KiB read buffer (the
/// default is 128 KiB per connection), and tungstenite's limits otherwise.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(3 * 1024)
}

// ANCHOR: serve
/// Listens on `addr`, prints the start-up line, and runs `handler` in a task
/// of its own for each WebSocket at `/ws`, until Ctrl-C or SIGTERM; `stats`,
/// if any, answers `GET /stats`. Then `shutdown` is cancelled, and the process
/// waits a bounded time for every task. Returns the exit code for `main`.
pub async fn serve<H, F>(
    addr: SocketAddr,
    handler: H,
    stats: Option<Stats>,
) -> ExitCode
where
    H: Fn(WebSocket, CancellationToken) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal = crate::shutdown_signal();
    let started = listener.local_addr().and_then(|a| Ok((a, signal?)));
    let (local, signal) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: cannot start on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::print_startup_line(local);
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of file descriptors, say: the listener itself is fine.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let (handler, shutdown) = (handler.clone(), shutdown.clone());
        tasks.spawn(connection(tcp, handler, shutdown, stats.clone()));
    }

    // Every task hears the signal: a handler says 1001, a connection still
    // sending its request head is dropped.
    shutdown.cancel();
    tasks.close();
    let waited = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await;
    if waited.is_err() {
        tracing::warn!(open = tasks.len(), "exiting with connections open");
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
// ANCHOR_END: serve

// ANCHOR: connection
/// One TCP connection: route its request, then serve the page or upgrade.
async fn connection<H, F>(
    tcp: TcpStream,
    handler: H,
    stop: CancellationToken,
    stats: Option<Stats>,
) where
    H: Fn(WebSocket, CancellationToken) -> F,
    F: Future<Output = ()>,
{
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    let routed = tokio::select! {
        routed = http::route(tcp, stats.as_deref()) => routed,
        () = stop.cancelled() => return,
    };
    let stream = match routed {
        Route::Upgrade(stream) => stream,
        Route::Answered => return,
    };
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        http::only_ws,
        Some(config()),
    );
    let socket = tokio::select! {
        accepted = accepted => accepted,
        () = stop.cancelled() => return,
    };
    match socket {
        Ok(socket) => handler(socket, stop).await,
        Err(e) => tracing::debug!("handshake failed: {e}"),
    }
}
// ANCHOR_END: connection

// ANCHOR: going_away
/// Says goodbye with Close 1001, then reads until the peer's Close comes back
/// (for at most `CLOSE_TIMEOUT`), as `ws_lessons::going_away` does for axum.
pub async fn going_away(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "server shutting down".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_ok() {
        finish_close(socket).await;
    }
}

/// Finishes a closing handshake by reading until the stream ends.
pub async fn finish_close(mut socket: WebSocket) {
    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}
// ANCHOR_END: going_away
