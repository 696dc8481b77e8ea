//! Peer: a fastwebsockets echo server, as in fastwebsockets' own `echo_server`
//! example, on the same multi-threaded tokio runtime as the examples. Usage:
//! peer_fastwebsockets [ADDR]; prints `listening on ws://ADDR/ws`.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};

/// Echoes text and binary messages until the client closes.
async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

/// Answers the HTTP upgrade, and echoes on the connection in a task of its own.
async fn upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        let _ = echo(fut).await;
    });
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = ws_bench::listen().await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ = http1::Builder::new()
                .serve_connection(io, service_fn(upgrade))
                .with_upgrades()
                .await;
        });
    }
}
