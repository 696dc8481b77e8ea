//! Building and starting the programs of a run: the servers under test, whose CPU time and
//! memory it reads from /proc, and the idle client.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A program the bench has started, killed when dropped.
pub struct Process {
    child: Child,
    pid: u32,
}

impl Process {
    /// Starts `binary args...` and waits, 30 s at most, for the first line it prints: a
    /// server its address, a client that it is connected. Returns the process and the line.
    pub async fn start(
        binary: &Path,
        args: &[&str],
    ) -> io::Result<(Process, String)> {
        let name = binary.display();
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {name}: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line =
            tokio::time::timeout(Duration::from_secs(30), lines.next_line())
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
        Ok((Process { child, pid }, line))
    }

    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid as i32), signal);
    }

    /// SIGTERM, and up to 5 s to exit (then SIGKILL, on drop).
    pub async fn stop(mut self) {
        self.signal(Signal::SIGTERM);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// A server under test, on a port of its choosing.
pub struct Server {
    process: Process,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `binary 127.0.0.1:0 args...` and reads the address from the first line it
    /// prints (`... ws://HOST:PORT/...` or `... http://HOST:PORT/...`).
    pub async fn start(binary: &Path, args: &[&str]) -> io::Result<Server> {
        let args: Vec<&str> =
            ["127.0.0.1:0"].iter().chain(args).copied().collect();
        let (process, line) = Process::start(binary, &args).await?;
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
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.process.pid))
                .unwrap_or_default();
        // Fields after the command name, which is in parentheses and may contain spaces.
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

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.process.pid))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or(0)
    }

    /// Stops the server as `Process::stop` does.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// Many connections need many file descriptors, in this process and in the servers it starts.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The release binaries: the examples of ws-lessons, and the programs of this crate (the
/// peers and the idle client), built by cargo at the start of the run.
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Builds them with the cargo that runs this program, into its target directory.
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

    /// A program of this crate (src/bin/NAME.rs).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
