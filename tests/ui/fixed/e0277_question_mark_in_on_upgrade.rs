// The fix for E0277: `?` in a function that returns `Result`, and the error handled once.
//
// The closure calls `echo` and logs its error, if any: that is the one place that decides
// what a failed connection means. The failing version is
// tests/ui/fail/e0277_question_mark_in_on_upgrade.rs.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|socket| async move {
        if let Err(e) = echo(socket).await {
            tracing::debug!("connection ended with an error: {e}");
        }
    })
}

async fn echo(mut socket: WebSocket) -> Result<(), axum::Error> {
    socket.send(Message::text("hello")).await?;
    while let Some(message) = socket.recv().await {
        socket.send(message?).await?;
    }
    Ok(())
}

fn main() {
    let _ = upgrade;
}
