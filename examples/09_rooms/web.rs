//! The rooms server's outside, which lesson 10 shares: its flags, who the user
//! is, the page, and `GET /stats`.

use axum::Json;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{Html, Response};
use serde::{Deserialize, Serialize};
use ws_lessons::cli::{HeartbeatArgs, QueueArgs, SensorArgs};
use ws_lessons::server::Stats;

use crate::heartbeat::HeartbeatStats;
use crate::rooms::Rooms;
use crate::session::{self, Server};

/// The rooms' flags.
#[derive(clap::Args)]
pub struct RoomsArgs {
    /// Number of sites, each a room: site-1, site-2, and so on (--sensors
    /// counts each site's sensors, --rate the readings of all sites together)
    #[arg(
        long,
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub sites: u16,
    #[command(flatten)]
    pub sensors: SensorArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    /// How many of each room's last changes are kept for clients that rejoin
    /// with `after`
    #[arg(
        long,
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub history: u32,
    #[command(flatten)]
    pub heartbeat: HeartbeatArgs,
}

impl RoomsArgs {
    /// The rooms these flags ask for, with no member yet, numbering their
    /// changes in numbering `epoch`.
    pub fn rooms(&self, epoch: &str) -> Rooms {
        let queue = self.queue.capacity();
        let sites = usize::from(self.sites);
        let sensors = usize::from(self.sensors.sensors);
        Rooms::new(sites, sensors, self.history as usize, queue, epoch)
    }
}

// ANCHOR: login
/// `?user=NAME` on the upgrade request.
#[derive(Deserialize)]
pub struct Login {
    pub user: UserName,
}

/// 1 to 32 characters of `a-z`, `0-9`, `_` and `-`: checked as the query is
/// parsed, so a bad name is refused with 400 before the upgrade.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub struct UserName(pub String);

impl TryFrom<String> for UserName {
    type Error = &'static str;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
        if (1..=32).contains(&name.len()) && name.chars().all(allowed) {
            Ok(Self(name))
        } else {
            Err("a user name is 1 to 32 characters of a-z, 0-9, _ and -")
        }
    }
}
// ANCHOR_END: login

/// `GET /`: the rooms page.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("rooms.html"))
}

/// What `GET /stats` reports: lesson 05's gauges, and the registry's.
#[derive(Serialize)]
pub struct RoomStats {
    #[serde(flatten)]
    server: Stats,
    /// The peers lesson 03's heartbeat dropped.
    heartbeat: HeartbeatStats,
    /// Rooms with at least one member.
    rooms: usize,
    /// Distinct users connected.
    users: usize,
}

/// `GET /stats`.
pub async fn stats<S: Server>(State(server): State<S>) -> Json<RoomStats> {
    let hub = server.hub();
    Json(RoomStats {
        server: hub.connections.stats(),
        heartbeat: hub.heartbeat_drops.stats(),
        rooms: hub.rooms.occupied(),
        users: hub.users.count(),
    })
}

// ANCHOR: upgrade
/// `GET /ws?user=NAME`: the name is checked as the query is parsed, before the
/// upgrade.
pub async fn upgrade<S: Server>(
    Query(login): Query<Login>,
    ws: WebSocketUpgrade,
    State(server): State<S>,
) -> Response {
    let connections = server.hub().connections.clone();
    // Small requests, and a small read buffer, as in lesson 05.
    ws.max_frame_size(64 * 1024)
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| {
            connections.track(handle(socket, server, login.user))
        })
}

async fn handle(mut socket: WebSocket, server: impl Server, user: UserName) {
    let UserName(user) = user;
    let ended = session::run(&mut socket, &server, &user).await;
    ws_lessons::server::end(socket, ended).await;
}
// ANCHOR_END: upgrade
