// The fix for E0382: split the socket, and give each task its own half.
//
// The sink half writes and the stream half reads; each has one owner. Lesson 02
// adds what a real server also needs: a channel between the halves, and stopping
// one task when the other ends. The failing version is
// tests/ui/fail/e0382_socket_moved_into_two_tasks.rs.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};

async fn handle(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            println!("received {message:?}");
        }
    });
    let writer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if sink.send(Message::text("tick")).await.is_err() {
                break;
            }
        }
    });
    let _ = tokio::join!(reader, writer);
}

// The check: while the reader half waits for messages, the writer half's tick
// comes through; the reader receives the client's text, and reads on to the end
// of the close handshake. (`println!` here is loopback's, which records what the
// reader prints for the check instead of printing it.)
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::Text;
use loopback::println;

#[tokio::main]
async fn main() {
    let url = loopback::serve_socket(handle).await;
    let mut client = Client::connect(&url).await;
    client.send(Text("hello".into())).await;
    assert_eq!(client.next().await, Text("tick".into()));
    assert_eq!(client.close().await, 1000);
    let printed = loopback::printed();
    let first = printed.first().map(String::as_str).unwrap_or_default();
    assert!(first.contains("hello"), "{printed:?}");
}
