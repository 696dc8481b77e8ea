//! The heartbeat of lesson 03, written once and reused by every lesson that pings
//! (05, 08, 09 and 10 include this file with `#[path]`), and by the same lesson
//! on other stacks (`stacks/`): it knows timers and payloads, not a WebSocket
//! library's types.
//!
//! A ping goes out every interval; its pong must come back before the deadline,
//! or the peer is gone. One ping is outstanding at a time, so a slow peer is not
//! sent a pile of pings it cannot answer.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use serde::Serialize;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use ws_lessons::cli::HeartbeatArgs;

// ANCHOR: heartbeat
/// One connection's heartbeat: when the next ping is due, which ping awaits
/// its pong, and until when.
pub struct Heartbeat {
    pings: Interval,
    timeout: Duration,
    /// The payload of the ping whose pong we wait for, if any.
    outstanding: Option<Bytes>,
    /// Armed only while a ping is outstanding.
    pong_deadline: Pin<Box<Sleep>>,
    /// Pings sent so far, which numbers the next one.
    sent: u64,
    /// Where the peers it drops are counted, server-wide.
    drops: Drops,
}

/// A send did not complete: the connection broke, or the peer stopped reading
/// and the send outlived the heartbeat's deadline. Either way the peer is gone.
#[derive(Debug)]
pub struct Gone;

/// What the heartbeat asks the connection to do.
pub enum Beat {
    /// Send a ping with this payload.
    Ping(Bytes),
    /// No pong came back in time: drop the connection.
    Missed,
}
// ANCHOR_END: heartbeat

// ANCHOR: drops
/// The peers that the heartbeats of a server's connections have dropped, for
/// `GET /stats`: how an operator, or a test, learns that peers vanish without
/// reading the log. Clones count into the same numbers.
#[derive(Clone, Debug, Default)]
pub struct Drops(Arc<DropCounts>);

#[derive(Debug, Default)]
struct DropCounts {
    missed_pongs: AtomicU64,
    blocked_sends: AtomicU64,
}

/// What `GET /stats` says about the heartbeat, under `heartbeat`.
#[derive(Debug, Serialize)]
pub struct HeartbeatStats {
    /// Peers dropped because a pong did not come back before its deadline.
    missed_pongs: u64,
    /// Peers dropped because a send waited past its deadline: they had
    /// stopped reading.
    blocked_sends: u64,
}

impl Drops {
    /// The peers dropped since the server started.
    pub fn stats(&self) -> HeartbeatStats {
        HeartbeatStats {
            missed_pongs: self.0.missed_pongs.load(Ordering::Relaxed),
            blocked_sends: self.0.blocked_sends.load(Ordering::Relaxed),
        }
    }
}
// ANCHOR_END: drops

impl Heartbeat {
    /// A heartbeat whose first ping is due one interval from now, and which
    /// counts the peer in `drops` if it drops it.
    pub fn new(args: HeartbeatArgs, drops: &Drops) -> Self {
        let HeartbeatArgs {
            ping_interval,
            pong_timeout,
        } = args;
        // `interval` would fire its first tick at once; `interval_at` waits one.
        let start = Instant::now() + ping_interval;
        let mut pings = tokio::time::interval_at(start, ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            pings,
            timeout: pong_timeout,
            outstanding: None,
            pong_deadline: Box::pin(tokio::time::sleep(pong_timeout)),
            sent: 0,
            drops: drops.clone(),
        }
    }

    // ANCHOR: beat
    /// Waits until a ping is due or a pong is overdue.
    ///
    /// Cancel-safe, so it can be a branch of `tokio::select!`: when another
    /// branch wins, this future is dropped having changed nothing, and the timers
    /// keep their deadlines for the next call. (The state changes only after an
    /// `.await` has finished, with no `.await` after it.)
    pub async fn beat(&mut self) -> Beat {
        tokio::select! {
            // The guard switches the ping timer off while a pong is awaited.
            _ = self.pings.tick(), if self.outstanding.is_none() => {
                self.sent += 1;
                let payload = Bytes::from(self.sent.to_be_bytes().to_vec());
                self.outstanding = Some(payload.clone());
                let deadline = Instant::now() + self.timeout;
                self.pong_deadline.as_mut().reset(deadline);
                tracing::debug!("ping {}", self.sent);
                Beat::Ping(payload)
            }
            () = &mut self.pong_deadline, if self.outstanding.is_some() => {
                let (timeout, sent) = (self.timeout, self.sent);
                self.drops.0.missed_pongs.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "no pong within {timeout:?} of ping {sent}; disconnecting"
                );
                Beat::Missed
            }
        }
    }
    // ANCHOR_END: beat

    // ANCHOR: send
    /// Sends `message`, waiting no longer than the heartbeat allows: until the
    /// pong deadline while a ping is outstanding, else one `--pong-timeout`.
    ///
    /// A peer that stopped reading lets the socket's buffers fill, and then a
    /// send does not finish. A loop waiting in that send polls nothing else, so
    /// without this deadline the pong deadline would never fire, and the peer
    /// would keep its connection: for ever if it is alive but not reading, some
    /// 15 minutes (TCP's retransmission limit on Linux) if it has gone.
    pub async fn send<M, S>(&self, socket: &mut S, message: M) -> Result<(), Gone>
    where
        S: Sink<M> + Unpin,
        S::Error: Display,
    {
        self.within(socket.send(message)).await
    }

    /// Runs `send`, any future that sends, with the deadline of
    /// [`Heartbeat::send`]: for a library whose sender is not a `Sink`.
    pub async fn within<E: Display>(
        &self,
        send: impl Future<Output = Result<(), E>>,
    ) -> Result<(), Gone> {
        let deadline = match self.outstanding {
            Some(_) => self.pong_deadline.deadline(),
            None => Instant::now() + self.timeout,
        };
        match tokio::time::timeout_at(deadline, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!("a send failed: {e}");
                Err(Gone)
            }
            Err(_) => {
                self.drops.0.blocked_sends.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "gave up on a send for a peer that does not read; \
                     disconnecting"
                );
                Err(Gone)
            }
        }
    }
    // ANCHOR_END: send

    /// Takes a pong from the peer. Only the pong that carries our payload answers
    /// our ping: a peer may also send unsolicited pongs as its own heartbeat.
    pub fn pong(&mut self, payload: &[u8]) {
        if self.outstanding.as_deref() == Some(payload) {
            tracing::debug!("pong for ping {}", self.sent);
            self.outstanding = None;
        }
    }
}
