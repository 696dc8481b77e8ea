//! A started server program: its address, its WebSocket, its `/stats`, its log,
//! and the shutdown contract every server example keeps.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::socket::sockopt::TcpMaxSeg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;

use crate::WAIT;
use crate::client::{Client, expect_close};
use crate::frames::{masked_frame, raw_upgrade, stuck_peer};
use crate::http::{HttpResponse, http_get};
use crate::process::{Log, Process, Program};

/// A running server program (an example, a program of `stacks/`, a peer
/// server of the benchmarks), and the address it printed in its start-up
/// line. Its process is reached through the methods below only.
pub struct Running {
    process: Process,
    /// Where it listens: the address of its start-up line.
    pub addr: SocketAddr,
    /// Its first line on stdout, `listening on ws://127.0.0.1:PORT/ws` or the
    /// like.
    pub startup_line: String,
}

impl Running {
    /// Starts `program` on `127.0.0.1:0` with extra `args`, and waits
    /// for the start-up line to learn its port.
    pub async fn start(program: impl Into<Program>, args: &[&str]) -> Running {
        Running::start_on(program, "127.0.0.1:0", args).await
    }

    // ANCHOR: start
    /// Starts `program` on `addr` and reads the address from its
    /// start-up line: `ws://`, or `wss://` with `--tls-cert` (tests/tls.rs).
    pub async fn start_on(
        program: impl Into<Program>,
        addr: &str,
        args: &[&str],
    ) -> Running {
        let process = Process::spawn(program, &[&[addr], args].concat());
        Running::listening(process, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A started `process`, once its start-up line (within `bound`) has told
    /// its address; an error if it did not.
    async fn listening(
        mut process: Process,
        bound: Duration,
    ) -> io::Result<Running> {
        let startup_line = process.startup_line(bound).await?;
        let addr = startup_line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "no ws[s]://HOST:PORT/ or http[s]://HOST:PORT/ in \
                     {startup_line:?}"
                ))
            })?;
        Ok(Running {
            process,
            addr,
            startup_line,
        })
    }
    // ANCHOR_END: start

    /// Starts `binary` (already built) on `127.0.0.1:0` with extra `args`, its
    /// log as `log` says, and waits 30 s at most for its start-up line: the
    /// benchmarks' servers, which may start slowly on a loaded machine.
    pub async fn start_binary(
        binary: &Path,
        args: &[&str],
        log: Log<'_>,
    ) -> io::Result<Running> {
        let args = [&["127.0.0.1:0"], args].concat();
        let process = Process::start(binary, &args, log)?;
        Running::listening(process, Duration::from_secs(30)).await
    }

    /// [`Running::start`], with the logs that `filter` (`RUST_LOG`) selects.
    pub async fn start_logging(
        program: impl Into<Program>,
        args: &[&str],
        filter: &str,
    ) -> Running {
        let args = [&["127.0.0.1:0"], args].concat();
        let process = Process::spawn_logging(program, &args, filter);
        Running::listening(process, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The URL of the server's WebSocket, `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Opens a WebSocket to `/ws`.
    pub async fn connect(&self) -> Client {
        self.connect_with(&[]).await
    }

    /// Opens a WebSocket to `path`, which may carry a query: `/ws?user=alice`.
    pub async fn connect_to(&self, path: &str) -> Client {
        self.connect_url_with(&format!("ws://{}{path}", self.addr), &[])
            .await
    }

    /// Opens a WebSocket of `user` to a server of rooms: `/ws?user=USER`.
    pub async fn connect_as(&self, user: &str) -> Client {
        self.connect_to(&format!("/ws?user={user}")).await
    }

    /// Opens a WebSocket to `/ws` with extra request headers, such as a token.
    pub async fn connect_with(&self, headers: &[(&str, &str)]) -> Client {
        self.connect_url_with(&self.ws_url(), headers).await
    }

    async fn connect_url_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Client {
        let mut request = url.into_client_request().expect("a request");
        for (name, value) in headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = value.parse().expect("a header value");
            request.headers_mut().insert(name, value);
        }
        let (client, response) =
            timeout(WAIT, tokio_tungstenite::connect_async(request))
                .await
                .expect("the handshake completes in time")
                .expect("the handshake succeeds");
        assert_eq!(response.status(), 101);
        client
    }

    /// A client with a 4 KiB receive buffer and 536-byte TCP segments, so that
    /// it stalls the server's writes soon after it stops reading instead of
    /// soaking up megabytes in the kernel first.
    ///
    /// The receive buffer alone is not enough on loopback: its segments are
    /// 64 KiB, and Linux grows the server's send buffer for them up to the
    /// maximum of `net.ipv4.tcp_wmem` (4 MiB), some 45,000 readings. With small
    /// segments it stays near 256 KiB (measured with `ss -tm` on 2026-12-07).
    pub async fn connect_small_buffer(&self) -> Client {
        self.connect_small_buffer_to("/ws").await
    }

    /// [`Running::connect_small_buffer`], to `path`.
    pub async fn connect_small_buffer_to(&self, path: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        nix::sys::socket::setsockopt(&socket, TcpMaxSeg, &536)
            .expect("TCP_MAXSEG");
        let tcp = timeout(WAIT, socket.connect(self.addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (client, _) = timeout(
            WAIT,
            tokio_tungstenite::client_async(
                format!("ws://{}{path}", self.addr),
                MaybeTlsStream::Plain(tcp),
            ),
        )
        .await
        .expect("the handshake completes in time")
        .expect("the handshake succeeds");
        client
    }

    /// `GET path` over a fresh connection.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    /// The server's `GET /stats`.
    pub async fn stats(&self) -> serde_json::Value {
        self.get("/stats").await.json()
    }

    /// Polls `/stats` until `ready` holds, for at most `WAIT`; returns the last
    /// reading.
    pub async fn wait_for_stats(
        &self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for_stats_within(WAIT, what, ready).await
    }

    /// Polls `/stats` until `ready` holds, for at most `bound`; returns the last
    /// reading.
    // ANCHOR: wait_for_stats
    pub async fn wait_for_stats_within(
        &self,
        bound: Duration,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            every.tick().await;
            let stats = self.stats().await;
            if ready(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: /stats still reads {stats}"
            );
        }
    }
    // ANCHOR_END: wait_for_stats

    /// Asks `GET path` again and again, each time on a fresh connection, until
    /// it answers `status`, for at most `bound`; returns when that answer
    /// arrived. Back to back, so that a change is seen within one round trip.
    pub async fn wait_for_status(
        &self,
        path: &str,
        status: u16,
        bound: Duration,
    ) -> tokio::time::Instant {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let response = self.get(path).await;
            let now = tokio::time::Instant::now();
            if response.status == status {
                return now;
            }
            assert!(
                now < deadline,
                "GET {path} did not answer {status} within {bound:?}: {response}"
            );
        }
    }

    /// Stops reading the server's log (stderr) and closes the pipe, as a log
    /// collector that died would.
    pub async fn close_log(&mut self) {
        self.process.close_stderr().await;
    }

    /// Every log line (stderr) so far, without waiting for more.
    pub fn log_so_far(&mut self) -> Vec<String> {
        self.process.stderr_so_far()
    }

    // ANCHOR: stuck_peer_dropped
    /// A dashboard's flags for the stuck-peer test: readings pushed fast
    /// enough to fill a stuck peer's buffers in a second or two on an idle
    /// machine, a send deadline of 1 s (`--pong-timeout`), and no ping due for
    /// ten minutes.
    pub const PUSHING_FAST: [&str; 6] = [
        "--rate",
        "50000",
        "--ping-interval",
        "10m",
        "--pong-timeout",
        "1s",
    ];

    /// How long the stuck-peer test waits: long enough for a machine busy
    /// with a build to fill the 4 MiB that a peer's path can hold, and well
    /// before the first ping of [`Running::PUSHING_FAST`] is due, so that a peer
    /// dropped in time was dropped by the deadline on a blocked send, not by a
    /// missed pong.
    pub const STUCK_PEER_BOUND: Duration = Duration::from_secs(120);

    /// Connects a [`stuck_peer`] (with extra header lines) while the server
    /// pushes, and checks that the server gives up on it within `bound`.
    pub async fn drops_a_stuck_peer_within(
        &mut self,
        headers: &[(&str, &str)],
        bound: Duration,
    ) {
        let _peer = stuck_peer(self.addr, headers).await;
        let what = "the stuck peer is dropped before any ping is due";
        self.wait_for_stats_within(bound, what, |s| s["connections"] == 0)
            .await;
    }
    // ANCHOR_END: stuck_peer_dropped

    /// Sends a signal to the server, as Ctrl-C (SIGINT) or `kill` (SIGTERM)
    /// would.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        self.process.signal(signal);
    }

    // ANCHOR: shutdown_contract
    /// Sends `signal` and checks the shutdown contract of every server example:
    /// each open client receives Close 1001, and the process exits with status 0
    /// within 2 seconds of the signal.
    pub async fn shut_down_with(
        &mut self,
        signal: nix::sys::signal::Signal,
        clients: &mut [Client],
    ) {
        let signalled = tokio::time::Instant::now();
        self.signal(signal);
        let frames =
            futures::future::join_all(clients.iter_mut().map(expect_close)).await;
        for frame in frames {
            assert_eq!(
                frame.map(|f| u16::from(f.code)),
                Some(1001),
                "a Close 1001 for everyone"
            );
        }
        let left = Duration::from_secs(2).saturating_sub(signalled.elapsed());
        let status = self.wait_exit(left).await;
        assert!(status.success(), "exit status {status}");
    }
    // ANCHOR_END: shutdown_contract

    // ANCHOR: hangs_up_after_close
    /// Checks the end of a closing handshake that a client starts: a peer made
    /// by hand sends Close 1000 and then only reads, never closing the TCP
    /// connection itself. The server answers with the same code and closes the
    /// connection within a second of the Close, as RFC 6455 section 7.1.1 asks
    /// of servers (a client waits for it, python `websockets` up to 10 s).
    ///
    /// Four times in a row, each on a new connection: a server that closes on
    /// a timer may get it right once by chance (actix-web's, now and then).
    pub async fn hangs_up_after_a_clients_close(&self) {
        let close = masked_frame(0x88, &1000u16.to_be_bytes());
        for round in 1..=4 {
            let (mut tcp, response) = raw_upgrade(self.addr).await;
            assert_eq!(response.status, 101, "{response}");
            let sent = tokio::time::Instant::now();
            tcp.write_all(&close).await.expect("the Close is sent");
            let mut received = Vec::new();
            timeout(WAIT, tcp.read_to_end(&mut received))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "round {round}: still connected {WAIT:?} after our Close"
                    )
                })
                .expect("the server closes the connection, without a reset");
            let after = sent.elapsed();
            // 0x88: FIN + opcode 8 (Close), 2 bytes of payload, code 1000.
            assert_eq!(received, [0x88, 2, 0x03, 0xE8], "the Close reply");
            assert!(
                after < Duration::from_secs(1),
                "round {round}: the server closed the connection {after:?} \
                 after our Close"
            );
        }
    }
    // ANCHOR_END: hangs_up_after_close

    /// Waits at most `bound` for the server to exit.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        self.process.wait_exit(bound).await
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }

    /// The CPU time (user and system) the server has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.process.cpu_seconds()
    }

    /// Stops the server as [`Process::stop`] does; returns its log lines.
    pub async fn stop(self) -> Vec<String> {
        self.process.stop().await
    }
}
