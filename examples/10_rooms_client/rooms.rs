//! The rooms followed: a join for each, again with `after` on every
//! reconnection, and a check that every change follows the last.

use std::collections::BTreeMap;
use std::fmt::{self, Display};

use serde::Serialize;
use ws_lessons::protocol::SensorState;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};

use crate::events::{self, Shown};

/// Where the client is in a room: the last change it showed, and the
/// numbering that change belongs to, as the server's `snapshot` or `joined`
/// named it. A rejoin sends both back.
struct Position {
    /// The room's last change shown.
    seq: u64,
    /// The numbering of `seq`.
    epoch: String,
}

/// The rooms followed, and how far each one got.
pub struct Rooms {
    /// Each room, and where the client is in it: `None` before its first
    /// snapshot.
    rooms: BTreeMap<String, Option<Position>>,
    /// The joins this connection has not seen answered yet: their room, by
    /// the `id` the join carried.
    unanswered: BTreeMap<u64, String>,
    /// The `id` of the last request sent; each request has its own.
    last_id: u64,
}

impl Rooms {
    /// The rooms called `names`, none joined yet.
    pub fn new(names: &[String]) -> Self {
        Self {
            rooms: names.iter().map(|name| (name.clone(), None)).collect(),
            unanswered: BTreeMap::new(),
            last_id: 0,
        }
    }
}

// ANCHOR: joins
impl Rooms {
    /// A join for each room, on every connection: the first time plain, then
    /// with `after` and `epoch`, where the client is, so that the server (this
    /// one or another instance) sends the changes after it. Each has an `id`,
    /// which an `error` that refuses it carries back.
    pub fn joins(&mut self) -> Vec<RoomRequest> {
        self.unanswered.clear();
        let mut joins = Vec::new();
        for (room, position) in &self.rooms {
            self.last_id += 1;
            self.unanswered.insert(self.last_id, room.clone());
            let (id, room) = (Some(self.last_id), room.clone());
            let after = position.as_ref().map(|p| p.seq);
            let epoch = position.as_ref().map(|p| p.epoch.clone());
            joins.push(RoomRequest::Join {
                id,
                room,
                after,
                epoch,
            });
        }
        joins
    }

    /// Takes change `seq` of `room`, and reports a gap unless it is the next
    /// one. A change that comes again does not move the position back.
    fn check(&mut self, room: &str, seq: u64) {
        let Some(Some(position)) = self.rooms.get_mut(room) else {
            return;
        };
        let expected = position.seq + 1;
        if seq != expected {
            let room = room.to_owned();
            events::warn(&Gap {
                room,
                expected,
                got: seq,
            });
        }
        position.seq = position.seq.max(seq);
    }
    // ANCHOR_END: joins

    // ANCHOR: rooms
    /// Shows one message of the rooms' protocol; a refused join is an error.
    pub fn read(&mut self, text: &str) -> Result<(), String> {
        let message = match serde_json::from_str::<RoomMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("not a rooms message ({e}): {text}");
                return Ok(());
            }
        };
        match &message {
            RoomMessage::Snapshot {
                id,
                room,
                seq,
                epoch,
                ..
            }
            | RoomMessage::Joined {
                id,
                room,
                after: seq,
                epoch,
            } => {
                // Not a room this client follows: nothing to show.
                let Some(place) = self.rooms.get_mut(room) else {
                    return Ok(());
                };
                let position = Position {
                    seq: *seq,
                    epoch: epoch.clone(),
                };
                let known = place.replace(position);
                if known.is_some_and(|known| known.epoch != *epoch) {
                    events::show(&Renumbered { room: room.clone() });
                }
                if let Some(id) = id {
                    self.unanswered.remove(id);
                }
            }
            RoomMessage::Reading { room, reading } => {
                self.check(room, reading.seq)
            }
            RoomMessage::Threshold { room, seq, .. } => self.check(room, *seq),
            // ANCHOR_END: rooms
            // ANCHOR: room_others
            RoomMessage::Error { id, message: why } => {
                // Which join it refuses, if any: its `id` says.
                let refused = id.and_then(|id| self.unanswered.remove(&id));
                if let Some(room) = refused {
                    return Err(format!(
                        "the server refused to join {room}: {why}"
                    ));
                }
                events::warn(&Shown { message: &message });
                return Ok(());
            }
            // This client sends none of `leave`, `set_threshold`, `notify`.
            RoomMessage::Left { .. }
            | RoomMessage::Ack { .. }
            | RoomMessage::Sent { .. } => return Ok(()),
            RoomMessage::Presence { .. }
            | RoomMessage::Paused { .. }
            | RoomMessage::Resumed
            | RoomMessage::Notice { .. } => {}
        }
        events::show(&Shown { message: &message });
        Ok(())
    }
}
// ANCHOR_END: room_others

/// A change that is not the one after the last: `expected` never came, or
/// came twice.
#[derive(Serialize)]
#[serde(tag = "event", rename = "gap")]
struct Gap {
    /// The room's name, as the server calls it.
    room: String,
    /// The change that should have come next.
    expected: u64,
    /// The one that came.
    got: u64,
}

impl Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Gap {
            room,
            expected,
            got,
        } = self;
        write!(f, "gap in {room}: expected seq {expected}, got {got}")
    }
}

/// The server numbers the room's changes anew (it restarted, or its Redis
/// lost its data): the client starts again from its snapshot.
#[derive(Serialize)]
#[serde(tag = "event", rename = "renumbered")]
struct Renumbered {
    /// The room's name, as the server calls it.
    room: String,
}

impl Display for Renumbered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: the server numbers its changes anew", self.room)
    }
}

// ANCHOR: text
/// How a person reads the rooms' messages.
impl Display for Shown<'_, RoomMessage> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message {
            RoomMessage::Snapshot {
                room,
                seq,
                missed,
                users,
                sensors,
                ..
            } => {
                if *missed > 0 {
                    writeln!(f, "{room}: missed {missed} changes")?;
                }
                let (values, users) = (values(sensors), users.join(", "));
                write!(f, "{room} at seq {seq}: {values} (watching: {users})")
            }
            RoomMessage::Joined { room, after, .. } => {
                write!(f, "{room}: resuming after seq {after}")
            }
            RoomMessage::Reading { room, reading } => {
                let (seq, sensor, value) =
                    (reading.seq, &reading.sensor, reading.value);
                let alert = if reading.alert { " ALERT" } else { "" };
                write!(f, "{room} seq {seq}: {sensor} {value}{alert}")
            }
            RoomMessage::Threshold {
                room,
                seq,
                sensor,
                threshold,
            } => write!(
                f,
                "{room} seq {seq}: {sensor} alert threshold is now {threshold}"
            ),
            RoomMessage::Presence { room, users } => {
                write!(f, "{room} watching: {}", users.join(", "))
            }
            RoomMessage::Paused { reason } => write!(f, "paused: {reason}"),
            RoomMessage::Resumed => write!(f, "resumed"),
            RoomMessage::Notice { from, text } => {
                write!(f, "{from} says: {text}")
            }
            RoomMessage::Error { message, .. } => {
                write!(f, "the server says: {message}")
            }
            // Not shown: this client sends nothing that they answer.
            other @ (RoomMessage::Left { .. }
            | RoomMessage::Ack { .. }
            | RoomMessage::Sent { .. }) => f.write_str(&other.to_json()),
        }
    }
}
// ANCHOR_END: text

/// Each sensor's name and value, `-` before its first reading: `sensor-1 20.5,
/// sensor-2 -`.
fn values(sensors: &[SensorState]) -> String {
    let value = |s: &SensorState| s.value.map_or("-".into(), |v| v.to_string());
    let values: Vec<String> = sensors
        .iter()
        .map(|s| format!("{} {}", s.sensor, value(s)))
        .collect();
    values.join(", ")
}
