//! The dashboard's shared state: what every sensor reads now, and the channel of
//! changes that carries each change, serialized once, to every connection.
//! Lesson 08 includes this file as it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use ws_lessons::protocol::{
    ClientMessage, ServerMessage, THRESHOLD_RANGE, unix_ms,
};
use ws_lessons::sensor::Sensor;

// ANCHOR: state
/// The sensors, and the channel of changes to them.
pub struct Dashboard {
    state: Mutex<Sensors>,
    changes: broadcast::Sender<Change>,
    /// Every resync so far, for `GET /stats`.
    resyncs: AtomicU64,
    /// The changes missed, summed over every resync.
    missed_changes: AtomicU64,
}

/// Each `Sensor` (in `src/sensor.rs`) holds its latest value, its threshold and
/// its recent values, for a new page's charts.
struct Sensors {
    /// The number of the last change; every reading and threshold change gets
    /// the next one.
    seq: u64,
    sensors: Vec<Sensor>,
}

/// A change, serialized once: cloning it for a thousand clients clones a
/// reference count, not the text.
#[derive(Clone, Debug)]
pub struct Change {
    /// The change's number, which the client keeps as its `last_seq` to
    /// skip changes a snapshot already covered.
    pub seq: u64,
    /// Which sensor changed, so that a client can skip the sensors it does not
    /// follow without parsing the JSON.
    pub sensor: usize,
    /// Threshold changes go to every client; readings only to those that
    /// follow the sensor.
    pub for_everyone: bool,
    /// The message, as sent.
    pub json: Utf8Bytes,
}
// ANCHOR_END: state

// ANCHOR: subscription
/// A new client's starting point.
pub struct Subscription {
    /// Every change after the snapshot.
    pub changes: broadcast::Receiver<Change>,
    /// The number of the last change the snapshot includes.
    pub seq: u64,
    /// The `snapshot` message to send first.
    pub snapshot: Utf8Bytes,
}

/// A fresh start for a client that fell behind.
pub struct Resync {
    /// The number of the last change the snapshot includes.
    pub seq: u64,
    /// The changes the client never received.
    pub missed: u64,
    /// The `snapshot` message, which says how many changes were missed.
    pub snapshot: Utf8Bytes,
}

impl Dashboard {
    /// A client's receiver and its snapshot are taken under one lock, so no
    /// change falls between them, and none arrives twice.
    pub fn subscribe(&self) -> Subscription {
        let state = self.lock();
        Subscription {
            changes: self.changes.subscribe(),
            seq: state.seq,
            snapshot: state.snapshot(0),
        }
    }

    /// A snapshot for a client whose last change was `last_seq`; counted in
    /// [`Dashboard::resync_stats`].
    pub fn resync(&self, last_seq: u64) -> Resync {
        let state = self.lock();
        let missed = state.seq.saturating_sub(last_seq);
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        self.missed_changes.fetch_add(missed, Ordering::Relaxed);
        Resync {
            seq: state.seq,
            missed,
            snapshot: state.snapshot(missed),
        }
    }
}
// ANCHOR_END: subscription

// ANCHOR: resync_stats
/// What `GET /stats` says about clients that fell behind: how often the
/// dashboard resynchronised one, and how much they missed in all.
#[derive(Debug, Serialize)]
pub struct ResyncStats {
    /// Clients resynchronised with a fresh snapshot, having fallen more than
    /// the channel holds (`--queue`) behind; a client that falls behind twice
    /// counts twice.
    resyncs: u64,
    /// The changes those clients never received, summed over every resync.
    missed_changes: u64,
}

impl Dashboard {
    /// The resyncs so far, for `GET /stats`.
    pub fn resync_stats(&self) -> ResyncStats {
        ResyncStats {
            resyncs: self.resyncs.load(Ordering::Relaxed),
            missed_changes: self.missed_changes.load(Ordering::Relaxed),
        }
    }
}
// ANCHOR_END: resync_stats

impl Sensors {
    fn snapshot(&self, missed: u64) -> Utf8Bytes {
        let sensors = self.sensors.iter().map(Sensor::state).collect();
        let seq = self.seq;
        let snapshot = ServerMessage::Snapshot {
            seq,
            missed,
            sensors,
        };
        snapshot.to_json().into()
    }
}

impl Dashboard {
    /// A dashboard of the sensors called `names`, whose clients may fall `queue`
    /// changes behind (rounded up to a power of two by tokio) before they are
    /// resynchronised.
    pub fn new(names: &[String], queue: usize) -> Self {
        let sensors = names
            .iter()
            .enumerate()
            .map(|(index, name)| Sensor::new(index, name.clone()))
            .collect();
        let (changes, _) = broadcast::channel(queue.max(1));
        Self {
            state: Mutex::new(Sensors { seq: 0, sensors }),
            changes,
            resyncs: AtomicU64::new(0),
            missed_changes: AtomicU64::new(0),
        }
    }

    /// The lock is held for one change and its serialization, never across an
    /// `.await`, so a `std::sync::Mutex` is right here (and cheaper than
    /// tokio's). No panic can leave the state half-changed, so a poisoned lock is
    /// still usable.
    fn lock(&self) -> MutexGuard<'_, Sensors> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many sensors there are: fixed at start-up, so a client's list of
    /// subscriptions can be sized once.
    pub fn sensor_count(&self) -> usize {
        self.lock().sensors.len()
    }

    // ANCHOR: publish
    /// Records a change to sensor number `sensor` and broadcasts it, serialized
    /// once, under the lock: changes reach the channel in the order of their
    /// numbers. A sensor that does not exist changes nothing, and uses no number.
    fn publish(
        &self,
        sensor: usize,
        change: impl FnOnce(&mut Sensor, u64) -> (ServerMessage, bool),
    ) {
        let mut state = self.lock();
        let Sensors { seq, sensors } = &mut *state;
        let Some(target) = sensors.get_mut(sensor) else {
            return;
        };
        *seq += 1;
        let (message, for_everyone) = change(target, *seq);
        let json = message.to_json().into();
        let seq = *seq;
        // `send` fails only when no client is connected; the state is up to date
        // regardless.
        let _ = self.changes.send(Change {
            seq,
            sensor,
            for_everyone,
            json,
        });
    }
    // ANCHOR_END: publish

    /// Records a new reading of sensor number `sensor` (from 0).
    pub fn record_reading(&self, sensor: usize, value: f64) {
        let at_ms = unix_ms();
        self.publish(sensor, |state, seq| {
            let reading = state.record(value, seq, at_ms);
            (ServerMessage::Reading(reading), false)
        });
    }

    fn set_threshold(&self, sensor: usize, threshold: f64) {
        self.publish(sensor, |state, seq| {
            state.set_threshold(threshold);
            let sensor = state.name().to_owned();
            let change = ServerMessage::Threshold {
                seq,
                sensor,
                threshold,
            };
            (change, true)
        });
    }

    /// The index of the sensor called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        self.lock().sensors.iter().position(|s| s.name() == name)
    }
}

// ANCHOR: answer
impl Dashboard {
    /// Carries out one request from a client and says how it went. `following` is
    /// that client's subscriptions, one flag per sensor. Nothing a client sends
    /// can panic here or change another client's subscriptions; bad input gets an
    /// `error`.
    pub fn answer(&self, text: &str, following: &mut [bool]) -> ServerMessage {
        let request = match ClientMessage::parse(text) {
            Ok(request) => request,
            Err(message) => return ServerMessage::Error { id: None, message },
        };
        let id = request.id();
        let result = match request {
            ClientMessage::Subscribe { sensors, .. } => {
                self.follow(&sensors, following, true)
            }
            ClientMessage::Unsubscribe { sensors, .. } => {
                self.follow(&sensors, following, false)
            }
            ClientMessage::SetThreshold {
                sensor, threshold, ..
            } => self.change_threshold(&sensor, threshold),
        };
        match result {
            Ok(()) => ServerMessage::Ack { id },
            Err(message) => ServerMessage::Error {
                id: Some(id),
                message,
            },
        }
    }
    // ANCHOR_END: answer

    fn change_threshold(
        &self,
        sensor: &str,
        threshold: f64,
    ) -> Result<(), String> {
        let index = self
            .find(sensor)
            .ok_or_else(|| format!("unknown sensor {sensor:?}"))?;
        if !THRESHOLD_RANGE.contains(&threshold) {
            let (low, high) = (THRESHOLD_RANGE.start(), THRESHOLD_RANGE.end());
            return Err(format!(
                "threshold {threshold} is out of range ({low} to {high})"
            ));
        }
        self.set_threshold(index, threshold);
        Ok(())
    }

    /// Follows or stops following `sensors`: all of them, or none if one is
    /// unknown.
    fn follow(
        &self,
        sensors: &[String],
        following: &mut [bool],
        on: bool,
    ) -> Result<(), String> {
        let indices = sensors
            .iter()
            .map(|name| {
                self.find(name)
                    .ok_or_else(|| format!("unknown sensor {name:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for index in indices {
            if let Some(flag) = following.get_mut(index) {
                *flag = on;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ws_lessons::protocol::RECENT;

    use super::*;

    fn one_sensor() -> Dashboard {
        Dashboard::new(&["sensor-1".to_owned()], 8)
    }

    #[test]
    fn a_change_is_serialized_once_for_every_client() {
        let dashboard = one_sensor();
        let mut first = dashboard.subscribe().changes;
        let mut second = dashboard.subscribe().changes;
        dashboard.record_reading(0, 21.5);
        let (a, b) = (first.try_recv().unwrap(), second.try_recv().unwrap());
        // Not two equal strings: one buffer, shared.
        assert_eq!(a.json.as_str().as_ptr(), b.json.as_str().as_ptr());
        assert!(a.json.as_str().starts_with(r#"{"type":"reading","seq":1,"#));
    }

    #[test]
    fn a_resync_counts_every_change_since_the_last_one_seen() {
        let dashboard = one_sensor();
        let start = dashboard.subscribe().seq;
        for value in 0..5 {
            dashboard.record_reading(0, f64::from(value));
        }
        let resync = dashboard.resync(start + 2);
        assert_eq!((resync.seq, resync.missed), (start + 5, 3));
        assert!(resync.snapshot.as_str().contains(r#""missed":3"#));
        let stats = dashboard.resync_stats();
        assert_eq!((stats.resyncs, stats.missed_changes), (1, 3));
    }

    #[test]
    fn a_change_to_an_unknown_sensor_uses_no_sequence_number() {
        let dashboard = one_sensor();
        let mut changes = dashboard.subscribe().changes;
        dashboard.record_reading(7, 1.0);
        dashboard.record_reading(0, 2.0);
        // A gap here would make every client report a change it never missed.
        assert_eq!(changes.try_recv().unwrap().seq, 1);
        assert_eq!(dashboard.resync(1).missed, 0);
    }

    #[test]
    fn a_snapshot_carries_the_recent_values_for_the_charts() {
        let dashboard = one_sensor();
        for value in 0..RECENT + 10 {
            dashboard.record_reading(0, value as f64);
        }
        let snapshot = dashboard.subscribe().snapshot;
        let Ok(ServerMessage::Snapshot { sensors, .. }) =
            serde_json::from_str(&snapshot)
        else {
            panic!("not a snapshot: {snapshot}");
        };
        let recent = &sensors[0].recent;
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.first(), Some(&10.0));
        assert_eq!(recent.last(), Some(&(RECENT as f64 + 9.0)));
    }
}
