// E0277: a handler that takes `WebSocket` where it must take `WebSocketUpgrade`.
//
// What goes wrong: a WebSocket starts life as an HTTP request. A handler receives
// what can be extracted from a request, and a `WebSocket` cannot be: it exists
// only after the server has answered `101 Switching Protocols`. So `upgrade` is
// not a handler, and `any(upgrade)` does not compile.
//
// Why the compiler is right: axum's routing accepts functions whose every
// argument implements `FromRequestParts` or `FromRequest`; `WebSocket` implements
// neither. rustc can only report the bound that failed, `Handler`, which is far
// from the cause; axum adds the note to try `#[axum::debug_handler]` (axum's
// `macros` feature), which puts the error on the argument itself: "Function
// argument is not a valid axum extractor".
//
// The fix: take `WebSocketUpgrade`, and receive the `WebSocket` in `on_upgrade`.
// See tests/ui/fixed/e0277_handler_takes_websocket.rs.

use axum::Router;
use axum::extract::ws::WebSocket;
use axum::routing::any;

async fn upgrade(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            break;
        }
    }
}

fn main() {
    let _app: Router = Router::new().route("/ws", any(upgrade));
}
