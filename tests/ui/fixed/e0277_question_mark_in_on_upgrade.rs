// ANCHOR: fix
// The fix for E0277: `?` in a function that returns `Result`, and the error
// handled once.
//
// The closure calls `echo` and logs its error, if any: that is the one place that
// decides what a failed connection means. The failing version is
// tests/ui/fail/e0277_question_mark_in_on_upgrade.rs.
//
// A normal close is not an error. `echo` sends back Text and Binary only
// (tungstenite answers a Ping by itself), and after the peer's Close it keeps
// reading until `recv` returns `None`, which is when the library's Close reply
// has gone out. (Sending the Close back instead fails, so `?` would end every
// normal close with an error.)

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|socket| async move {
        if let Err(e) = echo(socket).await {
            tracing::debug!("connection ended with an error: {e}");
        }
    })
}

async fn echo(mut socket: WebSocket) -> Result<(), axum::Error> {
    socket.send(Message::text("hello")).await?;
    while let Some(message) = socket.recv().await {
        let message = message?;
        match message {
            Message::Text(_) | Message::Binary(_) => socket.send(message).await?,
            // After a Close, read on: the reply goes out, then `recv` returns
            // `None`.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    Ok(())
}
// ANCHOR_END: fix

// The check: a client over loopback is greeted, gets its text back, exactly one
// Pong for its Ping (and no echo of it), and Close 1000 in answer to its Close
// 1000.
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::{Ping, Pong, Text};

#[tokio::main]
async fn main() {
    let url = loopback::serve(Router::new().route("/ws", any(upgrade))).await;
    let mut client = Client::connect(&url).await;
    assert_eq!(client.next().await, Text("hello".into()));
    client.send(Text("echo me".into())).await;
    assert_eq!(client.next().await, Text("echo me".into()));
    client.send(Ping("ping".into())).await;
    client.send(Text("after the ping".into())).await;
    assert_eq!(client.next().await, Pong("ping".into()));
    assert_eq!(client.next().await, Text("after the ping".into()));
    assert_eq!(client.close().await, 1000);
}
