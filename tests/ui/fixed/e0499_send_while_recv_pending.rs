// The fix for E0499: one borrow at a time, or `select!`.
//
// Awaiting `send` first ends its borrow before `recv` starts. And when both must be waited
// for at once, `tokio::select!` polls the branch futures together but runs a branch's body
// only after dropping them all, so the body may use the socket mutably again. The failing
// version is tests/ui/fail/e0499_send_while_recv_pending.rs.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};

async fn greet_then_echo(mut socket: WebSocket) {
    socket.send(Message::text("hello")).await.ok();
    if let Some(Ok(message)) = socket.recv().await {
        socket.send(message).await.ok();
    }
}

async fn echo_or_nudge(mut socket: WebSocket) {
    tokio::select! {
        message = socket.recv() => {
            if let Some(Ok(message)) = message {
                socket.send(message).await.ok();
            }
        }
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            socket.send(Message::text("still there?")).await.ok();
        }
    }
}

fn main() {
    let _ = (greet_then_echo, echo_or_nudge);
}
