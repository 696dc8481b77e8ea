// The fix for E0277: the handler takes `WebSocketUpgrade` and hands the socket on.
//
// `WebSocketUpgrade` is an extractor: it checks the upgrade request. `on_upgrade` answers 101
// and, once the connection is upgraded, runs the closure with the `WebSocket`. Put
// `#[axum::debug_handler]` on a handler while you write it, and a wrong argument type is
// reported on the argument. The failing version is
// tests/ui/fail/e0277_handler_takes_websocket.rs.

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            break;
        }
    }
}

fn main() {
    let _app: Router = Router::new().route("/ws", any(upgrade));
}
