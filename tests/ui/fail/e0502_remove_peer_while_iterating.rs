// E0502: removing a peer from the map of connections while iterating over that
// map.
//
// What goes wrong: a chat or dashboard server keeps one channel per connected
// client. A sweep that drops the clients whose channel is closed iterates with
// `peers.iter()`, which borrows the map immutably for the whole loop, and calls
// `peers.remove(..)`, which needs it mutably.
//
// Why the compiler is right: removing an entry can move the others around inside
// the map; the iterator would then walk memory that no longer holds what it
// thinks.
//
// The fix: say what to keep and let the map do the walking, with `retain`. See
// tests/ui/fixed/e0502_remove_peer_while_iterating.rs.

use std::collections::HashMap;

use axum::extract::ws::Message;
use tokio::sync::mpsc;

fn forget_disconnected(peers: &mut HashMap<u64, mpsc::Sender<Message>>) {
    for (id, peer) in peers.iter() {
        if peer.is_closed() {
            peers.remove(id);
        }
    }
}

fn main() {
    forget_disconnected(&mut HashMap::new());
}
