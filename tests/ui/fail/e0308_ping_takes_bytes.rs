// E0308: `Message::Ping(vec![])`, from a text written for an older axum.
//
// What goes wrong: in axum 0.7 a Ping carried a `Vec<u8>`, and texts of that time
// write `Message::Ping(vec![])`. Since axum 0.8 the payload is `Bytes` (and text
// is `Utf8Bytes`), so a frame can be shared or sliced without copying; a
// `Vec<u8>` is not a `Bytes`.
//
// Why the compiler is right: the variant holds a `Bytes`, and Rust converts
// between types only when asked. The help line says how: `.into()`.
//
// The fix: pass a `Bytes`: `Bytes::new()` for an empty payload,
// `Bytes::from_static(b"..")` for a constant, or `.into()` from a `Vec<u8>`. See
// tests/ui/fixed/e0308_ping_takes_bytes.rs.

use axum::extract::ws::{Message, WebSocket};

async fn ping(socket: &mut WebSocket) -> Result<(), axum::Error> {
    socket.send(Message::Ping(vec![])).await
}

fn main() {
    let _ = ping;
}
