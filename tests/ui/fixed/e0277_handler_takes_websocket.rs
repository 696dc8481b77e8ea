// The fix for E0277: the handler takes `WebSocketUpgrade` and hands the socket
// on.
//
// `WebSocketUpgrade` is an extractor: it checks the upgrade request. `on_upgrade`
// answers 101 and, once the connection is upgraded, runs the closure with the
// `WebSocket`. Put `#[axum::debug_handler]` on a handler while you write it, and
// a wrong argument type is reported on the argument. The failing version is
// tests/ui/fail/e0277_handler_takes_websocket.rs.
//
// The echo is lesson 01's: it sends back Text and Binary only (tungstenite
// answers a Ping by itself), and after the peer's Close it keeps reading until
// `recv` returns `None`, which is when the library's Close reply has gone out.

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(message).await.is_err() {
                    break;
                }
            }
            // After a Close, read on: the reply goes out, then `recv` returns
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
    let url = loopback::serve(Router::new().route("/ws", any(upgrade))).await;
    let mut client = Client::connect(&url).await;
    client.send(Text("hello".into())).await;
    assert_eq!(client.next().await, Text("hello".into()));
    client.send(Ping("ping".into())).await;
    client.send(Text("after the ping".into())).await;
    assert_eq!(client.next().await, Pong("ping".into()));
    assert_eq!(client.next().await, Text("after the ping".into()));
    assert_eq!(client.close().await, 1000);
}
