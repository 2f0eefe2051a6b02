//! What a browser may ask the service to do: the command scope a relay enforces
//! (`[policy] scope` of prl-proxy and the ticket claim `scope`; the narrower applies).
//!
//! | scope | the browser may send |
//! |---|---|
//! | `read` | login (2039, 2186, the legacy 2040 / 2041), logoff 2042, host info 2051, VM list 2029, VM info / state 2062, cancel 2053, attach to a lost task 2090, ping 2052, and IO management packages (heartbeats) |
//! | `operate` | `read` and the VM power operations: start 1001, stop 1002, reset 1006, pause 1007, suspend 1008, resume 1009, start-ex 1036, restart-guest 1039 |
//! | `all` | anything |
//!
//! Only what the browser sends is classified: every package from the service (replies,
//! events) passes. Ping is in `read` although ops-wire.md's table leaves it out: it changes
//! nothing (the service answers `PRL_ERR_UNIMPLEMENTED`) and is the client's round-trip probe.
//! A command of no scope below `all` (VM creation, configuration edits, the sim-only 9001, any
//! unknown type) needs `all`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codes::cmd;

/// A command scope, from the narrowest; `Ord` follows that order (`min` is the narrower).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CommandScope {
    /// Log in and out, read the host, the VMs and their states, receive events.
    Read,
    /// `Read` and the VM power operations.
    Operate,
    /// Anything.
    #[default]
    All,
}

/// The highest IO management package type (heartbeats and the IO layer's own packages).
const LAST_MANAGEMENT_TYPE: u32 = 11;

impl CommandScope {
    /// Every scope, narrowest first.
    pub const ALL: [CommandScope; 3] =
        [CommandScope::Read, CommandScope::Operate, CommandScope::All];

    /// The narrowest scope that allows a browser to send `package_type`.
    pub fn required_for(package_type: u32) -> CommandScope {
        match package_type {
            t if t <= LAST_MANAGEMENT_TYPE => CommandScope::Read,
            cmd::USER_LOGIN
            | cmd::USER_EASY_LOGIN_LOCAL
            | cmd::USER_LOGIN_LOCAL
            | cmd::USER_LOGIN_LOCAL_STAGE2
            | cmd::USER_LOGOFF
            | cmd::USER_GET_HOST_HW_INFO
            | cmd::DIR_GET_VM_LIST
            | cmd::GET_VM_INFO
            | cmd::USER_CANCEL_OPERATION
            | cmd::ATTACH_TO_LOST_TASK
            | cmd::USER_PING => CommandScope::Read,
            cmd::VM_START
            | cmd::VM_STOP
            | cmd::VM_RESET
            | cmd::VM_PAUSE
            | cmd::VM_SUSPEND
            | cmd::VM_RESUME
            | cmd::VM_START_EX
            | cmd::VM_RESTART_GUEST => CommandScope::Operate,
            _ => CommandScope::All,
        }
    }

    /// Whether this scope lets a browser send `package_type`.
    pub fn allows(self, package_type: u32) -> bool {
        CommandScope::required_for(package_type) <= self
    }

    /// The narrower of two scopes.
    pub fn narrower(self, other: CommandScope) -> CommandScope {
        self.min(other)
    }

    /// The stable name (`read`, `operate`, `all`), as configured and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandScope::Read => "read",
            CommandScope::Operate => "operate",
            CommandScope::All => "all",
        }
    }

    /// The scope of that name.
    pub fn parse(name: &str) -> Option<CommandScope> {
        CommandScope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for CommandScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_the_spec() {
        let read = [
            10, 2039, 2186, 2040, 2041, 2042, 2051, 2029, 2062, 2053, 2090, 2052,
        ];
        let operate = [1001, 1002, 1006, 1007, 1008, 1009, 1036, 1039];
        let all = [1003, 1010, 2000, 2008, 2125, 9001, 5001, 3003, 0xFFFF_FFFF];
        for t in read {
            assert_eq!(CommandScope::required_for(t), CommandScope::Read, "{t}");
            assert!(CommandScope::Read.allows(t));
        }
        for t in operate {
            assert_eq!(CommandScope::required_for(t), CommandScope::Operate, "{t}");
            assert!(!CommandScope::Read.allows(t) && CommandScope::Operate.allows(t));
        }
        for t in all {
            assert!(
                !CommandScope::Operate.allows(t) && CommandScope::All.allows(t),
                "{t}"
            );
        }
    }

    #[test]
    fn the_narrower_scope_applies_and_names_round_trip() {
        assert_eq!(
            CommandScope::All.narrower(CommandScope::Read),
            CommandScope::Read
        );
        assert_eq!(
            CommandScope::Operate.narrower(CommandScope::All),
            CommandScope::Operate
        );
        assert_eq!(CommandScope::default(), CommandScope::All);
        for s in CommandScope::ALL {
            assert_eq!(CommandScope::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(CommandScope::parse("Read"), None);
    }
}
