//! The live dashboard's wire protocol, defined once for the server
//! (`05_dashboard`, and `08_production`, which hardens it), the Rust client
//! (`06_client`), the long-polling feed (`07_long_polling`) and the tests.
//!
//! Every message is a JSON object in a text frame, with a `"type"` field that
//! names it:
//!
//! | direction | `type` | when |
//! | --- | --- | --- |
//! | server → client | `snapshot` | on connect, and after falling behind |
//! | server → client | `reading` | a new reading of a followed sensor |
//! | server → client | `threshold` | a threshold changed (sent to all) |
//! | server → client | `ack` | a request was carried out |
//! | server → client | `error` | a request failed; the connection stays |
//! | client → server | `subscribe` | follow these sensors too |
//! | client → server | `unsubscribe` | stop following these sensors |
//! | client → server | `set_threshold` | change a threshold, for everyone |
//!
//! Sequence numbers (`seq`) count every change on the server, readings and
//! thresholds alike, so a client can tell whether it missed one.
//!
//! Lesson 09's rooms add messages of their own, in [`rooms`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod rooms;

/// The smallest and largest alert threshold a client may set.
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<f64> = -1000.0..=1000.0;

// ANCHOR: server
/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Every sensor's state as of change `seq`. `missed` counts the changes this
    /// client did not receive before this snapshot: zero on connect, more after
    /// it fell behind.
    Snapshot {
        /// The number of the last change this snapshot includes.
        seq: u64,
        /// Changes this client missed before this snapshot.
        missed: u64,
        /// Every sensor, in the server's order.
        sensors: Vec<SensorState>,
    },
    /// A new reading of a sensor.
    Reading(Reading),
    /// A sensor's alert threshold changed.
    Threshold {
        /// The number of this change, in the same numbering as readings.
        seq: u64,
        /// The sensor's name, such as `sensor-1`.
        sensor: String,
        /// The new threshold.
        threshold: f64,
    },
    /// The request with this `id` was carried out.
    Ack {
        /// The `id` the client gave the request.
        id: u64,
    },
    /// A message could not be carried out; the connection stays open.
    Error {
        /// The request's `id`, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// What was wrong, for a person to read.
        message: String,
    },
}

// ANCHOR_END: server

// ANCHOR: reading
/// One reading of one sensor: a `reading` message on the WebSocket, and an item
/// of a long-polling answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The number of this change: one more than the change before it, across
    /// every sensor, so that a gap is a change missed.
    pub seq: u64,
    /// The sensor's name, such as `sensor-1`.
    pub sensor: String,
    /// The value read, with two decimals.
    pub value: f64,
    /// True when `value` is above the sensor's alert threshold.
    pub alert: bool,
    /// The server's clock when the reading was taken, in milliseconds since the
    /// Unix epoch (see [`unix_ms`]).
    pub at_ms: u64,
}

/// One sensor, as a snapshot shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    /// The sensor's name, such as `sensor-1`.
    pub sensor: String,
    /// The latest value, or `None` before the first reading.
    pub value: Option<f64>,
    /// Readings above this raise an alert.
    pub threshold: f64,
    /// The latest values, oldest first (at most [`RECENT`]), so that a new page
    /// can draw its charts at once.
    #[serde(default)]
    pub recent: Vec<f64>,
}
// ANCHOR_END: reading

/// How many recent values a snapshot carries for each sensor.
pub const RECENT: usize = 60;

// ANCHOR: client
/// What a client sends. `id` is any number the client chooses; the `ack` or
/// `error` that answers the request carries it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Follow these sensors too.
    Subscribe {
        /// Chosen by the client, echoed in the answer.
        id: u64,
        /// Sensor names.
        sensors: Vec<String>,
    },
    /// Stop following these sensors.
    Unsubscribe {
        /// Chosen by the client, echoed in the answer.
        id: u64,
        /// Sensor names.
        sensors: Vec<String>,
    },
    /// Change a sensor's alert threshold, for every client.
    SetThreshold {
        /// Chosen by the client, echoed in the answer.
        id: u64,
        /// The sensor's name.
        sensor: String,
        /// The new threshold, within [`THRESHOLD_RANGE`].
        threshold: f64,
    },
}
// ANCHOR_END: client

impl ClientMessage {
    /// The request's `id`, which its answer carries back.
    pub fn id(&self) -> u64 {
        match self {
            Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::SetThreshold { id, .. } => *id,
        }
    }

    /// Parses a text frame, with an error message fit to send back to the client.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse(text)
    }
}

/// Parses a client's text frame as `T`, with an error message fit to send back:
/// `invalid JSON: …` or `invalid message: …`.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                format!("invalid JSON: {e}")
            }
            Category::Data => format!("invalid message: {e}"),
        }
    })
}

impl ServerMessage {
    /// This message as the text of one WebSocket text frame.
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and lists always serialize (a NaN becomes
        // null).
        serde_json::to_string(self).expect("a ServerMessage always serializes")
    }
}

/// Milliseconds since the Unix epoch, as [`Reading::at_ms`] carries them.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// What `GET /poll?after=SEQ` answers (lesson 07): the readings after `SEQ`,
/// oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollResponse {
    /// The readings, each tagged `"type":"reading"` exactly as on the WebSocket,
    /// so one parser reads both feeds.
    #[serde(with = "tagged_readings")]
    pub readings: Vec<Reading>,
    /// What to pass as `after` in the next poll: the last reading's `seq`, or the
    /// same `after` again when the poll timed out with nothing new.
    pub next: u64,
    /// Readings after `after` that the server no longer holds, so this answer
    /// cannot include them: zero unless the client polled too seldom.
    pub missed: u64,
}

/// The body of a `400 Bad Request` from the long-polling feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollError {
    /// What was wrong with the request.
    pub error: String,
}

/// Readings as a list of `reading` messages: `{"type":"reading",...}`.
mod tagged_readings {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Reading;

    pub fn serialize<S: Serializer>(
        readings: &[Reading],
        to: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Tagged<'a> {
            Reading(&'a Reading),
        }
        to.collect_seq(readings.iter().map(Tagged::Reading))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        from: D,
    ) -> Result<Vec<Reading>, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Tagged {
            Reading(Reading),
        }
        let tagged = Vec::<Tagged>::deserialize(from)?;
        Ok(tagged.into_iter().map(|Tagged::Reading(r)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(seq: u64) -> Reading {
        Reading {
            seq,
            sensor: "sensor-1".into(),
            value: 21.5,
            alert: false,
            at_ms: 7,
        }
    }

    #[test]
    fn a_reading_reads_the_same_in_the_stream_and_in_a_poll() {
        let message = ServerMessage::Reading(reading(3)).to_json();
        let poll = PollResponse {
            readings: vec![reading(3)],
            next: 3,
            missed: 0,
        };
        let poll = serde_json::to_string(&poll).unwrap();
        assert!(
            message.starts_with(r#"{"type":"reading","seq":3,"#),
            "{message}"
        );
        assert!(poll.contains(&message), "{poll}");
        let back: PollResponse = serde_json::from_str(&poll).unwrap();
        assert_eq!(back.readings, vec![reading(3)]);
    }

    #[test]
    fn client_errors_say_what_was_wrong() {
        let invalid = ClientMessage::parse("{not json").unwrap_err();
        assert!(invalid.starts_with("invalid JSON: "), "{invalid}");
        let unknown =
            ClientMessage::parse(r#"{"type":"dance","id":1}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `dance`"), "{unknown}");
        let missing = ClientMessage::parse(r#"{"type":"set_threshold","id":1}"#)
            .unwrap_err();
        assert!(missing.contains("missing field"), "{missing}");
    }
}
