//! The registry of rooms. Every site is a room; a room's channel exists only
//! while the room has members. It is created by the first join and dropped with
//! the last member, and both happen under the site's lock, the same lock that
//! guards the site's readings and its members: a join can never land on a
//! channel that is being removed.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::protocol::unix_ms;
use ws_lessons::sensor::Sensor;

// ANCHOR: rooms
/// Every site, each a room that clients join.
pub struct Rooms {
    sites: Vec<Site>,
    /// How far a member may fall behind before it is resynchronised.
    queue: usize,
}

/// A room is one of these, found by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(usize);

struct Site {
    name: String,
    state: Mutex<SiteState>,
}

struct SiteState {
    /// Counts this site's changes (its readings).
    seq: u64,
    sensors: Vec<Sensor>,
    /// The room, while it has members.
    room: Option<Room>,
}

struct Room {
    events: broadcast::Sender<Event>,
    /// Each member's user, with how many of their connections are in the
    /// room. Ordered, so presence lists come out sorted.
    members: BTreeMap<String, usize>,
}

/// A message for a room's members, serialized once.
#[derive(Clone, Debug)]
pub struct Event {
    /// The room's last change as of this event: a reading's own number, or
    /// the current one for a presence message.
    pub seq: u64,
    /// The message, as sent.
    pub json: Utf8Bytes,
}
// ANCHOR_END: rooms

/// A member's start in a room, or a fresh start after it fell behind.
pub struct Entry {
    /// Every event of the room after the snapshot.
    pub events: broadcast::Receiver<Event>,
    /// The room's last change that the snapshot includes.
    pub seq: u64,
    /// The `snapshot` message to send first.
    pub snapshot: Utf8Bytes,
}

impl Rooms {
    /// `sites` sites of `sensors` sensors each; members may fall `queue`
    /// events behind (rounded up to a power of two) before a resync.
    pub fn new(sites: usize, sensors: usize, queue: usize) -> Self {
        let sites = (0..sites)
            .map(|site| Site {
                name: format!("site-{}", site + 1),
                state: Mutex::new(SiteState {
                    seq: 0,
                    sensors: (0..sensors)
                        .map(|i| {
                            let name = format!("sensor-{}", i + 1);
                            Sensor::new(site * sensors + i, name)
                        })
                        .collect(),
                    room: None,
                }),
            })
            .collect();
        Self {
            sites,
            queue: queue.max(1),
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
    /// Adds one connection of `user` to the room. The channel is created if this
    /// is the first member, and the receiver and the snapshot are taken under the
    /// same lock, so the member neither misses nor repeats a change.
    pub fn join(&self, room: RoomId, user: &str) -> Entry {
        let site = &self.sites[room.0];
        let mut state = lock(site);
        let members = state.room.get_or_insert_with(|| Room {
            events: broadcast::channel(self.queue).0,
            members: BTreeMap::new(),
        });
        *members.members.entry(user.to_owned()).or_default() += 1;
        let events = members.events.subscribe();
        state.announce_presence(&site.name);
        Entry {
            events,
            seq: state.seq,
            snapshot: state.snapshot(&site.name, 0),
        }
    }

    /// Takes one connection of `user` out of the room. The last member takes
    /// the channel with it, under the lock that a join would need.
    pub fn leave(&self, room: RoomId, user: &str) {
        let site = &self.sites[room.0];
        let mut state = lock(site);
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
            state.announce_presence(&site.name);
        }
    }
    // ANCHOR_END: join

    /// A fresh receiver and snapshot for a member that fell behind, whose last
    /// event was `last_seq`. `None` if the room has no members, which cannot
    /// happen to a member.
    pub fn resync(&self, room: RoomId, last_seq: u64) -> Option<Entry> {
        let site = &self.sites[room.0];
        let state = lock(site);
        let events = state.room.as_ref()?.events.subscribe();
        let missed = state.seq.saturating_sub(last_seq);
        Some(Entry {
            events,
            seq: state.seq,
            snapshot: state.snapshot(&site.name, missed),
        })
    }

    // ANCHOR: record
    /// Records a reading of sensor `sensor` (from 0) at site `site` (from 0). The
    /// site counts it whether or not anyone watches; it is serialized only when
    /// the room has members.
    pub fn record_reading(&self, site: usize, sensor: usize, value: f64) {
        let Some(site) = self.sites.get(site) else {
            return;
        };
        let at_ms = unix_ms();
        let mut state = lock(site);
        let SiteState { seq, sensors, room } = &mut *state;
        let Some(sensor) = sensors.get_mut(sensor) else {
            return;
        };
        *seq += 1;
        let reading = sensor.record(value, *seq, at_ms);
        if let Some(room) = room {
            let message = RoomMessage::Reading {
                room: site.name.clone(),
                reading,
            };
            let json = message.to_json().into();
            // Fails only when no receiver is left, which the last leave
            // prevents by removing the room first.
            let _ = room.events.send(Event { seq: *seq, json });
        }
    }
    // ANCHOR_END: record
}

/// The lock is never held across an `.await`, and no panic can leave a site
/// half-changed, so a poisoned lock is still usable.
fn lock(site: &Site) -> MutexGuard<'_, SiteState> {
    site.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SiteState {
    fn users(&self) -> Vec<String> {
        let room = self.room.as_ref();
        room.map_or_else(Vec::new, |r| r.members.keys().cloned().collect())
    }

    fn snapshot(&self, name: &str, missed: u64) -> Utf8Bytes {
        let snapshot = RoomMessage::Snapshot {
            room: name.to_owned(),
            seq: self.seq,
            missed,
            users: self.users(),
            sensors: self.sensors.iter().map(Sensor::state).collect(),
        };
        snapshot.to_json().into()
    }

    fn announce_presence(&self, name: &str) {
        let Some(room) = &self.room else {
            return;
        };
        let presence = RoomMessage::Presence {
            room: name.to_owned(),
            users: self.users(),
        };
        let json = presence.to_json().into();
        let _ = room.events.send(Event {
            seq: self.seq,
            json,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_room_exists_from_its_first_join_to_its_last_leave() {
        let rooms = Rooms::new(2, 1, 8);
        let site = rooms.find("site-2").unwrap();
        assert_eq!(rooms.occupied(), 0);
        let _alice = rooms.join(site, "alice");
        let _tab = rooms.join(site, "alice");
        assert_eq!(rooms.occupied(), 1);
        rooms.leave(site, "alice");
        assert_eq!(rooms.occupied(), 1, "alice still has a tab in the room");
        rooms.leave(site, "alice");
        assert_eq!(rooms.occupied(), 0);
    }

    #[test]
    fn a_reading_reaches_only_its_rooms_members() {
        let rooms = Rooms::new(2, 1, 8);
        let (one, two) =
            (rooms.find("site-1").unwrap(), rooms.find("site-2").unwrap());
        let mut first = rooms.join(one, "alice").events;
        let mut second = rooms.join(two, "bob").events;
        let _ = (first.try_recv(), second.try_recv()); // each one's presence
        rooms.record_reading(0, 0, 21.5);
        assert!(
            first
                .try_recv()
                .unwrap()
                .json
                .contains(r#""room":"site-1""#)
        );
        assert!(second.try_recv().is_err());
    }

    // ANCHOR: race
    /// Joins and leaves race on one room from several threads while readings
    /// arrive. Every member must hear the reading recorded while it is in: a
    /// join that landed on a channel being removed would hear nothing.
    #[test]
    fn a_join_never_lands_on_a_room_being_removed() {
        let rooms = Arc::new(Rooms::new(1, 1, 1024));
        let site = rooms.find("site-1").unwrap();
        let threads: Vec<_> = (0..2)
            .map(|thread| {
                let rooms = rooms.clone();
                std::thread::spawn(move || {
                    let user = format!("user-{thread}");
                    for round in 0..20_000 {
                        let mut entry = rooms.join(site, &user);
                        rooms.record_reading(0, 0, f64::from(round));
                        let heard = heard_a_reading(&mut entry.events);
                        rooms.leave(site, &user);
                        assert!(heard, "{user} joined and heard nothing");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no thread panicked");
        }
        assert_eq!(rooms.occupied(), 0);
    }

    /// A reading, or so many events that the receiver lagged: either way it
    /// is on the room's live channel.
    fn heard_a_reading(events: &mut broadcast::Receiver<Event>) -> bool {
        use broadcast::error::TryRecvError;
        loop {
            match events.try_recv() {
                Ok(event) if event.json.contains(r#""type":"reading""#) => {
                    return true;
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => return true,
                Err(_) => return false,
            }
        }
    }
    // ANCHOR_END: race
}
