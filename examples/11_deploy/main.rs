//! Lesson 11: deployed. Lesson 10's instances behind nginx (`deploy/`), and
//! restarts that lose nothing: a drain, in this lesson's own files.
//!
//! What it adds to lesson 10, whose files it includes as they are:
//! - SIGTERM turns `GET /ready` to 503 at once, so that a load balancer sends
//!   new clients elsewhere, then closes each connection with 1012 (service
//!   restart) at a random moment within `--drain` (default 10 s), so that
//!   clients come back a few at a time, elsewhere (`drain.rs`);
//! - a connection's way out ([`drain::Exit`]) is a value made when it opens
//!   and handed to whatever may close it, so every task of a connection waits
//!   for the same moment and sends the same code (`session.rs`, lesson 09's
//!   loop waiting on it);
//! - the process exits when the last connection has gone or the drain's time
//!   is up; a second SIGTERM cuts the drain short, and Ctrl-C still closes
//!   every connection at once with 1001.
//!
//! Try it (with `redis-server` running on its default port), then see its
//! chapter for nginx in front:
//!     cargo run --example 11_deploy -- 127.0.0.1:3000 --produce
//!     cargo run --example 11_deploy -- 127.0.0.1:3001
//!     # then open http://127.0.0.1:3000/, and `kill -TERM` an instance

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use ws_lessons::sensor::Simulator;
use ws_lessons::{Connections, ListenArgs};

#[path = "../10_scale_out/bus.rs"]
mod bus;
mod drain;
#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
#[path = "../10_scale_out/instance.rs"]
mod instance;
#[path = "../09_rooms/member.rs"]
mod member;
#[path = "../10_scale_out/registry.rs"]
mod registry;
#[path = "../09_rooms/rooms.rs"]
mod rooms;
mod session;
#[path = "../09_rooms/site.rs"]
mod site;
#[path = "../09_rooms/users.rs"]
mod users;
#[path = "../09_rooms/web.rs"]
mod web;

use bus::Bus;
use drain::Drain;
use instance::Instance;
use rooms::{Change, Rooms};
use session::Hub;
use users::Users;
use web::RoomsArgs;

/// Lesson 10's dashboard, restarted one instance at a time without a
/// stampede.
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
    /// On SIGTERM, answer 503 on /ready at once, then close each connection
    /// with 1012 (service restart) at a random moment within DURATION, and
    /// exit when the last has gone or DURATION has passed; a second SIGTERM
    /// cuts the drain short. Ctrl-C closes every connection at once with 1001
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = ws_lessons::cli::duration
    )]
    drain: Duration,
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
    // ANCHOR: sigterm
    // The first SIGTERM is this server's to answer: it starts the drain.
    let sigterm = CancellationToken::new();
    let connections = Connections::with_sigterm(sigterm.clone());
    let drain = Drain::new(connections.clone(), args.drain);
    tokio::spawn(drain.clone().on(sigterm));
    // ANCHOR_END: sigterm
    let hub = Hub {
        connections,
        drain,
        rooms,
        users,
        heartbeat: args.rooms.heartbeat,
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

// ANCHOR: ready
/// `GET /ready`: 200 while Redis answers, 503 while it does not, and 503 from
/// the moment SIGTERM starts the drain, so that a load balancer sends new
/// clients elsewhere.
async fn ready(State(instance): State<Instance>) -> (StatusCode, &'static str) {
    if instance.hub.drain.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining for a restart\n");
    }
    match *instance.bus.up.borrow() {
        true => (StatusCode::OK, "ready\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "Redis is unreachable\n"),
    }
}
// ANCHOR_END: ready
