//! Serving WebSockets with actix-web and actix-ws: what axum and the support
//! library did for lessons 01 and 03, and what actix leaves to us.
//!
//! actix-web serves HTTP on worker threads of its own, each with a
//! single-threaded runtime; actix-ws turns a request into a [`Session`] to
//! send with and a stream of messages. It answers no Ping and no Close by
//! itself, and it accepts 64 KiB frames at most unless told otherwise. Its
//! shutdown is graceful for HTTP only, so this module tells each handler
//! through a token, and the handlers say 1001.

use std::any::Any;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::rc::{Rc, Weak};

use actix_web::dev::Extensions;
use actix_web::error::PayloadError;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::{
    AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use ws_lessons::server::{CLOSE_TIMEOUT, SHUTDOWN_GRACE};

/// tungstenite's limits, which lessons 01 and 03 keep: a message of 64 MiB at
/// most, in frames of 16 MiB at most (actix-ws: 1 MiB and 64 KiB).
pub const MAX_MESSAGE: usize = 64 << 20;
/// See [`MAX_MESSAGE`].
pub const MAX_FRAME: usize = 16 << 20;

mod frame_limit;

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
pub async fn serve<H, F>(addr: SocketAddr, handler: H) -> ExitCode
where
    H: Fn(WebSocket, CancellationToken) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    // Every TCP connection, open while actix-web holds it (`keep_socket`).
    let connections = TaskTracker::new();
    let tracker = connections.clone();
    // Called once per worker thread: each has an `App` of its own.
    let app = move || {
        let (handler, token) = (handler.clone(), token.clone());
        let ws = move |request, body| {
            upgrade(request, body, handler.clone(), token.clone())
        };
        App::new()
            .route("/", web::get().to(page))
            .route("/ws", web::to(ws))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = HttpServer::new(app)
        // One worker per core, actix's default: a connection stays on the
        // worker that accepted it, and so does its handler's task.
        .workers(cores)
        .tcp_nodelay(true)
        // Ours are Ctrl-C and SIGTERM, with a Close 1001 (actix's own wait
        // 30 s for HTTP, and drop WebSockets with no Close frame).
        .disable_signals()
        // Whole seconds: on `stop`, a worker waits this long at most.
        .shutdown_timeout(1)
        // Once the Close is sent, actix reads until the peer hangs up, or
        // for this long (1 s by default); then it hangs up itself.
        .client_disconnect_timeout(LINGER)
        .on_connect(move |tcp, data| keep_socket(tcp, data, &tracker))
        .bind(addr);
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
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
            eprintln!("error: server failed: {e}");
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
// ANCHOR_END: serve

/// How long actix-web reads on after a WebSocket's Close is sent, before it
/// closes the TCP connection. Long enough for the peer's Close reply to come
/// back (closing with it unread would send a reset), but no longer: a peer
/// that waits for the server to close first, as RFC 6455 asks of clients,
/// waits all of it. (actix-web does not know a Close frame when it reads one,
/// so it cannot close on the reply as tungstenite does.)
const LINGER: std::time::Duration = std::time::Duration::from_millis(250);

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
    let tcp = match request.conn_data::<Socket>() {
        Some(Socket(socket)) => Tcp(Rc::downgrade(socket)),
        None => Tcp(Weak::new()),
    };
    let socket = WebSocket {
        session,
        messages,
        tcp,
    };
    actix_web::rt::spawn(handler(socket, shutdown));
    Ok(response)
}
// ANCHOR_END: upgrade

// ANCHOR: going_away
/// Says goodbye with Close 1001. actix-web then reads the peer's reply while
/// it closes the connection ([`LINGER`]); nothing is left for the handler.
pub async fn going_away(session: Session) {
    close(session, (CloseCode::Away, "server shutting down").into()).await;
}

/// Sends `reason` in a Close frame, waiting at most `CLOSE_TIMEOUT` for room.
async fn close(session: Session, reason: CloseReason) {
    let closing = session.close(Some(reason));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}
// ANCHOR_END: going_away

// ANCHOR: fail
/// Ends a connection whose peer broke the protocol, with the Close code for
/// what it did; or quietly when the connection itself broke.
pub async fn fail(session: Session, error: ProtocolError) {
    use std::io::ErrorKind::{InvalidData, Other};
    tracing::debug!("connection error: {error}");
    let ProtocolError::Io(e) = &error else {
        let code = match error {
            ProtocolError::Overflow => CloseCode::Size, // over `MAX_FRAME`
            _ => CloseCode::Protocol,
        };
        return close(session, code.into()).await;
    };
    // Reading the request's body failed: the frame limit, or a broken
    // connection.
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
    close(session, code.into()).await
}
// ANCHOR_END: fail

// ANCHOR: tcp
/// A connection's TCP socket, as a handler may need it: when the peer stops
/// reading, dropping the [`Session`] is not enough. actix-web's dispatcher
/// then waits to write out what it holds, for as long as the peer does not
/// read, and keeps the connection open all that time.
pub struct Tcp(Weak<std::net::TcpStream>);

impl Tcp {
    /// Shuts the connection down both ways, now. The dispatcher's pending
    /// write fails, so it drops the connection; the peer, if still sending,
    /// gets a reset.
    pub fn shut_down(&self) {
        let Some(tcp) = self.0.upgrade() else { return };
        if let Err(e) = tcp.shutdown(Shutdown::Both) {
            tracing::debug!("cannot shut the connection down: {e}");
        }
    }
}

/// A copy of each connection's socket descriptor, kept with the connection
/// (actix-web's `on_connect` is the only place that sees the socket); it is
/// closed with the connection.
struct Socket(Rc<std::net::TcpStream>);

/// Keeps with each new connection a token of `connections` and a copy of its
/// socket; actix-web drops both when it drops the connection.
fn keep_socket(tcp: &dyn Any, data: &mut Extensions, connections: &TaskTracker) {
    data.insert(connections.token());
    let Some(tcp) = tcp.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => drop(data.insert(Socket(Rc::new(fd.into())))),
        Err(e) => tracing::warn!("cannot keep a copy of the socket: {e}"),
    }
}
// ANCHOR_END: tcp
