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

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, close_code};
use axum::serve::{ListenerExt, TapIo};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

mod connections;
#[cfg(test)]
mod tests;

pub use connections::{Connections, Stats};

// ANCHOR: server_stats
/// What every lesson's `GET /stats` begins with: the connections ([`Stats`]),
/// and, in a server that serves TLS, the handshakes that did not complete,
/// under `tls` ([`tls::TlsStats`]). A lesson adds its own counts beside them.
#[derive(Debug, serde::Serialize)]
pub struct ServerStats {
    #[serde(flatten)]
    connections: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<tls::TlsStats>,
}

impl ServerStats {
    /// The counts of `connections`, and the process's TLS counts, now.
    pub fn now(connections: &Connections) -> Self {
        Self {
            connections: connections.stats(),
            tls: tls::stats(),
        }
    }
}
// ANCHOR_END: server_stats

/// The Close frame a server sends when it shuts down: 1001 ("going away").
pub fn going_away_frame() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    }))
}

// ANCHOR: going_away
/// Says goodbye with Close 1001 ([`going_away_frame`]), then finishes the
/// closing handshake with [`finish_close`].
pub async fn going_away(socket: impl Socket) {
    close_with(socket, going_away_frame()).await;
}

/// Sends `close` (a Close frame), then finishes the closing handshake.
async fn close_with(mut socket: impl Socket, close: Message) {
    if socket.send(close).await.is_ok() {
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
    /// The server closes the connection with this frame, of its own choosing
    /// (lesson 11 says 1012 in a drain), and finishes the closing handshake.
    Closing(CloseFrame),
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
        Ended::Closing(frame) => {
            close_with(socket, Message::Close(Some(frame))).await;
        }
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
    serve_with_startup_line(addr, app, connections, startup_line).await
}

/// The start-up line of a server with a WebSocket at `/ws` and the try-it page
/// at `/`, once `local` is bound; the stacks in `stacks/` print it too.
pub fn startup_line(local: SocketAddr) -> String {
    format!(
        "listening on ws://{local}/ws \
         (open http://{local}/ in a browser; Ctrl-C to stop)"
    )
}

// ANCHOR_END: serve

/// [`serve`], for a server whose start-up line names something else than a
/// WebSocket at `/ws`: `startup` makes the line from the address actually bound.
pub async fn serve_with_startup_line(
    addr: impl Into<ListenAddr>,
    app: Router,
    connections: Connections,
    startup: impl FnOnce(SocketAddr) -> String,
) -> ExitCode {
    serve_with(addr, app, connections, startup, axum_serve).await
}

// ANCHOR: bind
/// [`serve_with_startup_line`], with `http` in place of [`axum_serve`]: for a
/// lesson that serves each connection itself (lesson 08 puts deadlines on
/// request heads and a cap on connections).
///
/// `http` must stop accepting when its token is cancelled and then return once
/// the requests in flight have been answered (the caller waits for it for at
/// most [`SHUTDOWN_GRACE`]); it must put each peer's address in its requests as
/// a `ConnectInfo<SocketAddr>`.
pub async fn serve_with<F>(
    addr: impl Into<ListenAddr>,
    app: Router,
    connections: Connections,
    startup: impl FnOnce(SocketAddr) -> String,
    http: impl FnOnce(Listener, Router, CancellationToken) -> F,
) -> ExitCode
where
    F: Future<Output = std::io::Result<()>>,
{
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
    let listener: Listener = listener.tap_io(no_delay);

    if let Err(e) = shut_down_on_signal(connections.clone()) {
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
    // Serve until the shutdown signal. axum's graceful shutdown (or a lesson's
    // own `http`) then stops accepting and lets HTTP requests in flight finish;
    // it does not wait for upgraded sockets.
    let token = connections.shutdown.clone();
    let mut serving = std::pin::pin!(http(listener, app, token.clone()));
    let finished = tokio::select! {
        result = &mut serving => Some(result),
        () = token.cancelled() => None,
    };
    if let Some(Err(e)) = finished {
        // Not `eprintln!`, which panics when no one reads stderr any more.
        let _ = writeln!(std::io::stderr(), "error: server failed: {e}");
        return ExitCode::FAILURE;
    }

    // From the signal on, everything shares one deadline: HTTP requests still
    // in flight, and the upgraded sockets, which the handlers are closing with
    // 1001.
    let closed = tokio::time::timeout(SHUTDOWN_GRACE, async {
        if finished.is_none() {
            let _ = serving.await;
        }
        connections.all_closed().await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!(
            open = connections.live(),
            "connections did not close in time; exiting anyway"
        );
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
// ANCHOR_END: shutdown

/// The connections [`serve_with`] accepts, TLS already done where there is
/// TLS, each with its peer's address and with `TCP_NODELAY` set.
pub type Listener = TapIo<tls::Listener, fn(&mut tls::Stream)>;

/// What every lesson serves HTTP with, through [`serve`]: `axum::serve`, which
/// answers each connection with hyper's defaults and stops accepting when
/// `shutdown` is cancelled. Each request carries its peer's address, for
/// `ConnectInfo` and `proxy::ClientAddr`.
pub async fn axum_serve(
    listener: Listener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Small frames should leave at once rather than wait for Nagle's algorithm to
/// batch them.
fn no_delay(stream: &mut tls::Stream) {
    if let Err(e) = tls::tcp(stream).set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
}

/// Shuts `connections` down on Ctrl-C (SIGINT) or SIGTERM. A server made with
/// [`Connections::with_sigterm`] gets the first SIGTERM instead, and a second
/// one shuts down.
///
/// The handlers are registered before this returns, as in [`cancel_on_signal`].
#[cfg(unix)]
fn shut_down_on_signal(connections: Connections) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut handed_over = connections.sigterm.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => match handed_over.take() {
                    Some(sigterm) => sigterm.cancel(),
                    None => break,
                },
            }
        }
        tracing::info!("shutdown signal received");
        connections.shut_down();
    });
    Ok(())
}

/// Shuts `connections` down on the first Ctrl-C.
#[cfg(not(unix))]
fn shut_down_on_signal(connections: Connections) -> std::io::Result<()> {
    cancel_on_signal(connections.shutdown.clone())
}

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

/// `GET /stats` of a lesson with nothing of its own to count: the
/// live-connection gauge, the runtime's task count and the TLS counts
/// ([`ServerStats`]), as JSON.
pub async fn stats(
    axum::extract::State(connections): axum::extract::State<Connections>,
) -> axum::Json<ServerStats> {
    axum::Json(ServerStats::now(&connections))
}
