//! Building the programs of a run (the servers under test, the peers and the
//! idle client) and the open-file limit they need. Starting them and reading
//! what they use is ws-harness's: `Running` and `Process`.

use std::io;
use std::path::{Path, PathBuf};

use ws_bench::wire::Http;
use ws_harness::Running;

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

impl SlowClients {
    /// What `server`'s `/stats` says now, asked within 5 s: what it says it
    /// did, rather than what its log words say.
    pub async fn of(server: &Running) -> io::Result<Self> {
        let stats = stats(server).await?;
        let missed_pongs = counter(&stats, "/heartbeat/missed_pongs")?;
        let blocked_sends = counter(&stats, "/heartbeat/blocked_sends")?;
        Ok(SlowClients {
            resyncs: counter(&stats, "/resyncs")?,
            drops: missed_pongs + blocked_sends,
        })
    }
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

/// `server`'s `GET /stats`, parsed, within 5 s; an error rather than a panic,
/// so that a run reports what went wrong.
pub async fn stats(server: &Running) -> io::Result<serde_json::Value> {
    let asking = async {
        let body = Http::open(server.addr).await?.get("/stats").await?;
        serde_json::from_slice(&body).map_err(io::Error::other)
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), asking)
        .await
        .map_err(|_| io::Error::other("/stats did not answer in 5 s"))?
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
