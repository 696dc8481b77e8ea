//! A real nginx for the tests: the Debian package's `nginx` as a child process,
//! in front of servers the test started, with the repository's own
//! `deploy/nginx.conf` filled in: a free port of 127.0.0.1, the servers'
//! addresses, the timeouts the test chooses, and a fresh temporary directory
//! for everything nginx writes; and two worker processes on any machine. It runs as an ordinary process (`daemon off;`)
//! and touches neither /etc nor /var.
//!
//! Clients may connect from any address of 127.0.0.0/8 (Linux routes all of it
//! to the loopback interface), so that a test can tell the client's address
//! from nginx's own, 127.0.0.1, which is where nginx connects to the servers
//! from.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;

use crate::WAIT;
use crate::client::Client;
use crate::process::{free_port, fresh_dir};

/// The template the tests fill in: the file the book explains, as it is.
const TEMPLATE: &str = include_str!("../../deploy/nginx.conf");

/// How often a pending start-up is checked on.
const POLL: Duration = Duration::from_millis(10);

/// A running nginx that proxies to the servers it was started with, reached at
/// [`Nginx::addr`]. Dropping it stops nginx and its workers and removes its
/// directory.
pub struct Nginx {
    child: Option<Child>,
    /// Where clients connect: 127.0.0.1 and a free port.
    pub addr: SocketAddr,
    /// `nginx.conf` as filled in, the logs, the pid file and the temporary
    /// paths.
    dir: PathBuf,
}

/// How one attempt to start nginx ended.
enum Startup {
    Ready,
    PortTaken,
}

impl Nginx {
    // ANCHOR: start
    /// Starts nginx in front of `servers`, with `proxy_read_timeout` and
    /// `proxy_send_timeout` set to `idle`, on a free port of 127.0.0.1, and
    /// waits until it accepts connections. Panics, saying how to install it, if
    /// nginx is not installed: a test that needs nginx fails rather than skips.
    pub async fn start(servers: &[SocketAddr], idle: Duration) -> Nginx {
        let binary = nginx_binary();
        let mut nginx = Nginx {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: fresh_dir("nginx"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            // Something else may take the port between our probe and nginx's
            // bind: nginx then exits, and we try another port.
            nginx.addr.set_port(free_port());
            nginx.write_config(servers, idle);
            if let Startup::Ready = nginx.try_start(&binary, deadline).await {
                return nginx;
            }
            assert!(
                Instant::now() < deadline,
                "no free port for nginx within {WAIT:?}; log:\n{}",
                nginx.error_log()
            );
        }
    }
    // ANCHOR_END: start

    /// The URL of `path` through nginx, `ws://127.0.0.1:PORT/PATH`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Everything nginx has logged so far (`error_log`, level info).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The configuration nginx runs with: the template, filled in.
    pub fn config(&self) -> String {
        fs::read_to_string(self.dir.join("nginx.conf")).unwrap_or_default()
    }

    /// Waits (at most `WAIT`) for a line of the error log that contains
    /// `needle`, and returns it.
    pub async fn wait_for_error_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            let log = self.error_log();
            if let Some(line) = log.lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in nginx's log within {WAIT:?}:\n{log}"
            );
        }
    }

    /// Fills the template in, for the current port.
    fn write_config(&self, servers: &[SocketAddr], idle: Duration) {
        let servers: String = servers
            .iter()
            .map(|server| format!("server {server}; "))
            .collect();
        let idle = format!("{}ms", idle.as_millis());
        let dir = self.dir.display().to_string();
        let listen = self.addr.to_string();
        let fill = |line: &str| {
            let filled = line
                .replace("@DIR@", &dir)
                .replace("@LISTEN@", &listen)
                .replace("@SERVERS@", &servers)
                .replace("@READ_TIMEOUT@", &idle)
                .replace("@SEND_TIMEOUT@", &idle);
            assert!(!filled.contains('@'), "a placeholder is left: {filled}");
            filled
        };
        // The comments stay as they are: they explain the placeholders.
        let config: String = TEMPLATE
            .lines()
            .map(|line| {
                if line.trim_start().starts_with('#') {
                    line.to_owned()
                } else {
                    fill(line)
                }
            })
            .map(|line| line + "\n")
            .collect();
        // Two workers whatever the machine's cores (`auto` is one per core):
        // with a single worker the upstream's shared `zone` changes nothing,
        // and the test that needs it could not fail.
        let workers = "worker_processes auto;";
        assert!(config.contains(workers), "the template sets {workers}");
        let config = config.replace(workers, "worker_processes 2;");
        fs::write(self.dir.join("nginx.conf"), config).expect("nginx.conf");
    }

    // ANCHOR: ready
    /// Spawns nginx and waits, until `deadline`, for it to accept connections
    /// or to exit because its port is taken. Any other exit, or no readiness in
    /// time, panics with the log.
    async fn try_start(&mut self, binary: &Path, deadline: Instant) -> Startup {
        let log = self.dir.join("error.log");
        // What an earlier attempt logged must not be read as this one's.
        let _ = fs::remove_file(&log);
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-p")
            .arg(&self.dir)
            // The log for what happens before the configuration is read, which
            // would otherwise go to /var/log/nginx.
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that its workers can be stopped with it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            if let Some(status) = child.try_wait().expect("nginx's status") {
                return self.exited_at_start(status);
            }
            // The master writes this once it holds the port, and another
            // process may hold the port while nginx retries its bind: so both
            // the line and a connection.
            let started = self.error_log().contains("start worker process");
            if started && self.accepts().await {
                self.child = Some(child);
                return Startup::Ready;
            }
            if Instant::now() >= deadline {
                stop(child);
                panic!(
                    "nginx did not accept connections on {} within {WAIT:?}; \
                     log:\n{}",
                    self.addr,
                    self.error_log()
                );
            }
        }
    }
    // ANCHOR_END: ready

    /// Whether a TCP connection to nginx's port succeeds.
    async fn accepts(&self) -> bool {
        let connect = TcpStream::connect(self.addr);
        matches!(timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)))
    }

    /// What an exit during start-up means: a port taken (try again), or a
    /// failure the log explains (panic).
    fn exited_at_start(&self, status: ExitStatus) -> Startup {
        let log = self.error_log();
        if log.contains("Address already in use") {
            Startup::PortTaken
        } else {
            panic!(
                "nginx exited at start-up with {status}; log:\n{log}\n\
                 configuration:\n{}",
                self.config()
            )
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
        // A failure here must not become a second panic during a failing test.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Stops nginx: SIGTERM, its fast shutdown, which closes every connection and
/// reaps the workers; SIGKILL to the whole process group if it has not exited
/// within `WAIT`. This waits by polling because it also runs in `drop`, which
/// cannot await.
fn stop(mut child: Child) {
    let Some(pid) = child.id() else {
        return; // already reaped
    };
    let pid = Pid::from_raw(pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Ok(Some(_)) | Err(_) => return,
        }
    }
    // nginx was started as the leader of its own group: its pid is the group's.
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = child.start_kill();
}

/// The `nginx` binary: on the PATH, or where Debian puts it (`/usr/sbin`, not
/// on an ordinary user's PATH). Panics with the way to install it otherwise.
fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|binary| binary.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed, and these tests run a real nginx. \
                 Install it with `apt-get install nginx` (Debian, Ubuntu); \
                 .ci/run does so."
            )
        })
}

// ANCHOR: connect_from
/// Opens a WebSocket to `url` (on `to`) from the address `source` of
/// 127.0.0.0/8, with extra request headers. `Err` is the handshake's failure,
/// for instance an HTTP refusal, `tungstenite::Error::Http`, with its status.
pub async fn connect_from(
    source: IpAddr,
    to: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .unwrap_or_else(|e| panic!("cannot bind the client to {source}: {e}"));
    let tcp = timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut request = url.into_client_request().expect("a request");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a name");
        let value = value.parse().expect("a header value");
        request.headers_mut().append(name, value);
    }
    let handshake =
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp));
    let (client, _response) = timeout(WAIT, handshake)
        .await
        .expect("the handshake completes in time")?;
    Ok(client)
}
// ANCHOR_END: connect_from
