//! The mirror's unit tests: what it does differently from lesson 09's rooms.

use super::*;

fn reading(value: f64) -> Change {
    let (sensor, at_ms, alert) = (0, 1, Some(false));
    Change::Reading {
        sensor,
        value,
        at_ms,
        alert,
    }
}

#[test]
fn a_change_is_applied_only_as_the_room_s_next() {
    let rooms = Rooms::new(1, 1, 16, 8, "e1");
    let site = rooms.find("site-1").unwrap();
    assert!(rooms.apply(site, 1, &reading(1.0)));
    assert!(!rooms.apply(site, 1, &reading(2.0)), "already applied");
    assert!(!rooms.apply(site, 3, &reading(3.0)), "a gap");
    assert_eq!(rooms.seq(site), 1);
}

#[test]
fn a_load_sends_the_members_a_snapshot_that_counts_what_they_missed() {
    let rooms = Rooms::new(1, 1, 16, 8, "e1");
    let site = rooms.find("site-1").unwrap();
    let mut events = rooms.join(site, "ann", None, None).events;
    let _ = events.try_recv(); // ann's presence
    let sensors = vec![Sensor::new(0, "sensor-1".into())];
    rooms.load(site, (7, "e1"), sensors, &[(7, reading(5.0))]);
    let snapshot = events.try_recv().expect("a snapshot");
    assert_eq!(snapshot.seq, 7);
    assert!(snapshot.json.contains(r#""missed":7"#), "{}", snapshot.json);
    // Change 7 is in the history again, for a member that rejoins after 6.
    let rejoin = Rejoin {
        after: 6,
        epoch: Some("e1".into()),
    };
    let backlog = rooms.join(site, "bob", None, Some(rejoin)).backlog;
    assert!(backlog[0].contains(r#""type":"joined""#), "{}", backlog[0]);
    assert!(backlog[1].contains(r#""seq":7"#), "{}", backlog[1]);
}

#[test]
fn a_member_from_further_along_is_ahead_until_the_room_catches_up() {
    let rooms = Rooms::new(1, 1, 16, 8, "e1");
    let site = rooms.find("site-1").unwrap();
    let rejoin = |epoch: &str| Rejoin {
        after: 1,
        epoch: Some(epoch.into()),
    };
    assert!(rooms.ahead(site, &rejoin("e1")));
    assert!(!rooms.ahead(site, &rejoin("e0")), "another numbering");
    let applied = rooms.applied.notified();
    assert!(rooms.apply(site, 1, &reading(1.0)));
    // Wakes a waiter that registered before the change.
    let waker = futures::task::noop_waker();
    let mut context = std::task::Context::from_waker(&waker);
    let mut applied = std::pin::pin!(applied);
    assert!(applied.as_mut().poll(&mut context).is_ready());
    assert!(!rooms.ahead(site, &rejoin("e1")));
}
