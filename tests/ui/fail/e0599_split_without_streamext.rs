// E0599: `split` and `next` without the `futures` traits in scope.
//
// What goes wrong: `WebSocket` has no `split` method of its own. It implements
// the `Stream` and `Sink` traits, and `split` (like `next` on the halves, and
// `send` on the sink) is a provided method of the extension traits
// `futures::StreamExt` and `futures::SinkExt`. A trait's methods can be called
// only where the trait is in scope.
//
// Why the compiler is right: methods of a trait that is not imported are not
// candidates; that is what keeps two traits with a method of the same name from
// clashing.
//
// Note the help text: rustc suggests
// `use futures_util::stream::stream::StreamExt;`, the path where the trait is
// defined. That path does not compile: the module `stream::stream` is private to
// futures-util, and futures-util is not even one of our dependencies (`futures`
// re-exports it). Import the trait the way your Cargo.toml names it:
// `use futures::StreamExt;`. See tests/ui/fixed/e0599_split_without_streamext.rs.

use axum::extract::ws::WebSocket;

async fn handle(socket: WebSocket) {
    let (_sink, _stream) = socket.split();
}

fn main() {
    let _ = handle;
}
