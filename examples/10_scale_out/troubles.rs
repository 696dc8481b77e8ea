//! What went wrong between this instance and Redis, counted: for `GET /stats`,
//! where tests and the bench read it, while the log says the same for people.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

// ANCHOR: troubles
/// Counts of what went wrong with Redis, reported by `GET /stats` beside
/// lesson 09's gauges. Logs say the same for people; tests and the bench read
/// these.
#[derive(Default)]
pub struct Troubles {
    /// Times Redis became unreachable.
    pub outages: AtomicU64,
    /// Readings the producer could not store, and so never numbered.
    pub unstored: AtomicU64,
    /// Rooms reloaded from Redis after a gap in their stream.
    pub reloads: AtomicU64,
    /// Stream entries that this lesson did not write, skipped.
    pub skipped: AtomicU64,
}
// ANCHOR_END: troubles

/// [`Troubles`] as `GET /stats` reports them.
#[derive(Serialize)]
pub struct TroubleCounts {
    outages: u64,
    unstored: u64,
    reloads: u64,
    skipped: u64,
}

impl Troubles {
    /// A copy of the counts as they are now, for `GET /stats` to serialize.
    pub fn counts(&self) -> TroubleCounts {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TroubleCounts {
            outages: count(&self.outages),
            unstored: count(&self.unstored),
            reloads: count(&self.reloads),
            skipped: count(&self.skipped),
        }
    }
}

/// Adds one to a [`Troubles`] counter.
pub fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
