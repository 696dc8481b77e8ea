//! Lesson 09's `session.rs`, with Redis behind two requests: a threshold is
//! numbered and stored by Redis, and comes back to every member, on every
//! instance, as the room's next change; a notice goes to the instances that
//! have its user. A rejoin from an instance further along waits for this one
//! to catch up. And one more kind of message: every connection hears when
//! Redis goes away and comes back.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::Socket;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest, Unreadable};
use ws_lessons::server::{Connections, Ended};

use crate::bus::Bus;
use crate::heartbeat::{Beat, Drops, Heartbeat};
use crate::member::Member;
use crate::registry::Registry;
use crate::rooms::{Rejoin, RoomId, Rooms};
use crate::site::Change;
use crate::users::{Tab, Users};

// ANCHOR: hub
/// What every connection of this instance shares: lesson 09's hub, with the
/// rooms as a mirror of Redis, and the way to Redis and the other instances.
#[derive(Clone)]
pub struct Hub {
    pub connections: Connections,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub heartbeat: HeartbeatArgs,
    pub heartbeat_drops: Drops,
    pub bus: Bus,
    pub registry: Registry,
}
// ANCHOR_END: hub

// ANCHOR: run
/// Serves one connection of `user` until it ends, and says why it ended.
pub async fn run(socket: &mut impl Socket, hub: &Hub, user: &str) -> Ended {
    let mut member = Member::new(hub.rooms.clone(), user);
    let mut tab = hub.users.connect(user);
    let mut heartbeat = Heartbeat::new(hub.heartbeat, &hub.heartbeat_drops);
    // Subscribed before Redis's state is read, so no change of it is missed.
    let mut news = hub.bus.announcements.subscribe();
    let mut outgoing = Vec::from_iter(hub.bus.paused());
    loop {
        for json in outgoing {
            let sent = heartbeat.send(socket, Message::Text(json)).await;
            if sent.is_err() {
                return Ended::Gone;
            }
        }
        outgoing = tokio::select! {
            backlog = member.next() => backlog,
            // `paused` and `resumed`; one missed is superseded by the next.
            Ok(json) = news.recv() => vec![json],
            // ANCHOR_END: run
            notice = tab.notices.recv() => match notice {
                Ok(json) => vec![json],
                Err(RecvError::Lagged(missed)) => vec![error(None, format!(
                    "{missed} notices were dropped: this connection fell behind"
                ))],
                Err(RecvError::Closed) => return Ended::Gone,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    answer(&text, &mut member, &tab, hub).await
                }
                Some(Ok(Message::Binary(_))) => {
                    let binary = "send requests as JSON in text frames";
                    vec![error(None, binary.into())]
                }
                Some(Ok(Message::Pong(payload))) => {
                    heartbeat.pong(&payload);
                    Vec::new()
                }
                Some(Ok(Message::Ping(_))) => Vec::new(),
                Some(Ok(Message::Close(_))) => return Ended::PeerClosed,
                Some(Err(e)) => return Ended::Failed(e),
                None => return Ended::Gone,
            },
            beat = heartbeat.beat() => match beat {
                Beat::Ping(payload) => {
                    let ping = Message::Ping(payload);
                    if heartbeat.send(socket, ping).await.is_err() {
                        return Ended::Gone;
                    }
                    Vec::new()
                }
                Beat::Missed => return Ended::Gone,
            },
            () = hub.connections.shutting_down() => return Ended::ShuttingDown,
        };
    }
}

/// Carries out one request as lesson 09 does, but for the two that go
/// through Redis.
async fn answer(
    text: &str,
    member: &mut Member,
    tab: &Tab,
    hub: &Hub,
) -> Vec<Utf8Bytes> {
    let request = match RoomRequest::parse(text) {
        Ok(request) => request,
        Err(Unreadable { id, message }) => return vec![error(id, message)],
    };
    let id = request.id();
    let reply = match request {
        RoomRequest::Join {
            room, after, epoch, ..
        } => {
            let rejoin = after.map(|after| Rejoin { after, epoch });
            if let Some(rejoin) = &rejoin {
                catch_up(hub, &room, rejoin).await;
            }
            member.join(&room, id, rejoin)
        }
        RoomRequest::Leave { room, .. } => member
            .leave(&room)
            .map(|()| vec![RoomMessage::Left { id, room }.to_json().into()]),
        // ANCHOR: redis
        RoomRequest::SetThreshold {
            room,
            sensor,
            threshold,
            ..
        } => {
            let set = async {
                let room = member.room(&room)?;
                let change = hub.rooms.threshold(room, &sensor, threshold)?;
                store(hub, room, &change).await?;
                // The change itself reaches every member, this one included,
                // when the instance reads it back from Redis.
                let ack = id.map(|id| RoomMessage::Ack { id }.to_json().into());
                Ok(Vec::from_iter(ack))
            };
            set.await
        }
        RoomRequest::Notify { user, text, .. } => {
            // Only the instances know their tabs: `sent` counts instances.
            let sent = hub.registry.notify(tab.user(), &user, &text).await;
            sent.map(|instances| {
                let sent = RoomMessage::Sent {
                    id,
                    to: user,
                    tabs: None,
                    instances: Some(instances),
                };
                vec![sent.to_json().into()]
            })
        }
    };
    reply.unwrap_or_else(|message| vec![error(id, message)])
}

/// Has Redis number and store a threshold, within [`crate::bus::TIMEOUT`];
/// an error for the client while Redis is away.
async fn store(hub: &Hub, room: RoomId, change: &Change) -> Result<(), String> {
    let paused = || "updates are paused: the server cannot reach Redis".into();
    if !*hub.bus.up.borrow() {
        return Err(paused());
    }
    let stored = hub.bus.record(&hub.rooms, room, change);
    match tokio::time::timeout(crate::bus::TIMEOUT, stored).await {
        Ok(Ok(_seq)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!("a threshold could not be stored: {e}");
            Err(paused())
        }
        Err(_) => Err(paused()),
    }
}
// ANCHOR_END: redis

// ANCHOR: catch_up
/// A client that comes from an instance further along, in the same numbering,
/// waits until this one has applied every change it has, for at most
/// [`crate::bus::TIMEOUT`]; lesson 09's join then replays from its `after`.
/// If this instance does not catch up in time, the join gets a snapshot.
async fn catch_up(hub: &Hub, name: &str, rejoin: &Rejoin) {
    let Some(room) = hub.rooms.find(name) else {
        return;
    };
    let caught_up = async {
        loop {
            // Taken before the check, so a change applied in between wakes it.
            let applied = hub.rooms.applied.notified();
            if !hub.rooms.ahead(room, rejoin) {
                return;
            }
            applied.await;
        }
    };
    let _ = tokio::time::timeout(crate::bus::TIMEOUT, caught_up).await;
}
// ANCHOR_END: catch_up

/// An `error`, about the request `id` if it had one.
fn error(id: Option<u64>, message: String) -> Utf8Bytes {
    RoomMessage::error(id, message).to_json().into()
}
