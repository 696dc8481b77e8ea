//! Serving WebSockets with actix-web and actix-ws: what axum and the support
//! library did for lessons 01 and 03, and what actix leaves to us.
//!
//! actix-web serves HTTP on worker threads of its own, each with a
//! single-threaded runtime; actix-ws turns a request into a [`Session`] to
//! send with and a stream of messages. It answers no Ping and no Close by
//! itself (the handlers do), and takes frames of 64 KiB at most unless told
//! otherwise ([`frame_limit`] checks ours). Its shutdown waits for HTTP
//! requests only, so [`serve`] tells each handler through a token, and the
//! handlers say 1001. And a peer that stops reading keeps its connection
//! open after the handler has let go of it, unless the handler shuts the
//! socket down ([`tcp`]).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use actix_web::error::PayloadError;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{
    AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ws_lessons::server::{CLOSE_TIMEOUT, SHUTDOWN_GRACE};

use crate::Stats;

/// tungstenite's limits, which lessons 01 and 03 keep: a message of 64 MiB at
/// most, in frames of 16 MiB at most (actix-ws: 1 MiB and 64 KiB).
pub const MAX_MESSAGE: usize = 64 << 20;
/// See [`MAX_MESSAGE`].
pub const MAX_FRAME: usize = 16 << 20;

pub mod frame_limit;
pub mod tcp;

pub use tcp::Tcp;

/// An accepted WebSocket: where to send, what was received (fragmented
/// messages put back together), and the TCP connection under them.
pub struct WebSocket {
    /// The sending half; `Session::close` ends the connection.
    pub session: Session,
    /// The receiving half.
    pub messages: AggregatedMessageStream,
    /// The connection itself, for a peer that has stopped reading.
    pub tcp: Tcp,
}

// ANCHOR: serve
/// Listens on `addr`, prints the start-up line, and runs `handler` for each
/// WebSocket at `/ws`, until Ctrl-C or SIGTERM. Then `shutdown` is cancelled
/// and actix-web stops, waiting a bounded time. Returns the exit code.
/// `stats`, if any, answers `GET /stats`.
pub async fn serve<H, F>(
    addr: SocketAddr,
    handler: H,
    stats: Option<Stats>,
) -> ExitCode
where
    H: Fn(WebSocket, CancellationToken) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    // Every TCP connection, open while actix-web holds it (`tcp::on_connect`).
    let connections = TaskTracker::new();
    let tracker = connections.clone();
    // Called once per worker thread: each has an `App` of its own.
    let app = move || {
        let (handler, token) = (handler.clone(), token.clone());
        let ws = move |request, body| {
            upgrade(request, body, handler.clone(), token.clone())
        };
        // A resource's routes answer 405 to other methods (`App::route`
        // would answer 404); any method goes to the handshake, which wants GET.
        App::new()
            .service(web::resource("/").get(page))
            .route("/ws", web::to(ws))
            .configure(stats_route(stats.clone()))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = HttpServer::new(app)
        // One worker per core, actix's default: a connection stays on the
        // worker that accepted it, and so does its handler's task.
        .workers(cores)
        // Small frames leave at once, as in lesson 01.
        .tcp_nodelay(true)
        // Ours: Ctrl-C and SIGTERM say 1001. (actix-web's own stop at once
        // on Ctrl-C, wait up to 30 s on SIGTERM, and say nothing to a
        // WebSocket either way.)
        .disable_signals()
        // Whole seconds: on `stop`, a worker waits this long at most.
        .shutdown_timeout(1)
        // Once a Close is sent, actix-web reads on until the peer hangs up,
        // or for 1 s (`client_disconnect_timeout`). The handlers end it
        // sooner: see `LINGER`.
        .on_connect(move |tcp, data| tcp::on_connect(tcp, data, &tracker))
        .bind(addr);
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // ANCHOR_END: serve
    // ANCHOR: stop
    let local = server.addrs().first().copied().unwrap_or(addr);
    let signal = match crate::shutdown_signal() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("error: cannot start on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::print_startup_line(local);

    let server = server.run();
    let stop = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        served = &mut server => {
            let Err(e) = served else { return ExitCode::SUCCESS };
            // Not `eprintln!`, which panics when no one reads stderr.
            let _ = writeln!(std::io::stderr(), "error: server failed: {e}");
            return ExitCode::FAILURE;
        }
        () = signal => {}
    }
    // The handlers say 1001, and actix-web stops accepting. Its workers look
    // once a second whether their connections are closed, so watch them
    // ourselves; what is still open at the end is dropped with `server`.
    shutdown.cancel();
    drop(stop.stop(true)); // the command is sent; `server` carries it out
    connections.close();
    let closed = async {
        tokio::select! {
            _ = &mut server => {}
            () = connections.wait() => {}
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, closed).await.is_err() {
        let open = connections.len();
        tracing::warn!(open, "exiting with connections open");
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
// ANCHOR_END: stop

/// How long actix-web may read on after a Close that the server started
/// (1001, or a protocol error's code), before the handler ends the TCP
/// connection (`Tcp::stop_reading`). Long enough for the peer's Close reply to
/// come back (closing with it unread would send a reset), but no longer: a
/// peer that waits for the server to close first, as RFC 6455 asks of
/// clients, waits all of it. actix-web does not know a Close frame when it
/// reads one, so it cannot close on the reply as tungstenite does. Its own
/// timer for this (`client_disconnect_timeout`) is no help below a second: it
/// counts from a clock that actix-http refreshes every 500 ms, and a deadline
/// already past when the timer is set never wakes the connection (actix-http
/// 3.20, `TimerState::init`), so a 250 ms timer often waited for the peer.
const LINGER: std::time::Duration = std::time::Duration::from_millis(250);

/// `GET /stats`, answered with what `stats` makes, if there is a `stats`.
fn stats_route(stats: Option<Stats>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let Some(stats) = stats else { return };
        let json = move || {
            let body = stats();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        };
        config.service(web::resource("/stats").get(json));
    }
}

/// `GET /`: the try-it page.
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(ws_lessons::page::TRY_IT)
}

// ANCHOR: upgrade
/// `/ws`: answers the handshake (400 for a plain GET) and spawns `handler` on
/// this worker's thread.
async fn upgrade<H, F>(
    request: HttpRequest,
    body: web::Payload,
    handler: H,
    shutdown: CancellationToken,
) -> actix_web::Result<HttpResponse>
where
    H: Fn(WebSocket, CancellationToken) -> F,
    F: Future<Output = ()> + 'static,
{
    // actix-http would read an oversized frame whole before refusing it.
    let body = frame_limit::limit_frames(&request, body, MAX_FRAME).await?;
    let (response, session, messages) = actix_ws::handle(&request, body)?;
    let messages = messages
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE);
    let socket = WebSocket {
        session,
        messages,
        tcp: Tcp::of(&request),
    };
    actix_web::rt::spawn(handler(socket, shutdown));
    Ok(response)
}
// ANCHOR_END: upgrade

// ANCHOR: going_away
/// Says goodbye with Close 1001, and closes the connection after `LINGER`.
pub async fn going_away(session: Session, tcp: &Tcp) {
    let reason = (CloseCode::Away, "server shutting down");
    close(session, reason.into(), tcp).await;
}

/// Sends a Close frame, lets actix-web read the peer's reply for `LINGER`,
/// then has it close the connection. The Close waits for room if the peer
/// does not read; after `CLOSE_TIMEOUT`, the connection is shut down instead.
async fn close(session: Session, reason: CloseReason, tcp: &Tcp) {
    let closing = session.close(Some(reason));
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        return tcp.shut_down();
    }
    tokio::time::sleep(LINGER).await;
    tcp.stop_reading();
}
// ANCHOR_END: going_away

// ANCHOR: fail
/// Ends a connection whose peer broke the protocol, with the Close code for
/// what it did; or quietly when the connection itself broke.
pub async fn fail(session: Session, error: ProtocolError, tcp: &Tcp) {
    use std::io::ErrorKind::{InvalidData, Other};
    tracing::debug!("connection error: {error}");
    let ProtocolError::Io(e) = &error else {
        let code = match error {
            ProtocolError::Overflow => CloseCode::Size, // over `MAX_FRAME`
            _ => CloseCode::Protocol,
        };
        return close(session, code.into(), tcp).await;
    };
    // An I/O error: reading the body failed (our frame limit, or a broken
    // connection), or it is actix-ws's own (bad UTF-8, a message too large).
    let payload = e.get_ref().and_then(|e| e.downcast_ref::<PayloadError>());
    let code = match payload {
        Some(PayloadError::Overflow) => CloseCode::Size,
        Some(_) => return,
        // Invalid UTF-8 (actix-http says InvalidData for reserved bits too).
        None if e.kind() == InvalidData
            && !e.to_string().contains("reserved bits") =>
        {
            CloseCode::Invalid
        }
        None if e.kind() == Other => CloseCode::Size, // over `MAX_MESSAGE`
        None => CloseCode::Protocol,
    };
    close(session, code.into(), tcp).await
}
// ANCHOR_END: fail
