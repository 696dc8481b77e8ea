//! Drives the examples as a reader runs them: the real binary that `cargo run --example`
//! builds, on `127.0.0.1:0`, talked to over loopback by a tokio-tungstenite client.
//!
//! Every wait here has a timeout, so a broken example fails a test instead of hanging it.
#![allow(dead_code)] // each test file uses its own part of this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on any single wait for the server: start-up, a reply, a close.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

// ANCHOR: example_binary
/// The path of an example's binary, built by cargo so that it is never stale: `cargo test
/// --test NAME` alone does not rebuild examples. Each test binary asks once per example.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.iter().any(|n| n == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "--example", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // The same features as this test, so that cargo does not rebuild for nothing.
        if cfg!(feature = "browser") {
            build.args(["--features", "browser"]);
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    profile_dir.join("examples").join(name)
}
// ANCHOR_END: example_binary

/// A running example process, with its stdout and stderr collected line by line so that a
/// test can wait for a line. Dropping it kills the process.
pub struct Process {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
}

// ANCHOR: wait_for_log
/// Forwards each line of `output` to a channel.
fn lines_of(
    output: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for a line that contains `needle`, and returns it.
async fn wait_for_line(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let found = timeout(WAIT, async {
        while let Some(line) = lines.recv().await {
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("the process exited before printing {needle:?}"),
        Err(_) => panic!("no line with {needle:?} in time"),
    }
}

// ANCHOR_END: wait_for_log

impl Process {
    /// Starts `examples/<name>.rs` with `args`.
    pub fn spawn(name: &str, args: &[&str]) -> Process {
        let mut child = Command::new(example_binary(name))
            .args(args)
            // Debug logs from the example itself and the support library; info from the rest.
            .env("RUST_LOG", format!("info,ws_lessons=debug,{name}=debug"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the example starts");
        let stdout = lines_of(child.stdout.take().expect("stdout is piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr is piped"));
        Process {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a line on stdout that contains `needle`, and returns it.
    pub async fn wait_for_stdout(&mut self, needle: &str) -> String {
        wait_for_line(&mut self.stdout, needle).await
    }

    /// Waits for a line on stderr (the log) that contains `needle`, and returns it.
    pub async fn wait_for_stderr(&mut self, needle: &str) -> String {
        wait_for_line(&mut self.stderr, needle).await
    }

    /// Every line written to stderr so far, without waiting for more.
    pub fn stderr_so_far(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.try_recv() {
            lines.push(line);
        }
        lines
    }

    /// The next line on stdout.
    pub async fn next_stdout(&mut self) -> String {
        match timeout(WAIT, self.stdout.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("stdout ended"),
            Err(_) => panic!("no line on stdout in time"),
        }
    }

    /// Sends a signal to the process, as Ctrl-C (SIGINT) or `kill` (SIGTERM) would.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("the process is running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal sent");
    }

    /// Waits at most `bound` for the process to exit.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the process did not exit within {bound:?}"))
            .expect("the exit status is readable")
    }

    /// The process's resident memory, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the process is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

/// A running server example, and the address it printed in its start-up line.
pub struct Server {
    pub process: Process,
    pub addr: SocketAddr,
    pub startup_line: String,
}

impl Server {
    /// Starts `examples/<name>.rs` on `127.0.0.1:0` with extra `args`, and waits for the
    /// start-up line to learn its port.
    pub async fn start(name: &str, args: &[&str]) -> Server {
        Server::start_on(name, "127.0.0.1:0", args).await
    }

    // ANCHOR: start
    /// Starts `examples/<name>.rs` on `addr` and reads the address from its start-up line.
    pub async fn start_on(name: &str, addr: &str, args: &[&str]) -> Server {
        let mut process = Process::spawn(name, &[&[addr], args].concat());
        let startup_line = process.next_stdout().await;
        let addr = startup_line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| {
                panic!("no ws://HOST:PORT/ or http://HOST:PORT/ in {startup_line:?}")
            });
        Server {
            process,
            addr,
            startup_line,
        }
    }
    // ANCHOR_END: start

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Opens a WebSocket to `/ws`.
    pub async fn connect(&self) -> Client {
        let (client, response) = timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url()))
            .await
            .expect("the handshake completes in time")
            .expect("the handshake succeeds");
        assert_eq!(response.status(), 101);
        client
    }

    /// `GET path` over a fresh connection; returns the status line, headers and body as text.
    pub async fn get(&self, path: &str) -> String {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        raw_exchange(self.addr, request.as_bytes()).await
    }

    /// The server's `GET /stats`.
    pub async fn stats(&self) -> serde_json::Value {
        let response = self.get("/stats").await;
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .expect("a response has a body");
        serde_json::from_str(body).expect("/stats is JSON")
    }

    /// Polls `/stats` until `ready` holds, for at most `WAIT`; returns the last reading.
    pub async fn wait_for_stats(
        &self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for_stats_within(WAIT, what, ready).await
    }

    /// Polls `/stats` until `ready` holds, for at most `bound`; returns the last reading.
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

    /// Waits for a log line (stderr) that contains `needle`, and returns it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        self.process.wait_for_stderr(needle).await
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        self.process.signal(signal);
    }

    // ANCHOR: shutdown_contract
    /// Sends `signal` and checks the shutdown contract of every server example: each open
    /// client receives Close 1001, and the process exits with status 0 within 2 seconds.
    pub async fn shut_down_with(
        &mut self,
        signal: nix::sys::signal::Signal,
        clients: &mut [Client],
    ) {
        self.signal(signal);
        let frames = futures::future::join_all(clients.iter_mut().map(expect_close)).await;
        for frame in frames {
            assert_eq!(
                frame.map(|f| u16::from(f.code)),
                Some(1001),
                "a Close 1001 for everyone"
            );
        }
        let status = self.wait_exit(Duration::from_secs(2)).await;
        assert!(status.success(), "exit status {status}");
    }
    // ANCHOR_END: shutdown_contract

    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        self.process.wait_exit(bound).await
    }

    pub fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }
}

/// Runs an example to completion with `args` (no address added) and returns its exit
/// status, stdout and stderr.
pub async fn run_to_exit(name: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let output = timeout(
        WAIT,
        Command::new(example_binary(name))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example exits in time")
    .expect("the example runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Writes `request` on a new TCP connection and reads until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write request");
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.expect("read response");
        String::from_utf8_lossy(&response).into_owned()
    };
    timeout(WAIT, exchange)
        .await
        .expect("the response arrives in time")
}

// ANCHOR: next
/// The next message from the server, within `WAIT`. `None` when the stream has ended.
pub async fn next(client: &mut Client) -> Option<Message> {
    match timeout(WAIT, client.next()).await {
        Ok(Some(Ok(message))) => Some(message),
        Ok(Some(Err(e))) => panic!("the connection failed: {e}"),
        Ok(None) => None,
        Err(_) => panic!("no message from the server in time"),
    }
}
// ANCHOR_END: next

/// The next Text or Binary message, skipping the server's Pings (which tungstenite answers).
pub async fn next_data(client: &mut Client) -> Message {
    loop {
        match next(client).await {
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            Some(message) => return message,
            None => panic!("the stream ended while a message was expected"),
        }
    }
}

/// The next Text message, as a string.
pub async fn next_text(client: &mut Client) -> String {
    match next_data(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Reads until the server's Close frame and then the end of the stream; returns the frame.
pub async fn expect_close(client: &mut Client) -> Option<CloseFrame> {
    loop {
        match next(client).await {
            Some(Message::Close(frame)) => {
                // Keep reading: tungstenite sends our reply, then the stream ends.
                if let Some(message) = next(client).await {
                    panic!("a message after Close: {message:?}");
                }
                return frame;
            }
            Some(_) => continue,
            None => panic!("the stream ended without a Close frame"),
        }
    }
}

/// Starts the closing handshake with `code` and returns the server's Close reply.
pub async fn close(client: &mut Client, code: u16, reason: &str) -> Option<CloseFrame> {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.into(),
    };
    timeout(WAIT, client.send(Message::Close(Some(frame))))
        .await
        .expect("the Close is sent in time")
        .expect("the Close is sent");
    expect_close(client).await
}

/// The example request from RFC 6455 section 1.3, whose accept value the RFC gives.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A browser's opening handshake, reduced to what RFC 6455 requires.
pub fn upgrade_request(host: &str) -> String {
    upgrade_request_with(host, &[])
}

/// The opening handshake with extra header lines, such as `("Origin", "http://...")`.
pub fn upgrade_request_with(host: &str, headers: &[(&str, &str)]) -> String {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

// ANCHOR: raw_upgrade
/// Performs the opening handshake by hand on a plain TCP stream and returns the stream with
/// the server's response head. The stream then speaks raw frames: nothing answers pings for
/// it, which makes it the perfect silent peer.
pub async fn raw_upgrade(addr: SocketAddr) -> (TcpStream, String) {
    raw_upgrade_with(addr, &[]).await
}

/// [`raw_upgrade`] with extra header lines.
pub async fn raw_upgrade_with(addr: SocketAddr, headers: &[(&str, &str)]) -> (TcpStream, String) {
    let handshake = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = upgrade_request_with(&addr.to_string(), headers);
        tcp.write_all(request.as_bytes()).await.expect("write");
        // Read the response head byte by byte, so no frame after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tcp.read_u8().await.expect("the response head is complete");
            head.push(byte);
        }
        (tcp, String::from_utf8(head).expect("the head is text"))
    };
    timeout(WAIT, handshake)
        .await
        .expect("the handshake completes in time")
}
// ANCHOR_END: raw_upgrade

impl Server {
    /// A client with a 4 KiB receive buffer, so that it stalls the server's writes soon after
    /// it stops reading instead of soaking up megabytes in the kernel first.
    pub async fn connect_small_buffer(&self) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = timeout(WAIT, socket.connect(self.addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (client, _) = timeout(
            WAIT,
            tokio_tungstenite::client_async(self.ws_url(), MaybeTlsStream::Plain(tcp)),
        )
        .await
        .expect("the handshake completes in time")
        .expect("the handshake succeeds");
        client
    }
}

/// A message as one line of a transcript: `text "hello"`, `binary 00 01`, `close 1000 "bye"`.
pub fn describe(message: &Message) -> String {
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match message {
        Message::Text(text) => format!("text {:?}", text.as_str()),
        Message::Binary(bytes) => format!("binary {}", hex(bytes)),
        Message::Ping(bytes) => format!("ping {:?}", String::from_utf8_lossy(bytes)),
        Message::Pong(bytes) => format!("pong {:?}", String::from_utf8_lossy(bytes)),
        Message::Close(Some(frame)) => format!(
            "close {} {:?}",
            u16::from(frame.code),
            frame.reason.as_str()
        ),
        Message::Close(None) => "close (no code)".into(),
        Message::Frame(_) => "raw frame".into(),
    }
}
