//! The instances' shared bus: Redis. Every change to a room is numbered and
//! stored by one atomic script, in a stream (the ordered, bounded history every
//! instance reads) and in a hash (the state a starting instance loads). Each
//! instance keeps its rooms as a mirror (`rooms.rs`), fed from the streams in
//! order.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use redis::aio::{
    ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisResult, Script};
use tokio::sync::{broadcast, watch};
use ws_lessons::protocol::SensorState;
use ws_lessons::protocol::rooms::RoomMessage;
use ws_lessons::sensor::{Sensor, Simulator};

use crate::rooms::{RoomId, Rooms};
use crate::site::Change;
use crate::troubles::{Troubles, count};

/// How long a command may take before Redis counts as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Numbers a room's change and stores it, atomically: the next `seq`, the
/// stream entry `0-SEQ`, and the state a new instance loads. Every instance's
/// change goes through it, so they all share one order.
const RECORD: &str = include_str!("record.lua");

/// A room's state as of its `seq`: the hash, and each sensor's recent values
/// (KEYS[3] onwards, one list per sensor), read in one step.
const LOAD: &str = r"
local seq_key, state = KEYS[1], KEYS[2]
local out = { redis.call('GET', seq_key) or '0', redis.call('HGETALL', state) }
for i = 3, #KEYS do
  out[#out + 1] = redis.call('LRANGE', KEYS[i], 0, -1)
end
return out
";

/// Why updates are `paused`, as every client is told, whether it was
/// connected when Redis went away or connected since.
const LOST_REDIS: &str = "the server has lost its connection to Redis";

// ANCHOR: bus
/// This instance's way to Redis: the connection and the scripts, how much
/// history the streams keep, whether Redis answers (`up`), and the news of
/// it for every connection. Cloned into every task that talks to Redis.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    commands: ConnectionManager,
    record: Arc<Script>,
    load: Arc<Script>,
    /// How many changes of each room the streams keep.
    history: usize,
    /// Each site's sensor count, for the keys of their recent values.
    sensors: usize,
    /// True while Redis answers; `GET /ready` reads it.
    pub up: watch::Receiver<bool>,
    up_sender: Arc<watch::Sender<bool>>,
    /// `paused` and `resumed`, for every connection of this instance.
    pub announcements: broadcast::Sender<Utf8Bytes>,
    /// The numbering the mirror follows (see [`Bus::epoch`]).
    epoch: Arc<std::sync::Mutex<String>>,
    /// What went wrong between this instance and Redis, for `GET /stats`.
    pub troubles: Arc<Troubles>,
}
// ANCHOR_END: bus

/// Names the numbering that every instance shares.
const EPOCH: &str = "ws-lessons:epoch";

/// The keys of one room. The `{...}` hash tag keeps them in one Redis Cluster
/// slot, as a script that touches them all needs.
fn key(room: &str, what: &str) -> String {
    format!("ws-lessons:{{{room}}}:{what}")
}

impl Bus {
    /// Connects to Redis at `url`; an error if it does not answer in time.
    pub async fn connect(
        url: &str,
        history: usize,
        sensors: usize,
    ) -> RedisResult<Self> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_max_delay(Duration::from_secs(2));
        let commands =
            ConnectionManager::new_with_config(client.clone(), config).await?;
        let (up_sender, up) = watch::channel(true);
        Ok(Self {
            client,
            commands,
            record: Arc::new(Script::new(RECORD)),
            load: Arc::new(Script::new(LOAD)),
            history: history.max(1),
            sensors,
            up,
            up_sender: Arc::new(up_sender),
            announcements: broadcast::channel(16).0,
            epoch: Arc::default(),
            troubles: Arc::default(),
        })
    }

    // ANCHOR: epoch
    /// The numbering every instance shares, set by the first instance that
    /// finds none. A Redis that lost its data (restarted without persistence)
    /// has none, and the next one starts a new numbering: clients that rejoin
    /// with the old one get snapshots instead of changes that are not theirs.
    pub async fn epoch(&self) -> RedisResult<String> {
        let mine = format!(
            "{:x}-{}",
            ws_lessons::protocol::unix_ms(),
            std::process::id()
        );
        let mut commands = self.commands.clone();
        // "OK" if it was ours to set, nothing if another instance's is there.
        let _: Option<String> = redis::cmd("SET")
            .arg(EPOCH)
            .arg(mine)
            .arg("NX")
            .query_async(&mut commands)
            .await?;
        redis::AsyncCommands::get(&mut commands, EPOCH).await
    }

    /// Takes up the shared numbering, and reloads every room when it is new
    /// to this instance.
    pub async fn follow_epoch(&self, rooms: &Rooms) -> RedisResult<String> {
        let epoch = self.epoch().await?;
        let known = self.current_epoch();
        if known != epoch {
            if !known.is_empty() {
                tracing::warn!(%known, %epoch, "Redis numbers anew; reloading");
            }
            *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = epoch.clone();
            for room in rooms.all() {
                self.load(rooms, room).await?;
            }
        }
        Ok(epoch)
    }
    // ANCHOR_END: epoch

    fn current_epoch(&self) -> String {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    // ANCHOR: record
    /// Stores `change` as the room's next change, and returns its number. Every
    /// instance, this one included, applies it when it reads it back.
    pub async fn record(
        &self,
        rooms: &Rooms,
        id: RoomId,
        change: &Change,
    ) -> RedisResult<u64> {
        let room = rooms.name(id);
        let (kind, sensor, value) = match *change {
            Change::Reading { sensor, value, .. } => ("reading", sensor, value),
            Change::Threshold { sensor, threshold } => {
                ("threshold", sensor, threshold)
            }
        };
        let json =
            serde_json::to_string(change).expect("a Change always serializes");
        let mut commands = self.commands.clone();
        // In the order `record.lua` names them: KEYS[1] to [4], ARGV[1] to [7].
        self.record
            .key(key(room, "seq"))
            .key(key(room, "changes"))
            .key(key(room, "state"))
            .key(key(room, &format!("recent{sensor}")))
            .arg(json)
            .arg(kind)
            .arg(sensor)
            .arg(self.history)
            .arg(value)
            .arg(ws_lessons::protocol::RECENT)
            .arg(self.default_threshold(id, sensor))
            .invoke_async(&mut commands)
            .await
    }
    // ANCHOR_END: record

    /// A sensor's threshold until a client sets one (as in lesson 05).
    fn default_threshold(&self, room: RoomId, sensor: usize) -> f64 {
        Simulator::default_threshold(room.index() * self.sensors + sensor)
    }

    /// Loads a room's state from Redis into the mirror, and returns its `seq`.
    pub async fn load(&self, rooms: &Rooms, room: RoomId) -> RedisResult<u64> {
        let name = rooms.name(room).to_owned();
        let mut invocation = self.load.key(key(&name, "seq"));
        invocation.key(key(&name, "state"));
        for sensor in 0..self.sensors {
            invocation.key(key(&name, &format!("recent{sensor}")));
        }
        let mut commands = self.commands.clone();
        let (seq, fields, recent): (u64, Vec<String>, Vec<Vec<f64>>) = {
            let reply: redis::Value =
                invocation.invoke_async(&mut commands).await?;
            parse_load(reply)?
        };
        let first = room.index() * self.sensors;
        let sensors = (0..self.sensors)
            .map(|i| {
                let field = |prefix: &str| {
                    let name = format!("{prefix}{i}");
                    let at = fields.chunks(2).find(|pair| pair[0] == name)?;
                    at.get(1)?.parse::<f64>().ok()
                };
                Sensor::from_state(SensorState {
                    sensor: format!("sensor-{}", i + 1),
                    value: field("v"),
                    threshold: field("t")
                        .unwrap_or(Simulator::default_threshold(first + i)),
                    recent: recent.get(i).cloned().unwrap_or_default(),
                })
            })
            .collect();
        // The changes before it, as far as the stream keeps them and the
        // history holds, so that a client that comes back to this instance
        // (new, or reloaded) gets them replayed rather than a snapshot.
        let first = seq.saturating_sub(self.history as u64) + 1;
        let (from, to) = (format!("0-{first}"), format!("0-{seq}"));
        let stream = key(&name, "changes");
        let before: StreamRangeReply =
            redis::AsyncCommands::xrange(&mut commands, stream, from, to).await?;
        let before: Vec<_> = before.ids.iter().filter_map(parse_entry).collect();
        let epoch = self.current_epoch();
        rooms.load(room, (seq, &epoch), sensors, &before);
        Ok(seq)
    }

    // ANCHOR: follow
    /// Feeds the mirror from Redis for as long as the server runs: every room's
    /// changes, in order. When Redis goes away the clients are told, the bus
    /// reconnects with backoff and jitter, and catches up where it stopped.
    pub async fn follow(self, rooms: Arc<Rooms>) {
        let mut delay = Duration::from_millis(100);
        loop {
            let Err(error) = self.tail(&rooms).await;
            if self.up_sender.send_replace(false) {
                count(&self.troubles.outages);
                tracing::warn!("Redis is unreachable ({error}); updates paused");
                self.announce(RoomMessage::Paused {
                    reason: LOST_REDIS.into(),
                });
                delay = Duration::from_millis(100);
            } else {
                tracing::debug!("Redis is still unreachable: {error}");
            }
            // Exponential backoff with full jitter: instances that lost Redis
            // together do not all come back at the same instant.
            let wait = delay.mul_f64(rand::random_range(0.0..=1.0));
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    // ANCHOR_END: follow

    // ANCHOR: tail
    /// Reads every room's stream from where the mirror is, and applies what
    /// comes, until Redis fails.
    async fn tail(&self, rooms: &Rooms) -> RedisResult<std::convert::Infallible> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT * 2));
        // A connection of its own: XREAD BLOCK holds it while it waits.
        let mut stream: MultiplexedConnection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let keys: Vec<String> =
            rooms.all().map(|r| key(rooms.name(r), "changes")).collect();
        let wait = StreamReadOptions::default().block(1000).count(1000);
        // Redis may have come back without its data, and numbering anew.
        self.follow_epoch(rooms).await?;
        let mut resumed = false;
        loop {
            let ids: Vec<String> =
                rooms.all().map(|r| format!("0-{}", rooms.seq(r))).collect();
            let reply: StreamReadReply = redis::AsyncCommands::xread_options(
                &mut stream,
                &keys,
                &ids,
                &wait,
            )
            .await?;
            if !resumed {
                resumed = true;
                if !self.up_sender.send_replace(true) {
                    tracing::info!("Redis is back; updates resumed");
                    self.announce(RoomMessage::Resumed);
                }
            }
            for entries in reply.keys {
                let Some(room) = keys.iter().position(|k| *k == entries.key)
                else {
                    continue;
                };
                let room = rooms.all().nth(room).expect("one key per room");
                for entry in entries.ids {
                    self.apply(rooms, room, &entry).await?;
                }
            }
        }
    }

    // ANCHOR_END: tail

    // ANCHOR: apply
    /// Applies one stream entry to the mirror. A gap (the stream was trimmed
    /// past what this instance had) reloads the room's state, and its members
    /// take a snapshot that counts what they missed.
    async fn apply(
        &self,
        rooms: &Rooms,
        room: RoomId,
        entry: &redis::streams::StreamId,
    ) -> RedisResult<()> {
        let Some((seq, change)) = parse_entry(entry) else {
            count(&self.troubles.skipped);
            let id = &entry.id;
            tracing::warn!(id, "skipping an entry this lesson did not write");
            return Ok(());
        };
        let have = rooms.seq(room);
        if seq <= have || rooms.apply(room, seq, &change) {
            return Ok(());
        }
        let loaded = self.load(rooms, room).await?;
        count(&self.troubles.reloads);
        tracing::info!(
            room = rooms.name(room),
            have,
            loaded,
            "reloaded after a gap"
        );
        Ok(())
    }
    // ANCHOR_END: apply

    /// This instance's part of the registry of users and members, on the same
    /// Redis.
    pub fn registry(&self) -> crate::registry::Registry {
        crate::registry::Registry::new(self.client.clone(), self.commands.clone())
    }

    /// What a connection made now is told first: `paused`, while Redis is
    /// away.
    pub fn paused(&self) -> Option<Utf8Bytes> {
        let reason = LOST_REDIS.into();
        let paused = RoomMessage::Paused { reason };
        (!*self.up.borrow()).then(|| paused.to_json().into())
    }

    fn announce(&self, message: RoomMessage) {
        let _ = self.announcements.send(message.to_json().into());
    }
}

/// A stream entry as the record script wrote it: its `seq` and its change,
/// with the alert that Redis decided for a reading.
fn parse_entry(entry: &redis::streams::StreamId) -> Option<(u64, Change)> {
    let seq = entry.id.strip_prefix("0-")?.parse::<u64>().ok()?;
    let json = entry.get::<String>("change")?;
    let mut change = serde_json::from_str::<Change>(&json).ok()?;
    if let Change::Reading { alert, .. } = &mut change {
        *alert = entry.get::<String>("alert").and_then(|a| a.parse().ok());
    }
    Some((seq, change))
}

fn parse_load(
    reply: redis::Value,
) -> RedisResult<(u64, Vec<String>, Vec<Vec<f64>>)> {
    let redis::Value::Array(mut parts) = reply else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "the load script returned something else than a list",
        )));
    };
    let rest = parts.split_off(2.min(parts.len()));
    let mut head = parts.into_iter();
    let seq: u64 =
        redis::from_redis_value(head.next().unwrap_or(redis::Value::Nil))
            .unwrap_or(0);
    let fields: Vec<String> =
        redis::from_redis_value(head.next().unwrap_or(redis::Value::Nil))
            .unwrap_or_default();
    let recent = rest
        .into_iter()
        .map(|list| redis::from_redis_value(list).unwrap_or_default())
        .collect();
    Ok((seq, fields, recent))
}
