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
//! | server → client | `ack` | a `set_threshold` with an `id` was taken |
//! | server → client | `error` | a request failed; the connection stays |
//! | server → client | `paused`, `resumed` | updates stopped, and started again (lesson 10) |
//!
//! `seq` counts one room's changes, so a client in several rooms keeps one
//! count for each.
//!
//! Every request may carry an `id`, any number the client chooses, as in
//! lesson 05. A request with an `id` gets exactly one answer that carries it
//! back: for a `join` its `snapshot` or `joined`, for a `leave` its `left`, for
//! a `notify` its `sent`, for a `set_threshold` an `ack`; or, if it failed, an
//! `error`. A request without one is answered as before: the same messages
//! without an `id`, and nothing for a `set_threshold` that went through.

use serde::{Deserialize, Serialize};

use super::{Reading, SensorState};

// ANCHOR: requests
/// What a client sends. `id`, when given, comes back in the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomRequest {
    /// Join a room: a snapshot of it comes back, then its changes. With
    /// `after`, a client that was in the room until change `after` asks for the
    /// changes since instead: `joined`, then those changes, or a snapshot whose
    /// `missed` counts those the server cannot replay.
    Join {
        /// Chosen by the client, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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
        /// Chosen by the client, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room's name.
        room: String,
    },
    /// Change a sensor's alert threshold, for everyone in the room: it comes
    /// back to every member as the room's next change, a `threshold`. With an
    /// `id`, an `ack` answers too, before or after that change.
    SetThreshold {
        /// Chosen by the client, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The room.
        room: String,
        /// The sensor's name, such as `sensor-1`.
        sensor: String,
        /// The new threshold, within `THRESHOLD_RANGE`.
        threshold: f64,
    },
    /// Send `text` to every open connection of `user`: `sent` answers.
    Notify {
        /// Chosen by the client, echoed in the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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
        /// The `id` of the request this answers, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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
        /// The `id` of the request this answers, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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
    // ANCHOR_END: messages
    // ANCHOR: messages_more
    /// Who is in a room now: sent to its members when someone joins or leaves.
    Presence {
        /// The room.
        room: String,
        /// Sorted, each user once however many tabs they have open.
        users: Vec<String>,
    },
    /// The client has left the room; nothing of the room follows.
    Left {
        /// The `id` of the request this answers, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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
        /// The `id` of the request this answers, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The user it was for.
        to: String,
        /// How many tabs it was handed to, when the server knows (lesson 09).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tabs: Option<usize>,
        /// How many server instances it was handed to, each for the tabs of the
        /// user that it serves (lesson 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instances: Option<usize>,
    },
    /// A `set_threshold` with this `id` was taken (it has no other answer).
    Ack {
        /// The request's `id`.
        id: u64,
    },
    /// A request failed; the connection stays open.
    Error {
        /// The request's `id`, when it had one that could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
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

    /// An `error` message with this text, about the request `id` if known.
    pub fn error(id: Option<u64>, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            message: message.into(),
        }
    }
}

impl RoomRequest {
    /// The request's `id`, which its answer carries back.
    pub fn id(&self) -> Option<u64> {
        match self {
            Self::Join { id, .. }
            | Self::Leave { id, .. }
            | Self::SetThreshold { id, .. }
            | Self::Notify { id, .. } => *id,
        }
    }

    /// Parses a text frame. A request that cannot be read (an unknown field,
    /// a missing one) still has its `id` read if it can be, so that the
    /// `error` that answers it says which request it is about.
    pub fn parse(text: &str) -> Result<Self, Unreadable> {
        super::parse(text).map_err(|message| {
            /// Only the `id`, of any object that has one.
            #[derive(Deserialize)]
            struct Id {
                id: Option<u64>,
            }
            let id = serde_json::from_str::<Id>(text).ok().and_then(|r| r.id);
            Unreadable { id, message }
        })
    }
}

/// A request that could not be read, as its `error` answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The request's `id`, if that much could be read.
    pub id: Option<u64>,
    /// What was wrong, fit to send back: `invalid JSON: …` or `invalid
    /// message: …`.
    pub message: String,
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
        let parse = RoomRequest::parse;
        assert!(parse(r#"{"type":"join","room":"site-1","x":1}"#).is_err());
        assert!(parse(r#"{"type":"dance"}"#).is_err());
        assert_eq!(
            parse(r#"{"type":"leave","room":"site-1"}"#),
            Ok(RoomRequest::Leave {
                id: None,
                room: "site-1".into()
            })
        );
    }

    #[test]
    fn an_unreadable_request_s_error_carries_its_id_if_it_has_one() {
        let error = |text| match RoomRequest::parse(text) {
            Err(Unreadable { id, .. }) => id,
            other => panic!("not an error: {other:?}"),
        };
        assert_eq!(error(r#"{"type":"join","id":7,"x":1}"#), Some(7));
        assert_eq!(error(r#"{"type":"dance","id":8}"#), Some(8));
        assert_eq!(error(r#"{"type":"join","x":1}"#), None);
        assert_eq!(error(r#"{"type":"join","id":"seven"}"#), None);
        assert_eq!(error("{not json"), None);
        let leave = RoomRequest::parse(r#"{"type":"leave","id":9,"room":"a"}"#);
        assert_eq!(leave.map(|request| request.id()), Ok(Some(9)));
    }
}
