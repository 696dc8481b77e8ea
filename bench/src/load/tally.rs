//! What the clients set up by `followers` count once set up: readings and
//! their delays, snapshots, other messages, and connections that ended.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::{READING, SNAPSHOT};
use crate::stats::{histogram, now_ms};
use ws_bench::wire::{Conn, OPCODE_CLOSE, OPCODE_TEXT, json_number};

/// What a group of clients counts, once set up, in one place: a scenario
/// reads the counts at the window's start and end (`Tally::counts`).
pub struct Tally {
    /// Set during the window: the delays are recorded only then.
    pub measuring: AtomicBool,
    readings: AtomicU64,
    /// Snapshots after the set-up: resynchronisations.
    snapshots: AtomicU64,
    /// Any other text message.
    others: AtomicU64,
    /// Connections that ended.
    closed: AtomicU64,
    /// The delay of each reading received in the window, from its creation
    /// (`at_ms`) to its arrival, in whole ms.
    delays: Mutex<Histogram<u64>>,
}

/// A `Tally`'s counts at one moment: readings, snapshots after the set-up,
/// other text messages, and connections that ended.
#[derive(Clone, Copy)]
pub struct Counts {
    pub readings: u64,
    pub snapshots: u64,
    pub others: u64,
    pub closed: u64,
}

impl Tally {
    /// Nothing counted yet, and not measuring.
    pub fn new() -> Tally {
        Tally {
            measuring: AtomicBool::new(false),
            readings: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            others: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            delays: Mutex::new(histogram()),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            readings: count(&self.readings),
            snapshots: count(&self.snapshots),
            others: count(&self.others),
            closed: count(&self.closed),
        }
    }

    /// The delays recorded in the window, in whole ms.
    pub fn delays(&self) -> Histogram<u64> {
        self.delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads and counts what arrives on `conn` until the connection ends (or
    /// the task is aborted at the end of the run).
    pub(super) async fn follow(&self, mut conn: Conn) {
        while let Ok(opcode) = conn.read_frame().await {
            match opcode {
                OPCODE_TEXT => self.count(conn.payload()),
                OPCODE_CLOSE => break,
                _ => {}
            }
        }
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one text message, and times it if it is a reading in the window.
    fn count(&self, payload: &[u8]) {
        let counter = if payload.starts_with(READING) {
            if self.measuring.load(Ordering::Relaxed)
                && let Some(at) = json_number(payload, "at_ms")
            {
                let delay = now_ms().saturating_sub(at);
                let mut delays =
                    self.delays.lock().unwrap_or_else(|e| e.into_inner());
                let _ = delays.record(delay);
            }
            &self.readings
        } else if payload.starts_with(SNAPSHOT) {
            &self.snapshots
        } else {
            &self.others
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
