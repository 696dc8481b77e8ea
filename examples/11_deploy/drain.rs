//! The drain: a restart without a stampede. SIGTERM turns `GET /ready` to 503
//! at once; then each connection closes with 1012 (service restart) at a
//! moment of its own, drawn at random when it opened, so that clients come
//! back a few at a time; the process exits when the last has gone, or when
//! the drain's time is up.
//!
//! A connection's moment and its close code are one value, its [`Exit`],
//! made when the connection opens and handed to every task that may close
//! it: a handler that splits its socket (lesson 02) gives a clone to its
//! writer, and the writer waits for the same moment and sends the same code.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, close_code};
use tokio::sync::SetOnce;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use ws_lessons::Connections;

// ANCHOR: drain
/// How SIGTERM ends this server's connections: each at its own turn, spread
/// over `over`. Clones share the moment the drain began.
#[derive(Clone)]
pub struct Drain {
    connections: Connections,
    over: Duration,
    /// When the drain began, once it has: every connection's turn waits
    /// for it.
    began: Arc<SetOnce<Instant>>,
}
// ANCHOR_END: drain

impl Drain {
    /// A drain of `connections` over `over`, not begun.
    pub fn new(connections: Connections, over: Duration) -> Self {
        let began = Arc::new(SetOnce::new());
        Self {
            connections,
            over,
            began,
        }
    }

    /// Whether the drain has begun: `GET /ready` answers 503 from then on.
    pub fn draining(&self) -> bool {
        self.began.initialized()
    }

    // ANCHOR: exit
    /// The way out of a connection that opens now: its turn in a drain is
    /// drawn here, once. Hand a clone to every task that may close it.
    pub fn exit(&self) -> Exit {
        self.exit_at(rand::random_range(0.0..1.0))
    }

    /// [`Drain::exit`], with the turn `fraction` of the way through the drain.
    fn exit_at(&self, fraction: f64) -> Exit {
        Exit {
            drain: self.clone(),
            opened: Instant::now(),
            fraction,
        }
    }
    // ANCHOR_END: exit

    // ANCHOR: on
    /// Waits for `sigterm`, then drains: [`Drain::draining`] turns true, each
    /// connection closes at its turn, and when the last has gone, or the
    /// drain's time is up, this shuts the server down (the rest close at
    /// once) and returns. A shutdown meanwhile (a second signal) cuts it
    /// short.
    pub async fn on(self, sigterm: CancellationToken) {
        sigterm.cancelled().await;
        let began = Instant::now();
        let _ = self.began.set(began);
        let (open, over) = (self.connections.live(), self.over);
        tracing::info!(open, "draining: each connection closes within {over:?}");
        tokio::select! {
            () = self.connections.all_closed() => {
                tracing::info!("drained: every connection has closed");
            }
            () = self.connections.shutting_down() => {
                tracing::info!("the drain was cut short");
            }
            () = tokio::time::sleep_until(began + over) => tracing::warn!(
                open = self.connections.live(),
                "the drain's time is up; closing the rest at once"
            ),
        }
        self.connections.shut_down();
    }
    // ANCHOR_END: on
}

// ANCHOR: due
/// One connection's way out: when it closes, and with which Close frame.
/// Made once, when the connection opens; every task that may close the
/// connection holds a clone, so they all wait for the same moment and send
/// the same code.
#[derive(Clone)]
pub struct Exit {
    drain: Drain,
    /// When the connection opened.
    opened: Instant,
    /// Where in the drain its turn comes, in [0, 1).
    fraction: f64,
}

impl Exit {
    /// Completes when the connection should close, with the frame to close
    /// it with: 1001 at once on Ctrl-C; 1012 at its turn once a drain has
    /// begun, or at once when the drain ends or is cut short. The turn is
    /// fixed, so calling this afresh on each turn of a loop is fine.
    pub async fn due(&self) -> CloseFrame {
        let drain = &self.drain;
        let turn = async {
            let began = *drain.began.wait().await;
            let at = turn_at(began, drain.over, self.opened, self.fraction);
            tokio::time::sleep_until(at).await;
        };
        tokio::select! {
            () = drain.connections.shutting_down() => {}
            () = turn => {}
        }
        if drain.draining() {
            frame(close_code::RESTART, "server restarting")
        } else {
            frame(close_code::AWAY, "server shutting down")
        }
    }
}
// ANCHOR_END: due

fn frame(code: u16, reason: &'static str) -> CloseFrame {
    let reason = reason.into();
    CloseFrame { code, reason }
}

// ANCHOR: turn_at
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
// ANCHOR_END: turn_at

#[cfg(test)]
mod tests;
