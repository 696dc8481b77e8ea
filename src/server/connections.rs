//! [`Connections`]: the shutdown signal and the live-connection gauge.

use std::future::Future;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ANCHOR: connections
/// The shutdown signal and the gauge of live connections, shared by every
/// handler.
///
/// Cloning is cheap: clones share the same signal and the same count.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    pub(super) shutdown: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// What the first SIGTERM cancels instead of shutting down, for a server
    /// that decides itself what SIGTERM does ([`Connections::with_sigterm`]).
    pub(super) sigterm: Option<CancellationToken>,
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
    /// No connections yet, and no shutdown. Ctrl-C and SIGTERM both close
    /// every connection at once, with 1001.
    pub fn new() -> Self {
        Self::default()
    }

    // ANCHOR: with_sigterm
    /// [`Connections::new`], for a server that decides itself what SIGTERM
    /// does (lesson 11 drains its connections over time): the first SIGTERM
    /// cancels `sigterm`, and nothing else. The server keeps serving until it
    /// calls [`Connections::shut_down`]. A second SIGTERM, or Ctrl-C at any
    /// time, shuts down at once, as in every other server.
    pub fn with_sigterm(sigterm: CancellationToken) -> Self {
        Self {
            sigterm: Some(sigterm),
            ..Self::default()
        }
    }
    // ANCHOR_END: with_sigterm

    /// Wraps a connection's handler so that it counts as live until it returns.
    pub fn track<F: Future>(
        &self,
        handler: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        self.tracker.track_future(handler)
    }

    /// Completes when the server shuts down: on Ctrl-C or SIGTERM (with
    /// [`Connections::with_sigterm`], on Ctrl-C or a second SIGTERM only), or
    /// when [`Connections::shut_down`] is called. A handler selects on it and
    /// answers with [`going_away`](super::going_away).
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + '_ {
        self.shutdown.cancelled()
    }

    /// Starts the shutdown, as Ctrl-C does: every connection closes at once.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    // ANCHOR: all_closed
    /// Completes once no connection is open: for a server that ends on its
    /// own terms (lesson 11's drain waits for it, up to a deadline), as
    /// `serve` does after a shutdown. A connection opened after it completed
    /// counts again.
    pub async fn all_closed(&self) {
        // The tracker's `wait` completes only once it is closed and empty;
        // closing it does not stop it from counting new handlers.
        self.tracker.close();
        self.tracker.wait().await;
    }
    // ANCHOR_END: all_closed

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
