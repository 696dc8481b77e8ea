// The fix: let the guard go before the `.await`.
//
// The block ends the guard's scope, so the lock is released, and the future holds
// only the copied number across `send`. The failing version is
// tests/ui/fail/no_code_mutex_guard_across_await.rs.

// ANCHOR: fix
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};

async fn count_and_echo(mut socket: WebSocket, count: Arc<Mutex<u64>>) {
    while let Some(Ok(message)) = socket.recv().await {
        // Data only: tungstenite answers Pings, and after a Close the loop reads
        // on until `recv` returns `None`, which is when the Close reply has gone
        // out.
        if !matches!(message, Message::Text(_) | Message::Binary(_)) {
            continue;
        }
        let total = {
            let mut total = count.lock().unwrap_or_else(|e| e.into_inner());
            *total += 1;
            *total
        };
        let reply = Message::text(format!("message {total}"));
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

fn start(socket: WebSocket, count: Arc<Mutex<u64>>) {
    spawn_connection(count_and_echo(socket, count));
}

/// What `tokio::spawn` requires of a task, in a signature of our own.
fn spawn_connection<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(task);
}
// ANCHOR_END: fix

// The check: two clients share one count, each text is answered with the next
// number (a Ping only with its Pong), and Close 1000 is answered with 1000.
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::{Ping, Pong, Text};

#[tokio::main]
async fn main() {
    let count = Arc::new(Mutex::new(0));
    let url = loopback::serve_socket(move |socket| {
        start(socket, count);
        async {}
    })
    .await;
    let mut first = Client::connect(&url).await;
    let mut second = Client::connect(&url).await;
    first.send(Text("a".into())).await;
    assert_eq!(first.next().await, Text("message 1".into()));
    second.send(Text("b".into())).await;
    assert_eq!(second.next().await, Text("message 2".into()));
    first.send(Ping("not counted".into())).await;
    first.send(Text("c".into())).await;
    assert_eq!(first.next().await, Pong("not counted".into()));
    assert_eq!(first.next().await, Text("message 3".into()));
    assert_eq!(first.close().await, 1000);
}
