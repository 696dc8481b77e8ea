//! HTTP/1.1 on a plain TCP stream, one request per connection, so that a test sees the
//! response as the server wrote it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::WAIT;

/// Writes `request` on a new TCP connection and reads until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write request");
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.expect("read response");
        String::from_utf8_lossy(&response).into_owned()
    };
    timeout(WAIT, exchange)
        .await
        .expect("the response arrives in time")
}
