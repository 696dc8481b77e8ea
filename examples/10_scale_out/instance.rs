//! Starting an instance: its flags, its rooms loaded from Redis and followed,
//! the producer, and what `GET /stats` reports. `main.rs` serves what this
//! starts.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;
use ws_lessons::sensor::Simulator;

use crate::bus::Bus;
use crate::registry::Registry;
use crate::rooms::Rooms;
use crate::session::Hub;
use crate::site::Change;
use crate::troubles::{TroubleCounts, count};
use crate::users::Users;
use crate::web::{self, RoomStats, RoomsArgs};

// ANCHOR: args
/// An instance's flags: lesson 09's, and where Redis is.
#[derive(clap::Args)]
pub struct InstanceArgs {
    /// The Redis (or Valkey) that every instance shares; start-up fails if it
    /// cannot be reached
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Run the sensor simulator here: exactly one instance should
    #[arg(long)]
    pub produce: bool,
    #[command(flatten)]
    pub rooms: RoomsArgs,
    /// Another instance's address (`ws://HOST:PORT/ws`), which the page tries
    /// when this one goes away; repeat for each
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
}
// ANCHOR_END: args

// ANCHOR: instance
/// A running instance's ties to Redis, and the rooms it mirrors from there.
pub struct Instance {
    pub bus: Bus,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub registry: Registry,
}

impl Instance {
    /// Connects to Redis, loads every room from it, and follows the rooms'
    /// changes and the other instances' users from then on; runs the producer
    /// if `--produce` asks. An error is one line, for the person starting it.
    pub async fn start(args: &InstanceArgs) -> Result<Self, String> {
        let sensors = usize::from(args.rooms.sensors.sensors);
        let history = args.rooms.history as usize;
        let bus = Bus::connect(&args.redis, history, sensors)
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", args.redis))?;
        let loaded = async {
            let epoch = bus.epoch().await?;
            let (sites, queue) =
                (usize::from(args.rooms.sites), args.rooms.queue.capacity());
            let rooms =
                Arc::new(Rooms::new(sites, sensors, history, queue, &epoch));
            bus.follow_epoch(&rooms).await?;
            Ok::<_, redis::RedisError>(rooms)
        };
        let rooms = loaded
            .await
            .map_err(|e| format!("cannot load the rooms from Redis: {e}"))?;
        supervise("following Redis", bus.clone().follow(rooms.clone()));
        let users = Arc::new(Users::default());
        let registry = bus.registry();
        let sharing = registry.clone().run(rooms.clone(), users.clone());
        supervise("sharing presence", sharing);
        if args.produce {
            produce(&args.rooms, bus.clone(), rooms.clone());
        }
        Ok(Self {
            bus,
            rooms,
            users,
            registry,
        })
    }
}
// ANCHOR_END: instance

/// Every route of an instance but `GET /ready`, which `main.rs` adds: the
/// page, the upgrade, `GET /stats`, and `GET /peers`, the other instances
/// (`--peer`) that the page tries when this one goes away.
pub fn routes(peers: Vec<String>) -> Router<Hub> {
    let peers = Json(peers);
    Router::new()
        .route("/", get(web::page))
        .route("/ws", any(web::upgrade))
        .route("/stats", get(stats))
        .route("/peers", get(move || async move { peers }))
}

/// Runs `task`, which should last as long as the process, and says so in the
/// log, as an error, if it ends: a panic in a spawned task is otherwise seen
/// by no one, while the instance goes on serving a mirror that no longer
/// follows Redis.
fn supervise(
    what: &'static str,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let task = tokio::spawn(task);
    tokio::spawn(async move {
        match task.await {
            Ok(()) => tracing::error!("{what} stopped"),
            Err(e) => tracing::error!("{what} stopped: {e}"),
        }
    });
}

// ANCHOR: produce
/// Runs the simulator, and stores each reading in Redis, in the order it was
/// taken. A reading that cannot be stored (Redis is down, or too slow for the
/// rate) never gets a number, so no client misses it; it is counted, and the
/// count logged.
fn produce(args: &RoomsArgs, bus: Bus, rooms: Arc<Rooms>) {
    let sensors = usize::from(args.sensors.sensors);
    let simulator = Simulator::new(usize::from(args.sites) * sensors);
    let (readings, mut to_store) = tokio::sync::mpsc::channel(1024);
    let troubles = bus.troubles.clone();
    tokio::spawn(simulator.run(args.sensors.rate, move |sample| {
        let (site, sensor) = (sample.index / sensors, sample.index % sensors);
        let at_ms = ws_lessons::protocol::unix_ms();
        let value = sample.value;
        let alert = None; // Redis decides it, in the one order
        let change = Change::Reading {
            sensor,
            value,
            at_ms,
            alert,
        };
        if readings.try_send((site, change)).is_err() {
            count(&troubles.unstored);
        }
    }));
    tokio::spawn(async move {
        // The count as of the last reading stored: what it has grown by since
        // is logged once the next one is stored.
        let mut logged = 0;
        while let Some((site, change)) = to_store.recv().await {
            let Some(room) = rooms.all().nth(site) else {
                continue;
            };
            match bus.record(&rooms, room, &change).await {
                Ok(_) => {
                    let unstored = bus.troubles.unstored.load(Ordering::Relaxed);
                    if unstored > logged {
                        let lost = unstored - logged;
                        tracing::warn!(lost, "readings could not be stored");
                        logged = unstored;
                    }
                }
                Err(_) => count(&bus.troubles.unstored),
            }
        }
    });
}
// ANCHOR_END: produce

// ANCHOR: stats
/// What `GET /stats` reports: lesson 09's gauges, and what went wrong with
/// Redis.
#[derive(Serialize)]
pub struct Stats {
    #[serde(flatten)]
    rooms: RoomStats,
    #[serde(flatten)]
    redis: TroubleCounts,
}

/// `GET /stats`: the gauges, as JSON, for people and for tests.
pub async fn stats(State(hub): State<Hub>) -> Json<Stats> {
    let rooms = RoomStats::of(&hub);
    Json(Stats {
        rooms,
        redis: hub.bus.troubles.counts(),
    })
}
// ANCHOR_END: stats
