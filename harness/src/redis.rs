//! A real Redis for the tests and the benchmarks: `redis-server` (the Debian
//! package) as a child process, on a free port of 127.0.0.1, with its
//! configuration, its log and its append-only file in a fresh temporary
//! directory of its own.
//!
//! For the tests, every write is on disk before Redis acknowledges it
//! (`appendfsync always`), so a test may stop Redis, or kill it, and start it
//! again on the same port with the same data: what a server under test sees
//! when its Redis restarts. The benchmarks keep nothing on disk, so that the
//! disk weighs on nothing they measure.
//!
//! Replies are read over a plain TCP stream in RESP, Redis's own protocol, so
//! that the tests do not depend on the client crate that the examples use.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

use crate::WAIT;
use crate::process::{cpu_seconds, free_port, fresh_dir, rss_kib};

/// How often a pending start-up is checked on.
const POLL: Duration = Duration::from_millis(10);

/// The bound on one readiness probe during start-up; a Redis on loopback
/// answers in well under a millisecond.
const PROBE: Duration = Duration::from_secs(1);

/// A running `redis-server`, reached at [`Redis::url`]. Dropping it kills the
/// process, waits for it to be gone, and removes its directory.
pub struct Redis {
    /// The process, while it runs: `None` after [`Redis::stop`] or
    /// [`Redis::kill`].
    child: Option<Child>,
    /// The port on 127.0.0.1, kept across restarts.
    port: u16,
    /// The temporary directory: `redis.conf`, `redis.log` and the append-only
    /// files (`appendonlydir/`).
    dir: PathBuf,
    /// Whether writes are kept on disk.
    persistence: Persistence,
}

/// What Redis keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Every write, before Redis acknowledges it (`appendfsync always`): the
    /// data survive a restart, even after SIGKILL (the tests).
    EveryWrite,
    /// Nothing (`appendonly no`, `save ""`): every run starts from an empty
    /// Redis, and the disk weighs on nothing measured (the benchmarks).
    Nothing,
}

/// One command's line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandStats {
    /// How many times it was called.
    pub calls: u64,
    /// Microseconds spent executing the calls.
    pub usec: u64,
}

/// How one attempt to start `redis-server` ended.
enum Startup {
    /// It answers on its port.
    Ready,
    /// It exited because something else holds its port.
    PortTaken,
}

impl Redis {
    // ANCHOR: start
    /// Starts `redis-server` on a free port of 127.0.0.1 and waits until it
    /// answers `PING`. Panics, saying how to install it, if `redis-server` is
    /// not on the PATH: a test that needs Redis fails rather than skips.
    pub async fn start() -> Redis {
        Redis::start_with(Persistence::EveryWrite).await
    }

    /// [`Redis::start`], keeping on disk what `persistence` says.
    pub async fn start_with(persistence: Persistence) -> Redis {
        require_redis_server();
        let mut redis = Redis {
            child: None,
            port: 0,
            dir: fresh_dir("redis"),
            persistence,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            // Another process may take the port between our probe and Redis's
            // own bind: Redis then exits, and we try another port.
            redis.port = free_port();
            redis.write_config();
            if let Startup::Ready = redis.try_start(deadline).await {
                return redis;
            }
            assert!(
                Instant::now() < deadline,
                "no free port for redis-server within {WAIT:?}; log:\n{}",
                redis.log()
            );
        }
    }
    // ANCHOR_END: start

    /// The URL that a server under test connects to, `redis://127.0.0.1:PORT`.
    /// It stays the same across [`Redis::stop`] and [`Redis::start_again`].
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory that holds the configuration, the log and the
    /// data; it is removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id of the running `redis-server`; panics if it is stopped.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server is running")
    }

    /// The CPU time (user and system) `redis-server` has used, in seconds;
    /// panics if it is stopped.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid()).expect("redis-server is running: /proc/PID/stat")
    }

    /// The resident memory of `redis-server`, in KiB; panics if it is stopped.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("redis-server is running: /proc/PID/status")
    }

    /// What `INFO commandstats` says of each command so far, by its name in
    /// capitals: calls, and the microseconds spent executing them (a script's
    /// time includes that of the commands it runs, which are counted too).
    pub async fn command_stats(&self) -> BTreeMap<String, CommandStats> {
        let info = self.command(&["INFO", "commandstats"]).await;
        info.lines()
            .filter_map(|line| {
                let (name, fields) =
                    line.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |key: &str| -> Option<u64> {
                    fields
                        .split(',')
                        .find_map(|pair| {
                            pair.strip_prefix(key)?.strip_prefix('=')
                        })?
                        .parse()
                        .ok()
                };
                let stats = CommandStats {
                    calls: field("calls")?,
                    usec: field("usec")?,
                };
                Some((name.to_ascii_uppercase(), stats))
            })
            .collect()
    }

    /// Everything `redis-server` has logged so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    // ANCHOR: stop
    /// Stops Redis as an operator would, with SIGTERM, and waits (at most
    /// `WAIT`) for it to exit. Redis syncs its append-only file and exits with
    /// status 0; its port is closed until [`Redis::start_again`].
    pub async fn stop(&mut self) {
        let child = self.child.as_mut().expect("redis-server is running");
        let pid = child.id().expect("redis-server has not been reaped") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM sent to redis-server");
        let status = match timeout(WAIT, child.wait()).await {
            Ok(status) => status.expect("the exit status is readable"),
            Err(_) => panic!(
                "redis-server did not exit within {WAIT:?} of SIGTERM; log:\n{}",
                self.log()
            ),
        };
        self.child = None;
        assert!(
            status.success(),
            "redis-server exited with {status} on SIGTERM; log:\n{}",
            self.log()
        );
    }
    // ANCHOR_END: stop

    /// Kills Redis with SIGKILL, as a crash would, and waits for it to be gone.
    /// Every write it acknowledged is already on disk (`appendfsync always`).
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }

    // ANCHOR: start_again
    /// Starts Redis again after [`Redis::stop`] or [`Redis::kill`], on the same
    /// port and with the same directory, so with the same data, and waits (at
    /// most `WAIT`) until it answers. If the port is briefly held by something
    /// else, it tries again on the same port: the server under test only knows
    /// this one.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        let deadline = Instant::now() + WAIT;
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            if let Startup::Ready = self.try_start(deadline).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken for {WAIT:?}; log:\n{}",
                self.port,
                self.log()
            );
        }
    }
    // ANCHOR_END: start_again

    // ANCHOR: command
    /// Sends one command, such as `["XLEN", "readings"]`, on a fresh
    /// connection, and returns Redis's reply exactly as it arrived, in RESP:
    /// `+OK\r\n`, `:3\r\n`, `$5\r\nhello\r\n`, `$-1\r\n` (nil), `-ERR ...\r\n`,
    /// or an array, `*2\r\n...`, with its elements.
    pub async fn command(&self, args: &[&str]) -> String {
        match timeout(WAIT, self.exchange(args)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => panic!("redis {args:?}: {error}"),
            Err(_) => panic!("redis {args:?}: no reply within {WAIT:?}"),
        }
    }
    // ANCHOR_END: command

    /// [`Redis::command`] without the bound, and with errors returned.
    async fn exchange(&self, args: &[&str]) -> std::io::Result<String> {
        // A command is an array of bulk strings: `*N`, then `$LEN` and the bytes
        // of each argument.
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut reply = String::new();
        read_reply(&mut BufReader::new(stream), &mut reply).await?;
        Ok(reply)
    }

    /// Writes `redis.conf` for the current port.
    fn write_config(&self) {
        let persistence = match self.persistence {
            Persistence::EveryWrite => "appendonly yes\nappendfsync always\n",
            Persistence::Nothing => "appendonly no\n",
        };
        let config = format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             daemonize no\n\
             dir \"{dir}\"\n\
             logfile \"\"\n\
             save \"\"\n\
             {persistence}",
            port = self.port,
            dir = self.dir.display(),
        );
        fs::write(self.dir.join("redis.conf"), config).expect("redis.conf");
    }

    /// Spawns `redis-server` on the current configuration and waits, until
    /// `deadline`, for it to answer or to exit because its port is taken. Any
    /// other exit, or no answer in time, panics with the log.
    async fn try_start(&mut self, deadline: Instant) -> Startup {
        // stdout and stderr both go to redis.log: the log (`logfile ""` is
        // stdout) and any fatal configuration error.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .expect("redis.log");
        let mut child = Command::new("redis-server")
            .arg(self.dir.join("redis.conf"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("redis.log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let pid = child.id().expect("redis-server is running");
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            if let Some(status) = child.try_wait().expect("redis-server status") {
                return self.exited_at_start(status);
            }
            if self.answers_as(pid).await {
                self.child = Some(child);
                return Startup::Ready;
            }
            if Instant::now() >= deadline {
                kill_and_reap(child);
                panic!(
                    "redis-server did not answer PING on port {} within \
                     {WAIT:?}; log:\n{}",
                    self.port,
                    self.log()
                );
            }
        }
    }

    /// What an exit during start-up means: a port taken (try again), or a
    /// failure the log explains (panic).
    fn exited_at_start(&self, status: ExitStatus) -> Startup {
        let log = self.log();
        let last_lines: Vec<&str> = log.lines().rev().take(3).collect();
        if last_lines
            .iter()
            .any(|line| line.contains("Address already in use"))
        {
            Startup::PortTaken
        } else {
            panic!("redis-server exited at start-up with {status}; log:\n{log}")
        }
    }

    // ANCHOR: ready
    /// Whether the Redis on our port is ready: it answers `PING` with `+PONG`,
    /// it is our process `pid` (not another test's Redis that got the same
    /// port), and it has finished loading its data.
    async fn answers_as(&self, pid: u32) -> bool {
        let probe = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            // An inline command: one line, as a person would type it.
            stream.write_all(b"PING\r\n").await?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await?;
            if line != "+PONG\r\n" {
                return Ok(false);
            }
            let info = self.exchange(&["INFO"]).await?;
            std::io::Result::Ok(
                info.contains(&format!("\r\nprocess_id:{pid}\r\n"))
                    && info.contains("\r\nloading:0\r\n"),
            )
        };
        // Something else on the port may accept and never answer: give up on
        // this probe soon, and look again at whether Redis has exited.
        matches!(timeout(PROBE, probe).await, Ok(Ok(true)))
    }
    // ANCHOR_END: ready
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        // A failure here must not become a second panic during a failing test.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGKILL and waits for the process to be reaped, so that it is gone,
/// and its files closed, when this returns. This waits by polling because it
/// also runs in `drop`, which cannot await; SIGKILL ends a process at once, so
/// the loop is short, and it is bounded by `WAIT` all the same.
fn kill_and_reap(mut child: Child) {
    let _ = child.start_kill();
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Ok(Some(_)) | Err(_) => return,
        }
    }
}

/// Panics with the way to install `redis-server` if it is not on the PATH.
fn require_redis_server() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .any(|dir| dir.join("redis-server").is_file());
    assert!(
        found,
        "redis-server is not on the PATH, and these tests run a real Redis. \
         Install it with `apt-get install redis-server` (Debian, Ubuntu); \
         .ci/run does so."
    );
}

/// Reads one complete RESP reply and appends it, as it arrived (as text), to
/// `reply`:
/// a line for `+`, `-` and `:`, a length line and its bytes for `$`, a count
/// line and its elements for `*`.
async fn read_reply(
    stream: &mut (impl AsyncBufRead + Unpin),
    reply: &mut String,
) -> std::io::Result<()> {
    let mut pending = 1;
    while pending > 0 {
        pending -= 1;
        let start = reply.len();
        if stream.read_line(reply).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = reply[start..].trim_end().to_owned();
        let (kind, number) = line.split_at_checked(1).unwrap_or_default();
        let number: i64 = number.parse().unwrap_or(-1);
        match kind {
            // A bulk string: its bytes, then CRLF. `$-1` is nil, with neither.
            "$" if number >= 0 => {
                let mut data = vec![0; number as usize + 2];
                stream.read_exact(&mut data).await?;
                reply.push_str(&String::from_utf8_lossy(&data));
            }
            // An array: that many replies more. `*-1` is nil, `*0` empty.
            "*" if number > 0 => pending += number,
            _ => {}
        }
    }
    Ok(())
}
