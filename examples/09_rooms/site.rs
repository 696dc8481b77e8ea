//! One site's state: its sensors, the number of its last change, and its
//! recent changes, kept for clients that come back and ask for what they
//! missed. `rooms.rs` keeps one behind each room's lock.

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;
use ws_lessons::protocol::Reading;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::sensor::Sensor;

// ANCHOR: change
/// A change to a site's sensors, numbered by the site (`seq`) as it applies
/// it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new value of sensor number `sensor` (from 0), taken at `at_ms`; the
    /// site decides whether it is an alert, by the sensor's threshold.
    Reading {
        sensor: usize,
        value: f64,
        at_ms: u64,
    },
    /// A new alert threshold for sensor number `sensor`.
    Threshold { sensor: usize, threshold: f64 },
}

/// A message for a room's members, serialized once however many receive it:
/// a change, or who is in the room.
#[derive(Clone, Debug)]
pub struct Event {
    /// The room's last change as of this message: a member that receives it
    /// has every change up to this one.
    pub seq: u64,
    /// The message, serialized once, as every member receives it.
    pub json: Utf8Bytes,
}
// ANCHOR_END: change

/// A site's sensors and its recent changes.
pub struct Site {
    /// The number of the site's last change.
    pub seq: u64,
    /// Names the numbering `seq` belongs to: new when the numbering starts
    /// over.
    pub epoch: String,
    sensors: Vec<Sensor>,
    /// The last changes, oldest first, as members received them.
    history: VecDeque<Event>,
    history_len: usize,
}

impl Site {
    /// A site with `sensors`, no change yet, keeping its last `history_len`
    /// changes, numbered in numbering `epoch`.
    pub fn new(sensors: Vec<Sensor>, history_len: usize, epoch: &str) -> Self {
        Self {
            seq: 0,
            epoch: epoch.to_owned(),
            sensors,
            history: VecDeque::with_capacity(history_len),
            history_len,
        }
    }

    /// The number of the sensor called `name`.
    pub fn sensor(&self, name: &str) -> Option<usize> {
        self.sensors.iter().position(|s| s.name() == name)
    }

    // ANCHOR: apply
    /// Applies `change` as change number `seq` of the room called `room`, keeps
    /// it in the history, and returns it as its members receive it. `None`,
    /// and nothing changes, when the sensor does not exist.
    pub fn apply(
        &mut self,
        room: &str,
        seq: u64,
        change: &Change,
    ) -> Option<Event> {
        let event = self.event(room, seq, change)?;
        match *change {
            Change::Reading {
                sensor,
                value,
                at_ms,
                ..
            } => {
                self.sensors[sensor].record(value, seq, at_ms);
            }
            Change::Threshold { sensor, threshold } => {
                self.sensors[sensor].set_threshold(threshold);
            }
        }
        self.seq = seq;
        self.remember(event.clone());
        Some(event)
    }
    // ANCHOR_END: apply

    /// Change number `seq` as members receive it, serialized once; `None` for
    /// a sensor the site does not have.
    fn event(&self, room: &str, seq: u64, change: &Change) -> Option<Event> {
        let message = match *change {
            Change::Reading {
                sensor,
                value,
                at_ms,
            } => {
                let sensor = self.sensors.get(sensor)?;
                let alert = value > sensor.threshold();
                let sensor = sensor.name().to_owned();
                let reading = Reading {
                    seq,
                    sensor,
                    value,
                    alert,
                    at_ms,
                };
                RoomMessage::Reading {
                    room: room.to_owned(),
                    reading,
                }
            }
            Change::Threshold { sensor, threshold } => RoomMessage::Threshold {
                room: room.to_owned(),
                seq,
                sensor: self.sensors.get(sensor)?.name().to_owned(),
                threshold,
            },
        };
        let json = message.to_json().into();
        Some(Event { seq, json })
    }

    /// Keeps `event` in the history, which holds the last `history_len`.
    fn remember(&mut self, event: Event) {
        if self.history_len == 0 {
            return;
        }
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(event);
    }

    /// The changes after `after`, if the history still holds every one of them.
    pub fn since(&self, after: u64) -> Option<impl Iterator<Item = &Event>> {
        let first = self.history.front().map_or(self.seq + 1, |e| e.seq);
        (first <= after + 1)
            .then(|| self.history.iter().skip_while(move |e| e.seq <= after))
    }

    /// A `snapshot` of the room called `room`, for a member who missed `missed`
    /// changes, with `users` in the room; the answer to request `id` if it is
    /// one.
    pub fn snapshot(
        &self,
        id: Option<u64>,
        room: &str,
        missed: u64,
        users: Vec<String>,
    ) -> Utf8Bytes {
        let snapshot = RoomMessage::Snapshot {
            id,
            room: room.to_owned(),
            seq: self.seq,
            missed,
            epoch: self.epoch.clone(),
            users,
            sensors: self.sensors.iter().map(Sensor::state).collect(),
        };
        snapshot.to_json().into()
    }
}
