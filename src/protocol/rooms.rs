//! Lesson 09's messages: rooms, presence, and notices to one user.
//!
//! | direction | `type` | when |
//! | --- | --- | --- |
//! | client → server | `join` | join a room (a site), or rejoin after `seq` |
//! | client → server | `leave` | leave it |
//! | client → server | `set_threshold` | change a sensor's threshold, for everyone |
//! | client → server | `notify` | send a notice to every tab of a user |
//! | server → client | `snapshot` | the room's state, on join and after falling behind |
//! | server → client | `joined` | a rejoin: the changes after `after` follow |
//! | server → client | `reading` | a new reading in a room the client is in |
//! | server → client | `threshold` | a threshold changed in a room the client is in |
//! | server → client | `presence` | who is in a room, after someone joined or left |
//! | server → client | `left` | the client has left a room: nothing more from it |
//! | server → client | `notice` | a notice from another user |
//! | server → client | `sent` | a notice reached every tab of its user |
//! | server → client | `error` | a request failed; the connection stays |
//! | server → client | `paused`, `resumed` | updates stopped, and started again (lesson 10) |
//!
//! `seq` counts one room's changes, so a client in several rooms keeps one
//! count for each.

use serde::{Deserialize, Serialize};

use super::{Reading, SensorState};

// ANCHOR: requests
/// What a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomRequest {
    /// Join a room: a snapshot of it comes back, then its changes. With
    /// `after`, a client that was in the room until change `after` asks for the
    /// changes since instead: `joined`, then those changes, or a snapshot whose
    /// `missed` counts those the server cannot replay.
    Join {
        /// The room's name, such as `site-1`.
        room: String,
        /// The last change of the room the client has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// The numbering `after` belongs to, as the last `snapshot` or
        /// `joined` gave it: a server that numbers anew (it restarted, or
        /// its Redis lost its data) answers with a snapshot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
    },
    /// Leave a room: `left` comes back, and nothing of the room after it.
    Leave {
        /// The room's name.
        room: String,
    },
    /// Change a sensor's alert threshold, for everyone in the room.
    SetThreshold {
        /// The room.
        room: String,
        /// The sensor's name, such as `sensor-1`.
        sensor: String,
        /// The new threshold, within `THRESHOLD_RANGE`.
        threshold: f64,
    },
    /// Send `text` to every open connection of `user`.
    Notify {
        /// The user's name.
        user: String,
        /// What to say.
        text: String,
    },
}
// ANCHOR_END: requests

// ANCHOR: messages
/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomMessage {
    /// A room's state as of its change `seq`, sent on join and after the
    /// client fell behind; `missed` counts the room's changes the client did
    /// not receive.
    Snapshot {
        /// The room.
        room: String,
        /// The number of the room's last change this snapshot includes.
        seq: u64,
        /// The room's changes this client missed before this snapshot, in
        /// this numbering (`epoch`); a snapshot of a new numbering cannot
        /// count the changes of the old one.
        missed: u64,
        /// Names the numbering of `seq`: it changes when the server starts
        /// numbering anew, and a rejoin sends it back.
        epoch: String,
        /// Who is in the room, sorted, each user once.
        users: Vec<String>,
        /// The room's sensors.
        sensors: Vec<SensorState>,
    },
    /// The answer to a join with `after`: the room's changes after `after`
    /// follow, each once, in order.
    Joined {
        /// The room.
        room: String,
        /// The `after` of the join.
        after: u64,
        /// The numbering, as in `snapshot`.
        epoch: String,
    },
    /// A new reading in a room; its `seq` counts the room's changes.
    Reading {
        /// The room.
        room: String,
        /// The reading, as lesson 05 sends it.
        #[serde(flatten)]
        reading: Reading,
    },
    /// A sensor's threshold changed: one of the room's changes.
    Threshold {
        /// The room.
        room: String,
        /// The number of this change.
        seq: u64,
        /// The sensor's name.
        sensor: String,
        /// The new threshold.
        threshold: f64,
    },
    /// Who is in a room now: sent to its members when someone joins or leaves.
    Presence {
        /// The room.
        room: String,
        /// Sorted, each user once however many tabs they have open.
        users: Vec<String>,
    },
    // ANCHOR_END: messages
    // ANCHOR: messages_more
    /// The client has left the room; nothing of the room follows.
    Left {
        /// The room.
        room: String,
    },
    /// A notice sent to this client's user.
    Notice {
        /// Who sent it.
        from: String,
        /// What they said.
        text: String,
    },
    /// A notice was handed to every open connection of its user.
    Sent {
        /// The user it was for.
        to: String,
        /// How many connections (tabs) it was handed to, when the server knows
        /// (lesson 09).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tabs: Option<usize>,
        /// How many server instances it was handed to, each for the tabs of the
        /// user that it serves (lesson 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instances: Option<usize>,
    },
    /// A request failed; the connection stays open.
    Error {
        /// What was wrong, for a person to read.
        message: String,
    },
    /// The server cannot take or pass on changes for now (lesson 10: Redis
    /// is unreachable). The connection stays open; `resumed` follows.
    Paused {
        /// Why, for a person to read.
        reason: String,
    },
    /// Changes flow again. Every room the client is in is brought up to date
    /// next: its missing changes, or a snapshot that counts them.
    Resumed,
}
// ANCHOR_END: messages_more

impl RoomMessage {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a RoomMessage always serializes")
    }

    /// An `error` message with this text.
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_in_a_room_is_lesson_05s_reading_with_the_room_first() {
        let reading = Reading {
            seq: 4,
            sensor: "sensor-1".into(),
            value: 21.5,
            alert: false,
            at_ms: 7,
        };
        let message = RoomMessage::Reading {
            room: "site-2".into(),
            reading,
        };
        let json = message.to_json();
        assert_eq!(
            json,
            r#"{"type":"reading","room":"site-2","seq":4,"sensor":"sensor-1","value":21.5,"alert":false,"at_ms":7}"#
        );
        assert_eq!(serde_json::from_str::<RoomMessage>(&json).unwrap(), message);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let parse = super::super::parse::<RoomRequest>;
        assert!(parse(r#"{"type":"join","room":"site-1","x":1}"#).is_err());
        assert!(parse(r#"{"type":"dance"}"#).is_err());
        assert_eq!(
            parse(r#"{"type":"leave","room":"site-1"}"#),
            Ok(RoomRequest::Leave {
                room: "site-1".into()
            })
        );
    }
}
