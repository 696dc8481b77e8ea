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
//!
//! A server made with [`Connections::with_drain`] restarts without a stampede:
//! SIGTERM starts a drain ([`Connections::drain`]). [`Connections::draining`]
//! turns true at once, for `GET /ready`; then each connection's
//! [`Connections::shutting_down`] completes at a moment of its own, spread at
//! random over the drain, and [`going_away`] says 1012 (service restart), so
//! that clients reconnect elsewhere a few at a time rather than all at once.
//! Ctrl-C still closes everything at once with 1001.

use std::future::{Future, IntoFuture};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, close_code};
use axum::serve::ListenerExt;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
/// handler, and the drain, for a server that restarts without a stampede.
///
/// Cloning is cheap: clones share the same signal and the same count.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    drain: Drain,
}
// ANCHOR_END: connections

/// How SIGTERM ends the connections of a server made with
/// [`Connections::with_drain`]. Clones share the moment the drain began.
#[derive(Clone, Debug, Default)]
struct Drain {
    /// How long a drain spreads the closes over; `None`: SIGTERM closes every
    /// connection at once, as Ctrl-C does.
    over: Option<Duration>,
    /// When the drain began, once it has.
    began: Arc<OnceLock<Instant>>,
    /// Cancelled when the drain begins, after `began` is set.
    begun: CancellationToken,
}

tokio::task_local! {
    /// The connection whose handler is running: set by [`Connections::track`],
    /// read by [`Connections::shutting_down`] and [`going_away_frame`].
    static CONNECTION: Turn;
}

/// One connection's place in a drain.
#[derive(Clone, Debug)]
struct Turn {
    /// Where in the drain its turn to close comes, in [0, 1).
    fraction: f64,
    /// When its handler started.
    opened: Instant,
    /// Its server's [`Drain::began`]: a connection closed after that says
    /// 1012 rather than 1001.
    began: Arc<OnceLock<Instant>>,
}

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
    /// No connections yet, and no shutdown. SIGTERM and Ctrl-C both close every
    /// connection at once, with 1001.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Connections::new`], for a server that drains on SIGTERM: its
    /// connections close with 1012 (service restart), each at a random moment
    /// within `over`, and the process exits when the last is gone or `over`
    /// has passed. Ctrl-C still closes them all at once with 1001.
    pub fn with_drain(over: Duration) -> Self {
        let mut connections = Self::new();
        connections.drain.over = Some(over);
        connections
    }

    /// Wraps a connection's handler so that it counts as live until it returns.
    ///
    /// It also gives the connection its turn in a drain, a random moment that
    /// [`Connections::shutting_down`] waits for: this is what spreads the
    /// closes out. The turn belongs to the handler's future, not to the tasks
    /// it spawns.
    pub fn track<F: Future>(
        &self,
        handler: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        let turn = Turn {
            fraction: random_fraction(),
            opened: Instant::now(),
            began: self.drain.began.clone(),
        };
        self.tracker.track_future(CONNECTION.scope(turn, handler))
    }

    // ANCHOR: shutting_down
    /// Completes when this connection should close. A handler selects on it
    /// and answers with [`going_away`].
    ///
    /// That is at once on Ctrl-C, on SIGTERM without a drain, and when a drain
    /// ends or is cut short. During a drain it is the connection's own turn:
    /// a random moment in what was left of the drain when the connection
    /// opened. The turn is fixed when the handler starts, so every call from
    /// the same handler waits for the same moment, and calling it afresh on
    /// each turn of a loop is fine. Outside a handler that
    /// [`Connections::track`] wraps (a plain HTTP request, a task the handler
    /// spawned), a drain's turn is its very start.
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + '_ {
        let turn = CONNECTION.try_with(|turn| (turn.opened, turn.fraction));
        let my_turn = async move {
            let Some(over) = self.drain.over else {
                return std::future::pending().await;
            };
            self.drain.begun.cancelled().await;
            let began = self.drain.began.get().copied();
            if let (Some(began), Ok((opened, fraction))) = (began, turn) {
                tokio::time::sleep_until(turn_at(began, over, opened, fraction))
                    .await;
            }
        };
        async move {
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                () = my_turn => {}
            }
        }
    }

    // ANCHOR_END: shutting_down

    /// Starts the shutdown, as Ctrl-C does: every connection closes at once.
    /// During a drain, this cuts it short.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    // ANCHOR: drain
    /// Drains, as SIGTERM does: [`Connections::draining`] turns true, each
    /// connection closes at its turn, and when the last has gone, or the drain's
    /// time is up, this shuts down (as [`Connections::shut_down`]) and returns.
    /// Without a drain (made with [`Connections::new`]) it shuts down at once.
    ///
    /// Cancel-safe: dropping it leaves the drain going, and
    /// [`Connections::shut_down`] then cuts it short.
    pub async fn drain(&self) {
        let Some(over) = self.drain.over else {
            return self.shut_down();
        };
        let began = *self.drain.began.get_or_init(Instant::now);
        self.drain.begun.cancel();
        tracing::info!(
            open = self.live(),
            "draining: each connection closes with 1012 within {over:?}"
        );
        // `wait` completes once the tracker is closed and empty.
        self.tracker.close();
        match tokio::time::timeout_at(began + over, self.tracker.wait()).await {
            Ok(()) => tracing::info!("drained: every connection has closed"),
            Err(_) => tracing::warn!(
                open = self.live(),
                "the drain's time is up; closing the rest at once"
            ),
        }
        self.shut_down();
    }
    // ANCHOR_END: drain

    /// Whether this server is on its way out: from the moment a drain begins
    /// (SIGTERM), or a shutdown. `GET /ready` answers 503 then, so that a load
    /// balancer sends new clients elsewhere while the open ones close.
    pub fn draining(&self) -> bool {
        self.drain.begun.is_cancelled() || self.shutdown.is_cancelled()
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

/// When a connection that opened at `opened` closes, in a drain that began at
/// `began` and lasts `over`: `fraction` (in [0, 1)) of the way through what
/// was left of the drain when it opened, so never after the drain's end.
fn turn_at(
    began: Instant,
    over: Duration,
    opened: Instant,
    fraction: f64,
) -> Instant {
    let start = began.max(opened);
    let left = (began + over).saturating_duration_since(start);
    // Strictly before the end, even where the product rounds up.
    let last = left.saturating_sub(Duration::from_nanos(1));
    start + left.mul_f64(fraction.clamp(0.0, 1.0)).min(last)
}

/// A random number in [0, 1): each `RandomState` has keys of its own, seeded
/// from the system's randomness, so its hash of anything is a fresh random
/// number (enough for jitter, without a dependency for it).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(0u8);
    // The top 53 bits, the precision of an f64.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The Close frame a server sends when it shuts down: 1001 ("going away"), or
/// 1012 ("service restart") from a handler that [`Connections::track`] wraps
/// once its server has begun to drain.
pub fn going_away_frame() -> Message {
    let draining = CONNECTION
        .try_with(|turn| turn.began.get().is_some())
        .unwrap_or(false);
    let (code, reason) = match draining {
        true => (close_code::RESTART, "server restarting"),
        false => (close_code::AWAY, "server shutting down"),
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

// ANCHOR: going_away
/// Says goodbye with Close 1001 (1012 in a drain: [`going_away_frame`]), then
/// finishes the closing handshake with [`finish_close`].
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
    /// The server is shutting down: say goodbye with 1001 (1012 in a drain).
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
///
/// SIGTERM starts a drain when `connections` has one
/// ([`Connections::with_drain`]): the server keeps serving HTTP (so that `GET
/// /ready` can answer 503) until the drain ends, then shuts down as on Ctrl-C.
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
    // Serve until the shutdown signal. axum's graceful shutdown then stops
    // accepting and lets HTTP requests in flight finish; it does not wait for
    // upgraded sockets.
    let token = connections.shutdown.clone();
    // With the TCP peer's address in each request, for `ConnectInfo` and
    // `proxy::ClientAddr`.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
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

    // From the signal (or the drain's end) on, everything shares one deadline:
    // HTTP requests still in flight, and the upgraded sockets, which the
    // handlers are closing with 1001 (1012 after a drain).
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

/// Shuts `connections` down on Ctrl-C (SIGINT), and drains them on SIGTERM
/// ([`Connections::drain`], which shuts down at once without a drain). A second
/// signal during a drain cuts it short: the rest close at once, with 1012.
///
/// The handlers are registered before this returns, as in [`cancel_on_signal`].
#[cfg(unix)]
fn shut_down_on_signal(connections: Connections) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let drain = tokio::select! {
            _ = interrupt.recv() => false,
            _ = terminate.recv() => true,
        };
        tracing::info!("shutdown signal received");
        if drain {
            tokio::select! {
                () = connections.drain() => return,
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("second signal: cutting the drain short");
        }
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

/// `GET /stats`: the live-connection gauge and the runtime's task count, as JSON.
pub async fn stats(
    axum::extract::State(connections): axum::extract::State<Connections>,
) -> axum::Json<Stats> {
    axum::Json(connections.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The close code of a frame from [`going_away_frame`].
    fn code(frame: Message) -> u16 {
        match frame {
            Message::Close(Some(frame)) => frame.code,
            other => panic!("not a Close frame: {other:?}"),
        }
    }

    #[test]
    fn a_turn_falls_within_what_is_left_of_the_drain() {
        let began = Instant::now();
        let over = Duration::from_secs(10);
        let end = began + over;
        let fractions = [0.0, 0.25, 0.5, 0.999_999, 1.0 - f64::EPSILON];
        // Opened before the drain: anywhere in it.
        let before = began.checked_sub(Duration::from_secs(60)).unwrap_or(began);
        assert_eq!(turn_at(began, over, before, 0.0), began);
        assert_eq!(turn_at(began, over, before, 0.5), began + over / 2);
        for fraction in fractions {
            let at = turn_at(began, over, before, fraction);
            assert!(began <= at && at < end, "{fraction}: {:?}", at - began);
        }
        // Opened during the drain: in what was left of it.
        let opened = began + Duration::from_secs(8);
        assert_eq!(turn_at(began, over, opened, 0.5), opened + over / 10);
        for fraction in fractions {
            let at = turn_at(began, over, opened, fraction);
            assert!(opened <= at && at < end, "{fraction}: {:?}", at - began);
        }
        // Opened after the drain's end: at once.
        let late = end + Duration::from_secs(1);
        assert_eq!(turn_at(began, over, late, 0.7), late);
    }

    #[test]
    fn random_fractions_lie_in_0_to_1_and_spread_over_it() {
        let draws: Vec<f64> = (0..10_000).map(|_| random_fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        // About 1000 in each tenth; fewer than 800 is some 6 standard
        // deviations away.
        for tenth in 0..10 {
            let low = f64::from(tenth) / 10.0;
            let high = f64::from(tenth + 1) / 10.0;
            let n = draws.iter().filter(|f| (low..high).contains(*f)).count();
            assert!(n > 800, "{n} draws in [{low}, {high})");
        }
    }

    /// Starts `n` handlers tracked by `connections`, each of which waits for
    /// `shutting_down` and reports when it fired and the code of the frame it
    /// would send.
    fn handlers(
        connections: &Connections,
        n: usize,
    ) -> tokio::sync::mpsc::UnboundedReceiver<(Instant, u16)> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..n {
            let (own, sender) = (connections.clone(), sender.clone());
            tokio::spawn(connections.track(async move {
                // As a handler's loop does: a fresh `shutting_down()` on each
                // turn, here every millisecond.
                loop {
                    tokio::select! {
                        () = own.shutting_down() => break,
                        () = tokio::time::sleep(Duration::from_millis(1)) => {}
                    }
                }
                let _ = sender.send((Instant::now(), code(going_away_frame())));
            }));
        }
        receiver
    }

    async fn all(
        mut receiver: tokio::sync::mpsc::UnboundedReceiver<(Instant, u16)>,
        n: usize,
    ) -> Vec<(Instant, u16)> {
        let mut closes = Vec::new();
        while closes.len() < n {
            let next =
                tokio::time::timeout(Duration::from_secs(10), receiver.recv());
            closes.push(next.await.expect("in time").expect("a close"));
        }
        closes
    }

    #[tokio::test]
    async fn without_a_drain_every_connection_closes_at_once_with_1001() {
        let connections = Connections::new();
        let closes = handlers(&connections, 5);
        assert!(!connections.draining());
        let began = Instant::now();
        connections.drain().await;
        assert!(connections.draining());
        for (at, code) in all(closes, 5).await {
            assert_eq!(code, 1001);
            assert!(at - began < Duration::from_millis(500));
        }
        // Outside a tracked handler, too.
        assert_eq!(code(going_away_frame()), 1001);
    }

    #[tokio::test]
    async fn a_drain_spreads_the_closes_over_its_time_with_1012() {
        let over = Duration::from_millis(400);
        let connections = Connections::with_drain(over);
        let closes = handlers(&connections, 20);
        let began = Instant::now();
        connections.drain().await;
        let closes = all(closes, 20).await;
        assert!(closes.iter().all(|(_, code)| *code == 1012), "{closes:?}");
        let first = closes.iter().map(|(at, _)| *at).min().expect("closes");
        let last = closes.iter().map(|(at, _)| *at).max().expect("closes");
        assert!(first >= began);
        // The drain ends when the last one has gone, and it had to wait for
        // its turn, within `over` (and a little for the scheduler).
        assert!(last - began <= over + Duration::from_millis(200));
        // 20 turns drawn over 400 ms all fall within 100 ms of one another with
        // a probability of about 1e-10, and all in its first half with one of
        // about 1e-6. A handler asks afresh each millisecond: a turn drawn anew
        // on each call would come within the first few.
        assert!(last - first >= Duration::from_millis(100), "not spread out");
        assert!(last - began >= over / 2, "only early turns");
        // The drain shut down as it ended.
        assert!(connections.shutdown.is_cancelled());
        // Outside a tracked handler, the frame still says 1001.
        assert_eq!(code(going_away_frame()), 1001);
    }

    #[tokio::test]
    async fn a_shutdown_during_a_drain_closes_the_rest_at_once() {
        let connections = Connections::with_drain(Duration::from_secs(60));
        let closes = handlers(&connections, 10);
        // As the signal handler does: the drain starts, and a second signal
        // drops it (it is cancel-safe) and shuts down.
        tokio::select! {
            biased;
            () = connections.drain() => panic!("a 60 s drain ended at once"),
            () = tokio::task::yield_now() => {}
        }
        assert!(connections.draining());
        let cut = Instant::now();
        connections.shut_down();
        for (at, code) in all(closes, 10).await {
            // The shutdown began as a drain: a restart, 1012.
            assert_eq!(code, 1012);
            assert!(at - cut < Duration::from_millis(500));
        }
    }
}
