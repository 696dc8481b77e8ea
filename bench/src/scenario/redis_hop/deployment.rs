//! The processes of one run: which servers, how they are started (lesson 10's
//! two instances with their Redis, or one process), and on which of them each
//! client connects and follows its source.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::{
    PING_INTERVAL, PONG_TIMEOUT, QUEUE_ROOM, QUEUE_STREAM, RATE, SOURCES,
};
use crate::load;
use crate::process::{Binaries, SlowClients};
use ws_bench::wire::{Conn, Http, json_number};
use ws_harness::{Log, Running};
use ws_harness::{Persistence, Redis};

/// The ways from a reading's creation to the clients.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HopServer {
    /// Two instances of `10_scale_out` sharing a `redis-server`; the first
    /// runs the simulator (`--produce`), and each has half the clients.
    ScaleOut,
    /// `09_rooms` in one process: a channel per room.
    Rooms,
    /// `05_dashboard` in one process: one stream of every reading, which each
    /// connection filters.
    Dashboard,
}

impl HopServer {
    /// How a reading reaches the clients, for the report's tables.
    pub fn path(self) -> &'static str {
        match self {
            HopServer::ScaleOut => {
                "two instances: Lua script, Redis Stream, XREAD by each"
            }
            HopServer::Rooms => "one process: a channel per room",
            HopServer::Dashboard => "one process: one stream, filtered",
        }
    }

    /// Starts the server, and for lesson 10 its Redis and second instance.
    pub async fn start(self, binaries: &Binaries) -> io::Result<Deployment> {
        let (sources, rate) = (SOURCES.to_string(), RATE.to_string());
        let common = [
            "--rate",
            &rate,
            "--ping-interval",
            PING_INTERVAL,
            "--pong-timeout",
            PONG_TIMEOUT,
        ];
        let rooms =
            ["--sites", &sources, "--sensors", "1", "--queue", QUEUE_ROOM];
        let example = binaries.example(&self.to_string());
        let start = async |args: Vec<&str>| {
            Running::start_binary(&example, &args, Log::Discarded).await
        };
        match self {
            HopServer::ScaleOut => {
                let redis = Redis::start_with(Persistence::Nothing).await;
                let url = redis.url();
                let args: Vec<&str> = ["--redis", &url]
                    .into_iter()
                    .chain(rooms)
                    .chain(common)
                    .collect();
                let producing =
                    start([&args[..], &["--produce"]].concat()).await?;
                let other = start(args).await?;
                Ok(Deployment {
                    redis: Some(redis),
                    servers: vec![producing, other],
                })
            }
            HopServer::Rooms => {
                let args = rooms.into_iter().chain(common).collect();
                Ok(Deployment {
                    redis: None,
                    servers: vec![start(args).await?],
                })
            }
            HopServer::Dashboard => {
                let stream = ["--sensors", &sources, "--queue", QUEUE_STREAM];
                let args = stream.into_iter().chain(common).collect();
                Ok(Deployment {
                    redis: None,
                    servers: vec![start(args).await?],
                })
            }
        }
    }

    /// Opens client `n`'s connection to `addr` and has it follow its one source
    /// (spread evenly over the sources); returns it once the server has
    /// confirmed that.
    pub async fn set_up(self, addr: SocketAddr, n: usize) -> io::Result<Conn> {
        let follow = match self {
            HopServer::ScaleOut | HopServer::Rooms => load::Follow::Room,
            HopServer::Dashboard => load::Follow::Sensor,
        };
        load::follow_source(addr, follow, n, SOURCES).await
    }
}

impl fmt::Display for HopServer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            HopServer::ScaleOut => "10_scale_out",
            HopServer::Rooms => "09_rooms",
            HopServer::Dashboard => "05_dashboard",
        })
    }
}

/// Which process a client is connected to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The instance of 10 that runs the simulator, or the one process of 09
    /// and 05.
    Producing,
    /// 10's other instance, which gets every reading from Redis only.
    Other,
}

impl Side {
    /// Index in `Deployment::servers` and in `HopRun::delays`.
    pub fn index(self) -> usize {
        match self {
            Side::Producing => 0,
            Side::Other => 1,
        }
    }
}

/// The processes of one run, stopped by `stop` (killed if dropped).
pub struct Deployment {
    /// Lesson 10's; none for 09 and 05.
    pub redis: Option<Redis>,
    /// The producing instance (or the one process) first, then 10's other
    /// instance.
    pub servers: Vec<Running>,
}

impl Deployment {
    /// Where the client on `side` connects.
    pub fn addr(&self, side: Side) -> SocketAddr {
        self.servers[side.index()].addr
    }

    /// The side of client `n` of `clients`: with two instances, the first half
    /// on the producing one, the second half on the other.
    pub fn side(&self, n: usize, clients: usize) -> Side {
        if self.servers.len() > 1 && n > clients / 2 {
            Side::Other
        } else {
            Side::Producing
        }
    }

    /// Resident memory of every process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let servers: u64 = self.servers.iter().map(Running::rss_kib).sum();
        let redis = self.redis.as_ref().map_or(0, Redis::rss_kib);
        (servers + redis) as f64 / 1024.0
    }

    /// What went wrong between lesson 10's instances and Redis, by their
    /// `/stats`: outages, readings not stored, reloads after a gap, entries
    /// skipped. 09 and 05 have no Redis, and none.
    pub async fn redis_troubles(&self) -> io::Result<u64> {
        const TROUBLES: [&str; 4] = ["outages", "unstored", "reloads", "skipped"];
        if self.redis.is_none() {
            return Ok(0);
        }
        let mut total = 0;
        for server in &self.servers {
            let asking =
                async { Http::open(server.addr).await?.get("/stats").await };
            let within = std::time::Duration::from_secs(5);
            let stats =
                tokio::time::timeout(within, asking).await.map_err(|_| {
                    io::Error::other("/stats did not answer in 5 s")
                })??;
            for trouble in TROUBLES {
                total += json_number(&stats, trouble).ok_or_else(|| {
                    io::Error::other(format!(
                        "no {trouble} in lesson 10's /stats"
                    ))
                })?;
            }
        }
        Ok(total)
    }

    /// The clients the servers could not keep up with, by their `/stats`,
    /// added up.
    pub async fn slow_clients(&self) -> io::Result<SlowClients> {
        let mut all = SlowClients::default();
        for server in &self.servers {
            all = all + SlowClients::of(server).await?;
        }
        Ok(all)
    }

    /// Stops the servers, then Redis.
    pub async fn stop(self) {
        for server in self.servers {
            server.stop().await;
        }
        if let Some(mut redis) = self.redis {
            redis.stop().await;
        }
    }
}
