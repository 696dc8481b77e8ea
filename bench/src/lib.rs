//! What the programs of ws-bench share: the hand-made WebSocket client, with which the load
//! generator (`ws-bench`) and the idle client (`src/bin/idle_client.rs`) connect.

pub mod wire;
