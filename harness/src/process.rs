//! An example's binary as a child process: built by cargo, spawned, its output
//! read line by line, signalled, and waited for; and what a process uses of
//! CPU and memory, from /proc.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::WAIT;

/// A server program the tests run: an example of this crate, or one of the
/// stacks crate's programs (`stacks/`), which keep an example's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `examples/<name>`: `cargo build --example <name>`.
    Example(&'static str),
    /// The stacks crate's binary `<name>`: `cargo build -p ws-stacks --bin
    /// <name>`.
    Stack(&'static str),
}

impl Program {
    /// The name of its binary, and of its logs' target.
    pub fn name(self) -> &'static str {
        match self {
            Program::Example(name) | Program::Stack(name) => name,
        }
    }

    /// The path of its binary, built by cargo first: [`example_binary`].
    pub fn binary(self) -> PathBuf {
        match self {
            Program::Example(name) => example_binary(name),
            Program::Stack(name) => {
                built(&["-p", "ws-stacks", "--bin", name], name.as_ref())
            }
        }
    }
}

/// Most tests run examples, by name.
impl From<&'static str> for Program {
    fn from(name: &'static str) -> Self {
        Program::Example(name)
    }
}

// ANCHOR: example_binary
/// The path of an example's binary, built by cargo so that it is never stale:
/// `cargo test --test NAME` alone does not rebuild examples. Each test binary
/// asks once per example.
pub fn example_binary(name: &str) -> PathBuf {
    built(&["--example", name], &Path::new("examples").join(name))
}

/// Builds what `target` names (`--example NAME`, or `-p PACKAGE --bin NAME`)
/// once per test binary, and returns the path of the binary, `path` under
/// target/<profile>.
fn built(target: &[&str], path: &Path) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // Test binaries live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let key = target.join(" ");
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !built.contains(&key) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet"]).args(target);
        // Cargo describes the package under test to this process in variables
        // that a build script may watch (ring's watches CARGO_MANIFEST_DIR and
        // CARGO_PKG_NAME): passed on, they would make this build and the next
        // `cargo test` rebuild ring and all above it, each for the other.
        for (variable, _) in std::env::vars_os() {
            let text = variable.to_string_lossy();
            if text.starts_with("CARGO_PKG_")
                || text.starts_with("CARGO_MANIFEST_")
            {
                build.env_remove(&variable);
            }
        }
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // An example with the same features as this test, so that cargo does
        // not rebuild for nothing (the stacks crate has none). The root crate's
        // features turn on this crate's of the same name.
        let features = [
            ("browser", cfg!(feature = "browser")),
            ("with-redis", cfg!(feature = "with-redis")),
        ];
        let example = target[0] == "--example";
        for (feature, _) in features.iter().filter(|(_, on)| *on && example) {
            build.args(["--features", feature]);
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build {key} failed");
        built.push(key);
    }
    profile_dir.join(path)
}
// ANCHOR_END: example_binary

/// A running program, with its stdout and stderr collected line by line so
/// that a caller can wait for a line. Dropping it kills the process.
pub struct Process {
    child: Child,
    /// The path it was started from, for error messages.
    binary: PathBuf,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// The task that reads stderr, and holds our end of its pipe.
    stderr_reader: tokio::task::JoinHandle<()>,
}

/// What becomes of a program's log (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log<'a> {
    /// Thrown away, with `RUST_LOG=warn`: a server under load spends next to
    /// nothing on it (the benchmarks).
    Discarded,
    /// Read line by line, with this `RUST_LOG` filter.
    Kept(&'a str),
}

/// Forwards each line of `output` to a channel.
fn lines_of(
    output: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (mpsc::UnboundedReceiver<String>, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (receiver, reader)
}

/// Every line from here to the end of the stream, within `WAIT`.
async fn to_end(lines: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut all = Vec::new();
    let read = async {
        while let Some(line) = lines.recv().await {
            all.push(line);
        }
    };
    timeout(WAIT, read).await.expect("the stream ends in time");
    all
}

impl Process {
    /// Starts `program` (an example's name, say) with `args`.
    pub fn spawn(program: impl Into<Program>, args: &[&str]) -> Process {
        let program = program.into();
        let name = program.name();
        // Debug logs from the example itself and the support library; info
        // from the rest.
        let filter = format!("info,ws_lessons=debug,{name}=debug");
        Process::spawn_logging(program, args, &filter)
    }

    /// [`Process::spawn`], with the logs that `filter` (`RUST_LOG`) selects.
    pub fn spawn_logging(
        program: impl Into<Program>,
        args: &[&str],
        filter: &str,
    ) -> Process {
        Process::start(&program.into().binary(), args, Log::Kept(filter))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `binary` with `args`, already built (the benchmarks build
    /// theirs in release mode first), its log as `log` says.
    pub fn start(binary: &Path, args: &[&str], log: Log) -> io::Result<Process> {
        let (filter, stderr) = match log {
            Log::Discarded => ("warn", Stdio::null()),
            Log::Kept(filter) => (filter, Stdio::piped()),
        };
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot start {}: {e}",
                    binary.display()
                ))
            })?;
        let (stdout, _) = lines_of(child.stdout.take().expect("stdout is piped"));
        // Without a pipe, a channel that is closed at once: no lines.
        let (stderr, stderr_reader) = match child.stderr.take() {
            Some(stderr) => lines_of(stderr),
            None => lines_of(tokio::io::empty()),
        };
        Ok(Process {
            child,
            binary: binary.to_owned(),
            stdout,
            stderr,
            stderr_reader,
        })
    }

    /// Stops reading stderr and closes our end of its pipe, as a log
    /// collector that died would: the process's next write there fails
    /// (EPIPE).
    pub async fn close_stderr(&mut self) {
        self.stderr_reader.abort();
        // Once the task has ended, its pipe end is closed.
        let _ = (&mut self.stderr_reader).await;
    }

    /// Every line written to stderr from here to the end of the stream (the
    /// process has exited and closed it), within `WAIT`. Lines that a logging
    /// thread writes and lines printed directly may come in either order.
    pub async fn stderr_to_end(&mut self) -> Vec<String> {
        to_end(&mut self.stderr).await
    }

    // ANCHOR: events
    /// The next line on stdout, read as JSON: an event of a client run with
    /// `--events`.
    pub async fn next_event(&mut self) -> serde_json::Value {
        let line = self.next_stdout().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Waits for an event whose `event` is `kind`, and returns it.
    pub async fn wait_for_event(&mut self, kind: &str) -> serde_json::Value {
        self.events_until(&mut Vec::new(), |e| e["event"] == kind)
            .await
    }

    /// Reads events, each kept in `seen`, up to the first that is `wanted`,
    /// within `WAIT`; returns it.
    pub async fn events_until(
        &mut self,
        seen: &mut Vec<serde_json::Value>,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let found = timeout(WAIT, async {
            loop {
                let event = self.next_event().await;
                seen.push(event.clone());
                if wanted(&event) {
                    return event;
                }
            }
        });
        let found = found.await;
        found.unwrap_or_else(|_| {
            let (count, last) = (seen.len(), seen.last());
            panic!("no such event in time among {count}; the last: {last:?}")
        })
    }

    // ANCHOR_END: events

    /// Every event from here to the end of stdout (the process has exited),
    /// within `WAIT`.
    pub async fn events_to_end(&mut self) -> Vec<serde_json::Value> {
        let lines = to_end(&mut self.stdout).await;
        let event = |line: &String| serde_json::from_str(line).expect(line);
        lines.iter().map(event).collect()
    }

    /// Waits for a client run with `--events` to exit by itself, within
    /// `WAIT`, and reads the rest of its output.
    pub async fn exited(&mut self) -> Exited {
        let code = self.wait_exit(WAIT).await.code();
        let events = self.events_to_end().await;
        let stderr = self.stderr_to_end().await;
        let error = stderr.into_iter().find(|line| line.starts_with("error: "));
        let error = error.unwrap_or_default();
        Exited {
            code,
            events,
            error,
        }
    }

    /// Every line written to stderr so far, without waiting for more.
    pub fn stderr_so_far(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.try_recv() {
            lines.push(line);
        }
        lines
    }

    /// The first line on stdout, which a program prints once it is ready (a
    /// server its address, a client that it is connected), within `bound`;
    /// an error if it exits first or prints nothing in time.
    pub async fn startup_line(&mut self, bound: Duration) -> io::Result<String> {
        let name = self.binary.display();
        match timeout(bound, self.stdout.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err(io::Error::other(format!(
                "{name} exited before printing a line"
            ))),
            Err(_) => Err(io::Error::other(format!(
                "{name} printed nothing within {bound:?}"
            ))),
        }
    }

    /// The next line on stdout, if one comes within `bound`; `None` once the
    /// process has exited.
    pub async fn next_stdout_within(
        &mut self,
        bound: Duration,
    ) -> Option<String> {
        timeout(bound, self.stdout.recv()).await.ok().flatten()
    }

    /// The process's id, while it has not been waited for.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next line on stdout.
    pub async fn next_stdout(&mut self) -> String {
        match timeout(WAIT, self.stdout.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("stdout ended"),
            Err(_) => panic!("no line on stdout in time"),
        }
    }

    /// Sends a signal to the process, as Ctrl-C (SIGINT), `kill` (SIGTERM) or
    /// a job control (SIGSTOP, SIGCONT) would. A process already gone is no
    /// error: a test then fails on what it waits for next.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// Stops the process as an operator would: SIGTERM, and up to 5 s to exit
    /// (then SIGKILL). Returns the lines of its log (none if it was
    /// discarded), read to the end within 5 s more.
    pub async fn stop(mut self) -> Vec<String> {
        const BOUND: Duration = Duration::from_secs(5);
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if timeout(BOUND, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
        }
        let mut lines = Vec::new();
        let _ = timeout(BOUND, async {
            while let Some(line) = self.stderr.recv().await {
                lines.push(line);
            }
        })
        .await;
        lines
    }

    /// Waits at most `bound` for the process to exit.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("the process did not exit within {bound:?}")
            })
            .expect("the exit status is readable")
    }

    /// The process's resident memory, in KiB, from /proc. Panics once it has
    /// exited: a reading of a process that is gone would be no reading.
    pub fn rss_kib(&self) -> u64 {
        self.pid()
            .and_then(rss_kib)
            .expect("the process is running: VmRSS in /proc/PID/status")
    }

    /// The CPU time (user and system) the process has used, in seconds, from
    /// /proc. Panics once it has exited.
    pub fn cpu_seconds(&self) -> f64 {
        self.pid()
            .and_then(cpu_seconds)
            .expect("the process is running: /proc/PID/stat")
    }
}

/// The resident memory of process `pid`, in KiB, from /proc/PID/status; `None`
/// once it has exited.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The CPU time (user and system) that process `pid` has used, in seconds,
/// from /proc/PID/stat; `None` once it is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may
    // contain spaces: utime and stime are the 12th and 13th of them.
    let (_, after) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(ticks / per_second)
}

/// How a client run with `--events` ended.
#[derive(Debug)]
pub struct Exited {
    /// Its exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    /// The events it printed that the test had not read.
    pub events: Vec<serde_json::Value>,
    /// Its final `error: ...` line, or nothing.
    pub error: String,
}

/// True for an event of the rooms client (`10_rooms_client --events`) that
/// shows a change of a room: a `reading` or a `threshold`.
pub fn is_room_change(event: &serde_json::Value) -> bool {
    let kind = &event["message"]["type"];
    event["event"] == "message" && (kind == "reading" || kind == "threshold")
}

/// Runs a program to completion with `args` (no address added) and returns its
/// exit status, stdout and stderr.
pub async fn run_to_exit(
    program: impl Into<Program>,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let output = timeout(
        WAIT,
        Command::new(program.into().binary())
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

/// A new empty directory under the system's temporary directory, for a server
/// the tests run (`kind`: redis, nginx), unique to this process and this call.
pub fn fresh_dir(kind: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("ws-lessons-{kind}-{}-{n}", std::process::id()));
    // Left over from an earlier run whose process had the same id.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a temporary directory");
    dir
}

/// A port of 127.0.0.1 that was free a moment ago: bound with port 0, read and
/// closed. Something else may take it before the server binds it; the caller
/// handles that.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
