// The fix for E0599: import the extension traits from the crate you depend on.
//
// `futures::StreamExt` provides `split` and `next`; `futures::SinkExt` provides `send` on the
// sink half. The failing version is tests/ui/fail/e0599_split_without_streamext.rs.

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};

async fn handle(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        if sink.send(message).await.is_err() {
            break;
        }
    }
    let _ = sink.send(Message::text("bye")).await;
}

fn main() {
    let _ = handle;
}
