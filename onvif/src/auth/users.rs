//! ONVIF users and their levels, and which level may call which operation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use parking_lot::RwLock;

/// ONVIF Core's user levels, most privileged first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserLevel {
    Administrator,
    Operator,
    User,
}

impl UserLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administrator => "Administrator",
            Self::Operator => "Operator",
            Self::User => "User",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Administrator" => Self::Administrator,
            "Operator" => Self::Operator,
            "User" => Self::User,
            _ => return None,
        })
    }
}

/// ONVIF Core's access classes (5.9.4). Each operation belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessClass {
    /// Callable without credentials: what a client needs to find and connect.
    PreAuth,
    ReadSystem,
    ReadSystemSensitive,
    ReadSystemSecret,
    WriteSystem,
    Unrecoverable,
    ReadMedia,
    Actuate,
}

impl AccessClass {
    /// The Core spec's default policy.
    pub fn allows(self, level: UserLevel) -> bool {
        use AccessClass::*;
        match level {
            UserLevel::Administrator => true,
            UserLevel::Operator => !matches!(self, ReadSystemSecret | WriteSystem | Unrecoverable),
            UserLevel::User => matches!(self, PreAuth | ReadSystem | ReadMedia),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub level: UserLevel,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {0} already exists")]
    Exists(String),
    #[error("no user {0}")]
    Unknown(String),
    #[error("user names are 1 to 64 printable characters")]
    BadName,
    #[error("passwords are 1 to 64 printable characters")]
    BadPassword,
    #[error("the last administrator cannot be removed or demoted")]
    LastAdministrator,
    #[error("too many users (at most {0})")]
    TooMany(usize),
    #[error("saving the users failed: {0}")]
    Storage(String),
}

/// Where users live. Both digest schemes ONVIF uses need the password itself on the
/// device side, so the directory hands it out; the product decides how it is kept.
pub trait UserDirectory: Send + Sync {
    fn get(&self, name: &str) -> Option<User>;
    fn list(&self) -> Vec<User>;
    /// Applies a change as one unit: all of it or nothing.
    fn change(&self, change: &dyn Fn(&mut Users) -> Result<(), UserError>)
        -> Result<(), UserError>;
    /// Whether sign-ins of `name` from `peer` are refused for now: the product's one
    /// lock-out, which failures at its other doors (a web login) count towards too.
    fn sign_in_blocked(&self, _name: &str, _peer: IpAddr) -> bool {
        false
    }
    /// Tells the lock-out how a sign-in of `name` from `peer` ended (a wrong password, or
    /// accepted).
    fn sign_in_result(&self, _name: &str, _peer: IpAddr, _accepted: bool) {}
    /// A user whose password must be changed first (a first-start password, shown once) is
    /// refused until it is.
    fn must_change_password(&self, _name: &str) -> bool {
        false
    }
}

/// The user table with its rules, independent of storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    by_name: BTreeMap<String, User>,
}

const MAX_USERS: usize = 64;

impl Users {
    pub fn new(users: impl IntoIterator<Item = User>) -> Self {
        Self {
            by_name: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_name.values()
    }

    pub fn create(&mut self, user: User) -> Result<(), UserError> {
        check_text(&user.name).map_err(|_| UserError::BadName)?;
        check_text(&user.password).map_err(|_| UserError::BadPassword)?;
        if self.by_name.contains_key(&user.name) {
            return Err(UserError::Exists(user.name));
        }
        if self.by_name.len() >= MAX_USERS {
            return Err(UserError::TooMany(MAX_USERS));
        }
        self.by_name.insert(user.name.clone(), user);
        Ok(())
    }

    pub fn set(
        &mut self,
        name: &str,
        password: Option<String>,
        level: UserLevel,
    ) -> Result<(), UserError> {
        if let Some(password) = &password {
            check_text(password).map_err(|_| UserError::BadPassword)?;
        }
        let is_last_admin = self.is_last_administrator(name);
        let user = self
            .by_name
            .get_mut(name)
            .ok_or_else(|| UserError::Unknown(name.to_string()))?;
        if is_last_admin && level != UserLevel::Administrator {
            return Err(UserError::LastAdministrator);
        }
        if let Some(password) = password {
            user.password = password;
        }
        user.level = level;
        Ok(())
    }

    pub fn delete(&mut self, name: &str) -> Result<(), UserError> {
        if !self.by_name.contains_key(name) {
            return Err(UserError::Unknown(name.to_string()));
        }
        if self.is_last_administrator(name) {
            return Err(UserError::LastAdministrator);
        }
        self.by_name.remove(name);
        Ok(())
    }

    fn is_last_administrator(&self, name: &str) -> bool {
        let admins: Vec<&str> = self
            .by_name
            .values()
            .filter(|u| u.level == UserLevel::Administrator)
            .map(|u| u.name.as_str())
            .collect();
        admins == [name]
    }
}

fn check_text(text: &str) -> Result<(), ()> {
    let ok =
        !text.is_empty() && text.chars().count() <= 64 && text.chars().all(|c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// A directory held in memory only (tests, and products that persist elsewhere).
#[derive(Debug, Default)]
pub struct MemoryUsers(RwLock<Users>);

impl MemoryUsers {
    pub fn new(users: impl IntoIterator<Item = User>) -> Self {
        Self(RwLock::new(Users::new(users)))
    }
}

impl UserDirectory for MemoryUsers {
    fn get(&self, name: &str) -> Option<User> {
        self.0.read().get(name).cloned()
    }

    fn list(&self) -> Vec<User> {
        self.0.read().iter().cloned().collect()
    }

    fn change(
        &self,
        change: &dyn Fn(&mut Users) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let mut users = self.0.write();
        let mut draft = users.clone();
        change(&mut draft)?;
        *users = draft;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, level: UserLevel) -> User {
        User {
            name: name.into(),
            password: "pw".into(),
            level,
        }
    }

    #[test]
    fn levels_follow_the_core_policy() {
        assert!(AccessClass::PreAuth.allows(UserLevel::User));
        assert!(AccessClass::ReadMedia.allows(UserLevel::User));
        assert!(!AccessClass::ReadSystemSensitive.allows(UserLevel::User));
        assert!(AccessClass::Actuate.allows(UserLevel::Operator));
        assert!(!AccessClass::WriteSystem.allows(UserLevel::Operator));
        assert!(AccessClass::Unrecoverable.allows(UserLevel::Administrator));
    }

    #[test]
    fn keeps_one_administrator_and_changes_atomically() {
        let users = MemoryUsers::new([user("admin", UserLevel::Administrator)]);
        assert_eq!(
            users.change(&|u| u.delete("admin")),
            Err(UserError::LastAdministrator)
        );
        assert_eq!(
            users.change(&|u| u.set("admin", None, UserLevel::User)),
            Err(UserError::LastAdministrator)
        );
        // The second create fails, so the first must not stick either.
        let result = users.change(&|u| {
            u.create(user("a", UserLevel::User))?;
            u.create(user("a", UserLevel::User))
        });
        assert_eq!(result, Err(UserError::Exists("a".into())));
        assert!(users.get("a").is_none());
        assert_eq!(
            users.change(&|u| u.create(user("", UserLevel::User))),
            Err(UserError::BadName)
        );
    }
}
