//! The registry of rooms. Every site is a room; a room's channel exists only
//! while the room has members. It is created by the first join and dropped with
//! the last member, and both happen under the site's lock, the same lock that
//! guards the site's readings and its members: a join can never land on a
//! channel that is being removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::protocol::{THRESHOLD_RANGE, unix_ms};
use ws_lessons::sensor::Sensor;

use crate::site::Site;
pub use crate::site::{Change, Event, EventKind};

// ANCHOR: rooms
/// Every site, each a room that clients join.
pub struct Rooms {
    sites: Vec<Named>,
    /// How far a member may fall behind before it is resynchronised.
    queue: usize,
    /// Woken by every join and leave (lesson 10 tells the other instances).
    pub membership: tokio::sync::Notify,
}

/// A room is one of these, found by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(usize);

impl RoomId {
    /// The site's position, from 0 (lesson 10 numbers sensors with it).
    #[allow(dead_code, reason = "lesson 10 uses it; this lesson does not")]
    pub fn index(self) -> usize {
        self.0
    }
}

struct Named {
    name: String,
    state: Mutex<SiteState>,
}

struct SiteState {
    /// The sensors, the count of changes, the recent changes (`site.rs`).
    site: Site,
    /// The room, while it has members.
    room: Option<Room>,
    /// Users in the room on other instances (lesson 10); none here.
    elsewhere: BTreeSet<String>,
}

struct Room {
    events: broadcast::Sender<Event>,
    /// Each member's user, with how many of their connections are in the
    /// room. Ordered, so presence lists come out sorted.
    members: BTreeMap<String, usize>,
}
// ANCHOR_END: rooms

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
    /// `sites` sites of `sensors` sensors each, each keeping its last `history`
    /// changes; members may fall `queue` events behind (rounded up to a power
    /// of two) before a resync.
    /// `epoch` names the numbering the rooms start with.
    pub fn new(
        sites: usize,
        sensors: usize,
        history: usize,
        queue: usize,
        epoch: &str,
    ) -> Self {
        let sites = (0..sites)
            .map(|site| Named {
                name: format!("site-{}", site + 1),
                state: Mutex::new(SiteState {
                    site: Site::new(site * sensors, sensors, history, epoch),
                    room: None,
                    elsewhere: BTreeSet::new(),
                }),
            })
            .collect();
        Self {
            sites,
            queue: queue.max(1),
            membership: tokio::sync::Notify::new(),
        }
    }

    /// The room called `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<RoomId> {
        self.sites.iter().position(|s| s.name == name).map(RoomId)
    }

    /// The room's name.
    pub fn name(&self, room: RoomId) -> &str {
        &self.sites[room.0].name
    }

    /// How many rooms have at least one member.
    pub fn occupied(&self) -> usize {
        let sites = self.sites.iter();
        sites.filter(|site| lock(site).room.is_some()).count()
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
        let named = &self.sites[room.0];
        let mut state = lock(named);
        let members = state.room.get_or_insert_with(|| Room {
            events: broadcast::channel(self.queue).0,
            members: BTreeMap::new(),
        });
        *members.members.entry(user.to_owned()).or_default() += 1;
        let events = members.events.subscribe();
        let (seq, backlog) = state.backlog(&named.name, id, rejoin);
        state.announce_presence(&named.name);
        self.membership.notify_one();
        Entry {
            events,
            seq,
            backlog,
        }
    }

    /// Takes one connection of `user` out of the room. The last member takes
    /// the channel with it, under the lock that a join would need.
    pub fn leave(&self, room: RoomId, user: &str) {
        let named = &self.sites[room.0];
        let mut state = lock(named);
        let Some(members) = state.room.as_mut() else {
            return;
        };
        match members.members.get_mut(user) {
            Some(tabs) if *tabs > 1 => *tabs -= 1,
            Some(_) => {
                members.members.remove(user);
            }
            None => return,
        }
        if members.members.is_empty() {
            state.room = None;
        } else {
            state.announce_presence(&named.name);
        }
        self.membership.notify_one();
    }
    // ANCHOR_END: join

    /// A fresh receiver and snapshot for a member that fell behind, whose last
    /// change was `last_seq`. `None` if the room has no members, which cannot
    /// happen to a member.
    pub fn resync(&self, room: RoomId, last_seq: u64) -> Option<Entry> {
        let named = &self.sites[room.0];
        let state = lock(named);
        let events = state.room.as_ref()?.events.subscribe();
        let missed = state.site.seq.saturating_sub(last_seq);
        let users = state.users();
        let snapshot = state.site.snapshot(None, &named.name, missed, users);
        Some(Entry {
            events,
            seq: state.site.seq,
            backlog: vec![snapshot],
        })
    }

    // ANCHOR: record
    /// Records a reading of sensor `sensor` (from 0) at site `site` (from 0), as
    /// the site's next change, whether or not anyone watches.
    #[allow(dead_code, reason = "lesson 10 records through Redis instead")]
    pub fn record_reading(&self, site: usize, sensor: usize, value: f64) {
        let (at_ms, alert) = (unix_ms(), None); // the site decides the alert
        let change = Change::Reading {
            sensor,
            value,
            at_ms,
            alert,
        };
        if site < self.sites.len() {
            self.record(RoomId(site), &change);
        }
    }

    /// Applies `change` as the room's next change: a reading, or a threshold
    /// that a member set.
    pub fn record(&self, room: RoomId, change: &Change) {
        let named = &self.sites[room.0];
        let mut state = lock(named);
        let seq = state.site.seq + 1;
        state.apply(&named.name, seq, change);
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
        let state = lock(&self.sites[room.0]);
        let sensor = state.site.sensor(sensor).ok_or_else(|| {
            format!("unknown sensor {sensor:?} in {:?}", self.name(room))
        })?;
        Ok(Change::Threshold { sensor, threshold })
    }
}

/// What lesson 10 needs to run these rooms as a mirror of Redis: changes
/// numbered elsewhere, a state loaded from elsewhere, and users elsewhere.
#[allow(dead_code, reason = "lesson 10 uses these; this lesson does not")]
impl Rooms {
    /// Every room.
    pub fn all(&self) -> impl Iterator<Item = RoomId> + use<> {
        (0..self.sites.len()).map(RoomId)
    }

    /// Applies `change` as change number `seq` of `room`, numbered elsewhere
    /// (lesson 10). False, and nothing changes, unless it is the room's next.
    pub fn apply(&self, room: RoomId, seq: u64, change: &Change) -> bool {
        let named = &self.sites[room.0];
        let mut state = lock(named);
        seq == state.site.seq + 1 && state.apply(&named.name, seq, change)
    }

    /// The room's number of its last change.
    pub fn seq(&self, room: RoomId) -> u64 {
        lock(&self.sites[room.0]).site.seq
    }

    /// Replaces the room's state with one loaded as of change `seq` (lesson 10),
    /// and has every member take a fresh snapshot.
    pub fn load(
        &self,
        room: RoomId,
        seq: u64,
        epoch: &str,
        sensors: Vec<Sensor>,
    ) {
        let mut state = lock(&self.sites[room.0]);
        state.site.load(seq, epoch, sensors);
        if let Some(room) = &state.room {
            let json = Utf8Bytes::from_static("");
            let kind = EventKind::Reset;
            let _ = room.events.send(Event { seq, kind, json });
        }
    }
    /// Puts change number `seq`, from before the room's state was loaded,
    /// back in its history (lesson 10 reads them from Redis).
    pub fn remember(&self, room: RoomId, seq: u64, change: &Change) {
        let named = &self.sites[room.0];
        lock(named).site.recall(&named.name, seq, change);
    }

    /// The local members' users of every room that has any (lesson 10).
    pub fn local_users(&self, room: RoomId) -> Vec<String> {
        let state = lock(&self.sites[room.0]);
        let room = state.room.as_ref();
        room.map_or_else(Vec::new, |r| r.members.keys().cloned().collect())
    }

    /// Sets who is in the room on other instances (lesson 10), and tells the
    /// members if that changes who is in the room.
    pub fn set_elsewhere(&self, room: RoomId, users: BTreeSet<String>) {
        let named = &self.sites[room.0];
        let mut state = lock(named);
        if state.elsewhere != users {
            let before = state.users();
            state.elsewhere = users;
            if state.users() != before {
                state.announce_presence(&named.name);
            }
        }
    }
}

/// The lock is never held across an `.await`, and no panic can leave a site
/// half-changed, so a poisoned lock is still usable.
fn lock(site: &Named) -> MutexGuard<'_, SiteState> {
    site.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SiteState {
    /// Everyone in the room, here or elsewhere: sorted, each once.
    fn users(&self) -> Vec<String> {
        let here = self.room.iter().flat_map(|r| r.members.keys());
        let all: BTreeSet<&String> = here.chain(&self.elsewhere).collect();
        all.into_iter().cloned().collect()
    }

    /// Applies a change, and sends it to the members if there are any.
    fn apply(&mut self, name: &str, seq: u64, change: &Change) -> bool {
        let Some(event) = self.site.apply(name, seq, change) else {
            return false;
        };
        if let Some(room) = &self.room {
            // Fails only when no receiver is left, which the last leave
            // prevents by removing the room first.
            let _ = room.events.send(event);
        }
        true
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
        // Another numbering (the server restarted, or lesson 10's Redis lost
        // its data): its `seq`s mean nothing here, and nothing can be counted.
        if theirs.as_ref().is_some_and(|theirs| theirs != epoch)
            || (theirs.is_none() && after > seq)
        {
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
        // In the same numbering, a member from an instance further along
        // (lesson 10) waits for the changes after its own last one.
        (seq.max(after), backlog)
    }
    // ANCHOR_END: backlog

    fn announce_presence(&self, name: &str) {
        let Some(room) = &self.room else {
            return;
        };
        let presence = RoomMessage::Presence {
            room: name.to_owned(),
            users: self.users(),
        };
        let json = presence.to_json().into();
        let seq = self.site.seq;
        let kind = EventKind::Presence;
        let _ = room.events.send(Event { seq, kind, json });
    }
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;
