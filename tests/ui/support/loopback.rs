//! What the fixed twins in tests/ui/fixed use to run their fix: a server on a
//! free port of 127.0.0.1, and a tokio-tungstenite client that connects to it
//! over loopback. Every wait is bounded by `WAIT`, so that a broken fix fails the
//! run instead of hanging it. A twin includes this file with
//! `#[path = "../support/loopback.rs"] mod loopback;` and uses what it needs of
//! it.
#![allow(dead_code, unused_macros)]

use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::routing::any;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The client's messages: tungstenite's, not axum's.
pub use tokio_tungstenite::tungstenite::Message;

// ANCHOR: server
/// The longest any step may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// What a fix prints is part of its check, and stays out of the test run's
/// output: a twin whose fix prints imports this `println!` in place of std's
/// (`use loopback::println;`), which records each line for [`printed`] instead.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::loopback::record(format!($($arg)*))
    };
}
#[allow(unused_imports)] // only the twins whose fix prints use it
pub(crate) use println;

/// The lines recorded by [`println`], in order.
static PRINTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records one line of the fix's output; [`println`] calls it.
pub fn record(line: String) {
    let mut printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner());
    printed.push(line);
}

/// Every line the fix has printed so far.
pub fn printed() -> Vec<String> {
    PRINTED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Awaits `future`, `what` the twin is waiting for, or panics after `WAIT`.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("no {what} within {WAIT:?}"),
    }
}

/// Serves `app` in a task of its own; returns the URL of its `/ws` route.
pub async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("ws://{address}/ws")
}

/// Serves `handler` at `/ws`: each connection is upgraded and its socket handed
/// to it.
pub async fn serve_socket<H, F>(handler: H) -> String
where
    H: FnOnce(WebSocket) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let upgrade = |ws: WebSocketUpgrade| async move { ws.on_upgrade(handler) };
    serve(Router::new().route("/ws", any(upgrade))).await
}
// ANCHOR_END: server

// ANCHOR: client
/// A WebSocket client.
pub struct Client(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Client {
    /// Connects to `request` (a URL, or a request with headers of its own).
    pub async fn connect(request: impl IntoClientRequest + Unpin) -> Self {
        Self::handshake(request).await.0
    }

    /// Connects, and also returns the server's handshake response.
    pub async fn handshake(
        request: impl IntoClientRequest + Unpin,
    ) -> (Self, Response) {
        let connecting = tokio_tungstenite::connect_async(request);
        let (ws, response) =
            within("handshake", connecting).await.expect("handshake");
        (Client(ws), response)
    }

    /// Sends `message`, and flushes it.
    pub async fn send(&mut self, message: Message) {
        within("room to send", self.0.send(message))
            .await
            .expect("send");
    }

    /// The next message, Pings and Pongs included. Panics if the connection ends
    /// instead.
    pub async fn next(&mut self) -> Message {
        match within("message", self.0.next()).await {
            Some(Ok(message)) => message,
            Some(Err(e)) => panic!("the connection failed: {e}"),
            None => panic!("the connection ended"),
        }
    }

    /// Sends Close 1000, reads until the connection ends, and returns the code of
    /// the Close that came back: 1006, as a browser would report it, if none
    /// came.
    pub async fn close(mut self) -> u16 {
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.send(Message::Close(Some(normal))).await;
        within("end of the close handshake", async {
            let mut code = 1006;
            while let Some(Ok(message)) = self.0.next().await {
                match message {
                    Message::Close(Some(frame)) => code = frame.code.into(),
                    Message::Close(None) => code = 1005,
                    _ => {} // sent before the server read our Close
                }
            }
            code
        })
        .await
    }
}
// ANCHOR_END: client
