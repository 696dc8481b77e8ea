//! Who is connected, and a notice channel for each user: the same rule as the
//! rooms, a user's channel exists from their first connection to their last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use ws_lessons::protocol::rooms::RoomMessage;

/// The longest notice, in characters.
pub const NOTICE_MAX_CHARS: usize = 1000;

// ANCHOR: users
/// How many notices a tab may fall behind before it is told it missed some.
const NOTICE_QUEUE: usize = 16;

/// Every connected user, with a channel that reaches all their tabs.
#[derive(Default)]
pub struct Users {
    users: Mutex<HashMap<String, User>>,
}

struct User {
    notices: broadcast::Sender<Utf8Bytes>,
    /// Open connections; the user is removed when this reaches zero.
    tabs: usize,
}

/// One open connection of a user: its notices, and its place in [`Users`],
/// which it gives back when dropped, however the connection ended.
pub struct Tab {
    users: Arc<Users>,
    user: String,
    /// The notices sent to this tab's user.
    pub notices: broadcast::Receiver<Utf8Bytes>,
}

impl Users {
    /// Counts one more connection of `user`.
    pub fn connect(self: &Arc<Self>, user: &str) -> Tab {
        let mut users = self.lock();
        let entry = users.entry(user.to_owned()).or_insert_with(|| User {
            notices: broadcast::channel(NOTICE_QUEUE).0,
            tabs: 0,
        });
        entry.tabs += 1;
        Tab {
            users: self.clone(),
            user: user.to_owned(),
            notices: entry.notices.subscribe(),
        }
    }
    // ANCHOR_END: users

    // ANCHOR: notify
    /// Hands a notice from `from` to every tab of `to`, and says how many.
    pub fn notify(
        &self,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<usize, String> {
        check_notice(text)?;
        let notice = RoomMessage::Notice {
            from: from.to_owned(),
            text: text.to_owned(),
        };
        let json: Utf8Bytes = notice.to_json().into();
        let not_connected = || format!("{to:?} is not connected");
        let users = self.lock();
        let user = users.get(to).ok_or_else(not_connected)?;
        // Never blocks: a tab that does not read falls behind on its own.
        user.notices.send(json).map_err(|_| not_connected())
    }
    // ANCHOR_END: notify

    /// How many distinct users are connected.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, User>> {
        self.users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A notice is 1 to [`NOTICE_MAX_CHARS`] characters.
pub fn check_notice(text: &str) -> Result<(), String> {
    let length = text.chars().count();
    if length == 0 || length > NOTICE_MAX_CHARS {
        return Err(format!(
            "a notice is 1 to {NOTICE_MAX_CHARS} characters; this one has {length}"
        ));
    }
    Ok(())
}

impl Tab {
    /// The user this connection belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let mut users = self.users.lock();
        if let Some(user) = users.get_mut(&self.user) {
            user.tabs -= 1;
            if user.tabs == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_hands_a_notice_to_each_tab_of_one_user() {
        let users = Arc::new(Users::default());
        let (mut one, mut two) = (users.connect("alice"), users.connect("alice"));
        let mut bob = users.connect("bob");
        assert_eq!(users.notify("bob", "alice", "hi"), Ok(2));
        assert!(one.notices.try_recv().is_ok() && two.notices.try_recv().is_ok());
        assert!(bob.notices.try_recv().is_err());
        drop((one, two));
        assert_eq!(users.count(), 1);
        assert!(users.notify("bob", "alice", "hi").is_err());
        assert!(users.notify("alice", "bob", &"x".repeat(1001)).is_err());
    }
}
