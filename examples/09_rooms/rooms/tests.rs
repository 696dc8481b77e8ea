//! The registry's unit tests: a room's life, isolation, and the join/remove
//! race.

use std::sync::Arc;

use super::*;

#[test]
fn a_room_exists_from_its_first_join_to_its_last_leave() {
    let rooms = Rooms::new(2, 1, 16, 8, "e1");
    let site = rooms.find("site-2").unwrap();
    assert_eq!(rooms.occupied(), 0);
    let _alice = rooms.join(site, "alice", None, None);
    let _tab = rooms.join(site, "alice", None, None);
    assert_eq!(rooms.occupied(), 1);
    rooms.leave(site, "alice");
    assert_eq!(rooms.occupied(), 1, "alice still has a tab in the room");
    rooms.leave(site, "alice");
    assert_eq!(rooms.occupied(), 0);
}

#[test]
fn a_reading_reaches_only_its_rooms_members() {
    let rooms = Rooms::new(2, 1, 16, 8, "e1");
    let (one, two) =
        (rooms.find("site-1").unwrap(), rooms.find("site-2").unwrap());
    let mut first = rooms.join(one, "alice", None, None).events;
    let mut second = rooms.join(two, "bob", None, None).events;
    let _ = (first.try_recv(), second.try_recv()); // each one's presence
    rooms.record_reading(0, 0, 21.5);
    assert!(
        first
            .try_recv()
            .unwrap()
            .json
            .contains(r#""room":"site-1""#)
    );
    assert!(second.try_recv().is_err());
}

// ANCHOR: race
/// Joins and leaves race on one room from several threads while readings
/// arrive. Every member must hear the reading recorded while it is in: a
/// join that landed on a channel being removed would hear nothing.
#[test]
fn a_join_never_lands_on_a_room_being_removed() {
    let rooms = Arc::new(Rooms::new(1, 1, 16, 1024, "e1"));
    let site = rooms.find("site-1").unwrap();
    let threads: Vec<_> = (0..2)
        .map(|thread| {
            let rooms = rooms.clone();
            std::thread::spawn(move || {
                let user = format!("user-{thread}");
                for round in 0..20_000 {
                    let mut entry = rooms.join(site, &user, None, None);
                    rooms.record_reading(0, 0, f64::from(round));
                    let heard = heard_a_reading(&mut entry.events);
                    rooms.leave(site, &user);
                    assert!(heard, "{user} joined and heard nothing");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
    assert_eq!(rooms.occupied(), 0);
}

/// A reading, or so many events that the receiver lagged: either way it
/// is on the room's live channel.
fn heard_a_reading(events: &mut broadcast::Receiver<Event>) -> bool {
    use broadcast::error::TryRecvError;
    loop {
        match events.try_recv() {
            Ok(event) if event.json.contains(r#""type":"reading""#) => {
                return true;
            }
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => return true,
            Err(_) => return false,
        }
    }
}
// ANCHOR_END: race
