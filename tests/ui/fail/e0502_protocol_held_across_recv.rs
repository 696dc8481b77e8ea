// E0502: a borrow taken from the socket, still alive when the socket is needed
// mutably.
//
// What goes wrong: `socket.protocol()` returns `Option<&HeaderValue>`, a
// reference *into* the socket. While `protocol` is alive the socket is borrowed
// immutably, and `recv` needs it mutably (`&mut self`): reading a frame changes
// the socket's state.
//
// Why the compiler is right: if `recv` could run while `protocol` pointed into
// the socket, nothing would stop `recv` from changing or freeing what `protocol`
// points at.
//
// The fix: own the value instead of borrowing it, with `.cloned()` (a
// `HeaderValue` is cheap to clone), before the loop. See
// tests/ui/fixed/e0502_protocol_held_across_recv.rs.

use axum::extract::ws::{Message, WebSocket};

async fn handle(mut socket: WebSocket) {
    let protocol = socket.protocol();
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            println!("{text} (protocol {protocol:?})");
        }
    }
}

fn main() {
    let _ = handle;
}
