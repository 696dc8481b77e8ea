//! One connection of one user: the rooms it is in, the notices to its user, its
//! requests, and lesson 03's heartbeat, in one loop.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::Socket;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest, Unreadable};
use ws_lessons::server::{Connections, Ended};

use crate::heartbeat::{Beat, Drops, Heartbeat};
use crate::member::Member;
use crate::rooms::{Rejoin, Rooms};
use crate::users::{Tab, Users};

/// What every connection of this process shares: the axum state.
#[derive(Clone)]
pub struct Hub {
    pub connections: Connections,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub heartbeat: HeartbeatArgs,
    pub heartbeat_drops: Drops,
}

// ANCHOR: run
/// Serves one connection of `user` until it ends, and says why it ended.
pub async fn run(socket: &mut impl Socket, hub: &Hub, user: &str) -> Ended {
    // Both leave the registry when dropped, whichever way this function ends.
    let mut member = Member::new(hub.rooms.clone(), user);
    let mut tab = hub.users.connect(user);
    let mut heartbeat = Heartbeat::new(hub.heartbeat, &hub.heartbeat_drops);
    let mut outgoing = Vec::new();
    loop {
        for json in outgoing {
            let sent = heartbeat.send(socket, Message::Text(json)).await;
            if sent.is_err() {
                return Ended::Gone;
            }
        }
        outgoing = tokio::select! {
            backlog = member.next() => backlog,
            notice = tab.notices.recv() => match notice {
                Ok(json) => vec![json],
                Err(RecvError::Lagged(missed)) => vec![error(None, format!(
                    "{missed} notices were dropped: this connection fell behind"
                ))],
                Err(RecvError::Closed) => return Ended::Gone,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    answer(&text, &mut member, &tab, hub)
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
// ANCHOR_END: run

// ANCHOR: answer
/// Carries out one request, and returns the messages that answer it: the
/// first carries the request's `id`, if it has one. Bad input gets an `error`,
/// and the connection stays as it was.
fn answer(
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
            member.join(&room, id, rejoin)
        }
        RoomRequest::Leave { room, .. } => member
            .leave(&room)
            .map(|()| vec![RoomMessage::Left { id, room }.to_json().into()]),
        RoomRequest::SetThreshold {
            room,
            sensor,
            threshold,
            ..
        } => member.room(&room).and_then(|room| {
            let change = hub.rooms.threshold(room, &sensor, threshold)?;
            // The change itself reaches every member, this one included.
            hub.rooms.record(room, &change);
            let ack = id.map(|id| RoomMessage::Ack { id }.to_json().into());
            Ok(Vec::from_iter(ack))
        }),
        RoomRequest::Notify { user, text, .. } => {
            hub.users.notify(tab.user(), &user, &text).map(|tabs| {
                let to = user;
                let tabs = Some(tabs);
                let sent = RoomMessage::Sent {
                    id,
                    to,
                    tabs,
                    instances: None,
                };
                vec![sent.to_json().into()]
            })
        }
    };
    reply.unwrap_or_else(|message| vec![error(id, message)])
}
// ANCHOR_END: answer

/// An `error`, about the request `id` if it had one.
fn error(id: Option<u64>, message: String) -> Utf8Bytes {
    RoomMessage::error(id, message).to_json().into()
}
