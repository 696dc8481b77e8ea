//! Lesson 10: past one process. Several instances of lesson 09's dashboard
//! share one Redis (or Valkey), and every client sees every change, in one
//! order, whichever instance it is connected to.
//!
//! What it teaches, on top of lesson 09:
//! - one numbering for everyone: a Lua script numbers each room's change and
//!   stores it atomically, in a Redis Stream (the ordered, bounded history)
//!   and in a hash (the state a starting instance loads) (`bus.rs`);
//! - each instance keeps lesson 09's rooms as a mirror, fed from the streams
//!   in order, so its clients are served from memory (`rooms.rs`);
//! - resuming anywhere: `{"type":"join","room":"site-1","after":SEQ}` on any
//!   instance replays the changes after SEQ from its history, or sends a
//!   snapshot that counts what it cannot replay;
//! - Redis going away: sockets stay open, clients are told `paused`, `GET
//!   /ready` answers 503, the bus reconnects with backoff and jitter, and
//!   catches up where it stopped (`bus.rs`).
//!
//! Lesson 09's files that this lesson uses as they are: `member.rs` and
//! `web.rs` (with the page); and lesson 03's `heartbeat.rs`. Those it
//! changes, it has a copy of, which says what changed in its first lines:
//! `rooms.rs`, `site.rs`, `users.rs` and `session.rs`.
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

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use ws_lessons::{Connections, ListenArgs};

mod bus;
#[path = "../03_heartbeat/heartbeat.rs"]
mod heartbeat;
mod instance;
#[path = "../09_rooms/member.rs"]
mod member;
mod registry;
mod rooms;
mod session;
mod site;
mod troubles;
mod users;
#[path = "../09_rooms/web.rs"]
mod web;

use instance::{Instance, InstanceArgs};
use session::Hub;

/// Lesson 09's dashboard, on as many instances as you like, sharing one Redis.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    instance: InstanceArgs,
}

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();

    let instance = match Instance::start(&args.instance).await {
        Ok(instance) => instance,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hub = Hub {
        connections: Connections::new(),
        rooms: instance.rooms,
        users: instance.users,
        heartbeat: args.instance.rooms.heartbeat,
        bus: instance.bus,
        registry: instance.registry,
        heartbeat_drops: Default::default(),
    };
    let connections = hub.connections.clone();
    let app = instance::routes(args.instance.peers)
        .route("/ready", get(ready))
        .with_state(hub);

    ws_lessons::serve(args.listen.addr, app, connections).await
}

/// `GET /ready`: 200 while Redis answers, 503 while it does not, so that a
/// load balancer sends new clients to an instance that can serve them.
async fn ready(State(hub): State<Hub>) -> (StatusCode, &'static str) {
    if *hub.bus.up.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Redis is unreachable\n")
    }
}
// ANCHOR_END: main
