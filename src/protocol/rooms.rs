//! Lesson 09's messages: rooms, presence, and notices to one user.
//!
//! | direction | `type` | when |
//! | --- | --- | --- |
//! | client → server | `join` | join a room (a site) |
//! | client → server | `leave` | leave it |
//! | client → server | `notify` | send a notice to every tab of a user |
//! | server → client | `snapshot` | the room's state, on join and after falling behind |
//! | server → client | `reading` | a new reading in a room the client is in |
//! | server → client | `presence` | who is in a room, after someone joined or left |
//! | server → client | `left` | the client has left a room: nothing more from it |
//! | server → client | `notice` | a notice from another user |
//! | server → client | `sent` | a notice reached every tab of its user |
//! | server → client | `error` | a request failed; the connection stays |
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
    /// Join a room: a snapshot of it comes back, then its changes.
    Join {
        /// The room's name, such as `site-1`.
        room: String,
    },
    /// Leave a room: `left` comes back, and nothing of the room after it.
    Leave {
        /// The room's name.
        room: String,
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
        /// The room's changes this client missed before this snapshot.
        missed: u64,
        /// Who is in the room, sorted, each user once.
        users: Vec<String>,
        /// The room's sensors.
        sensors: Vec<SensorState>,
    },
    /// A new reading in a room; its `seq` counts the room's changes.
    Reading {
        /// The room.
        room: String,
        /// The reading, as lesson 05 sends it.
        #[serde(flatten)]
        reading: Reading,
    },
    /// Who is in a room now: sent to its members when someone joins or leaves.
    Presence {
        /// The room.
        room: String,
        /// Sorted, each user once however many tabs they have open.
        users: Vec<String>,
    },
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
        /// How many connections (tabs) it was handed to.
        tabs: usize,
    },
    /// A request failed; the connection stays open.
    Error {
        /// What was wrong, for a person to read.
        message: String,
    },
}
// ANCHOR_END: messages

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
