//! Lesson 09's `rooms.rs`, as a mirror of Redis: Redis numbers every change,
//! and the mirror applies them in that order, never numbering one itself.
//! What differs from 09's registry, and why:
//! - [`Rooms::apply`] takes a change with the number Redis gave it, and
//!   refuses a gap, where 09's `record` numbers it;
//! - [`Rooms::load`] replaces a room's state with the one Redis holds, and
//!   sends its members a snapshot;
//! - presence counts the users in the room on other instances too
//!   ([`Rooms::set_elsewhere`]), and every join and leave wakes
//!   [`Rooms::membership`], so that the registry tells the other instances;
//! - a client that comes from an instance further along can wait for this one
//!   to catch up ([`Rooms::ahead`], [`Rooms::applied`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, broadcast};
use ws_lessons::protocol::THRESHOLD_RANGE;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::sensor::Sensor;

use crate::site::{Change, Event, Site};

// ANCHOR: mirror
/// Every site, each a room that clients join, as far as this instance has
/// read Redis's streams.
pub struct Rooms {
    rooms: Vec<Room>,
    /// How far a member may fall behind before it is resynchronised.
    queue: usize,
    /// How many changes of each room are kept for members that rejoin.
    history: usize,
    /// Members resynchronised after falling behind, for `GET /stats`.
    resyncs: AtomicU64,
    /// Woken by every join and leave: the registry tells the other instances.
    pub membership: Notify,
    /// Woken by every change applied: a client from an instance further
    /// along waits on it.
    pub applied: Notify,
}

struct RoomState {
    site: Site,
    audience: Option<Audience>,
    /// Users in the room on other instances, as the registry last read them.
    elsewhere: BTreeSet<String>,
}
// ANCHOR_END: mirror

/// A room, found by its position in [`Rooms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(usize);

impl RoomId {
    /// The site's position, from 0: Redis's sensor numbers start from it.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One site's room: its name, and everything about it behind one lock.
struct Room {
    name: String,
    state: Mutex<RoomState>,
}

/// Who follows a room here: created by its first member, dropped with its
/// last.
struct Audience {
    events: broadcast::Sender<Event>,
    /// Each member's user, with how many of their connections are in the room.
    users: BTreeMap<String, usize>,
}

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

impl Rooms {
    /// `sites` sites of `sensors` sensors each, at change 0 of `epoch`, until
    /// [`Rooms::load`] gives each the state Redis holds.
    pub fn new(
        sites: usize,
        sensors: usize,
        history: usize,
        queue: usize,
        epoch: &str,
    ) -> Self {
        let room = |index: usize| {
            let first = index * sensors;
            let sensors = (0..sensors)
                .map(|i| Sensor::new(first + i, format!("sensor-{}", i + 1)));
            let site = Site::new(sensors.collect(), history, epoch);
            Room {
                name: format!("site-{}", index + 1),
                state: Mutex::new(RoomState {
                    site,
                    audience: None,
                    elsewhere: BTreeSet::new(),
                }),
            }
        };
        Self {
            rooms: (0..sites).map(room).collect(),
            queue: queue.max(1),
            history,
            resyncs: AtomicU64::new(0),
            membership: Notify::new(),
            applied: Notify::new(),
        }
    }

    /// Every room, in the simulator's order.
    pub fn all(&self) -> impl Iterator<Item = RoomId> + use<> {
        (0..self.rooms.len()).map(RoomId)
    }

    /// The room called `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<RoomId> {
        self.rooms.iter().position(|r| r.name == name).map(RoomId)
    }

    /// The room's name, as clients and Redis's keys call it.
    pub fn name(&self, room: RoomId) -> &str {
        &self.rooms[room.0].name
    }

    /// How many rooms have at least one member here.
    pub fn occupied(&self) -> usize {
        let rooms = self.rooms.iter();
        rooms.filter(|room| lock(room).audience.is_some()).count()
    }

    /// How many times a member fell behind and was resynchronised.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::Relaxed)
    }

    /// The number of the room's last change applied here.
    pub fn seq(&self, room: RoomId) -> u64 {
        lock(&self.rooms[room.0]).site.seq
    }

    /// Adds one connection of `user` to the room, as lesson 09 does, and
    /// wakes [`Rooms::membership`].
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
        self.membership.notify_one();
        Entry {
            events,
            seq,
            backlog,
        }
    }

    /// Takes one connection of `user` out of the room, as lesson 09 does, and
    /// wakes [`Rooms::membership`].
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
        self.membership.notify_one();
    }

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

    // ANCHOR: apply
    /// Applies `change` as change number `seq` of the room, numbered by Redis.
    /// False, and nothing changes, unless it is the room's next.
    pub fn apply(&self, room: RoomId, seq: u64, change: &Change) -> bool {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        if seq != state.site.seq + 1 {
            return false;
        }
        let Some(event) = state.site.apply(&room.name, seq, change) else {
            return false;
        };
        if let Some(audience) = &state.audience {
            let _ = audience.events.send(event);
        }
        self.applied.notify_waiters();
        true
    }

    /// Replaces the room's state with the one Redis holds: `sensors` as of
    /// change `seq` of numbering `epoch`, and `before`, the changes up to `seq`
    /// that the stream still keeps, for members that rejoin. Its members get a
    /// snapshot, which counts the changes they missed if the numbering is the
    /// same.
    pub fn load(
        &self,
        room: RoomId,
        (seq, epoch): (u64, &str),
        sensors: Vec<Sensor>,
        before: &[(u64, Change)],
    ) {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        let old = (state.site.seq, state.site.epoch == epoch);
        let mut site = Site::new(sensors, self.history, epoch);
        site.seq = seq;
        for (seq, change) in before {
            if let Some(event) = site.event(&room.name, *seq, change) {
                site.remember(event);
            }
        }
        state.site = site;
        if let Some(audience) = &state.audience {
            // After every event of the old state, so a member that reads them
            // all has seen change `old.0` when this comes.
            let missed = if old.1 { seq.saturating_sub(old.0) } else { 0 };
            let users = state.users();
            let json = state.site.snapshot(None, &room.name, missed, users);
            let _ = audience.events.send(Event { seq, json });
        }
        self.applied.notify_waiters();
    }

    /// Whether a member that rejoins with `rejoin` has changes this instance
    /// has not applied yet, in the same numbering: it comes from an instance
    /// further along.
    pub fn ahead(&self, room: RoomId, rejoin: &Rejoin) -> bool {
        let state = lock(&self.rooms[room.0]);
        let same = rejoin.epoch.as_ref() == Some(&state.site.epoch);
        same && rejoin.after > state.site.seq
    }
    // ANCHOR_END: apply

    /// The check of lesson 09: a known sensor, a threshold in range.
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

    // ANCHOR: elsewhere
    /// The users with a connection in the room on this instance.
    pub fn local_users(&self, room: RoomId) -> Vec<String> {
        let state = lock(&self.rooms[room.0]);
        let audience = state.audience.iter();
        audience.flat_map(|a| a.users.keys().cloned()).collect()
    }

    /// Sets who is in the room on other instances, and tells the members if
    /// that changes who is in the room.
    pub fn set_elsewhere(&self, room: RoomId, users: BTreeSet<String>) {
        let room = &self.rooms[room.0];
        let mut state = lock(room);
        if state.elsewhere != users {
            let before = state.users();
            state.elsewhere = users;
            if state.users() != before {
                state.announce_presence(&room.name);
            }
        }
    }
    // ANCHOR_END: elsewhere
}

/// The lock is never held across an `.await`, and no panic can leave a room
/// half-changed, so a poisoned lock is still usable.
fn lock(room: &Room) -> MutexGuard<'_, RoomState> {
    room.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoomState {
    /// Everyone in the room, here or elsewhere: sorted, each once.
    fn users(&self) -> Vec<String> {
        let here = self.audience.iter().flat_map(|a| a.users.keys());
        let all: BTreeSet<&String> = here.chain(&self.elsewhere).collect();
        all.into_iter().cloned().collect()
    }

    /// Lesson 09's backlog: a snapshot, or `joined` and the changes since.
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

// The path spelled out, which rustc and rustfmt then read alike wherever
// this file is included with `#[path]`.
#[cfg(test)]
#[path = "rooms/tests.rs"]
mod tests;
