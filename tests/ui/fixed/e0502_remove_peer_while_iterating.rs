// The fix for E0502: `retain` walks the map and removes entries in one borrow.
//
// The closure says which peers to keep; the map does the iterating and the removing itself,
// safely. The failing version is tests/ui/fail/e0502_remove_peer_while_iterating.rs.

use std::collections::HashMap;

use axum::extract::ws::Message;
use tokio::sync::mpsc;

fn forget_disconnected(peers: &mut HashMap<u64, mpsc::Sender<Message>>) {
    peers.retain(|_id, peer| !peer.is_closed());
}

fn main() {
    let mut peers = HashMap::new();
    let (open, _receiver) = mpsc::channel(1);
    let (closed, receiver) = mpsc::channel(1);
    drop(receiver);
    peers.insert(1, open);
    peers.insert(2, closed);
    forget_disconnected(&mut peers);
    assert_eq!(peers.keys().collect::<Vec<_>>(), [&1]);
}
