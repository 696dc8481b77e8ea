//! One connection, as in lesson 09, except that a threshold goes to Redis and
//! comes back to every member, on every instance, as the room's next change;
//! and that the connection hears when Redis goes away and comes back.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::extract::ws::{Message, Utf8Bytes};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::Socket;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};
use ws_lessons::server::{Connections, Ended};

use crate::bus::Bus;
use crate::heartbeat::{Beat, Heartbeat};
use crate::member::Member;
use crate::registry::Registry;
use crate::rooms::Rejoin;
use crate::rooms::Rooms;
use crate::users::{Tab, Users};

/// What every connection of this instance shares.
#[derive(Clone, FromRef)]
pub struct Hub {
    pub connections: Connections,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub bus: Bus,
    pub registry: Registry,
    pub heartbeat: HeartbeatArgs,
}

// ANCHOR: run
/// Serves one connection of `user` until it ends, and says why it ended.
pub async fn run(socket: &mut impl Socket, hub: &Hub, user: &str) -> Ended {
    let mut member = Member::new(hub.rooms.clone(), user);
    let mut tab = hub.users.connect(user);
    let mut announcements = hub.bus.announcements.subscribe();
    let mut heartbeat = Heartbeat::new(hub.heartbeat);
    if !*hub.bus.up.borrow() {
        let paused = RoomMessage::Paused {
            reason: "the server has lost its connection to Redis".into(),
        };
        if heartbeat.send(socket, text(paused)).await.is_err() {
            return Ended::Gone;
        }
    }
    loop {
        let outgoing: Vec<Utf8Bytes> = tokio::select! {
            backlog = member.next() => backlog,
            Ok(news) = announcements.recv() => vec![news],
            notice = tab.notices.recv() => match notice {
                Ok(json) => vec![json],
                Err(RecvError::Lagged(missed)) => vec![error(format!(
                    "{missed} notices were dropped: this connection fell behind"
                ))],
                Err(RecvError::Closed) => return Ended::Gone,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(request))) => {
                    answer(&request, &mut member, &tab, hub).await
                }
                Some(Ok(Message::Binary(_))) => {
                    vec![error("send requests as JSON in text frames".into())]
                }
                Some(Ok(Message::Pong(payload))) => {
                    heartbeat.pong(&payload);
                    continue;
                }
                Some(Ok(Message::Ping(_))) => continue,
                Some(Ok(Message::Close(_))) => return Ended::PeerClosed,
                Some(Err(e)) => return Ended::Failed(e),
                None => return Ended::Gone,
            },
            beat = heartbeat.beat() => match beat {
                Beat::Ping(ping) => {
                    if heartbeat.send(socket, ping).await.is_err() {
                        return Ended::Gone;
                    }
                    continue;
                }
                Beat::Missed => return Ended::Gone,
            },
            () = hub.connections.shutting_down() => return Ended::ShuttingDown,
        };
        for json in outgoing {
            let sent = heartbeat.send(socket, Message::Text(json)).await;
            if sent.is_err() {
                return Ended::Gone;
            }
        }
    }
}
// ANCHOR_END: run

// ANCHOR: answer
/// Carries out one request. A threshold waits for Redis (at most two seconds);
/// everything else is answered from this instance's mirror.
async fn answer(
    text: &str,
    member: &mut Member,
    tab: &Tab,
    hub: &Hub,
) -> Vec<Utf8Bytes> {
    let request = ws_lessons::protocol::parse::<RoomRequest>(text);
    let reply = match request {
        Ok(RoomRequest::Join { room, after, epoch }) => {
            let rejoin = after.map(|after| Rejoin { after, epoch });
            member.join(&room, rejoin)
        }
        Ok(RoomRequest::Leave { room }) => {
            member.leave(&room).map(|left| vec![left])
        }
        Ok(RoomRequest::SetThreshold {
            room,
            sensor,
            threshold,
        }) => set_threshold(member, hub, &room, &sensor, threshold).await,
        Ok(RoomRequest::Notify { user, text }) => {
            let from = tab.user();
            let sent = hub.registry.notify(from, &user, &text).await;
            sent.map(|instances| {
                let instances = Some(instances);
                let sent = RoomMessage::Sent {
                    to: user,
                    tabs: None,
                    instances,
                };
                vec![text_json(sent)]
            })
        }
        Err(message) => Err(message),
    };
    reply.unwrap_or_else(|message| vec![error(message)])
}
// ANCHOR_END: answer

// ANCHOR: threshold
/// A threshold: checked here, numbered and stored by Redis, and applied when it
/// comes back, on every instance alike.
async fn set_threshold(
    member: &Member,
    hub: &Hub,
    room: &str,
    sensor: &str,
    threshold: f64,
) -> Result<Vec<Utf8Bytes>, String> {
    let id = member.room(room)?;
    let change = hub.rooms.threshold(id, sensor, threshold)?;
    let paused =
        || "updates are paused: the server cannot reach Redis".to_owned();
    if !*hub.bus.up.borrow() {
        return Err(paused());
    }
    let stored = tokio::time::timeout(
        Duration::from_secs(2),
        hub.bus.record(room, &change),
    );
    match stored.await {
        // The member sees it when it comes back from Redis, in its place.
        Ok(Ok(_seq)) => Ok(Vec::new()),
        Ok(Err(e)) => {
            tracing::warn!("a threshold could not be stored: {e}");
            Err(paused())
        }
        Err(_) => Err(paused()),
    }
}
// ANCHOR_END: threshold

fn text(message: RoomMessage) -> Message {
    Message::Text(text_json(message))
}

fn text_json(message: RoomMessage) -> Utf8Bytes {
    message.to_json().into()
}

fn error(message: String) -> Utf8Bytes {
    text_json(RoomMessage::error(message))
}
