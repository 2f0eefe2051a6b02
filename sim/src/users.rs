//! The simulator's user database: names, passwords (held only as SHA-256 digests) and the unix
//! uids that local login on the unix socket maps to a user.
//!
//! File format (TOML):
//! ```toml
//! [[user]]
//! name = "testuser"
//! password = "testpass"   # remote login (2039); omit for a local-only user
//! uid = 1000              # optional: local login (2186) from this unix uid is this user
//! ```
//! Passwords are compared in constant time (digests compared with `subtle`) and never logged.

use std::fmt;
use std::path::Path;

use openssl::sha::sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::ConfigError;

/// One user.
#[derive(Clone)]
pub struct User {
    name: String,
    password_digest: Option<[u8; 32]>,
    uid: Option<u32>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &self.password_digest.map(|_| "<redacted>"))
            .field("uid", &self.uid)
            .finish()
    }
}

impl User {
    /// A user with a password (remote login) and optionally a uid (local login).
    pub fn new(name: impl Into<String>, password: Option<&str>, uid: Option<u32>) -> Self {
        User {
            name: name.into(),
            password_digest: password.map(|p| sha256(p.as_bytes())),
            uid,
        }
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unix uid local login maps to this user, if any.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// True if the user can log in remotely (has a password).
    pub fn has_password(&self) -> bool {
        self.password_digest.is_some()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: Option<String>,
    uid: Option<u32>,
}

/// The set of users the simulator knows.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    users: Vec<User>,
}

/// A digest no password has in practice; compared against when the user name is unknown, so an
/// unknown name costs the same as a wrong password.
const DUMMY_DIGEST: [u8; 32] = [0xA5; 32];

impl UserDb {
    /// An empty database.
    pub fn new() -> Self {
        UserDb::default()
    }

    /// Parses the TOML users file format (see the module docs).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: UsersFile =
            toml::from_str(text).map_err(|e| ConfigError::UsersFile(e.message().to_owned()))?;
        let mut db = UserDb::new();
        for mut entry in file.user {
            let user = User::new(entry.name, entry.password.as_deref(), entry.uid);
            entry.password.zeroize();
            db.add(user)?;
        }
        Ok(db)
    }

    /// Reads and parses a users file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::UsersFile(format!("cannot read {}: {e}", path.display()))
            })?);
        UserDb::from_toml(&text).map_err(|e| match e {
            ConfigError::UsersFile(msg) => {
                ConfigError::UsersFile(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }

    /// Parses a `NAME:PASSWORD` command-line spec (the password may contain `:`).
    pub fn parse_spec(spec: &str) -> Result<User, ConfigError> {
        let (name, password) = spec
            .split_once(':')
            .ok_or_else(|| ConfigError::UserSpec("expected NAME:PASSWORD (no ':' found)".into()))?;
        if name.is_empty() {
            return Err(ConfigError::UserSpec("user name is empty".into()));
        }
        Ok(User::new(name, Some(password), None))
    }

    /// Parses a `NAME:UID` local-user spec.
    pub fn parse_local_spec(spec: &str) -> Result<User, ConfigError> {
        let (name, uid) = spec
            .split_once(':')
            .ok_or_else(|| ConfigError::UserSpec("expected NAME:UID (no ':' found)".into()))?;
        if name.is_empty() {
            return Err(ConfigError::UserSpec("user name is empty".into()));
        }
        let uid = uid
            .parse::<u32>()
            .map_err(|_| ConfigError::UserSpec(format!("uid {uid:?} is not a number")))?;
        Ok(User::new(name, None, Some(uid)))
    }

    /// Adds a user; a second user with the same name merges into the first (password and uid
    /// given later win), two users may not share a uid.
    pub fn add(&mut self, user: User) -> Result<(), ConfigError> {
        if user.name.is_empty() {
            return Err(ConfigError::UserSpec("user name is empty".into()));
        }
        if let Some(uid) = user.uid {
            if let Some(other) = self
                .users
                .iter()
                .find(|u| u.uid == Some(uid) && u.name != user.name)
            {
                return Err(ConfigError::UserSpec(format!(
                    "uid {uid} is given to both {:?} and {:?}",
                    other.name, user.name
                )));
            }
        }
        match self.users.iter_mut().find(|u| u.name == user.name) {
            Some(existing) => {
                if user.password_digest.is_some() {
                    existing.password_digest = user.password_digest;
                }
                if user.uid.is_some() {
                    existing.uid = user.uid;
                }
            }
            None => self.users.push(user),
        }
        Ok(())
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// All users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Checks a user name and password (`CAuthHelper::AuthUser`): the password is compared in
    /// constant time, and an unknown name costs the same as a wrong password.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&User> {
        let offered = Zeroizing::new(sha256(password.as_bytes()));
        let user = self.users.iter().find(|u| u.name == name);
        let expected = user.and_then(|u| u.password_digest).unwrap_or(DUMMY_DIGEST);
        let matches: bool = offered.ct_eq(&expected).into();
        match user {
            Some(u) if matches && u.password_digest.is_some() && !name.is_empty() => Some(u),
            _ => None,
        }
    }

    /// The user a unix peer uid maps to (local login).
    pub fn by_uid(&self, uid: u32) -> Option<&User> {
        self.users.iter().find(|u| u.uid == Some(uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_users_authenticate() {
        let db = UserDb::from_toml(
            r#"
            [[user]]
            name = "alice"
            password = "s3cret:with:colons"
            [[user]]
            name = "bob"
            uid = 1001
            "#,
        )
        .unwrap();
        assert_eq!(db.len(), 2);
        assert_eq!(
            db.authenticate("alice", "s3cret:with:colons")
                .map(User::name),
            Some("alice")
        );
        assert!(db.authenticate("alice", "s3cret").is_none());
        assert!(db.authenticate("carol", "s3cret:with:colons").is_none());
        // A local-only user has no password to match, not even the empty one.
        assert!(db.authenticate("bob", "").is_none());
        assert_eq!(db.by_uid(1001).map(User::name), Some("bob"));
        assert!(db.by_uid(0).is_none());
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = UserDb::from_toml("[[user]]\npassword = \"x\"\n").unwrap_err();
        assert_eq!(e.kind(), "users_file");
        assert!(e.to_string().contains("name"), "{e}");
        let e = UserDb::from_toml("[[user]]\nname = \"a\"\npasswd = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("passwd"), "{e}");
        let e =
            UserDb::from_toml("[[user]]\nname = \"a\"\nuid = 5\n[[user]]\nname = \"b\"\nuid = 5\n")
                .unwrap_err();
        assert_eq!(e.kind(), "user_spec");
    }

    #[test]
    fn specs() {
        let u = UserDb::parse_spec("testuser:pa:ss").unwrap();
        assert_eq!(u.name(), "testuser");
        let mut db = UserDb::new();
        db.add(u).unwrap();
        assert!(db.authenticate("testuser", "pa:ss").is_some());
        assert_eq!(
            UserDb::parse_spec("nopassword").unwrap_err().kind(),
            "user_spec"
        );
        assert_eq!(UserDb::parse_spec(":x").unwrap_err().kind(), "user_spec");
        let l = UserDb::parse_local_spec("root:0").unwrap();
        assert_eq!(l.uid(), Some(0));
        assert!(UserDb::parse_local_spec("root:x").is_err());
        // Merging by name: the local spec adds a uid to the password user.
        db.add(UserDb::parse_local_spec("testuser:1000").unwrap())
            .unwrap();
        assert_eq!(db.len(), 1);
        assert_eq!(db.by_uid(1000).map(User::name), Some("testuser"));
        assert!(db.authenticate("testuser", "pa:ss").is_some());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let u = User::new("alice", Some("hunter2"), None);
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("<redacted>"));
    }
}
