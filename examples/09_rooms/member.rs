//! One connection's rooms: a receiver for each room it is in, and what it has
//! seen of each. Dropping it leaves every room, however the connection ended.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio_stream::StreamExt;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::rooms::{Entry, Rejoin, RoomId, Rooms};
use crate::site::Event;

/// The most rooms one connection may be in at once.
pub const MAX_ROOMS: usize = 16;

// ANCHOR: member
/// The rooms of one connection of `user`.
pub struct Member {
    rooms: Arc<Rooms>,
    user: String,
    /// One receiver per room; polling the map wakes this connection only for
    /// its own rooms.
    joined: StreamMap<RoomId, BroadcastStream<Event>>,
    /// The last `seq` seen in each room, for an exact `missed` on a resync.
    seen: HashMap<RoomId, u64>,
}

impl Drop for Member {
    fn drop(&mut self) {
        for (room, _) in self.joined.iter() {
            self.rooms.leave(*room, &self.user);
        }
    }
}
// ANCHOR_END: member

impl Member {
    /// A connection of `user`, in no room yet.
    pub fn new(rooms: Arc<Rooms>, user: &str) -> Self {
        Self {
            rooms,
            user: user.to_owned(),
            joined: StreamMap::new(),
            seen: HashMap::new(),
        }
    }

    /// Joins the room called `name`, and returns what to send first: its
    /// snapshot, or `joined` and the changes it does not have, the first
    /// answering the join request `id`.
    pub fn join(
        &mut self,
        name: &str,
        id: Option<u64>,
        rejoin: Option<Rejoin>,
    ) -> Result<Vec<Utf8Bytes>, String> {
        let room = self.find(name)?;
        if self.joined.contains_key(&room) {
            return Err(format!("already in {name:?}"));
        }
        if self.joined.len() >= MAX_ROOMS {
            return Err(format!(
                "a connection may be in at most {MAX_ROOMS} rooms; leave one first"
            ));
        }
        let entry = self.rooms.join(room, &self.user, id, rejoin);
        Ok(self.follow(room, entry))
    }

    /// The room called `name`, if this connection is in it.
    pub fn room(&self, name: &str) -> Result<RoomId, String> {
        let room = self.find(name)?;
        if self.joined.contains_key(&room) {
            Ok(room)
        } else {
            Err(format!("not in {name:?}"))
        }
    }

    /// Leaves the room called `name`: nothing of it follows.
    pub fn leave(&mut self, name: &str) -> Result<(), String> {
        let room = self.find(name)?;
        if self.joined.remove(&room).is_none() {
            return Err(format!("not in {name:?}"));
        }
        self.seen.remove(&room);
        self.rooms.leave(room, &self.user);
        Ok(())
    }

    // ANCHOR: next
    /// The next message from any room this connection is in; pending while it
    /// is in none. Cancel safe: nothing is awaited after an event is taken.
    pub async fn next(&mut self) -> Vec<Utf8Bytes> {
        loop {
            let Some((room, event)) = self.joined.next().await else {
                return std::future::pending().await;
            };
            match event {
                Ok(event) => {
                    self.seen.insert(room, event.seq);
                    return vec![event.json];
                }
                // Fell more than the room's queue behind: a fresh receiver and
                // a snapshot that counts the room's changes it missed.
                Err(BroadcastStreamRecvError::Lagged(_)) => {
                    let seen = self.seen.get(&room).copied().unwrap_or(0);
                    let Some(entry) = self.rooms.resync(room, seen) else {
                        continue;
                    };
                    let name = self.rooms.name(room);
                    tracing::info!(room = name, "resynchronising a slow member");
                    return self.follow(room, entry);
                }
            }
        }
    }
    // ANCHOR_END: next

    fn follow(&mut self, room: RoomId, entry: Entry) -> Vec<Utf8Bytes> {
        self.joined.insert(room, BroadcastStream::new(entry.events));
        self.seen.insert(room, entry.seq);
        entry.backlog
    }

    fn find(&self, name: &str) -> Result<RoomId, String> {
        self.rooms
            .find(name)
            .ok_or_else(|| format!("unknown room {name:?}"))
    }
}
