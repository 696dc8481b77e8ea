//! The command-line contract that every server example shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where every server example listens, and how.
///
/// Flatten it into an example's own arguments with `#[command(flatten)]`, and
/// hand `addr` to [`crate::serve`].
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// The address, and the certificate to serve TLS with, if any.
    #[command(flatten)]
    pub addr: ListenAddr,
}

// ANCHOR: listen_addr
/// The listen address, the optional first argument of every server example, and
/// with `--tls-cert` and `--tls-key`, TLS: `wss://` and `https://` instead of
/// `ws://` and `http://` (`src/tls.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct ListenAddr {
    /// Address to listen on, as IP:PORT; port 0 lets the system choose a free
    /// port
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub socket: SocketAddr,
    /// Serve TLS with this certificate chain (PEM: the server's certificate
    /// first, then any intermediates)
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM), for --tls-cert
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}
// ANCHOR_END: listen_addr

impl ListenAddr {
    /// True when the server is to serve TLS: clap lets `--tls-cert` come only
    /// with `--tls-key`, so the certificate alone tells.
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some()
    }
}

/// A plain address: no TLS.
impl From<SocketAddr> for ListenAddr {
    fn from(socket: SocketAddr) -> Self {
        Self {
            socket,
            tls_cert: None,
            tls_key: None,
        }
    }
}

// ANCHOR: heartbeat_args
/// The heartbeat's flags (lesson 03), shared by every lesson that pings.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct HeartbeatArgs {
    /// Time between pings (for example 200ms or 30s)
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub ping_interval: Duration,
    /// How long to wait for the pong before the peer is considered gone
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub pong_timeout: Duration,
}
// ANCHOR_END: heartbeat_args

/// The simulated sensors' flags, shared by the dashboard lessons (05, 07, 08).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SensorArgs {
    /// Number of simulated sensors (of each site, where there are sites)
    #[arg(
        long,
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=100)
    )]
    pub sensors: u16,
    /// Readings per second, across all sensors
    #[arg(long, default_value_t = 4.0, value_parser = rate)]
    pub rate: f64,
}

/// How far a client may fall behind before it is resynchronised (lessons 05 and
/// 09).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct QueueArgs {
    /// How many changes a client may fall behind before it is resynchronised,
    /// rounded up to a power of two as tokio's broadcast channel does
    #[arg(
        long,
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub queue: u32,
}

impl QueueArgs {
    /// The channel's real capacity (see [`broadcast_capacity`]).
    pub fn capacity(&self) -> usize {
        broadcast_capacity(self.queue)
    }
}

/// The capacity a `tokio::sync::broadcast` channel really has when a lesson's
/// `--queue` asks for `queue`: tokio rounds it up to a power of two, so
/// `--queue 1000` lets a client fall 1024 behind. Logged at start-up when the
/// two differ, so that the flag and the channel agree.
pub fn broadcast_capacity(queue: u32) -> usize {
    let capacity = (queue.max(1) as usize).next_power_of_two();
    if capacity != queue as usize {
        tracing::info!(
            "--queue {queue} holds {capacity}: \
             tokio's broadcast channel rounds up"
        );
    }
    capacity
}

/// Parses a human-friendly duration such as `200ms`, `30s` or `1m 30s` (for
/// clap).
///
/// Zero is rejected: every duration an example takes is a period or a deadline,
/// and a zero period would make `tokio::time::interval` panic.
pub fn duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be greater than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (try a value such as 200ms or 30s)")),
    }
}

/// Parses a rate in events per second (for clap): a number above 0, at most a
/// million.
pub fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0 => {
            Ok(rate)
        }
        Ok(_) => Err(
            "must be a number of events per second above 0 and at most 1000000"
                .into(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_channel_holds_the_capacity_rounded_up_to_a_power_of_two() {
        assert_eq!(broadcast_capacity(1000), 1024);
        assert_eq!(broadcast_capacity(256), 256);
        // What tokio does with 1000: 1024 fit without a lag, the 1025th
        // overwrites one.
        let (sender, mut receiver) = tokio::sync::broadcast::channel(1000);
        for n in 0..1024 {
            sender.send(n).unwrap();
        }
        assert_eq!(receiver.try_recv(), Ok(0));
        sender.send(1024).unwrap();
        sender.send(1025).unwrap();
        let lagged = tokio::sync::broadcast::error::TryRecvError::Lagged(1);
        assert_eq!(receiver.try_recv(), Err(lagged));
    }

    #[derive(clap::Parser, Debug)]
    struct Listen {
        #[command(flatten)]
        listen: ListenArgs,
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_or_neither() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            Listen::try_parse_from([&["server"], args].concat())
                .map(|l| l.listen.addr)
        };
        let plain = parse(&["127.0.0.1:0"]).expect("no TLS");
        assert!(!plain.serves_tls());
        let both = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        assert!(parse(&both).expect("TLS").serves_tls());
        assert!(parse(&both[..2]).is_err(), "a certificate without its key");
        assert!(parse(&both[2..]).is_err(), "a key without its certificate");
    }

    #[test]
    fn durations_parse_as_the_flags_document() {
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
    }
}
