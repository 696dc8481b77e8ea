//! Serving an example: the start-up line, the shutdown signal, and the
//! live-connection gauge.
//!
//! `axum::serve(..).with_graceful_shutdown(..)` stops accepting and waits for
//! plain HTTP requests, but the tasks that `WebSocketUpgrade::on_upgrade` spawns
//! are detached: it returns while sockets are still open. [`Connections`] is what
//! closes that gap. Every handler runs inside [`Connections::track`], watches
//! [`Connections::shutting_down`], and answers it by sending Close 1001
//! ([`going_away`]); [`serve`] then waits, for a bounded time, until the gauge
//! reads zero.

use std::future::{Future, IntoFuture};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, close_code};
use axum::serve::ListenerExt;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TrackedFuture;

use crate::cli::ListenAddr;
use crate::tls;

/// How long [`serve`] waits for open sockets after a shutdown signal. The
/// contract is an exit within 2 seconds, so this leaves room for the rest of the
/// process to wind down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1250);

/// How long a socket that has sent its Close frame waits for the peer's Close in
/// reply.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

// ANCHOR: socket
/// What a connection's handler reads and writes: axum's `WebSocket`, or a wrapper
/// around it that behaves the same (lesson 08 puts a rate limit in front of one).
///
/// A `WebSocket` is a `Stream` of the messages it receives and a `Sink` for the
/// ones it sends: `next()` is `recv()`, and `SinkExt::send` is `send()`.
pub trait Socket:
    Stream<Item = Result<Message, axum::Error>>
    + Sink<Message, Error = axum::Error>
    + Unpin
    + Send
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}
// ANCHOR_END: socket

// ANCHOR: connections
/// The shutdown signal and the gauge of live connections, shared by every
/// handler.
///
/// Cloning is cheap: clones share the same signal and the same count.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}
// ANCHOR_END: connections

/// What `GET /stats` reports: enough for a test or an operator to see that
/// nothing leaks.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// WebSocket connections whose handler is still running.
    pub connections: usize,
    /// Tasks alive in the tokio runtime: the accept loop, HTTP connections, and
    /// whatever the handlers spawned. It returns to its idle value once every
    /// connection has ended.
    pub tasks: usize,
}

impl Connections {
    /// No connections yet, and no shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a connection's handler so that it counts as live until it returns.
    pub fn track<F: Future>(&self, handler: F) -> TrackedFuture<F> {
        self.tracker.track_future(handler)
    }

    /// Completes when the server starts shutting down. A handler selects on it
    /// and answers with [`going_away`].
    pub fn shutting_down(&self) -> WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }

    /// Starts the shutdown, as Ctrl-C or SIGTERM does.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// The number of handlers still running.
    pub fn live(&self) -> usize {
        self.tracker.len()
    }

    /// What `GET /stats` reports right now.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.live(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }
}

/// The Close frame a server sends when it shuts down: 1001, "going away".
pub fn going_away_frame() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    }))
}

// ANCHOR: going_away
/// Says goodbye with Close 1001, then finishes the closing handshake with
/// [`finish_close`].
pub async fn going_away(mut socket: impl Socket) {
    if socket.send(going_away_frame()).await.is_ok() {
        finish_close(socket).await;
    }
}
// ANCHOR_END: going_away

// ANCHOR: finish_close
/// Finishes a closing handshake, whoever started it, by reading until the stream
/// ends (for at most [`CLOSE_TIMEOUT`]).
///
/// Reading on is what completes it. When the peer closed first, tungstenite has
/// queued the Close reply and sends it on the next read; when we closed first,
/// the peer's reply arrives on a read. Dropping the socket instead leaves the
/// peer with 1006 (abnormal closure). And once a Close has been received, sending
/// anything but reading fails, so a handler that has more to send must stop
/// sending and come here.
pub async fn finish_close(mut socket: impl Socket) {
    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, drain).await;
}
// ANCHOR_END: finish_close

// ANCHOR: ended
/// Why a connection ended (lesson 05); [`end`] does what each case calls for.
pub enum Ended {
    /// The peer sent Close: finish the closing handshake.
    PeerClosed,
    /// The server is shutting down: say goodbye with 1001.
    ShuttingDown,
    /// Reading failed: a protocol error, or the connection broke.
    Failed(axum::Error),
    /// The peer is gone (no pong, a failed write, the stream ended):
    /// nothing more can be said.
    Gone,
}

/// Ends a connection the way `ended` calls for.
pub async fn end(socket: impl Socket, ended: Ended) {
    match ended {
        Ended::PeerClosed => finish_close(socket).await,
        Ended::ShuttingDown => going_away(socket).await,
        Ended::Failed(e) => tracing::debug!("connection error: {e}"),
        Ended::Gone => {}
    }
}
// ANCHOR_END: ended

// ANCHOR: serve
/// Listens on `addr`, prints the start-up line, and serves `app` until Ctrl-C or
/// SIGTERM; with TLS when `addr` has a certificate ([`ListenAddr`]).
///
/// The start-up line is printed to stdout (and flushed) once the socket is bound,
/// so it shows the real port when `addr` asks for port 0. On a shutdown signal
/// every handler is told through `connections`, and the process waits up to
/// [`SHUTDOWN_GRACE`] for them.
///
/// Returns the exit code for `main`: failure, with a message on stderr, when the
/// address cannot be bound.
pub async fn serve(
    addr: impl Into<ListenAddr>,
    app: Router,
    connections: Connections,
) -> ExitCode {
    let startup = |local: SocketAddr| {
        format!(
            "listening on ws://{local}/ws \
             (open http://{local}/ in a browser; Ctrl-C to stop)"
        )
    };
    serve_with_startup_line(addr, app, connections, startup).await
}

// ANCHOR_END: serve

// ANCHOR: bind
/// [`serve`], for a server whose start-up line names something else than a
/// WebSocket at `/ws`: `startup` makes the line from the address actually bound.
pub async fn serve_with_startup_line(
    addr: impl Into<ListenAddr>,
    app: Router,
    connections: Connections,
    startup: impl FnOnce(SocketAddr) -> String,
) -> ExitCode {
    let addr = addr.into();
    // With `--tls-cert` and `--tls-key`, the certificate is read first: a bad
    // file is an error before the port is taken (`src/tls.rs`).
    let tls = match tls::acceptor(&addr) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (secure, addr) = (tls.is_some(), addr.socket);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => {
            eprintln!("error: cannot read the address bound for {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = tls::Listener::new(listener, local, tls);
    // Small frames should leave at once rather than wait for Nagle's algorithm to
    // batch them.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = tls::tcp(stream).set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });

    if let Err(e) = cancel_on_signal(connections.shutdown.clone()) {
        eprintln!("error: cannot listen for Ctrl-C and SIGTERM: {e}");
        return ExitCode::FAILURE;
    }

    let mut stdout = std::io::stdout().lock();
    let mut line = startup(local);
    if secure {
        line = tls::secure_schemes(&line);
    }
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
    drop(stdout);

    // ANCHOR_END: bind
    // ANCHOR: shutdown
    // Serve until the shutdown signal. axum's graceful shutdown then stops
    // accepting and lets HTTP requests in flight finish; it does not wait for
    // upgraded sockets.
    let token = connections.shutdown.clone();
    let serving = axum::serve(listener, app)
        .with_graceful_shutdown(token.clone().cancelled_owned());
    let mut serving = std::pin::pin!(serving.into_future());
    let finished = tokio::select! {
        result = &mut serving => Some(result),
        () = token.cancelled() => None,
    };
    if let Some(Err(e)) = finished {
        eprintln!("error: server failed: {e}");
        return ExitCode::FAILURE;
    }

    // From the signal on, everything shares one deadline: HTTP requests still in
    // flight, and the upgraded sockets, which the handlers are closing with 1001.
    connections.tracker.close();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        if finished.is_none() {
            let _ = serving.await;
        }
        connections.tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.live(),
            "connections did not close in time; exiting anyway"
        );
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
// ANCHOR_END: shutdown

/// Cancels `token` on the first Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are registered before this returns, synchronously: a signal sent
/// right after (say, by a test that has read the start-up line) must not meet the
/// default action, which kills the process without a Close frame for anyone.
#[cfg(unix)]
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown signal received");
        token.cancel();
    });
    Ok(())
}

/// Cancels `token` on the first Ctrl-C.
#[cfg(not(unix))]
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutdown signal received");
            token.cancel();
        }
    });
    Ok(())
}

/// `GET /stats`: the live-connection gauge and the runtime's task count, as JSON.
pub async fn stats(
    axum::extract::State(connections): axum::extract::State<Connections>,
) -> axum::Json<Stats> {
    axum::Json(connections.stats())
}
