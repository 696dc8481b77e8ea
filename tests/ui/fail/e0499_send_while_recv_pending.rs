// E0499 (not E0502): sending while the future of `recv` is still alive.
//
// What goes wrong: `socket.recv()` does not receive anything by itself; it
// returns a future that holds `&mut socket` until it completes. Calling
// `socket.send(..)` while that future is alive needs a second `&mut socket`.
//
// Why the compiler is right: two mutable borrows of one socket at once would let
// a read and a write interleave on the same state. Many texts say this is E0502
// ("borrowed as mutable and immutable"); rustc says E0499 ("borrowed as mutable
// more than once"), because both `recv` and `send` take `&mut self`. The compiler
// wins.
//
// The fix: to read and write at the same time, split the socket (lesson 02), or
// wait for whichever comes first with `tokio::select!` (lesson 03), whose branch
// bodies run only after every branch future has been dropped. See
// tests/ui/fixed/e0499_send_while_recv_pending.rs.

use axum::extract::ws::{Message, WebSocket};

async fn greet_then_echo(mut socket: WebSocket) {
    let first = socket.recv();
    socket.send(Message::text("hello")).await.ok();
    if let Some(Ok(message)) = first.await {
        socket.send(message).await.ok();
    }
}

fn main() {
    let _ = greet_then_echo;
}
