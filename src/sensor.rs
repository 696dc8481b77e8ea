//! A simulated set of sensors, and a pacer that produces samples at a set rate.
//!
//! The values follow slow sine waves, so they look alive on a chart and are the
//! same on every run: tests can rely on them without a random seed.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};

use crate::protocol::{RECENT, Reading, SensorState};

/// One value of one sensor, as the simulator produces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Counts every sample the simulator has produced, across sensors, from 1, so
    /// a gap in the sequence is a sample that was missed.
    pub seq: u64,
    /// The sensor's name, such as `sensor-1`.
    pub sensor: String,
    /// The sensor's position in [`Simulator::sensors`], from 0.
    #[serde(skip)]
    pub index: usize,
    /// The value, with two decimals.
    pub value: f64,
}

/// Produces readings for `count` sensors in turn.
#[derive(Debug)]
pub struct Simulator {
    names: Vec<String>,
    seq: u64,
}

impl Simulator {
    /// A simulator for `count` sensors named `sensor-1`, `sensor-2`, and so on;
    /// at least one.
    pub fn new(count: usize) -> Self {
        let names = (1..=count.max(1)).map(|i| format!("sensor-{i}")).collect();
        Self { names, seq: 0 }
    }

    /// The sensors' names, in the order they take turns.
    pub fn sensors(&self) -> &[String] {
        &self.names
    }

    /// The value sensor `index` (from 0) swings around: its readings stay within
    /// 3 of it.
    pub fn baseline(index: usize) -> f64 {
        20.0 + 5.0 * index as f64
    }

    /// A sensor's alert threshold until someone changes it: a little above its
    /// usual values.
    pub fn default_threshold(index: usize) -> f64 {
        Self::baseline(index) + 2.5
    }

    /// The next sample, round-robin over the sensors.
    pub fn next_sample(&mut self) -> Sample {
        self.seq += 1;
        let index = (self.seq - 1) as usize % self.names.len();
        let round = ((self.seq - 1) / self.names.len() as u64) as f64;
        // Each sensor has its own base value and phase; two decimals, like a real
        // device.
        let phase = index as f64 * 0.7;
        let raw = Self::baseline(index) + 3.0 * (round / 25.0 + phase).sin();
        Sample {
            seq: self.seq,
            sensor: self.names[index].clone(),
            index,
            value: (raw * 100.0).round() / 100.0,
        }
    }

    /// Hands `rate` samples a second to `record`, for as long as the server runs.
    pub async fn run(mut self, rate: f64, mut record: impl FnMut(Sample)) {
        let mut pacer = Pacer::new(rate);
        loop {
            for _ in 0..pacer.due().await {
                record(self.next_sample());
            }
        }
    }
}

/// What a server knows of one sensor: its latest value, its alert threshold, and
/// its last [`RECENT`] values for a new page's charts.
#[derive(Debug, Clone)]
pub struct Sensor {
    name: String,
    value: Option<f64>,
    threshold: f64,
    /// Oldest first.
    recent: VecDeque<f64>,
}

impl Sensor {
    /// Sensor number `index` of the [`Simulator`] (from 0), called `name`, with
    /// its default threshold and no reading yet.
    pub fn new(index: usize, name: String) -> Self {
        Self {
            name,
            value: None,
            threshold: Simulator::default_threshold(index),
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    /// A sensor as a snapshot showed it (lesson 10 loads them from Redis).
    pub fn from_state(state: SensorState) -> Self {
        let mut recent: VecDeque<f64> = state.recent.into();
        while recent.len() > RECENT {
            recent.pop_front();
        }
        Self {
            name: state.sensor,
            value: state.value,
            threshold: state.threshold,
            recent,
        }
    }

    /// The name that clients use for this sensor in their requests
    /// (`sensor-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records a new value as change number `seq`, and returns the reading to
    /// send.
    pub fn record(&mut self, value: f64, seq: u64, at_ms: u64) -> Reading {
        self.value = Some(value);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        Reading {
            seq,
            sensor: self.name.clone(),
            value,
            alert: value > self.threshold,
            at_ms,
        }
    }

    /// The value above which a reading raises an alert.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Changes the alert threshold, for the readings recorded from now on; the
    /// caller checks it against `protocol::THRESHOLD_RANGE`.
    pub fn set_threshold(&mut self, threshold: f64) {
        self.threshold = threshold;
    }

    /// The sensor as a snapshot shows it.
    pub fn state(&self) -> SensorState {
        SensorState {
            sensor: self.name.clone(),
            value: self.value,
            threshold: self.threshold,
            recent: self.recent.iter().copied().collect(),
        }
    }
}

/// Paces a producer at `rate` items per second.
///
/// Timers tick at most about once a millisecond, so a fast producer works in
/// batches: [`Pacer::due`] waits for the next tick and says how many items are
/// due by then. Over time the count matches the rate exactly, whatever the tick
/// granularity.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    start: Instant,
    produced: u64,
    ticks: tokio::time::Interval,
}

impl Pacer {
    /// `rate` must be positive and finite.
    pub fn new(rate: f64) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        let period =
            Duration::from_secs_f64(1.0 / rate).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval(period);
        // A producer that fell behind (a busy machine) catches up in one larger
        // batch.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            rate,
            start: Instant::now(),
            produced: 0,
            ticks,
        }
    }

    /// Waits for the next tick and returns how many items are due (possibly
    /// zero).
    pub async fn due(&mut self) -> u64 {
        self.ticks.tick().await;
        let target = (self.start.elapsed().as_secs_f64() * self.rate) as u64;
        let due = target.saturating_sub(self.produced);
        self.produced += due;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_numbered_and_round_robin() {
        let mut sim = Simulator::new(3);
        let names: Vec<_> = (0..4).map(|_| sim.next_sample()).collect();
        assert_eq!(names[0].seq, 1);
        assert_eq!(names[0].sensor, "sensor-1");
        assert_eq!(names[2].sensor, "sensor-3");
        assert_eq!(names[3].sensor, "sensor-1");
        assert_eq!(names[3].seq, 4);
    }
}
