//! Lesson 09: rooms, presence, and messages to one user across all their tabs.
//!
//! What it teaches, on top of lesson 05:
//! - broadcast to some: each site is a room with its own `broadcast` channel,
//!   so a connection wakes only for the rooms it is in, where lesson 05 wakes
//!   every connection for every change and lets it filter;
//! - a registry that does not leak: a room's channel is created by its first
//!   join and dropped with its last member, under the lock that a join takes,
//!   so a join never lands on a channel being removed (`rooms.rs`);
//! - cleanup by `Drop`: a connection's rooms and its place among the users are
//!   given back however it ends (`member.rs`, `users.rs`);
//! - presence (who is in a room, each user once however many tabs) and a
//!   notice to every open tab of one user (`users.rs`);
//! - one loop that selects over a changing set of rooms with `StreamMap`, and
//!   resynchronises a slow member room by room (`member.rs`, `session.rs`).
//!
//! A user names themself on the upgrade, `GET /ws?user=alice`. That is for the
//! lesson only: a real server takes the identity from lesson 08's login.
//!
//! Try it:
//!     cargo run --example 09_rooms   # then open http://127.0.0.1:3000/ twice
//!     websocat 'ws://127.0.0.1:3000/ws?user=alice'
//!         {"type":"join","id":1,"room":"site-1"}
//!         {"type":"notify","id":2,"user":"bob","text":"hello"}

use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{any, get};
use axum::{Json, Router};
use clap::Parser;
use ws_lessons::sensor::Simulator;
use ws_lessons::{Connections, ListenArgs};

#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
mod member;
mod rooms;
mod session;
mod site;
mod users;
mod web;

use rooms::Rooms;
use session::Hub;
use users::Users;
use web::{RoomStats, RoomsArgs};

/// Sensor dashboards by site: join a site's room to follow it, see who else
/// is watching, and send a notice to another user.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    rooms: RoomsArgs,
}

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let hub = Hub {
        connections: Connections::new(),
        rooms: start_sites(&args.rooms),
        users: Arc::new(Users::default()),
        heartbeat: args.rooms.heartbeat,
        heartbeat_drops: Default::default(),
    };
    let connections = hub.connections.clone();
    let app = Router::new()
        .route("/", get(web::page))
        .route("/ws", any(web::upgrade))
        .route("/stats", get(stats))
        .with_state(hub);

    ws_lessons::serve(args.listen.addr, app, connections).await
}
// ANCHOR_END: main

/// `GET /stats`: the gauges, as JSON, for people and for tests.
async fn stats(State(hub): State<Hub>) -> Json<RoomStats> {
    Json(RoomStats::of(&hub))
}

/// The rooms, with one simulator producing every site's readings, watched or
/// not.
fn start_sites(args: &RoomsArgs) -> Arc<Rooms> {
    // A new numbering on every start: a client that rejoins with the last one
    // gets a snapshot rather than changes it already has.
    let epoch = format!("{:x}", ws_lessons::protocol::unix_ms());
    let (sites, sensors) =
        (usize::from(args.sites), usize::from(args.sensors.sensors));
    let (history, queue) = (args.history as usize, args.queue.capacity());
    let rooms = Arc::new(Rooms::new(sites, sensors, history, queue, &epoch));
    let recorder = rooms.clone();
    let simulator = Simulator::new(sites * sensors);
    tokio::spawn(simulator.run(args.sensors.rate, move |sample| {
        let (site, sensor) = (sample.index / sensors, sample.index % sensors);
        recorder.record_reading(site, sensor, sample.value);
    }));
    rooms
}
