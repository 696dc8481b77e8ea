// E0277: the `?` operator inside the `on_upgrade` closure's async block.
//
// What goes wrong: `on_upgrade` wants a closure whose future returns `()`: there
// is no one to return an error to once the connection has been upgraded. So the
// async block's output is `()`, and `?` has nowhere to send an error.
//
// Why the compiler is right: `?` means "return this error to my caller", which
// needs a function or block that returns `Result` (or `Option`). This block
// returns `()`.
//
// The fix: move the connection's work into a function that returns `Result`, and
// decide in the closure what an error means: usually a log line. See
// tests/ui/fixed/e0277_question_mark_in_on_upgrade.rs.

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        socket.send(Message::text("hello")).await?;
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    })
}

fn main() {
    let _ = upgrade;
}
