//! The drain and the shutdown, in one process.

use tokio::time::Instant;

use super::connections::{random_fraction, turn_at};
use super::*;

/// The close code of a frame from [`going_away_frame`].
fn code(frame: Message) -> u16 {
    match frame {
        Message::Close(Some(frame)) => frame.code,
        other => panic!("not a Close frame: {other:?}"),
    }
}

#[test]
fn a_turn_falls_within_what_is_left_of_the_drain() {
    let began = Instant::now();
    let over = Duration::from_secs(10);
    let end = began + over;
    let fractions = [0.0, 0.25, 0.5, 0.999_999, 1.0 - f64::EPSILON];
    // Opened before the drain: anywhere in it.
    let before = began.checked_sub(Duration::from_secs(60)).unwrap_or(began);
    assert_eq!(turn_at(began, over, before, 0.0), began);
    assert_eq!(turn_at(began, over, before, 0.5), began + over / 2);
    for fraction in fractions {
        let at = turn_at(began, over, before, fraction);
        assert!(began <= at && at < end, "{fraction}: {:?}", at - began);
    }
    // Opened during the drain: in what was left of it.
    let opened = began + Duration::from_secs(8);
    assert_eq!(turn_at(began, over, opened, 0.5), opened + over / 10);
    for fraction in fractions {
        let at = turn_at(began, over, opened, fraction);
        assert!(opened <= at && at < end, "{fraction}: {:?}", at - began);
    }
    // Opened after the drain's end: at once.
    let late = end + Duration::from_secs(1);
    assert_eq!(turn_at(began, over, late, 0.7), late);
}

#[test]
fn random_fractions_lie_in_0_to_1_and_spread_over_it() {
    let draws: Vec<f64> = (0..10_000).map(|_| random_fraction()).collect();
    assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
    // About 1000 in each tenth; fewer than 800 is some 6 standard
    // deviations away.
    for tenth in 0..10 {
        let low = f64::from(tenth) / 10.0;
        let high = f64::from(tenth + 1) / 10.0;
        let n = draws.iter().filter(|f| (low..high).contains(*f)).count();
        assert!(n > 800, "{n} draws in [{low}, {high})");
    }
}

/// Starts `n` handlers tracked by `connections`, each of which waits for
/// `shutting_down` and reports when it fired and the code of the frame it
/// would send.
fn handlers(
    connections: &Connections,
    n: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<(Instant, u16)> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (own, sender) = (connections.clone(), sender.clone());
        tokio::spawn(connections.track(async move {
            // As a handler's loop does: a fresh `shutting_down()` on each
            // turn, here every millisecond.
            loop {
                tokio::select! {
                    () = own.shutting_down() => break,
                    () = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
            }
            let _ = sender.send((Instant::now(), code(going_away_frame())));
        }));
    }
    receiver
}

async fn all(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<(Instant, u16)>,
    n: usize,
) -> Vec<(Instant, u16)> {
    let mut closes = Vec::new();
    while closes.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), receiver.recv());
        closes.push(next.await.expect("in time").expect("a close"));
    }
    closes
}

#[tokio::test]
async fn without_a_drain_every_connection_closes_at_once_with_1001() {
    let connections = Connections::new();
    let closes = handlers(&connections, 5);
    assert!(!connections.draining());
    let began = Instant::now();
    connections.drain().await;
    assert!(connections.draining());
    for (at, code) in all(closes, 5).await {
        assert_eq!(code, 1001);
        assert!(at - began < Duration::from_millis(500));
    }
    // Outside a tracked handler, too.
    assert_eq!(code(going_away_frame()), 1001);
}

#[tokio::test]
async fn a_drain_spreads_the_closes_over_its_time_with_1012() {
    let over = Duration::from_millis(400);
    let connections = Connections::with_drain(over);
    let closes = handlers(&connections, 20);
    let began = Instant::now();
    connections.drain().await;
    let closes = all(closes, 20).await;
    assert!(closes.iter().all(|(_, code)| *code == 1012), "{closes:?}");
    let first = closes.iter().map(|(at, _)| *at).min().expect("closes");
    let last = closes.iter().map(|(at, _)| *at).max().expect("closes");
    assert!(first >= began);
    // The drain ends when the last one has gone, and it had to wait for
    // its turn, within `over` (and a little for the scheduler).
    assert!(last - began <= over + Duration::from_millis(200));
    // 20 turns drawn over 400 ms all fall within 100 ms of one another with
    // a probability of about 1e-10, and all in its first half with one of
    // about 1e-6. A handler asks afresh each millisecond: a turn drawn anew
    // on each call would come within the first few.
    assert!(last - first >= Duration::from_millis(100), "not spread out");
    assert!(last - began >= over / 2, "only early turns");
    // The drain shut down as it ended.
    assert!(connections.shutdown.is_cancelled());
    // Outside a tracked handler, the frame still says 1001.
    assert_eq!(code(going_away_frame()), 1001);
}

#[tokio::test]
async fn a_shutdown_during_a_drain_closes_the_rest_at_once() {
    let connections = Connections::with_drain(Duration::from_secs(60));
    let closes = handlers(&connections, 10);
    // As the signal handler does: the drain starts, and a second signal
    // drops it (it is cancel-safe) and shuts down.
    tokio::select! {
        biased;
        () = connections.drain() => panic!("a 60 s drain ended at once"),
        () = tokio::task::yield_now() => {}
    }
    assert!(connections.draining());
    let cut = Instant::now();
    connections.shut_down();
    for (at, code) in all(closes, 10).await {
        // The shutdown began as a drain: a restart, 1012.
        assert_eq!(code, 1012);
        assert!(at - cut < Duration::from_millis(500));
    }
}
