//! One connection of one user: the rooms it is in, the notices to its user, its
//! requests, and lesson 03's heartbeat, in one loop. The loop is written against
//! [`Server`], so that lesson 10 can run it with Redis behind two requests.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use ws_lessons::Socket;
use ws_lessons::cli::HeartbeatArgs;
use ws_lessons::protocol::rooms::{RoomMessage, RoomRequest, Unreadable};
use ws_lessons::server::{Connections, Ended};

use crate::heartbeat::{Beat, Drops, Heartbeat};
use crate::member::Member;
use crate::rooms::{Change, Rejoin, RoomId, Rooms};
use crate::users::{Tab, Users};

/// What every connection of this process shares.
#[derive(Clone)]
pub struct Hub {
    pub connections: Connections,
    pub rooms: Arc<Rooms>,
    pub users: Arc<Users>,
    pub heartbeat: HeartbeatArgs,
    pub heartbeat_drops: Drops,
}

// ANCHOR: server
/// What a connection asks of the server it runs in. This lesson answers
/// everything in this process; lesson 10 sends thresholds and notices through
/// Redis, and has news for every connection when Redis goes away.
pub trait Server: Clone + Send + Sync + 'static {
    /// What every connection shares.
    fn hub(&self) -> &Hub;

    /// Sets a threshold in `room`, as its next change.
    fn set_threshold(
        &self,
        room: RoomId,
        change: Change,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Sends a notice to every tab of `to`; returns the `sent` that answers `id`.
    fn notify(
        &self,
        id: Option<u64>,
        from: &str,
        to: &str,
        text: &str,
    ) -> impl Future<Output = Result<RoomMessage, String>> + Send;

    /// News for every connection, if any, and what a new one is told first.
    fn news(&self) -> (Option<broadcast::Receiver<Utf8Bytes>>, Vec<Utf8Bytes>) {
        (None, Vec::new())
    }
}

impl Server for Hub {
    fn hub(&self) -> &Hub {
        self
    }

    async fn set_threshold(
        &self,
        room: RoomId,
        change: Change,
    ) -> Result<(), String> {
        // Every member, the one that asked too, sees it as the next change.
        self.rooms.record(room, &change);
        Ok(())
    }

    async fn notify(
        &self,
        id: Option<u64>,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<RoomMessage, String> {
        let tabs = self.users.notify(from, to, text)?;
        Ok(RoomMessage::Sent {
            id,
            to: to.to_owned(),
            tabs: Some(tabs),
            instances: None,
        })
    }
}
// ANCHOR_END: server

// ANCHOR: run
/// Serves one connection of `user` until it ends, and says why it ended.
pub async fn run(
    socket: &mut impl Socket,
    server: &impl Server,
    user: &str,
) -> Ended {
    let hub = server.hub();
    // Both leave the registry when dropped, whichever way this function ends.
    let mut member = Member::new(hub.rooms.clone(), user);
    let mut tab = hub.users.connect(user);
    let mut heartbeat = Heartbeat::new(hub.heartbeat, &hub.heartbeat_drops);
    let (mut news, mut outgoing) = server.news();
    loop {
        for json in outgoing {
            let sent = heartbeat.send(socket, Message::Text(json)).await;
            if sent.is_err() {
                return Ended::Gone;
            }
        }
        outgoing = tokio::select! {
            backlog = member.next() => backlog,
            Some(Ok(json)) = next_news(&mut news) => vec![json],
            notice = tab.notices.recv() => match notice {
                Ok(json) => vec![json],
                Err(RecvError::Lagged(missed)) => vec![error(None, format!(
                    "{missed} notices were dropped: this connection fell behind"
                ))],
                Err(RecvError::Closed) => return Ended::Gone,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    answer(&text, &mut member, &tab, server).await
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

/// The next piece of news, or never when there is none.
async fn next_news(
    news: &mut Option<broadcast::Receiver<Utf8Bytes>>,
) -> Option<Result<Utf8Bytes, RecvError>> {
    match news {
        Some(news) => Some(news.recv().await),
        None => std::future::pending().await,
    }
}

// ANCHOR: answer
/// Carries out one request, and returns the messages that answer it: the
/// first carries the request's `id`, if it has one. Bad input gets an `error`,
/// and the connection stays as it was.
async fn answer(
    text: &str,
    member: &mut Member,
    tab: &Tab,
    server: &impl Server,
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
        } => {
            let set = async {
                let room = member.room(&room)?;
                let change =
                    server.hub().rooms.threshold(room, &sensor, threshold)?;
                server.set_threshold(room, change).await?;
                // The change itself reaches every member, this one included.
                let ack = id.map(|id| RoomMessage::Ack { id }.to_json().into());
                Ok(Vec::from_iter(ack))
            };
            set.await
        }
        RoomRequest::Notify { user, text, .. } => {
            let sent = server.notify(id, tab.user(), &user, &text).await;
            sent.map(|sent| vec![sent.to_json().into()])
        }
    };
    reply.unwrap_or_else(|message| vec![error(id, message)])
}
// ANCHOR_END: answer

/// An `error`, about the request `id` if it had one.
fn error(id: Option<u64>, message: String) -> Utf8Bytes {
    RoomMessage::error(id, message).to_json().into()
}
