// E0382: the same socket moved into two tasks.
//
// What goes wrong: to read and write at the same time, a first attempt spawns a
// reader task and a writer task, each with `async move`. The first `async move`
// takes the socket; the second finds it gone.
//
// Why the compiler is right: a value has one owner. Two tasks that each owned the
// socket could both drop it, or use it from two threads at once.
//
// The fix: this is what `split` is for. `StreamExt::split` turns the socket into
// a sink half and a stream half, each with its own owner (lesson 02). See
// tests/ui/fixed/e0382_socket_moved_into_two_tasks.rs.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};

async fn handle(mut socket: WebSocket) {
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = socket.recv().await {
            println!("received {message:?}");
        }
    });
    let writer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if socket.send(Message::text("tick")).await.is_err() {
                break;
            }
        }
    });
    let _ = tokio::join!(reader, writer);
}

fn main() {
    let _ = handle;
}
