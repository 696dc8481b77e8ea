//! The rooms server's outside: its flags, who the user is, the page, the
//! upgrade, and what `GET /stats` reports.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{Html, Response};
use serde::{Deserialize, Serialize};
use ws_lessons::cli::{HeartbeatArgs, QueueArgs, SensorArgs};
use ws_lessons::server::ServerStats;

use crate::heartbeat::HeartbeatStats;
use crate::session::{self, Hub};

/// The rooms' flags: the sites and their sensors, how far a member may fall
/// behind, how much history a room keeps, and the heartbeat.
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

// ANCHOR: stats
/// What `GET /stats` reports: lesson 05's gauges, and the registry's.
#[derive(Serialize)]
pub struct RoomStats {
    #[serde(flatten)]
    server: ServerStats,
    /// The peers lesson 03's heartbeat dropped.
    heartbeat: HeartbeatStats,
    /// Rooms with at least one member.
    rooms: usize,
    /// Distinct users connected.
    users: usize,
    /// Times a member fell behind its room and was resynchronised.
    resyncs: u64,
}

impl RoomStats {
    /// The gauges as they are at this moment: each call counts afresh.
    pub fn of(hub: &Hub) -> Self {
        Self {
            server: ServerStats::now(&hub.connections),
            heartbeat: hub.heartbeat_drops.stats(),
            rooms: hub.rooms.occupied(),
            users: hub.users.count(),
            resyncs: hub.rooms.resyncs(),
        }
    }
}
// ANCHOR_END: stats

// ANCHOR: upgrade
/// `GET /ws?user=NAME`: the name is checked as the query is parsed, before the
/// upgrade.
pub async fn upgrade(
    Query(login): Query<Login>,
    ws: WebSocketUpgrade,
    State(hub): State<Hub>,
) -> Response {
    let connections = hub.connections.clone();
    // Small requests, and a small read buffer, as in lesson 05.
    ws.max_frame_size(64 * 1024)
        .max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| {
            connections.track(handle(socket, hub, login.user))
        })
}

async fn handle(mut socket: WebSocket, hub: Hub, user: UserName) {
    let UserName(user) = user;
    let ended = session::run(&mut socket, &hub, &user).await;
    ws_lessons::server::end(socket, ended).await;
}
// ANCHOR_END: upgrade
