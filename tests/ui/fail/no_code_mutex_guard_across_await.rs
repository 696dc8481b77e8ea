// No error code: "future cannot be sent between threads safely".
//
// What goes wrong: a handler counts messages in a `std::sync::Mutex` shared by
// all connections, and keeps the lock while it awaits `send`. A task spawned on
// tokio's multi-threaded runtime must be `Send`, because it may resume on another
// thread after any `.await`; a `std::sync::MutexGuard` must be unlocked on the
// thread that locked it, so it is not `Send`, and neither is a future that holds
// one across an `.await`.
//
// Why the compiler is right: the lock would be released from whichever thread
// resumed the task. (And holding a blocking lock across an await can stall every
// task waiting for it.)
//
// This diagnostic has no error code. It is not E0277, even though a `Send` bound
// is what failed; do not look it up as one.
//
// The fix: end the guard's scope before the `.await` (a block, or `drop(guard)`),
// so the guard is never held across it; or use `tokio::sync::Mutex` when a lock
// must be held across an await. See
// tests/ui/fixed/no_code_mutex_guard_across_await.rs.

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
        let mut total = count.lock().unwrap_or_else(|e| e.into_inner());
        *total += 1;
        let reply = Message::text(format!("message {total}"));
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

fn start(socket: WebSocket, count: Arc<Mutex<u64>>) {
    spawn_connection(count_and_echo(socket, count));
}

/// What `tokio::spawn` requires of a task, in a signature of our own: that keeps
/// the compiler output free of tokio's source, which changes from release to
/// release.
fn spawn_connection<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(task);
}

fn main() {
    let _ = start;
}
