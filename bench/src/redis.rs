//! A `redis-server` of the bench's own, for the scenarios that run lesson 10:
//! the Debian package's binary as a child process, on a free port of
//! 127.0.0.1, in a fresh temporary directory that holds its log and is
//! removed when it stops. Persistence is off (`--save '' --appendonly no`):
//! Redis writes no data to disk, so the disk weighs on nothing measured, and
//! every run starts from an empty Redis.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::process;

/// How long Redis has to answer after it starts.
const START_LIMIT: Duration = Duration::from_secs(10);

/// How many free ports to try: another program may take the one we chose
/// before Redis binds it.
const PORT_ATTEMPTS: usize = 5;

/// A running `redis-server`, killed when dropped, and its directory removed.
pub struct Redis {
    child: Child,
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts `redis-server` on a free port and waits until it answers `PING`
    /// as itself (its `INFO` has its process id).
    pub async fn start() -> io::Result<Redis> {
        let dir = fresh_dir()?;
        let mut failure = None;
        for _ in 0..PORT_ATTEMPTS {
            match Redis::try_start(&dir).await {
                Ok(redis) => return Ok(redis),
                Err(e) => failure = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(failure.unwrap_or_else(|| io::Error::other("no attempt")))
    }

    /// One attempt, on a port that was free a moment ago.
    async fn try_start(dir: &Path) -> io::Result<Redis> {
        let port = free_port()?;
        let log = dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot start redis-server ({e}); install it with \
                     `apt-get install redis-server`"
                ))
            })?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("redis-server exited at once"))?;
        // The directory is the caller's until Redis answers: a failed attempt
        // leaves it for the next.
        let mut redis = Redis {
            child,
            pid,
            port,
            dir: PathBuf::new(),
        };
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Ok(Some(status)) = redis.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let last = log.lines().last().unwrap_or_default().to_owned();
                return Err(io::Error::other(format!(
                    "redis-server exited at start-up ({status}): {last}"
                )));
            }
            if redis.answers().await {
                redis.dir = dir.to_path_buf();
                return Ok(redis);
            }
        }
        Err(io::Error::other(format!(
            "redis-server did not answer on port {port} in {} s",
            START_LIMIT.as_secs()
        )))
    }

    /// Whether the Redis on our port answers `PING`, and is ours.
    async fn answers(&self) -> bool {
        let probe = async {
            let pong = self.ask("PING").await?;
            let info = self.ask("INFO server").await?;
            io::Result::Ok(
                pong == "+PONG\r\n"
                    && info.contains(&format!("\nprocess_id:{}\r", self.pid)),
            )
        };
        let answer = tokio::time::timeout(Duration::from_secs(1), probe).await;
        matches!(answer, Ok(Ok(true)))
    }

    /// Sends one inline command (a line, as typed) on a new connection and
    /// returns the reply: a line (`+PONG`), or a bulk string's length line and
    /// its bytes (`$LEN`), as received.
    async fn ask(&self, command: &str) -> io::Result<String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.write_all(format!("{command}\r\n").as_bytes()).await?;
        let mut reply = BufReader::new(tcp);
        let mut line = String::new();
        reply.read_line(&mut line).await?;
        if let Some(length) = line.strip_prefix('$') {
            let length: usize = length.trim().parse().unwrap_or(0);
            let mut bulk = vec![0; length + 2];
            reply.read_exact(&mut bulk).await?;
            line.push_str(&String::from_utf8_lossy(&bulk));
        }
        Ok(line)
    }

    /// What `INFO commandstats` says of each command so far, by its name in
    /// capitals: calls, and the microseconds spent executing them (a script's
    /// time includes that of the commands it runs, which are counted too).
    /// Empty if Redis does not answer.
    pub async fn command_stats(&self) -> BTreeMap<String, CommandStats> {
        let info = self.ask("INFO commandstats").await.unwrap_or_default();
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

    /// The URL a server connects to, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// CPU time (user + system) it has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        process::cpu_seconds(self.pid)
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        process::rss_kib(self.pid)
    }

    /// SIGTERM, and up to 5 s to exit (then SIGKILL, on drop); the directory
    /// goes too. With persistence off, Redis saves nothing on its way out.
    pub async fn stop(mut self) {
        let pid = Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One command's line of `INFO commandstats`.
#[derive(Clone, Copy, Default)]
pub struct CommandStats {
    pub calls: u64,
    /// Microseconds spent executing the calls.
    pub usec: u64,
}

/// A new empty directory under the system's temporary directory, unique to
/// this process and this call.
fn fresh_dir() -> io::Result<PathBuf> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("ws-bench-redis-{}-{n}", std::process::id()));
    // Left over from an earlier run whose process had the same id.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// A port of 127.0.0.1 that was free a moment ago: bound with port 0, read,
/// and closed.
fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
