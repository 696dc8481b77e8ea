//! TLS in the server itself: `wss://` and `https://` with rustls, when an
//! example is given `--tls-cert` and `--tls-key`.
//!
//! [`serve`](crate::serve) hands axum a [`Listener`] instead of the bare
//! `TcpListener`. Without a certificate it passes TCP connections through as
//! they are. With one, a task of its own accepts TCP connections and runs each
//! TLS handshake in a task of its own, under a deadline, so that a client that
//! is slow to shake hands, or that speaks plain `ws://` to the TLS port, delays
//! no one else; axum only ever sees connections whose handshake succeeded.
//! Everything above the handshake (HTTP, the upgrade, `Connections`, the
//! shutdown) is the same code, over an encrypted stream.
//!
//! rustls uses the `ring` crypto provider here, chosen explicitly: its default,
//! aws-lc-rs, needs cmake and a C toolchain to build.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig, crypto};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::task::AbortOnDropHandle;

use crate::cli::ListenAddr;

/// How long a client may take over the TLS handshake before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// ANCHOR: stats
/// The handshakes that did not complete, since the process started; set when
/// a [`Listener`] serves TLS. A process serves one address, so the counts of
/// the process are its listener's.
static HANDSHAKES: OnceLock<Handshakes> = OnceLock::new();

#[derive(Default)]
struct Handshakes {
    failed: AtomicU64,
    timed_out: AtomicU64,
}

/// What `GET /stats` says about TLS, under `tls`: the clients that never got
/// as far as HTTP.
#[derive(Debug, Serialize)]
pub struct TlsStats {
    /// Handshakes that failed: a client that does not trust the certificate,
    /// or one that speaks plain HTTP (`ws://`) to the TLS port.
    handshakes_failed: u64,
    /// Handshakes not finished within [`HANDSHAKE_TIMEOUT`].
    handshakes_timed_out: u64,
}

/// The handshakes that did not complete since the process started; `None`
/// in a process that serves no TLS.
pub fn stats() -> Option<TlsStats> {
    let handshakes = HANDSHAKES.get()?;
    Some(TlsStats {
        handshakes_failed: handshakes.failed.load(Ordering::Relaxed),
        handshakes_timed_out: handshakes.timed_out.load(Ordering::Relaxed),
    })
}
// ANCHOR_END: stats

/// A connection as axum receives it: plain TCP, or TLS over TCP.
pub type Stream = Either<TcpStream, Tls>;

// ANCHOR: config
/// The TLS set-up `addr` asks for: `None` without `--tls-cert`, or an acceptor
/// with its certificate chain and key. The error is one line for the user.
pub fn acceptor(addr: &ListenAddr) -> Result<Option<TlsAcceptor>, String> {
    let (Some(cert), Some(key)) = (&addr.tls_cert, &addr.tls_key) else {
        return Ok(None);
    };
    let config = server_config(cert, key)?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// A rustls server configuration from a PEM certificate chain and a PEM key.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            format!("cannot read the TLS {what} {}: {e}", path.display())
        })
    };
    let pem = read(cert, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key_pem = read(key, "key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let key = key.display();
        format!("no private key in {key} (a PEM \"PRIVATE KEY\" block): {e}")
    })?;
    let provider = Arc::new(crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e| {
            let (cert, key) = (cert.display(), key.display());
            match e {
                rustls::Error::InconsistentKeys(_) => {
                    format!("the key in {key} is not the key of {cert}")
                }
                e => format!("cannot use {cert} with {key}: {e}"),
            }
        })?;
    // HTTP/1.1 only, as axum serves it here; a browser offers it too.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
// ANCHOR_END: config

/// What `serve` accepts connections from: TCP as it comes, or TCP after a TLS
/// handshake.
pub enum Listener {
    /// No TLS: each TCP connection as accepted.
    Plain(TcpListener),
    /// TLS: connections whose handshake succeeded, from the accepting task.
    Tls {
        /// Connections ready for HTTP, in the order their handshakes ended.
        ready: mpsc::Receiver<(Tls, SocketAddr)>,
        /// The address bound, which `local_addr` answers with: the accepting
        /// task owns the `TcpListener`.
        local: SocketAddr,
        /// The accepting task, which ends (with every handshake in progress)
        /// when the listener is dropped, as axum does when it shuts down.
        _accepting: AbortOnDropHandle<()>,
    },
}

impl Listener {
    /// Serves `tcp`, bound to `local`, as it is without an acceptor, or TLS
    /// over it with one.
    pub fn new(
        tcp: TcpListener,
        local: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let Some(acceptor) = tls else {
            return Self::Plain(tcp);
        };
        let (sender, ready) = mpsc::channel(64);
        let counts = HANDSHAKES.get_or_init(Handshakes::default);
        let accepting = tokio::spawn(accept(tcp, acceptor, sender, counts));
        Self::Tls {
            ready,
            local,
            _accepting: AbortOnDropHandle::new(accepting),
        }
    }
}

// ANCHOR: accept
/// Accepts TCP connections and shakes hands on each in a task of its own;
/// passes on those that succeed, and counts the others ([`stats`]) and logs
/// them at debug level.
async fn accept(
    mut tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(Tls, SocketAddr)>,
    counts: &'static Handshakes,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            (stream, peer) = axum::serve::Listener::accept(&mut tcp) => {
                let handshake = acceptor.accept(stream);
                let ready = ready.clone();
                handshakes.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((Tls(Box::new(tls)), peer)).await;
                        }
                        Ok(Err(e)) => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "TLS handshake failed: {e}")
                        }
                        Err(_) => {
                            counts.timed_out.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "TLS handshake timed out")
                        }
                    }
                });
            }
            // Reap the handshakes that ended, so that the set does not grow.
            Some(_) = handshakes.join_next() => {}
            () = ready.closed() => return,
        }
    }
}
// ANCHOR_END: accept

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        match self {
            Self::Plain(tcp) => {
                let (stream, peer) = axum::serve::Listener::accept(tcp).await;
                (Either::Left(stream), peer)
            }
            Self::Tls { ready, .. } => match ready.recv().await {
                Some((stream, peer)) => (Either::Right(stream), peer),
                // The accepting task never ends while `ready` is open.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Plain(tcp) => tcp.local_addr(),
            Self::Tls { local, .. } => Ok(*local),
        }
    }
}

/// The TCP connection under a [`Stream`], to set its options.
pub fn tcp(stream: &Stream) -> &TcpStream {
    match stream {
        Either::Left(tcp) => tcp,
        Either::Right(tls) => tls.0.get_ref().0,
    }
}

// ANCHOR: close_notify
/// A TLS connection that says goodbye when it is dropped.
///
/// TLS ends a connection with a `close_notify` alert, so that a peer can tell
/// the end of the stream from an attacker who cut it. hyper sends one when it
/// shuts an HTTP connection down, but an upgraded WebSocket is simply dropped
/// once its handler returns, and rustls clients then report "peer closed
/// connection without sending TLS close_notify" in place of a clean end, even
/// after a complete closing handshake. Drop cannot wait, so the alert (a few
/// dozen bytes) is written only if the socket takes it at once, which it nearly
/// always does.
///
/// Boxed: a TLS stream is some 1,200 bytes, and a [`Stream`] is as large as
/// its larger side, so without the box every plain connection would carry
/// that much more too.
pub struct Tls(Box<TlsStream<TcpStream>>);

impl Drop for Tls {
    fn drop(&mut self) {
        let (tcp, session) = self.0.get_mut();
        session.send_close_notify();
        let mut socket = NoWait(tcp);
        while session.wants_write() {
            if !matches!(session.write_tls(&mut socket), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// A `std::io::Write` that writes what the socket takes now, and no more.
struct NoWait<'a>(&'a TcpStream);

impl io::Write for NoWait<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
// ANCHOR_END: close_notify

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A start-up line with TLS: `ws://` becomes `wss://` and `http://` becomes
/// `https://`.
pub fn secure_schemes(line: &str) -> String {
    line.replace("ws://", "wss://")
        .replace("http://", "https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_line_names_the_secure_schemes() {
        let line = "listening on ws://127.0.0.1:3000/ws \
                    (open http://127.0.0.1:3000/ in a browser; Ctrl-C to stop)";
        assert_eq!(
            secure_schemes(line),
            "listening on wss://127.0.0.1:3000/ws \
             (open https://127.0.0.1:3000/ in a browser; Ctrl-C to stop)"
        );
    }

    #[test]
    fn a_missing_file_is_one_line_that_names_it() {
        let missing = Path::new("/nonexistent/cert.pem");
        let error = server_config(missing, missing).unwrap_err();
        assert!(
            error.starts_with("cannot read the TLS certificate /nonexistent"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}
