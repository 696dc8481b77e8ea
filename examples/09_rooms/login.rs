//! Who the user is: for the lesson, a name on the upgrade request. A real
//! server takes it from lesson 08's login instead. Lesson 10 includes this file.

use serde::Deserialize;

// ANCHOR: login
/// `?user=NAME` on the upgrade request.
#[derive(Deserialize)]
pub struct Login {
    pub user: UserName,
}

/// 1 to 32 characters of `a-z`, `0-9`, `_` and `-`: checked as the query is
/// parsed, so a bad name is refused with 400 before the upgrade.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub struct UserName(pub String);

impl TryFrom<String> for UserName {
    type Error = &'static str;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
        if (1..=32).contains(&name.len()) && name.chars().all(allowed) {
            Ok(Self(name))
        } else {
            Err("a user name is 1 to 32 characters of a-z, 0-9, _ and -")
        }
    }
}
// ANCHOR_END: login
