//! The statistics the report is made of, in one place: medians over the rounds,
//! latency histograms, and the millisecond clock the readings carry.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// The median of `values` (of an even count, the upper middle one); NaN if there
/// are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The runs of each server (or setting) over the rounds, from which the report
/// takes medians.
pub struct Runs<K, R> {
    by_key: BTreeMap<K, Vec<R>>,
}

impl<K: Ord, R> Runs<K, R> {
    pub fn new() -> Runs<K, R> {
        Runs {
            by_key: BTreeMap::new(),
        }
    }

    /// Adds one round's run of `key`.
    pub fn push(&mut self, key: K, run: R) {
        self.by_key.entry(key).or_default().push(run);
    }

    /// Every round's run of `key`, in the order they ran.
    pub fn all(&self, key: K) -> Vec<&R> {
        self.by_key.get(&key).into_iter().flatten().collect()
    }

    /// The median over the rounds of one measure (`field`) of `key`'s runs.
    pub fn median(&self, key: K, field: impl Fn(&R) -> f64) -> f64 {
        median(self.by_key.get(&key).into_iter().flatten().map(field))
    }
}

/// An empty latency histogram, to three significant figures like every one in the
/// report.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are in range")
}

/// Milliseconds since the Unix epoch: the clock of the readings' `at_ms`, against
/// which the client times their delay (server and client share the machine, hence
/// the clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A random number in [0, 1), different in every call: std's `RandomState` is
/// seeded at random, so it serves where no more than an unpredictable phase is
/// needed.
pub fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(now_ms());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
