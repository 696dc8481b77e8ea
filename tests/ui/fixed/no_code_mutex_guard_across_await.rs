// The fix: let the guard go before the `.await`.
//
// The block ends the guard's scope, so the lock is released, and the future holds only the
// copied number across `send`. The failing version is
// tests/ui/fail/no_code_mutex_guard_across_await.rs.

use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};

async fn count_and_echo(mut socket: WebSocket, count: Arc<Mutex<u64>>) {
    while let Some(Ok(_message)) = socket.recv().await {
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

fn main() {
    let _ = start;
}
