// The fix for E0599: import the extension traits from the crate you depend on.
//
// `futures::StreamExt` provides `split` and `next`; `futures::SinkExt` provides
// `send` on the sink half. The failing version is
// tests/ui/fail/e0599_split_without_streamext.rs.
//
// The halves echo the way lesson 01 does: Text and Binary only (tungstenite
// answers a Ping by itself), and after the peer's Close the stream half is read
// until it ends, which is when the library's Close reply has gone out.

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};

async fn handle(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            // After a Close, read on: the reply goes out, then `next` returns
            // `None`.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
}

// The check: a client over loopback gets its text back, exactly one Pong for its
// Ping (and no echo of it), and Close 1000 in answer to its Close 1000.
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::{Ping, Pong, Text};

#[tokio::main]
async fn main() {
    let url = loopback::serve_socket(handle).await;
    let mut client = Client::connect(&url).await;
    client.send(Text("hello".into())).await;
    assert_eq!(client.next().await, Text("hello".into()));
    client.send(Ping("ping".into())).await;
    client.send(Text("after the ping".into())).await;
    assert_eq!(client.next().await, Pong("ping".into()));
    assert_eq!(client.next().await, Text("after the ping".into()));
    assert_eq!(client.close().await, 1000);
}
