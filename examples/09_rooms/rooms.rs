//! The registry of rooms. Every site is a room; a room's channel exists only
//! while the room has members. It is created by the first join and dropped with
//! the last member, and both happen under the room's lock, the same lock that
//! guards the site's readings and its members: a join can never land on a
//! channel that is being removed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::protocol::{THRESHOLD_RANGE, unix_ms};
use ws_lessons::sensor::Sensor;

use crate::site::{Change, Event, Site};

// ANCHOR: rooms
/// Every site, each a room that clients join.
pub struct Rooms {
    rooms: Vec<Room>,
    /// How far a member may fall behind before it is resynchronised.
    queue: usize,
    /// Members resynchronised after falling behind, for `GET /stats`.
    resyncs: AtomicU64,
}

/// A room, found by its position in [`Rooms`]; cheap to copy and to hash, so
/// a connection keys its rooms by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(usize);

/// One site's room: its name, and everything about it behind one lock.
struct Room {
    name: String,
    state: Mutex<RoomState>,
}

struct RoomState {
    /// The sensors, the count of changes, the recent changes (`site.rs`).
    site: Site,
    /// The channel and the members, while the room has any.
    audience: Option<Audience>,
}

/// Who follows a room: created by its first member, dropped with its last.
struct Audience {
    events: broadcast::Sender<Event>,
    /// Each member's user, with how many of their connections are in the
    /// room. Ordered, so presence lists come out sorted.
    users: BTreeMap<String, usize>,
}
// ANCHOR_END: rooms

// ANCHOR: entry
/// What a member that comes back says of what it has.
pub struct Rejoin {
    /// The last change it has.
    pub after: u64,
    /// The numbering `after` belongs to, if it says.
    pub epoch: Option<String>,
}

/// A member's start in a room, or a fresh start after it fell behind.
pub struct Entry {
    /// Every event of the room after `seq`.
    pub events: broadcast::Receiver<Event>,
    /// The room's last change that `backlog` brings the member to.
    pub seq: u64,
    /// What to send first: a `snapshot`, or `joined` and the changes since.
    pub backlog: Vec<Utf8Bytes>,
}
// ANCHOR_END: entry

impl Rooms {
    /// `sites` sites of `sensors` sensors each, each keeping its last `history`
    /// changes; members may fall `queue` events behind (rounded up to a power
    /// of two) before a resync. `epoch` names the numbering the rooms start
    /// with.
    pub fn new(
        sites: usize,
        sensors: usize,
        history: usize,
        queue: usize,
        epoch: &str,
    ) -> Self {
        let room = |index: usize| {
            // Numbered as the simulator numbers its sensors: site by site.
            let first = index * sensors;
            let sensors = (0..sensors)
                .map(|i| Sensor::new(first + i, format!("sensor-{}", i + 1)));
            let site = Site::new(sensors.collect(), history, epoch);
            Room {
                name: format!("site-{}", index + 1),
                state: Mutex::new(RoomState {
                    site,
                    audience: None,
                }),
            }
        };
        Self {
            rooms: (0..sites).map(room).collect(),
            queue: queue.max(1),
            resyncs: AtomicU64::new(0),
        }
    }

    /// The room called `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<RoomId> {
        self.rooms.iter().position(|r| r.name == name).map(RoomId)
    }

    /// The room's name, as clients call it.
    pub fn name(&self, room: RoomId) -> &str {
        &self.rooms[room.0].name
    }

    /// How many rooms have at least one member.
    pub fn occupied(&self) -> usize {
        let rooms = self.rooms.iter();
        rooms.filter(|room| lock(room).audience.is_some()).count()
    }

    /// How many times a member fell behind and was resynchronised.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::Relaxed)
    }

    // ANCHOR: join
    /// Adds one connection of `user` to the room, for its join request `id`.
    /// The channel is created if this is the first member, and the receiver and
    /// the backlog are taken under the same lock, so the member neither misses
    /// nor repeats a change.
    pub fn join(
        &self,
        room: RoomId,
        user: &str,
        id: Option<u64>,
        rejoin: Option<Rejoin>,
    ) -> Entry {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        let audience = state.audience.get_or_insert_with(|| Audience {
            events: broadcast::channel(self.queue).0,
            users: BTreeMap::new(),
        });
        *audience.users.entry(user.to_owned()).or_default() += 1;
        let events = audience.events.subscribe();
        let (seq, backlog) = state.backlog(&room.name, id, rejoin);
        state.announce_presence(&room.name);
        Entry {
            events,
            seq,
            backlog,
        }
    }

    /// Takes one connection of `user` out of the room. The last member takes
    /// the channel with it, under the lock that a join would need.
    pub fn leave(&self, room: RoomId, user: &str) {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        let Some(audience) = state.audience.as_mut() else {
            return;
        };
        match audience.users.get_mut(user) {
            Some(tabs) if *tabs > 1 => *tabs -= 1,
            Some(_) => {
                audience.users.remove(user);
            }
            None => return,
        }
        if audience.users.is_empty() {
            state.audience = None;
        } else {
            state.announce_presence(&room.name);
        }
    }
    // ANCHOR_END: join

    /// A fresh receiver and snapshot for a member that fell behind, whose last
    /// change was `last_seq`. `None` if the room has no members, which cannot
    /// happen to a member.
    pub fn resync(&self, room: RoomId, last_seq: u64) -> Option<Entry> {
        let room = &self.rooms[room.0];
        let state = lock(room);
        let events = state.audience.as_ref()?.events.subscribe();
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        let missed = state.site.seq.saturating_sub(last_seq);
        let users = state.users();
        let snapshot = state.site.snapshot(None, &room.name, missed, users);
        Some(Entry {
            events,
            seq: state.site.seq,
            backlog: vec![snapshot],
        })
    }

    // ANCHOR: record
    /// Records a reading of sensor `sensor` (from 0) at site `site` (from 0), as
    /// the site's next change, whether or not anyone watches.
    pub fn record_reading(&self, site: usize, sensor: usize, value: f64) {
        let at_ms = unix_ms();
        let change = Change::Reading {
            sensor,
            value,
            at_ms,
        };
        if site < self.rooms.len() {
            self.record(RoomId(site), &change);
        }
    }

    /// Applies `change` as the room's next change: a reading, or a threshold
    /// that a member set. Every member, the one that set it too, receives it.
    pub fn record(&self, room: RoomId, change: &Change) {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        let seq = state.site.seq + 1;
        let Some(event) = state.site.apply(&room.name, seq, change) else {
            return;
        };
        if let Some(audience) = &state.audience {
            // Fails only when no receiver is left, which the last leave
            // prevents by removing the audience first.
            let _ = audience.events.send(event);
        }
    }
    // ANCHOR_END: record

    /// The change that sets a threshold, checked: a known sensor, a threshold
    /// in range.
    pub fn threshold(
        &self,
        room: RoomId,
        sensor: &str,
        threshold: f64,
    ) -> Result<Change, String> {
        if !THRESHOLD_RANGE.contains(&threshold) {
            let (low, high) = (THRESHOLD_RANGE.start(), THRESHOLD_RANGE.end());
            return Err(format!(
                "threshold {threshold} is out of range ({low} to {high})"
            ));
        }
        let state = lock(&self.rooms[room.0]);
        let sensor = state.site.sensor(sensor).ok_or_else(|| {
            format!("unknown sensor {sensor:?} in {:?}", self.name(room))
        })?;
        Ok(Change::Threshold { sensor, threshold })
    }
}

/// The lock is never held across an `.await`, and no panic can leave a room
/// half-changed, so a poisoned lock is still usable.
fn lock(room: &Room) -> MutexGuard<'_, RoomState> {
    room.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoomState {
    /// Everyone in the room: sorted, each once however many tabs.
    fn users(&self) -> Vec<String> {
        let users = self.audience.iter().flat_map(|a| a.users.keys());
        users.cloned().collect()
    }

    // ANCHOR: backlog
    /// What a joining member gets first, and the change it brings it to: a
    /// snapshot, or for a member that names its last change, `joined` and the
    /// changes since, while the history holds them. The first answers the
    /// join, and carries its `id`.
    fn backlog(
        &self,
        name: &str,
        id: Option<u64>,
        rejoin: Option<Rejoin>,
    ) -> (u64, Vec<Utf8Bytes>) {
        let (seq, epoch) = (self.site.seq, &self.site.epoch);
        let snapshot = |missed| {
            let users = self.users();
            (seq, vec![self.site.snapshot(id, name, missed, users)])
        };
        let Some(Rejoin {
            after,
            epoch: theirs,
        }) = rejoin
        else {
            return snapshot(0);
        };
        // Another numbering (the server restarted): its `seq`s mean nothing
        // here, and nothing can be counted. So is a change not made yet.
        let other = theirs.as_ref().is_some_and(|theirs| theirs != epoch);
        if other || after > seq {
            return snapshot(0);
        }
        let Some(changes) = self.site.since(after) else {
            return snapshot(seq - after);
        };
        let joined = RoomMessage::Joined {
            id,
            room: name.to_owned(),
            after,
            epoch: epoch.clone(),
        };
        let mut backlog = vec![joined.to_json().into()];
        backlog.extend(changes.map(|event| event.json.clone()));
        (seq, backlog)
    }
    // ANCHOR_END: backlog

    /// Tells the members who is in the room now.
    fn announce_presence(&self, name: &str) {
        let Some(audience) = &self.audience else {
            return;
        };
        let presence = RoomMessage::Presence {
            room: name.to_owned(),
            users: self.users(),
        };
        let json = presence.to_json().into();
        let seq = self.site.seq;
        let _ = audience.events.send(Event { seq, json });
    }
}

#[cfg(test)]
mod tests;
