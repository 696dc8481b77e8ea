// The fix for E0308: a Ping's payload is `axum::body::Bytes`.
//
// The failing version is tests/ui/fail/e0308_ping_takes_bytes.rs.

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};

async fn ping(socket: &mut WebSocket) -> Result<(), axum::Error> {
    socket.send(Message::Ping(Bytes::new())).await?;
    socket
        .send(Message::Ping(Bytes::from_static(b"are you there?")))
        .await?;
    socket.send(Message::Ping(vec![1, 2, 3].into())).await
}

fn main() {
    let _ = ping;
}
