//! Peer for the fan-out benchmark: a fastwebsockets server that produces readings
//! at `--rate` per second, serializes each once, and writes the same buffer to
//! every client. Usage: peer_fanout ADDR RATE; prints
//! `listening on ws://ADDR/ws`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fastwebsockets::{Frame, Payload, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::sync::broadcast;

/// Writes every reading to one client; one that falls behind skips what it
/// missed.
async fn feed(
    fut: upgrade::UpgradeFut,
    mut readings: broadcast::Receiver<Bytes>,
) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    loop {
        match readings.recv().await {
            Ok(json) => {
                ws.write_frame(Frame::text(Payload::Borrowed(&json)))
                    .await?
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let rate: f64 = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(10.0);
    let (sender, _) = broadcast::channel::<Bytes>(1024);
    let producer = sender.clone();
    tokio::spawn(async move {
        let mut ticks =
            tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut seq: u64 = 0;
        loop {
            ticks.tick().await;
            seq += 1;
            let at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let json = format!(
                r#"{{"type":"reading","seq":{seq},"sensor":"sensor-1","value":21.5,"alert":false,"at_ms":{at_ms}}}"#
            );
            let _ = producer.send(Bytes::from(json));
        }
    });
    let listener = ws_bench::listen().await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let sender = sender.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(tcp);
            let service = service_fn(move |mut request: Request<Incoming>| {
                let readings = sender.subscribe();
                async move {
                    let (response, fut) = upgrade::upgrade(&mut request)?;
                    tokio::spawn(async move {
                        let _ = feed(fut, readings).await;
                    });
                    Ok::<Response<Empty<Bytes>>, WebSocketError>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}
