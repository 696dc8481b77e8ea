//! One connection of one user: the rooms it is in, the notices to its user, its
//! requests, and lesson 03's heartbeat, in one loop.

use std::sync::Arc;

use axum::extract::FromRef;
use axum::extract::ws::{Message, Utf8Bytes};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::Socket;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest};
use ws_lessons::server::{Connections, Ended};

use crate::heartbeat::{Beat, Heartbeat};
use crate::member::Member;
use crate::rooms::Rejoin;
use crate::rooms::Rooms;
use crate::users::{Tab, Users};

/// What every connection shares.
#[derive(Clone, FromRef)]
pub struct Hub {
    pub connections: Connections,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub heartbeat: HeartbeatArgs,
}

// ANCHOR: run
/// Serves one connection of `user` until it ends, and says why it ended.
pub async fn run(socket: &mut impl Socket, hub: &Hub, user: &str) -> Ended {
    // Both leave the registry when dropped, whichever way this function ends.
    let mut member = Member::new(hub.rooms.clone(), user);
    let mut tab = hub.users.connect(user);
    let mut heartbeat = Heartbeat::new(hub.heartbeat);
    loop {
        let outgoing: Vec<Utf8Bytes> = tokio::select! {
            backlog = member.next() => backlog,
            notice = tab.notices.recv() => match notice {
                Ok(json) => vec![json],
                Err(RecvError::Lagged(missed)) => vec![error(format!(
                    "{missed} notices were dropped: this connection fell behind"
                ))],
                Err(RecvError::Closed) => return Ended::Gone,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    answer(&text, &mut member, &tab, hub)
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
/// Carries out one request, and returns the messages that answer it. Bad input
/// gets an `error`, and the connection stays as it was.
fn answer(
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
        }) => member.room(&room).and_then(|room| {
            let change = hub.rooms.threshold(room, &sensor, threshold)?;
            // Members, this one included, see it as the room's next change.
            hub.rooms.set_threshold(room, &change);
            Ok(Vec::new())
        }),
        Ok(RoomRequest::Notify { user, text }) => {
            let from = tab.user();
            hub.users.notify(from, &user, &text).map(|tabs| {
                let instances = None;
                let sent = RoomMessage::Sent {
                    to: user,
                    tabs: Some(tabs),
                    instances,
                };
                vec![sent.to_json().into()]
            })
        }
        Err(message) => Err(message),
    };
    reply.unwrap_or_else(|message| vec![error(message)])
}
// ANCHOR_END: answer

fn error(message: String) -> Utf8Bytes {
    RoomMessage::error(message).to_json().into()
}
