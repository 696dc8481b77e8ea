//! The live dashboard's wire protocol, defined once for the server (`05_dashboard`), the
//! Rust client (`06_client`), the long-polling feed (`07_long_polling`) and the tests.
//!
//! Every message is a JSON object in a text frame, with a `"type"` field that names it:
//!
//! | direction | `type` | when |
//! | --- | --- | --- |
//! | server → client | `snapshot` | on connect, and to resynchronise a client that fell behind |
//! | server → client | `reading` | a new reading of a sensor the client follows |
//! | server → client | `threshold` | a sensor's alert threshold changed (every client gets it) |
//! | server → client | `ack` | a request was carried out |
//! | server → client | `error` | a message was not understood; the connection stays open |
//! | client → server | `subscribe` | follow these sensors too |
//! | client → server | `unsubscribe` | stop following these sensors |
//! | client → server | `set_threshold` | change a sensor's alert threshold, for everyone |
//!
//! Sequence numbers (`seq`) count every change on the server, readings and thresholds alike,
//! so a client can tell whether it missed one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::sensor::{Pacer, Simulator};

/// A sensor's alert threshold until someone changes it: a little above its usual readings.
pub fn default_threshold(sensor: usize) -> f64 {
    Simulator::baseline(sensor) + 2.5
}

/// What `GET /poll?after=SEQ` answers: the readings after `SEQ`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollResponse {
    /// `reading` messages, as the WebSocket feed sends them.
    pub readings: Vec<ServerMessage>,
    /// What to pass as `after` in the next poll: the last reading's `seq`, or the same
    /// `after` again when the poll timed out with nothing new.
    pub next: u64,
    /// Readings after `after` that the server no longer holds, so this answer cannot
    /// include them: zero unless the client polled too seldom.
    pub missed: u64,
}

/// The body of a `400 Bad Request` from the long-polling feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollError {
    pub error: String,
}

/// The smallest and largest alert threshold a client may set.
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<f64> = -1000.0..=1000.0;

// ANCHOR: protocol
/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Every sensor's state as of change `seq`. `missed` counts the changes this client did
    /// not receive before this snapshot: zero on connect, more after it fell behind.
    Snapshot {
        seq: u64,
        missed: u64,
        sensors: Vec<SensorState>,
    },
    /// A reading. `alert` is true when `value` is above the sensor's threshold; `at_ms` is the
    /// server's clock (milliseconds since the Unix epoch) when the reading was taken.
    Reading {
        seq: u64,
        sensor: String,
        value: f64,
        alert: bool,
        at_ms: u64,
    },
    /// A sensor's alert threshold changed.
    Threshold {
        seq: u64,
        sensor: String,
        threshold: f64,
    },
    /// The request with this `id` was carried out.
    Ack { id: u64 },
    /// A message could not be carried out; `id` is the request's, when it had one.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        message: String,
    },
}

/// One sensor, as a snapshot shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    pub sensor: String,
    /// The latest value, or `None` before the first reading.
    pub value: Option<f64>,
    pub threshold: f64,
}

/// What a client sends. `id` is any number the client chooses; the `ack` or `error` that
/// answers the request carries it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        id: u64,
        sensors: Vec<String>,
    },
    Unsubscribe {
        id: u64,
        sensors: Vec<String>,
    },
    SetThreshold {
        id: u64,
        sensor: String,
        threshold: f64,
    },
}

// ANCHOR_END: protocol

impl ClientMessage {
    pub fn id(&self) -> u64 {
        match self {
            Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::SetThreshold { id, .. } => *id,
        }
    }

    /// Parses a text frame, with an error message fit to send back to the client.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => format!("invalid JSON: {e}"),
                Category::Data => format!("invalid message: {e}"),
            }
        })
    }
}

impl ServerMessage {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and lists always serialize (a NaN becomes null).
        serde_json::to_string(self).expect("a ServerMessage always serializes")
    }
}

// ANCHOR: state
/// The dashboard server's state: what every sensor reads now, and the channel of changes.
/// Shared by the dashboard (lesson 05) and the production server (lesson 08).
pub struct Dashboard {
    state: Mutex<Sensors>,
    changes: broadcast::Sender<Change>,
}

struct Sensors {
    /// The number of the last change; every reading and threshold change gets the next one.
    seq: u64,
    sensors: Vec<SensorState>,
}

/// A change, serialized once. Cloning it for a thousand clients clones a reference count.
#[derive(Clone, Debug)]
pub struct Change {
    pub seq: u64,
    /// Which sensor changed, so that a client can skip sensors it does not follow without
    /// parsing the JSON.
    pub sensor: usize,
    /// Threshold changes go to every client; readings only to those that follow the sensor.
    pub for_everyone: bool,
    pub json: Utf8Bytes,
}
// ANCHOR_END: state

// ANCHOR: dashboard
impl Dashboard {
    /// A dashboard of the sensors called `names`, whose clients may fall `queue` changes
    /// behind before they are resynchronised.
    pub fn new(names: &[String], queue: usize) -> Self {
        let sensors = names
            .iter()
            .enumerate()
            .map(|(index, name)| SensorState {
                sensor: name.clone(),
                value: None,
                threshold: default_threshold(index),
            })
            .collect();
        let (changes, _) = broadcast::channel(queue.max(1));
        Self {
            state: Mutex::new(Sensors { seq: 0, sensors }),
            changes,
        }
    }

    /// The lock is only ever held for a few instructions, never across an `.await`, so a
    /// `std::sync::Mutex` is right here (and cheaper than tokio's). A panic while holding it
    /// cannot leave the state half-changed, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Sensors> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn sensor_count(&self) -> usize {
        self.lock().sensors.len()
    }

    /// A new client's starting point: a receiver for every change after the snapshot, the
    /// snapshot's `seq`, and the snapshot itself. Taken under one lock, so no change falls
    /// between them.
    pub fn subscribe(&self) -> (broadcast::Receiver<Change>, u64, Utf8Bytes) {
        let state = self.lock();
        let changes = self.changes.subscribe();
        let snapshot = Self::snapshot_json(&state, 0);
        (changes, state.seq, snapshot)
    }

    /// A snapshot for a client that last saw change `last_seq`, and the snapshot's `seq`.
    pub fn resync(&self, last_seq: u64) -> (u64, Utf8Bytes) {
        let state = self.lock();
        let missed = state.seq.saturating_sub(last_seq);
        (state.seq, Self::snapshot_json(&state, missed))
    }

    fn snapshot_json(state: &Sensors, missed: u64) -> Utf8Bytes {
        let snapshot = ServerMessage::Snapshot {
            seq: state.seq,
            missed,
            sensors: state.sensors.clone(),
        };
        snapshot.to_json().into()
    }

    /// Records a change and broadcasts it, serialized once, under the lock: changes reach the
    /// channel in the order of their numbers.
    fn publish(
        &self,
        sensor: usize,
        change: impl FnOnce(&mut SensorState, u64) -> (ServerMessage, bool),
    ) {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        let Some(sensor_state) = state.sensors.get_mut(sensor) else {
            return;
        };
        let (message, for_everyone) = change(sensor_state, seq);
        let json = message.to_json().into();
        // `send` fails only when no client is connected; the state is up to date regardless.
        let _ = self.changes.send(Change {
            seq,
            sensor,
            for_everyone,
            json,
        });
    }

    /// Records a new reading of sensor number `sensor` (from 0).
    pub fn record_reading(&self, sensor: usize, value: f64) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        self.publish(sensor, |state, seq| {
            state.value = Some(value);
            let reading = ServerMessage::Reading {
                seq,
                sensor: state.sensor.clone(),
                value,
                alert: value > state.threshold,
                at_ms,
            };
            (reading, false)
        });
    }

    fn set_threshold(&self, sensor: usize, threshold: f64) {
        self.publish(sensor, |state, seq| {
            state.threshold = threshold;
            let change = ServerMessage::Threshold {
                seq,
                sensor: state.sensor.clone(),
                threshold,
            };
            (change, true)
        });
    }

    /// Records `rate` simulated readings a second, for as long as the server runs.
    pub async fn simulate(self: Arc<Self>, mut simulator: Simulator, rate: f64) {
        let mut pacer = Pacer::new(rate);
        loop {
            for _ in 0..pacer.due().await {
                let (sensor, reading) = simulator.next_indexed();
                self.record_reading(sensor, reading.value);
            }
        }
    }

    /// The index of the sensor called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        self.lock().sensors.iter().position(|s| s.sensor == name)
    }
}
// ANCHOR_END: dashboard

// ANCHOR: answer
impl Dashboard {
    /// Carries out one request from a client and says how it went. `following` is that
    /// client's subscriptions, one flag per sensor. Nothing a client sends can panic here or
    /// change another client's subscriptions; bad input gets an `error`.
    pub fn answer(&self, text: &str, following: &mut [bool]) -> ServerMessage {
        let request = match ClientMessage::parse(text) {
            Ok(request) => request,
            Err(message) => return ServerMessage::Error { id: None, message },
        };
        let id = request.id();
        let result = match request {
            ClientMessage::Subscribe { sensors, .. } => self.follow(&sensors, following, true),
            ClientMessage::Unsubscribe { sensors, .. } => self.follow(&sensors, following, false),
            ClientMessage::SetThreshold {
                sensor, threshold, ..
            } => match (self.find(&sensor), THRESHOLD_RANGE.contains(&threshold)) {
                (None, _) => Err(format!("unknown sensor {sensor:?}")),
                (Some(_), false) => Err(format!(
                    "threshold {threshold} is out of range ({} to {})",
                    THRESHOLD_RANGE.start(),
                    THRESHOLD_RANGE.end()
                )),
                (Some(index), true) => {
                    self.set_threshold(index, threshold);
                    Ok(())
                }
            },
        };
        match result {
            Ok(()) => ServerMessage::Ack { id },
            Err(message) => ServerMessage::Error {
                id: Some(id),
                message,
            },
        }
    }

    /// Follows or stops following `sensors`: all of them, or none if one is unknown.
    fn follow(&self, sensors: &[String], following: &mut [bool], on: bool) -> Result<(), String> {
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
// ANCHOR_END: answer

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_serialized_once_for_every_client() {
        let dashboard = Dashboard::new(&["sensor-1".to_owned()], 8);
        let (mut first, ..) = dashboard.subscribe();
        let (mut second, ..) = dashboard.subscribe();
        dashboard.record_reading(0, 21.5);
        let (a, b) = (first.try_recv().unwrap(), second.try_recv().unwrap());
        // Not two equal strings: one buffer, shared.
        assert_eq!(a.json.as_str().as_ptr(), b.json.as_str().as_ptr());
        assert!(a.json.as_str().starts_with(r#"{"type":"reading","seq":1,"#));
    }

    #[test]
    fn a_resync_counts_every_change_since_the_last_one_seen() {
        let dashboard = Dashboard::new(&["sensor-1".to_owned()], 8);
        let (_, start, _) = dashboard.subscribe();
        for value in 0..5 {
            dashboard.record_reading(0, f64::from(value));
        }
        let (seq, snapshot) = dashboard.resync(start + 2);
        assert_eq!(seq, start + 5);
        assert!(
            snapshot.as_str().contains(r#""missed":3"#),
            "{}",
            snapshot.as_str()
        );
    }

    #[test]
    fn client_errors_say_what_was_wrong() {
        let invalid = ClientMessage::parse("{not json").unwrap_err();
        assert!(invalid.starts_with("invalid JSON: "), "{invalid}");
        let unknown = ClientMessage::parse(r#"{"type":"dance","id":1}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `dance`"), "{unknown}");
        let missing = ClientMessage::parse(r#"{"type":"set_threshold","id":1}"#).unwrap_err();
        assert!(missing.contains("missing field"), "{missing}");
    }
}
