//! Building and starting the programs of a run: the servers under test, whose CPU
//! time and memory it reads from /proc, and the idle client.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;
use ws_bench::wire::Http;

/// A program the bench has started, killed when dropped.
pub struct Process {
    child: Child,
    pid: u32,
    /// What it prints after its first line, for `next_line`.
    stdout: Lines<BufReader<ChildStdout>>,
    /// Reads its log (stderr), when started with `Log::Kept`; returns the lines.
    log: Option<JoinHandle<Vec<String>>>,
}

/// What becomes of a program's log (stderr).
#[derive(Clone, Copy, PartialEq)]
pub enum Log {
    /// Thrown away, with `RUST_LOG=warn`.
    Discarded,
    /// Kept, with `RUST_LOG=info`, up to `MAX_LOG_LINES` lines: for scenarios
    /// that check what a server says it did.
    Kept,
}

/// The most log lines kept of one program.
const MAX_LOG_LINES: usize = 10_000;

impl Process {
    /// Starts `binary args...` and waits, 30 s at most, for the first line it
    /// prints: a server its address, a client that it is connected. Returns the
    /// process and the line.
    pub async fn start(
        binary: &Path,
        args: &[&str],
    ) -> io::Result<(Process, String)> {
        Process::start_with(binary, args, Log::Discarded).await
    }

    /// As `start`, with its log (stderr) discarded or kept.
    pub async fn start_with(
        binary: &Path,
        args: &[&str],
        log: Log,
    ) -> io::Result<(Process, String)> {
        let name = binary.display();
        let (level, stderr) = match log {
            Log::Discarded => ("warn", Stdio::null()),
            Log::Kept => ("info", Stdio::piped()),
        };
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {name}: {e}")))?;
        let log = child.stderr.take().map(keep_log);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut stdout = BufReader::new(stdout).lines();
        let line =
            tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
                .await
                .map_err(|_| {
                    io::Error::other(format!("{name} printed nothing in 30 s"))
                })??
                .ok_or_else(|| {
                    io::Error::other(format!(
                        "{name} exited before printing a line"
                    ))
                })?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other(format!("{name} exited at once")))?;
        Ok((
            Process {
                child,
                pid,
                stdout,
                log,
            },
            line,
        ))
    }

    /// The next line it prints, if one comes `within` that time; None once it has
    /// exited.
    pub async fn next_line(&mut self, within: Duration) -> Option<String> {
        match tokio::time::timeout(within, self.stdout.next_line()).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Sends it `signal` (SIGSTOP, SIGCONT, SIGTERM); a process already gone is
    /// no error.
    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// SIGTERM, and up to 5 s to exit (then SIGKILL, on drop). Returns the lines
    /// of its log (none unless started with `Log::Kept`).
    pub async fn stop(mut self) -> Vec<String> {
        self.signal(Signal::SIGTERM);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let Some(log) = self.log.take() else {
            return Vec::new();
        };
        // The log ends when the program exits; a program that did not is killed
        // on drop.
        drop(self);
        tokio::time::timeout(Duration::from_secs(5), log)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

/// Reads a program's log until it ends (the program exits); returns the first
/// `MAX_LOG_LINES` lines.
fn keep_log(stderr: ChildStderr) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut lines = Vec::new();
        let mut log = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = log.next_line().await {
            if lines.len() < MAX_LOG_LINES {
                lines.push(line);
            }
        }
        lines
    })
}

/// A server under test, on a port of its choosing.
pub struct Server {
    process: Process,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `binary 127.0.0.1:0 args...` and reads the address from the first
    /// line it prints (`... ws://HOST:PORT/...` or `... http://HOST:PORT/...`).
    pub async fn start(binary: &Path, args: &[&str]) -> io::Result<Server> {
        Server::start_with(binary, args, Log::Discarded).await
    }

    /// As `start`, with its log discarded or kept (`Server::stop` returns it).
    pub async fn start_with(
        binary: &Path,
        args: &[&str],
        log: Log,
    ) -> io::Result<Server> {
        let args: Vec<&str> =
            ["127.0.0.1:0"].iter().chain(args).copied().collect();
        let (process, line) = Process::start_with(binary, &args, log).await?;
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{}: no address in {line:?}",
                    binary.display()
                ))
            })?;
        Ok(Server { process, addr })
    }

    /// CPU time (user + system) the process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.process.pid)
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.process.pid)
    }

    /// Stops the server as `Process::stop` does; returns the lines of its log.
    pub async fn stop(self) -> Vec<String> {
        self.process.stop().await
    }

    /// Its `GET /stats`, parsed, within 5 s: what it says it did, rather than
    /// what its log words say.
    pub async fn stats(&self) -> io::Result<serde_json::Value> {
        let asking = async {
            let body = Http::open(self.addr).await?.get("/stats").await?;
            serde_json::from_slice(&body).map_err(io::Error::other)
        };
        tokio::time::timeout(Duration::from_secs(5), asking)
            .await
            .map_err(|_| io::Error::other("/stats did not answer in 5 s"))?
    }

    /// The clients it could not keep up with, by its `/stats`.
    pub async fn slow_clients(&self) -> io::Result<SlowClients> {
        let stats = self.stats().await?;
        let missed_pongs = counter(&stats, "/heartbeat/missed_pongs")?;
        let blocked_sends = counter(&stats, "/heartbeat/blocked_sends")?;
        Ok(SlowClients {
            resyncs: counter(&stats, "/resyncs")?,
            drops: missed_pongs + blocked_sends,
        })
    }
}

/// What a server's `/stats` counts of the clients that fell behind or were
/// lost, since it started.
#[derive(Clone, Copy, Default)]
pub struct SlowClients {
    /// Clients resynchronised with a fresh snapshot (`resyncs`, lessons 05
    /// and 09).
    pub resyncs: u64,
    /// Clients the heartbeat dropped, for a missed pong or a send it gave up
    /// on (`heartbeat`: `missed_pongs` and `blocked_sends`, lesson 03).
    pub drops: u64,
}

impl std::ops::Add for SlowClients {
    type Output = SlowClients;

    fn add(self, other: SlowClients) -> SlowClients {
        SlowClients {
            resyncs: self.resyncs + other.resyncs,
            drops: self.drops + other.drops,
        }
    }
}

/// The count at `pointer` (such as `/heartbeat/missed_pongs`) in a server's
/// `/stats`; an error if it has none, rather than a silent 0.
pub fn counter(stats: &serde_json::Value, pointer: &str) -> io::Result<u64> {
    stats
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| {
            io::Error::other(format!("no {pointer} in /stats: {stats}"))
        })
}

/// CPU time (user + system) that process `pid` has used, in seconds, from
/// /proc/PID/stat; 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain
    // spaces.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks / per_second
}

/// Resident memory of process `pid`, in KiB, from /proc/PID/status; 0 once it
/// is gone.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Many connections need many file descriptors, in this process and in the
/// servers it starts.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// How many files this process, and each server it starts, may have open (the
/// soft limit, raised by `raise_open_file_limit`); 1024 if it cannot be read.
pub fn open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// The release binaries: the examples of ws-lessons, the programs of the stacks
/// crate (ws-stacks: lessons on other stacks), and the programs of this crate
/// (the peers and the idle client), built by cargo at the start of the run.
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Builds them with the cargo that runs this program, into its target
    /// directory.
    pub fn build() -> io::Result<Binaries> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for args in [
            &[
                "build",
                "--release",
                "--quiet",
                "-p",
                "ws-lessons",
                "--examples",
            ][..],
            &["build", "--release", "--quiet", "-p", "ws-stacks", "--bins"][..],
            &["build", "--release", "--quiet", "-p", "ws-bench", "--bins"][..],
        ] {
            let status =
                std::process::Command::new(&cargo).args(args).status()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "cargo {} failed",
                    args.join(" ")
                )));
            }
        }
        // This program is in target/release, with the others.
        let exe = std::env::current_exe()?;
        let dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(Binaries { dir })
    }

    /// An example of ws-lessons (examples/NAME).
    pub fn example(&self, name: &str) -> PathBuf {
        self.dir.join("examples").join(name)
    }

    /// A program of the stacks crate (ws-stacks, in stacks/): the `[[bin]]` of
    /// that NAME in stacks/Cargo.toml, such as `tungstenite_01_echo`.
    pub fn stack(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A program of this crate (src/bin/NAME.rs).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
