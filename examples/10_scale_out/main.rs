//! Lesson 10: past one process. Several instances of lesson 09's dashboard
//! share one Redis (or Valkey), and every client sees every change, in one
//! order, whichever instance it is connected to.
//!
//! What it teaches, on top of lesson 09:
//! - one numbering for everyone: a Lua script numbers each room's change and
//!   stores it atomically, in a Redis Stream (the ordered, bounded history)
//!   and in a hash (the state a starting instance loads) (`bus.rs`);
//! - each instance keeps lesson 09's rooms as a mirror, fed from the streams
//!   in order, so its clients are served from memory;
//! - resuming anywhere: `{"type":"join","room":"site-1","after":SEQ}` on any
//!   instance replays the changes after SEQ from its history, or sends a
//!   snapshot that counts what it cannot replay;
//! - Redis going away: sockets stay open, clients are told `paused`, `GET
//!   /ready` answers 503, the bus reconnects with backoff and jitter, and
//!   catches up where it stopped (`bus.rs`);
//! - restarts without a stampede: SIGTERM turns `GET /ready` to 503 at once,
//!   then closes each connection with 1012 (service restart) at a random
//!   moment within `--drain` (default 10 s), so that clients come back a few
//!   at a time, elsewhere; Ctrl-C still closes every one at once with 1001.
//!
//! Exactly one instance runs the simulator, the one started with `--produce`;
//! every instance serves clients. Start-up fails, with a one-line error and a
//! non-zero exit, when Redis cannot be reached.
//!
//! Try it (with `redis-server` running on its default port):
//!     cargo run --example 10_scale_out -- 127.0.0.1:3000 --produce
//!     cargo run --example 10_scale_out -- 127.0.0.1:3001
//!     # then open http://127.0.0.1:3000/ and http://127.0.0.1:3001/

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use ws_lessons::cli::DrainArgs;
use ws_lessons::sensor::Simulator;
use ws_lessons::{Connections, ListenArgs};

mod bus;
#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
mod instance;
#[path = "../09_rooms/member.rs"]
mod member;
mod registry;
#[path = "../09_rooms/rooms.rs"]
mod rooms;
#[path = "../09_rooms/session.rs"]
mod session;
#[path = "../09_rooms/site.rs"]
mod site;
#[path = "../09_rooms/users.rs"]
mod users;
#[path = "../09_rooms/web.rs"]
mod web;

use bus::Bus;
use instance::Instance;
use rooms::{Change, Rooms};
use session::Hub;
use users::Users;
use web::RoomsArgs;

/// Lesson 09's dashboard, on as many instances as you like, sharing one Redis.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    /// The Redis (or Valkey) that every instance shares; start-up fails if it
    /// cannot be reached
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Run the sensor simulator here: exactly one instance should
    #[arg(long)]
    produce: bool,
    #[command(flatten)]
    rooms: RoomsArgs,
    /// Another instance's address (`ws://HOST:PORT/ws`), which the page tries
    /// when this one goes away; repeat for each
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    #[command(flatten)]
    drain: DrainArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let sensors = usize::from(args.rooms.sensors.sensors);
    let history = args.rooms.history as usize;
    let bus = match Bus::connect(&args.redis, history, sensors).await {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("error: cannot reach Redis at {}: {e}", args.redis);
            return ExitCode::FAILURE;
        }
    };
    let loaded = async {
        let epoch = bus.epoch().await?;
        let rooms = Arc::new(args.rooms.rooms(&epoch));
        bus.follow_epoch(&rooms).await?;
        Ok::<_, redis::RedisError>(rooms)
    };
    let rooms = match loaded.await {
        Ok(rooms) => rooms,
        Err(e) => {
            eprintln!("error: cannot load the rooms from Redis: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(bus.clone().follow(rooms.clone()));
    let users = Arc::new(Users::default());
    let registry = bus.registry();
    tokio::spawn(registry.clone().run(rooms.clone(), users.clone()));
    if args.produce {
        produce(&args, bus.clone(), rooms.clone());
    }

    let peers = Json(args.peers.clone());
    let hub = Hub {
        connections: Connections::with_drain(args.drain.drain),
        rooms,
        users,
        heartbeat: args.rooms.heartbeat,
        heartbeat_drops: Default::default(),
    };
    let connections = hub.connections.clone();
    let instance = Instance { hub, bus, registry };
    let app = Router::new()
        .route("/", get(web::page))
        .route("/ws", any(web::upgrade::<Instance>))
        .route("/stats", get(web::stats::<Instance>))
        .route("/ready", get(ready))
        .route("/peers", get(move || async move { peers }))
        .with_state(instance);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

// ANCHOR: produce
/// Runs the simulator, and stores each reading in Redis, in the order it was
/// taken. A reading that cannot be stored (Redis is down, or too slow for the
/// rate) never gets a number, so no client misses it; it is counted, and the
/// count logged.
fn produce(args: &Args, bus: Bus, rooms: Arc<Rooms>) {
    let sensors = usize::from(args.rooms.sensors.sensors);
    let simulator = Simulator::new(usize::from(args.rooms.sites) * sensors);
    let (readings, mut to_store) = tokio::sync::mpsc::channel(1024);
    let unstored = Arc::new(AtomicU64::new(0));
    let overflow = unstored.clone();
    tokio::spawn(simulator.run(args.rooms.sensors.rate, move |sample| {
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
            overflow.fetch_add(1, Ordering::Relaxed);
        }
    }));
    tokio::spawn(async move {
        while let Some((site, change)) = to_store.recv().await {
            let Some(room) = rooms.all().nth(site) else {
                continue;
            };
            match bus.record(&rooms, room, &change).await {
                Ok(_) => match unstored.swap(0, Ordering::Relaxed) {
                    0 => {}
                    lost => tracing::warn!(lost, "readings could not be stored"),
                },
                Err(_) => {
                    unstored.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}
// ANCHOR_END: produce

/// `GET /ready`: 200 while Redis answers, 503 while it does not, and 503 from
/// the moment SIGTERM starts the drain, so that a load balancer sends new
/// clients elsewhere.
async fn ready(State(instance): State<Instance>) -> (StatusCode, &'static str) {
    if instance.hub.connections.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining for a restart\n");
    }
    match *instance.bus.up.borrow() {
        true => (StatusCode::OK, "ready\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "Redis is unreachable\n"),
    }
}
