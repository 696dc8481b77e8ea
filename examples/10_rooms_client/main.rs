//! Lesson 10, second program: lesson 06's client, for the rooms of lessons 09
//! and 10.
//!
//! What it teaches, on top of lesson 06:
//! - resuming with no gap: on every connection the client joins each room
//!   again with `after`, the last change it showed, and `epoch`, the numbering
//!   that change belongs to; on lesson 10 any instance can carry on from there;
//! - trusting nobody's count but its own: every change must follow the one
//!   before, and a gap is reported (`rooms.rs`);
//! - a refused join (an `error` that carries the join's `id`) is final, and
//!   any other `error` is not.
//!
//! Connecting, reconnecting, `wss://` and the events are lesson 06's files, as
//! they are: only what the client follows is its own.
//!
//! Try it, with two instances of lesson 09 or 10 on ports 3000 and 3001:
//!     cargo run --example 10_rooms_client -- ws://127.0.0.1:3000/ws \
//!         ws://127.0.0.1:3001/ws --room site-1 --user alice

use std::process::ExitCode;

use axum::http::Uri;
use clap::Parser;
use ws_lessons::protocol::rooms::RoomRequest;

// ANCHOR: modules
#[path = "../06_client/events.rs"]
mod events;
#[path = "../06_client/reconnect.rs"]
mod reconnect;
mod rooms;
#[path = "../06_client/tls.rs"]
mod tls;
#[path = "../06_client/urls.rs"]
mod urls;

use reconnect::{Connect, follow, send};
use rooms::Rooms;
// ANCHOR_END: modules

// ANCHOR: args
/// Follows rooms of lessons 09 and 10, and prints every change.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    connect: Connect,
    /// A room to follow (repeat for more)
    #[arg(long = "room", value_name = "NAME", required = true)]
    rooms: Vec<String>,
    /// Who to connect as: `?user=NAME` on every URL
    #[arg(long, value_name = "NAME", default_value = "client")]
    #[arg(value_parser = user_name)]
    user: String,
}

/// Accepts the names lessons 09 and 10 accept, which need no escaping in a URL.
fn user_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
    if (1..=32).contains(&text.len()) && text.chars().all(allowed) {
        Ok(text.to_owned())
    } else {
        Err("expected 1 to 32 characters of a-z, 0-9, _ and -".into())
    }
}
// ANCHOR_END: args

// ANCHOR: main
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = ws_lessons::init_tracing();
    let as_user = |url: &Uri| match url.query() {
        None => format!("{url}?user={}", args.user),
        Some(_) => format!("{url}&user={}", args.user),
    };
    let urls = args.connect.urls.iter().map(as_user).collect();
    let mut rooms = Rooms::new(&args.rooms);
    reconnect::run(&args.connect, urls, async |mut socket, interrupted| {
        // Lesson 06's connection, with a join for each room first.
        for join in rooms.joins() {
            if let Err(next) = send(&mut socket, &join).await {
                return next;
            }
        }
        let mut read =
            |text: &str| rooms.read(text).map(|()| None::<RoomRequest>);
        follow(socket, &mut read, interrupted).await
    })
    .await
}
// ANCHOR_END: main
