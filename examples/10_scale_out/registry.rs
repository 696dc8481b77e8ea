//! Who is where, across instances. Each instance writes its own part to Redis
//! (its users, and its members of each room) under its own id, keeps an
//! expiring key alive to say it is running, and tells the others through
//! pub/sub that something changed. Presence is the union of the live
//! instances' parts; a notice is published to the instances that have its
//! user. An instance that dies stops renewing its key, and the others drop its
//! part within seconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisResult, Script};
use serde::{Deserialize, Serialize};

use crate::rooms::{RoomId, Rooms};
use crate::users::Users;

/// How long an instance counts as running after it last said so.
const ALIVE: Duration = Duration::from_secs(3);
/// How often it says so, and how often presence is checked for the dead.
const PULSE: Duration = Duration::from_secs(1);
const PRESENCE: &str = "ws-lessons:presence";
const NOTICES: &str = "ws-lessons:notices";

// ANCHOR: notify
/// Publishes a notice if a live instance has its user, and returns how many
/// do: the check and the publish in one step, so the answer is true of the
/// notice that was sent.
const NOTIFY: &str = r"
local user, notice = ARGV[1], ARGV[2]
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', 'ws-lessons:instances')) do
  if redis.call('EXISTS', 'ws-lessons:alive:' .. id) == 1 then
    if redis.call('SISMEMBER', 'ws-lessons:users:' .. id, user) == 1 then
      n = n + 1
    end
  end
end
if n > 0 then redis.call('PUBLISH', 'ws-lessons:notices', notice) end
return n
";
// ANCHOR_END: notify

/// A notice on its way between instances.
#[derive(Serialize, Deserialize)]
struct Notice {
    to: String,
    from: String,
    text: String,
}

// ANCHOR: registry
/// This instance's part of the shared registry: its own `id` among the
/// instances, and the connection and script it publishes and notifies with.
#[derive(Clone)]
pub struct Registry {
    id: String,
    client: Client,
    commands: ConnectionManager,
    notify: Arc<Script>,
}
// ANCHOR_END: registry

impl Registry {
    /// A registry part for a new instance, with an id of its own.
    pub fn new(client: Client, commands: ConnectionManager) -> Self {
        let id = format!("{:016x}", rand::random::<u64>());
        Self {
            id,
            client,
            commands,
            notify: Arc::new(Script::new(NOTIFY)),
        }
    }

    /// Sends a notice to every tab of `to`, on every instance; returns how
    /// many instances have `to`, or an error for the client.
    pub async fn notify(
        &self,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<usize, String> {
        crate::users::check_notice(text)?;
        let notice = Notice {
            to: to.to_owned(),
            from: from.to_owned(),
            text: text.to_owned(),
        };
        let json = serde_json::to_string(&notice).unwrap_or_default();
        let mut commands = self.commands.clone();
        // Bounded here: while the connection manager reconnects, a command
        // waits for all its attempts, well past its response timeout.
        let mut invocation = self.notify.arg(to);
        let sent = invocation.arg(json).invoke_async(&mut commands);
        match tokio::time::timeout(crate::bus::TIMEOUT, sent).await {
            Ok(Ok(0)) => Err(format!("{to:?} is not connected")),
            Ok(Ok(instances)) => Ok(instances),
            Ok(Err(_)) | Err(_) => {
                Err("notices are paused: the server cannot reach Redis".into())
            }
        }
    }

    /// Keeps this instance's part up to date, and applies the others', for as
    /// long as the server runs.
    pub async fn run(self, rooms: Arc<Rooms>, users: Arc<Users>) {
        let listener =
            tokio::spawn(self.clone().listen(rooms.clone(), users.clone()));
        let mut pulse = tokio::time::interval(PULSE);
        let mut written = Written::default();
        loop {
            let refresh = tokio::select! {
                _ = pulse.tick() => true,
                () = rooms.membership.notified() => false,
                () = users.changed.notified() => false,
            };
            let published = self.publish(&rooms, &users, &mut written, refresh);
            if let Err(e) = published.await {
                tracing::debug!("cannot update the shared registry: {e}");
                written = Written::default();
            }
            if let Err(e) = self.gather(&rooms).await {
                tracing::debug!("cannot read the shared registry: {e}");
            }
            if listener.is_finished() {
                return;
            }
        }
    }

    /// Writes what changed of this instance's part (its users, its members of
    /// each room) and that it is alive, and tells the others what changed. On
    /// a `refresh`, every second, it writes its part again whether or not it
    /// changed: a Redis that restarted without its data has lost it.
    async fn publish(
        &self,
        rooms: &Rooms,
        users: &Users,
        written: &mut Written,
        refresh: bool,
    ) -> RedisResult<()> {
        let mut commands = self.commands.clone();
        let mut pipe = redis::pipe();
        pipe.set_ex(format!("ws-lessons:alive:{}", self.id), 1, ALIVE.as_secs())
            .sadd("ws-lessons:instances", &self.id);
        let names: BTreeSet<String> = users.names().into_iter().collect();
        if refresh || written.users.as_ref() != Some(&names) {
            let key = format!("ws-lessons:users:{}", self.id);
            pipe.del(&key);
            if !names.is_empty() {
                pipe.sadd(&key, names.iter().collect::<Vec<_>>());
            }
        }
        let mut changed = Vec::new();
        for room in rooms.all() {
            let here = rooms.local_users(room);
            let same = written.rooms.get(&room) == Some(&here);
            let key = format!("ws-lessons:{{{}}}:presence", rooms.name(room));
            if here.is_empty() && !same {
                pipe.hdel(&key, &self.id);
            } else if !here.is_empty() && (refresh || !same) {
                let json = serde_json::to_string(&here).unwrap_or_default();
                pipe.hset(&key, &self.id, json);
            }
            if !same {
                changed.push((room, here));
            }
        }
        for (room, _) in &changed {
            pipe.publish(PRESENCE, rooms.name(*room));
        }
        pipe.query_async::<()>(&mut commands).await?;
        written.users = Some(names);
        written.rooms.extend(changed);
        Ok(())
    }

    // ANCHOR: gather
    /// Reads who is in each occupied room on the other live instances.
    async fn gather(&self, rooms: &Rooms) -> RedisResult<()> {
        for room in rooms.all() {
            if rooms.local_users(room).is_empty() {
                continue;
            }
            self.gather_room(rooms, room).await?;
        }
        Ok(())
    }

    async fn gather_room(&self, rooms: &Rooms, room: RoomId) -> RedisResult<()> {
        let mut commands = self.commands.clone();
        let key = format!("ws-lessons:{{{}}}:presence", rooms.name(room));
        let parts: HashMap<String, String> = commands.hgetall(&key).await?;
        let mut elsewhere = BTreeSet::new();
        for (id, json) in parts {
            if id == self.id {
                continue;
            }
            let alive: bool =
                commands.exists(format!("ws-lessons:alive:{id}")).await?;
            if !alive {
                // An instance that died: its part goes too.
                let _: () = commands.hdel(&key, &id).await?;
                continue;
            }
            let users: Vec<String> =
                serde_json::from_str(&json).unwrap_or_default();
            elsewhere.extend(users);
        }
        rooms.set_elsewhere(room, elsewhere);
        Ok(())
    }
    // ANCHOR_END: gather

    /// Listens to the other instances: presence changes, and notices for the
    /// users connected here. Reconnects with backoff and jitter.
    async fn listen(self, rooms: Arc<Rooms>, users: Arc<Users>) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&[PRESENCE, NOTICES]).await.is_ok() {
                        delay = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let payload: String =
                                message.get_payload().unwrap_or_default();
                            if message.get_channel_name() == NOTICES {
                                deliver(&users, &payload);
                            } else if let Some(room) = rooms.find(&payload) {
                                let _ = self.gather_room(&rooms, room).await;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("cannot subscribe: {e}"),
            }
            let wait = delay.mul_f64(rand::random_range(0.0..=1.0));
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Hands a notice from another instance (or this one) to the local tabs of
/// its user, if there are any here.
fn deliver(users: &Users, payload: &str) {
    if let Ok(notice) = serde_json::from_str::<Notice>(payload) {
        let _ = users.notify(&notice.from, &notice.to, &notice.text);
    }
}

/// What this instance last wrote, so that it writes only changes.
#[derive(Default)]
struct Written {
    users: Option<BTreeSet<String>>,
    rooms: HashMap<RoomId, Vec<String>>,
}
