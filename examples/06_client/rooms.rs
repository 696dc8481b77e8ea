//! The rooms mode (lessons 09 and 10): a join for each room, again with `after`
//! on every reconnection, and a check that every change follows the last.

use std::collections::BTreeMap;

use ws_lessons::protocol::SensorState;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};

use crate::json;

/// The rooms followed (lessons 09 and 10), and how far each one got.
pub struct Rooms {
    /// The last change printed of each room: `None` before its first snapshot.
    last: BTreeMap<String, Option<u64>>,
    /// The numbering each room's `last` belongs to, sent back with it.
    epochs: BTreeMap<String, String>,
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
            last: names.iter().map(|name| (name.clone(), None)).collect(),
            epochs: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            last_id: 0,
        }
    }
}

// ANCHOR: joins
impl Rooms {
    /// A join for each room, on every connection: the first time plain, then
    /// with `after`, the last change printed, so that the server (this one or
    /// another instance) sends the changes after it. Each has an `id`, which
    /// an `error` that refuses it carries back.
    pub fn joins(&mut self) -> Vec<String> {
        self.unanswered.clear();
        let mut joins = Vec::new();
        for (room, &after) in &self.last {
            self.last_id += 1;
            self.unanswered.insert(self.last_id, room.clone());
            let (id, room) = (Some(self.last_id), room.clone());
            let epoch = after.and(self.epochs.get(&room).cloned());
            joins.push(json(&RoomRequest::Join {
                id,
                room,
                after,
                epoch,
            }));
        }
        joins
    }

    /// Takes change `seq` of `room`, and warns unless it is the next one. A
    /// change that comes again does not move `last` back.
    fn check(&mut self, room: &str, seq: u64) {
        let Some(last) = self.last.get_mut(room) else {
            return;
        };
        let expected = last.map_or(seq, |last| last + 1);
        if seq != expected {
            tracing::warn!("gap in {room}: expected seq {expected}, got {seq}");
        }
        *last = Some(last.map_or(seq, |last| last.max(seq)));
    }
    // ANCHOR_END: joins

    // ANCHOR: rooms
    /// Prints one message of the rooms' protocol; a refused join is an error.
    pub fn read(&mut self, text: &str) -> Result<(), String> {
        let message = match serde_json::from_str::<RoomMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("not a rooms message ({e}): {text}");
                return Ok(());
            }
        };
        match message {
            RoomMessage::Snapshot {
                id,
                room,
                seq,
                missed,
                epoch,
                users,
                sensors,
            } => {
                let known = self.epochs.insert(room.clone(), epoch.clone());
                if known.is_some_and(|known| known != epoch) {
                    println!("{room}: the server numbers its changes anew");
                } else if missed > 0 {
                    println!("{room}: missed {missed} changes");
                }
                let (values, users) = (values(&sensors), users.join(", "));
                println!("{room} at seq {seq}: {values} (watching: {users})");
                self.answered(id);
                self.last.insert(room, Some(seq));
            }
            RoomMessage::Joined {
                id,
                room,
                after,
                epoch,
            } => {
                self.epochs.insert(room.clone(), epoch);
                println!("{room}: resuming after seq {after}");
                self.answered(id);
            }
            RoomMessage::Reading { room, reading } => {
                self.check(&room, reading.seq);
                let (seq, sensor, value) =
                    (reading.seq, reading.sensor, reading.value);
                let alert = if reading.alert { " ALERT" } else { "" };
                println!("{room} seq {seq}: {sensor} {value}{alert}");
            }
            RoomMessage::Threshold {
                room,
                seq,
                sensor,
                threshold,
            } => {
                self.check(&room, seq);
                println!(
                    "{room} seq {seq}: {sensor} alert threshold is now {threshold}"
                );
            }
            // ANCHOR_END: rooms
            // ANCHOR: room_others
            RoomMessage::Presence { room, users } => {
                println!("{room} watching: {}", users.join(", "));
            }
            RoomMessage::Paused { reason } => println!("paused: {reason}"),
            RoomMessage::Resumed => println!("resumed"),
            RoomMessage::Notice { from, text } => println!("{from} says: {text}"),
            RoomMessage::Error { id, message } => {
                // Which join it refuses, if any: its `id` says.
                let refused = id.and_then(|id| self.unanswered.remove(&id));
                if let Some(room) = refused {
                    return Err(format!(
                        "the server refused to join {room}: {message}"
                    ));
                }
                tracing::warn!("the server says: {message}");
            }
            // This client sends none of `leave`, `set_threshold`, `notify`.
            RoomMessage::Left { .. }
            | RoomMessage::Ack { .. }
            | RoomMessage::Sent { .. } => {}
        }
        Ok(())
    }
    // ANCHOR_END: room_others

    /// The join `id` is answered, with a snapshot or `joined`.
    fn answered(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            self.unanswered.remove(&id);
        }
    }
}

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
