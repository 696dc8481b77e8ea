// The fix for E0499: one borrow at a time, or `select!`.
//
// Awaiting `send` first ends its borrow before `recv` starts. And when both must
// be waited for at once, `tokio::select!` polls the branch futures together but
// runs a branch's body only after dropping them all, so the body may use the
// socket mutably again. The failing version is
// tests/ui/fail/e0499_send_while_recv_pending.rs.

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
        _ = tokio::time::sleep(Duration::from_secs(1)) => {
            socket.send(Message::text("still there?")).await.ok();
        }
    }
}

// The check: `greet_then_echo` greets a client and echoes its message;
// `echo_or_nudge` echoes a client that speaks, and nudges one that stays silent.
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::Text;

#[tokio::main]
async fn main() {
    let url = loopback::serve_socket(greet_then_echo).await;
    let mut client = Client::connect(&url).await;
    assert_eq!(client.next().await, Text("hello".into()));
    client.send(Text("hi".into())).await;
    assert_eq!(client.next().await, Text("hi".into()));

    let url = loopback::serve_socket(echo_or_nudge).await;
    let mut talker = Client::connect(&url).await;
    talker.send(Text("hi".into())).await;
    assert_eq!(talker.next().await, Text("hi".into()));
    let mut silent = Client::connect(&url).await;
    assert_eq!(silent.next().await, Text("still there?".into()));
}
