// The fix for E0502: `retain` walks the map and removes entries in one borrow.
//
// The closure says which peers to keep; the map does the iterating and the
// removing itself, safely. The failing version is
// tests/ui/fail/e0502_remove_peer_while_iterating.rs.

use std::collections::HashMap;

use axum::extract::ws::Message;
use tokio::sync::mpsc;

fn forget_disconnected(peers: &mut HashMap<u64, mpsc::Sender<Message>>) {
    peers.retain(|_id, peer| !peer.is_closed());
}

// The check: two clients connect and become peers 1 and 2; once the second has
// left, the sweep forgets it and keeps the first.
#[path = "../support/loopback.rs"]
mod loopback;
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocket;
use loopback::Client;
use loopback::Message::Text;

type Peers = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

/// A peer stays in the map, its receiver open, for as long as its connection
/// lasts.
async fn join(mut socket: WebSocket, peers: Peers) {
    let (sender, _receiver) = mpsc::channel(1);
    let id = {
        let mut peers = peers.lock().unwrap();
        let id = peers.len() as u64 + 1;
        peers.insert(id, sender);
        id
    };
    socket.send(Message::text(id.to_string())).await.ok();
    while let Some(Ok(_)) = socket.recv().await {}
}

#[tokio::main]
async fn main() {
    let peers = Peers::default();
    let url = loopback::serve_socket({
        let peers = peers.clone();
        move |socket| join(socket, peers)
    })
    .await;
    let mut first = Client::connect(&url).await;
    assert_eq!(first.next().await, Text("1".into()));
    let mut second = Client::connect(&url).await;
    assert_eq!(second.next().await, Text("2".into()));
    let leaving = peers.lock().unwrap()[&2].clone();
    assert_eq!(second.close().await, 1000);
    loopback::within("end of peer 2", leaving.closed()).await;
    forget_disconnected(&mut peers.lock().unwrap());
    let ids: Vec<u64> = peers.lock().unwrap().keys().copied().collect();
    assert_eq!(ids, [1]);
}
