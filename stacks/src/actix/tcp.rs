//! Each connection's TCP socket, which actix-web keeps to itself: a copy is
//! taken when the connection is accepted, for a handler whose peer stopped
//! reading.
//!
//! Dropping the `Session` and the message stream does not close such a
//! connection. actix-web's dispatcher still holds what it was sending (its
//! write buffer, and up to 32 messages in actix-ws's channel); it goes on
//! writing it, and closes the connection only once the peer has read it all,
//! which a peer that does not read never does. None of its timers covers a
//! write that makes no progress: `client_disconnect_timeout` starts only after
//! the buffer is flushed, and `shutdown_timeout` only on a server stop. So
//! the handler shuts the socket down itself: the dispatcher's next write then
//! fails, and it drops the connection.

use std::any::Any;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::rc::{Rc, Weak};

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use tokio_util::task::TaskTracker;

// ANCHOR: tcp
/// A connection's TCP socket, for [`Tcp::shut_down`] and [`Tcp::stop_reading`].
pub struct Tcp(Weak<std::net::TcpStream>);

impl Tcp {
    /// The socket of `request`'s connection, as [`on_connect`] kept it.
    pub(super) fn of(request: &HttpRequest) -> Self {
        match request.conn_data::<Socket>() {
            Some(Socket(socket)) => Tcp(Rc::downgrade(socket)),
            None => Tcp(Weak::new()),
        }
    }

    /// Shuts the connection down both ways, now. actix-web's pending write
    /// fails, so it drops the connection; a peer that is still sending gets
    /// a reset. Does nothing once actix-web has dropped the connection.
    pub fn shut_down(&self) {
        self.shutdown(Shutdown::Both);
    }

    /// Ends the reading side only, once the closing handshake is over: to
    /// actix-web the peer seems to have hung up, so it writes out what it
    /// holds (the Close reply), closes the connection, and lets it go.
    /// Without this it reads on after the Close until the peer hangs up,
    /// which a client waits for the server to do (RFC 6455 section 7.1.1).
    pub fn stop_reading(&self) {
        self.shutdown(Shutdown::Read);
    }

    fn shutdown(&self, how: Shutdown) {
        let Some(tcp) = self.0.upgrade() else { return };
        if let Err(e) = tcp.shutdown(how) {
            tracing::debug!("cannot shut the connection down ({how:?}): {e}");
        }
    }
}

/// A copy of a connection's socket descriptor, kept in the connection's data:
/// it is closed when actix-web drops the connection, and a handler holds it
/// only weakly, so it keeps no connection open.
struct Socket(Rc<std::net::TcpStream>);

/// actix-web's `on_connect` (the only code that sees the socket): keeps with
/// the new connection a copy of its socket, and a token of `connections`.
pub(super) fn on_connect(
    tcp: &dyn Any,
    data: &mut Extensions,
    connections: &TaskTracker,
) {
    data.insert(connections.token());
    let Some(tcp) = tcp.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    // One more descriptor per connection, for as long as it is open.
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => drop(data.insert(Socket(Rc::new(fd.into())))),
        Err(e) => tracing::warn!("cannot keep a copy of the socket: {e}"),
    }
}
// ANCHOR_END: tcp
