//! Lesson 11: deployed. Lesson 10's instances behind nginx (`deploy/`), and
//! restarts that lose nothing: a drain, in this lesson's own files.
//!
//! What it adds to lesson 10, whose files it includes as they are but this
//! `main.rs` (10's, with the drain and a `/ready` that knows of it) and
//! `session.rs` (10's, changed in three places):
//! - SIGTERM turns `GET /ready` to 503 at once, so that a load balancer sends
//!   new clients elsewhere, then closes each connection with 1012 (service
//!   restart) at a random moment within `--drain` (default 10 s), so that
//!   clients come back a few at a time, elsewhere (`drain.rs`);
//! - a connection's way out ([`drain::Exit`]) is a value made when it opens
//!   and handed to whatever may close it, so every task of a connection waits
//!   for the same moment and sends the same code (`session.rs`, lesson 10's
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
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use tokio_util::sync::CancellationToken;
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
#[path = "../10_scale_out/rooms.rs"]
mod rooms;
mod session;
#[path = "../10_scale_out/site.rs"]
mod site;
#[path = "../10_scale_out/troubles.rs"]
mod troubles;
#[path = "../10_scale_out/users.rs"]
mod users;
#[path = "../09_rooms/web.rs"]
mod web;

use drain::Drain;
use instance::{Instance, InstanceArgs};
use session::Hub;

/// Lesson 10's dashboard, restarted one instance at a time without a
/// stampede.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    instance: InstanceArgs,
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
        rooms: instance.rooms,
        users: instance.users,
        heartbeat: args.instance.rooms.heartbeat,
        heartbeat_drops: Default::default(),
        bus: instance.bus,
        registry: instance.registry,
    };
    let connections = hub.connections.clone();
    let app = instance::routes(args.instance.peers)
        .route("/ready", get(ready))
        .with_state(hub);

    ws_lessons::serve(args.listen.addr, app, connections).await
}
// ANCHOR_END: main

// ANCHOR: ready
/// `GET /ready`: 200 while Redis answers, 503 while it does not, and 503 from
/// the moment SIGTERM starts the drain, so that a load balancer sends new
/// clients elsewhere.
async fn ready(State(hub): State<Hub>) -> (StatusCode, &'static str) {
    if hub.drain.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining for a restart\n");
    }
    if *hub.bus.up.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Redis is unreachable\n")
    }
}
// ANCHOR_END: ready
