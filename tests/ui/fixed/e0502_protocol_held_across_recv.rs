// The fix for E0502: own the value instead of borrowing it from the socket.
//
// `cloned()` turns the `Option<&HeaderValue>` into an `Option<HeaderValue>` that
// no longer points into the socket, so `recv` may borrow the socket mutably. The
// failing version is tests/ui/fail/e0502_protocol_held_across_recv.rs.

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;

async fn handle(mut socket: WebSocket) {
    let protocol = socket.protocol().cloned();
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            println!("{text} (protocol {protocol:?})");
        }
    }
}

// The check: a client that asks for the `chat` subprotocol gets it, sends a text
// that `handle` prints with the protocol, and has its Close 1000 answered with
// 1000: `handle` read on. (`println!` here is loopback's, which records what
// `handle` prints for the check instead of printing it.)
#[path = "../support/loopback.rs"]
mod loopback;
use loopback::Client;
use loopback::Message::Text;
use loopback::println;
use tokio_tungstenite::tungstenite::ClientRequestBuilder;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.protocols(["chat"]).on_upgrade(handle)
}

#[tokio::main]
async fn main() {
    let url = loopback::serve(Router::new().route("/ws", any(upgrade))).await;
    let uri = url.parse().expect("a URI");
    let request = ClientRequestBuilder::new(uri).with_sub_protocol("chat");
    let (mut client, response) = Client::handshake(request).await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    client.send(Text("hello".into())).await;
    assert_eq!(client.close().await, 1000);
    assert_eq!(loopback::printed(), [r#"hello (protocol Some("chat"))"#]);
}
