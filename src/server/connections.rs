//! [`Connections`]: the shutdown signal, the live-connection gauge, and the
//! drain that spreads a restart's closes over time.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ANCHOR: connections
/// The shutdown signal and the gauge of live connections, shared by every
/// handler, and the drain, for a server that restarts without a stampede.
///
/// Cloning is cheap: clones share the same signal and the same count.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    pub(super) shutdown: CancellationToken,
    pub(super) tracker: TaskTracker,
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
pub(super) fn turn_at(
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
pub(super) fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(0u8);
    // The top 53 bits, the precision of an f64.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the connection whose handler is running closes because its server
/// began to drain: it then says 1012 rather than 1001.
pub(super) fn closing_in_a_drain() -> bool {
    CONNECTION
        .try_with(|turn| turn.began.get().is_some())
        .unwrap_or(false)
}
