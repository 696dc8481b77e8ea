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

use serde::{Deserialize, Serialize};

/// A sensor's alert threshold until someone changes it: a little above its usual readings.
pub fn default_threshold(sensor: usize) -> f64 {
    crate::sensor::Simulator::baseline(sensor) + 2.5
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

#[cfg(test)]
mod tests {
    use super::*;

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
