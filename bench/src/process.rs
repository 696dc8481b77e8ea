//! Building the programs of a run (the servers under test, the peers and the
//! idle client) and the open-file limit they need. Starting them and reading
//! what they use is ws-harness's: `Running` and `Process`.

use std::io;
use std::path::{Path, PathBuf};

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
