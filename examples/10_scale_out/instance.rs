//! Lesson 09's connections, with Redis behind them: a threshold is numbered and
//! stored by Redis and comes back to every member, on every instance, as the
//! room's next change; a notice goes to the instances that have its user; and
//! every connection hears when Redis goes away and comes back.

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use ws_lessons::protocol::rooms::RoomMessage;

use crate::bus::Bus;
use crate::registry::Registry;
use crate::rooms::{Change, RoomId};
use crate::session::{Hub, Server};

/// This instance: lesson 09's hub, and its way to the others.
#[derive(Clone)]
pub struct Instance {
    pub hub: Hub,
    pub bus: Bus,
    pub registry: Registry,
}

// ANCHOR: server
impl Server for Instance {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Checked here, numbered and stored by Redis, and applied when it comes
    /// back, on every instance alike: the member that asked sees it in its
    /// place among the readings.
    async fn set_threshold(
        &self,
        room: RoomId,
        change: Change,
    ) -> Result<(), String> {
        let paused =
            || "updates are paused: the server cannot reach Redis".to_owned();
        if !*self.bus.up.borrow() {
            return Err(paused());
        }
        let stored = self.bus.record(&self.hub.rooms, room, &change);
        match tokio::time::timeout(crate::bus::TIMEOUT, stored).await {
            Ok(Ok(_seq)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!("a threshold could not be stored: {e}");
                Err(paused())
            }
            Err(_) => Err(paused()),
        }
    }

    /// Only the instances know their tabs: `sent` counts instances.
    async fn notify(
        &self,
        id: Option<u64>,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<RoomMessage, String> {
        let instances = self.registry.notify(from, to, text).await?;
        let to = to.to_owned();
        Ok(RoomMessage::Sent {
            id,
            to,
            tabs: None,
            instances: Some(instances),
        })
    }

    /// `paused` and `resumed`; a connection made while Redis is away starts
    /// with `paused`.
    fn news(&self) -> (Option<broadcast::Receiver<Utf8Bytes>>, Vec<Utf8Bytes>) {
        // Subscribed before the state is read, so no change of it is missed.
        let news = self.bus.announcements.subscribe();
        let mut first = Vec::new();
        if !*self.bus.up.borrow() {
            let reason = "the server has lost its connection to Redis".into();
            first.push(RoomMessage::Paused { reason }.to_json().into());
        }
        (Some(news), first)
    }
}
// ANCHOR_END: server
