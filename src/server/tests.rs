//! The shutdown and the gauge, in one process.

use tokio::time::Instant;

use super::*;

/// Starts `n` handlers tracked by `connections`, each of which waits for
/// `shutting_down` and reports when it fired.
fn handlers(
    connections: &Connections,
    n: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (own, sender) = (connections.clone(), sender.clone());
        tokio::spawn(connections.track(async move {
            own.shutting_down().await;
            let _ = sender.send(Instant::now());
        }));
    }
    receiver
}

#[tokio::test]
async fn a_shutdown_ends_every_handler_at_once_and_then_all_are_closed() {
    let connections = Connections::new();
    let mut ended = handlers(&connections, 5);
    assert_eq!(connections.live(), 5);
    let began = Instant::now();
    connections.shut_down();
    let closed = tokio::time::timeout(SHUTDOWN_GRACE, connections.all_closed());
    closed.await.expect("every handler returned in time");
    assert_eq!(connections.live(), 0);
    for _ in 0..5 {
        let at = ended.try_recv().expect("each handler saw the shutdown");
        assert!(at - began < SHUTDOWN_GRACE);
    }
}

#[tokio::test]
async fn all_closed_waits_for_the_last_handler() {
    let connections = Connections::new();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(connections.track(async move {
        let _ = released.await;
    }));
    let mut closed = std::pin::pin!(connections.all_closed());
    tokio::select! {
        biased;
        () = &mut closed => panic!("a handler is still running"),
        () = tokio::task::yield_now() => {}
    }
    let _ = release.send(());
    let closed = tokio::time::timeout(Duration::from_secs(5), closed);
    closed.await.expect("all closed once the handler returned");
}

#[test]
fn the_going_away_frame_says_1001() {
    match going_away_frame() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, 1001),
        other => panic!("not a Close frame: {other:?}"),
    }
}
