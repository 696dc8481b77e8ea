// The fix for E0502: own the value instead of borrowing it from the socket.
//
// `cloned()` turns the `Option<&HeaderValue>` into an `Option<HeaderValue>` that no longer
// points into the socket, so `recv` may borrow the socket mutably. The failing version is
// tests/ui/fail/e0502_protocol_held_across_recv.rs.

use axum::extract::ws::{Message, WebSocket};

async fn handle(mut socket: WebSocket) {
    let protocol = socket.protocol().cloned();
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            println!("{text} (protocol {protocol:?})");
        }
    }
}

fn main() {
    let _ = handle;
}
