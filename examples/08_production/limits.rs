//! The defences inside a connection: a rate limit on what a client sends, and
//! a Close frame that says why when a connection fails. And one at its door: a
//! cap on the connections that one client address may hold.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use futures::{Sink, SinkExt, Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ws_lessons::{Connections, Socket};

use ws_lessons::server::Ended;

// ANCHOR: rate_limit
/// A socket whose incoming data messages pass a token bucket first. One message
/// too many reads as an error, [`RateLimitExceeded`], which [`close_for`] answers
/// with 1008: to the loop of lesson 05 it is one more way for reading to fail.
pub struct RateLimited<S> {
    socket: S,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// A client sent more messages than `--rate-limit` and `--burst` allow.
#[derive(Debug)]
pub struct RateLimitExceeded;

impl<S> RateLimited<S> {
    /// `quota` is `None` for no limit.
    pub fn new(socket: S, quota: Option<Quota>) -> Self {
        let limiter = quota.map(RateLimiter::direct);
        Self { socket, limiter }
    }

    /// The socket itself, to close it without the limit in the way.
    pub fn into_inner(self) -> S {
        self.socket
    }
}

impl<S: Socket> Stream for RateLimited<S> {
    type Item = Result<Message, axum::Error>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let item = ready!(self.socket.poll_next_unpin(cx));
        let data =
            matches!(item, Some(Ok(Message::Text(_) | Message::Binary(_))));
        let too_fast =
            |limiter: &DefaultDirectRateLimiter| limiter.check().is_err();
        if data && self.limiter.as_ref().is_some_and(too_fast) {
            return Poll::Ready(Some(Err(axum::Error::new(RateLimitExceeded))));
        }
        Poll::Ready(item)
    }
}
// ANCHOR_END: rate_limit

/// Sending is left as it is.
impl<S: Socket> Sink<Message> for RateLimited<S> {
    type Error = axum::Error;

    fn poll_ready(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.socket.poll_ready_unpin(cx)
    }

    fn start_send(
        mut self: Pin<&mut Self>,
        message: Message,
    ) -> Result<(), Self::Error> {
        self.socket.start_send_unpin(message)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.socket.poll_flush_unpin(cx)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Self::Error>> {
        self.socket.poll_close_unpin(cx)
    }
}

impl std::fmt::Display for RateLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate limit exceeded")
    }
}

impl std::error::Error for RateLimitExceeded {}

// ANCHOR: close_codes
/// The Close frame that tells a client why its connection failed, for an error
/// from reading. `None` when the connection itself is gone and nothing can be
/// written.
pub fn close_for(error: &axum::Error) -> Option<CloseFrame> {
    use tungstenite::Error as Ws;
    let source = error.source()?;
    let (code, reason) = if source.is::<RateLimitExceeded>() {
        (close_code::POLICY, "rate limit exceeded")
    } else {
        match source.downcast_ref::<Ws>()? {
            Ws::Capacity(_) => (close_code::SIZE, "message too big"),
            Ws::Utf8(_) => (close_code::INVALID, "text is not valid UTF-8"),
            Ws::Protocol(_) => (close_code::PROTOCOL, "protocol error"),
            Ws::ConnectionClosed | Ws::AlreadyClosed | Ws::Io(_) => return None,
            _ => (close_code::ERROR, "internal error"),
        }
    };
    let reason = reason.into();
    Some(CloseFrame { code, reason })
}

/// Sends `frame` and gives up on the connection, without waiting long for a
/// peer that has already misbehaved.
pub async fn close_with(mut socket: impl Socket, frame: CloseFrame) {
    let (code, reason) = (frame.code, &frame.reason);
    tracing::info!(code, %reason, "closing a connection");
    let send = socket.send(Message::Close(Some(frame)));
    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), send).await {
        ws_lessons::finish_close(socket).await;
    }
}
// ANCHOR_END: close_codes

// ANCHOR: echo
/// Echo mode: lesson 01's loop behind the same limits and close codes, for the
/// conformance suite.
pub async fn echo(socket: &mut impl Socket, connections: &Connections) -> Ended {
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            () = connections.shutting_down() => return Ended::ShuttingDown,
        };
        match message {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(message).await.is_err() {
                    return Ended::Gone;
                }
            }
            Some(Ok(Message::Close(_))) => return Ended::PeerClosed,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Failed(e),
            None => return Ended::Gone,
        }
    }
}
// ANCHOR_END: echo

// ANCHOR: per_address
/// The WebSocket connections open from each client address, held to
/// `--max-per-address`. The address is the one [`ClientAddr`] works out: behind
/// nginx, the client's, not nginx's, which would make every client one.
///
/// [`ClientAddr`]: ws_lessons::proxy::ClientAddr
pub struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; dropping it, when the
/// connection ends, gives the place back.
pub struct AddressSlot {
    addresses: Arc<PerAddress>,
    client: IpAddr,
}

impl PerAddress {
    pub fn new(max: u32) -> Arc<Self> {
        let open = Mutex::new(HashMap::new());
        Arc::new(Self {
            max: max as usize,
            open,
        })
    }

    /// A place for one more connection from `client`, or `None` if it already
    /// holds `--max-per-address`.
    pub fn try_acquire(self: &Arc<Self>, client: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(client).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        let addresses = self.clone();
        Some(AddressSlot { addresses, client })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let open = &self.addresses.open;
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut count) = open.entry(self.client) {
            *count.get_mut() -= 1;
            // An address with no connection leaves the map, so that it does
            // not grow with every client ever seen.
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}
// ANCHOR_END: per_address

impl PerAddress {
    /// The connections open from each address, in order, for `GET /stats`:
    /// which address each connection was counted against, behind a proxy or
    /// not. Client addresses are personal data, which is one reason `/stats`
    /// is for the operator only.
    pub fn open(&self) -> BTreeMap<IpAddr, usize> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.iter()
            .map(|(&client, &count)| (client, count))
            .collect()
    }
}
