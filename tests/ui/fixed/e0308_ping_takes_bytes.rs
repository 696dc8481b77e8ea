// The fix for E0308: a Ping's payload is `axum::body::Bytes`.
//
// The failing version is tests/ui/fail/e0308_ping_takes_bytes.rs.

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};

async fn ping(socket: &mut WebSocket) -> Result<(), axum::Error> {
    socket.send(Message::Ping(Bytes::new())).await?;
    socket
        .send(Message::Ping(Bytes::from_static(b"are you there?")))
        .await?;
    socket.send(Message::Ping(vec![1, 2, 3].into())).await
}

// The check: a client over loopback receives the three Pings, payloads intact.
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::Ping;

#[tokio::main]
async fn main() {
    let url = loopback::serve_socket(|mut socket| async move {
        ping(&mut socket).await.expect("ping");
        // Read on, to the end of the close handshake.
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
    let mut client = Client::connect(&url).await;
    assert_eq!(client.next().await, Ping(Bytes::new()));
    assert_eq!(client.next().await, Ping("are you there?".into()));
    assert_eq!(client.next().await, Ping(vec![1, 2, 3].into()));
    assert_eq!(client.close().await, 1000);
}
