//! Fault injection: ways the simulator can misbehave on purpose, per run or per connection.

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;

/// A set of faults. The default is none.
///
/// Spelled on the command line as `--fault NAME[=VALUE]` (repeatable):
///
/// | fault | effect |
/// |---|---|
/// | `refuse` | stop listening: connecting is refused by the OS (as with no service running) |
/// | `close-on-accept` | accept, then close right away, before any byte is sent |
/// | `stall-handshake` | accept but never answer the plaintext handshake |
/// | `stall-tls` | finish the plaintext handshake, never answer the TLS handshake |
/// | `delay=MS` | delay every reply by MS milliseconds |
/// | `drop-after=N` | close the connection right after handling the N-th package received |
/// | `garbage` | instead of each reply, write 64 bytes that are no valid record |
/// | `bad-crc` | send each reply with a corrupted package header CRC |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Do not listen: connecting is refused (`ECONNREFUSED`). Per connection (where the
    /// connection is already accepted) it acts as `close_on_accept` right after the hello.
    pub refuse: bool,
    /// Accept, then close at once (the SDK reports `PRL_ERR_HANDSHAKE_FAILED`).
    pub close_on_accept: bool,
    /// Never answer the plaintext handshake.
    pub stall_handshake: bool,
    /// Never answer the TLS handshake.
    pub stall_tls: bool,
    /// Delay every reply.
    pub reply_delay: Option<Duration>,
    /// Close after handling this many packages (heartbeats are not counted).
    pub drop_after: Option<u64>,
    /// Replace replies by garbage bytes.
    pub garbage: bool,
    /// Corrupt the header CRC of replies.
    pub bad_crc: bool,
}

impl Faults {
    /// No fault.
    pub fn none() -> Self {
        Faults::default()
    }

    /// True when no fault is set.
    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }

    /// Applies one `NAME[=VALUE]` spec.
    pub fn apply(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        let number = |what: &str| -> Result<u64, ConfigError> {
            let v = value.ok_or_else(|| {
                ConfigError::Fault(format!("{name} needs a value: {name}={what}"))
            })?;
            v.parse::<u64>()
                .map_err(|_| ConfigError::Fault(format!("{name}: {v:?} is not a number")))
        };
        let flag = |set: &mut bool| -> Result<(), ConfigError> {
            if value.is_some() {
                return Err(ConfigError::Fault(format!("{name} takes no value")));
            }
            *set = true;
            Ok(())
        };
        match name {
            "refuse" => flag(&mut self.refuse)?,
            "close-on-accept" => flag(&mut self.close_on_accept)?,
            "stall-handshake" => flag(&mut self.stall_handshake)?,
            "stall-tls" => flag(&mut self.stall_tls)?,
            "garbage" => flag(&mut self.garbage)?,
            "bad-crc" => flag(&mut self.bad_crc)?,
            "delay" => self.reply_delay = Some(Duration::from_millis(number("MS")?)),
            "drop-after" => self.drop_after = Some(number("N")?),
            other => {
                return Err(ConfigError::Fault(format!(
                    "unknown fault {other:?}: expected refuse, close-on-accept, \
                     stall-handshake, stall-tls, delay=MS, drop-after=N, garbage or bad-crc"
                )))
            }
        }
        Ok(())
    }

    /// Parses a list of specs.
    pub fn parse<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Self, ConfigError> {
        let mut f = Faults::default();
        for s in specs {
            f.apply(s)?;
        }
        Ok(f)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.refuse {
            parts.push("refuse".to_owned());
        }
        if self.close_on_accept {
            parts.push("close-on-accept".to_owned());
        }
        if self.stall_handshake {
            parts.push("stall-handshake".to_owned());
        }
        if self.stall_tls {
            parts.push("stall-tls".to_owned());
        }
        if let Some(d) = self.reply_delay {
            parts.push(format!("delay={}", d.as_millis()));
        }
        if let Some(n) = self.drop_after {
            parts.push(format!("drop-after={n}"));
        }
        if self.garbage {
            parts.push("garbage".to_owned());
        }
        if self.bad_crc {
            parts.push("bad-crc".to_owned());
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_display() {
        let f = Faults::parse(["delay=250", "drop-after=3", "bad-crc"]).unwrap();
        assert_eq!(f.reply_delay, Some(Duration::from_millis(250)));
        assert_eq!(f.drop_after, Some(3));
        assert!(f.bad_crc && !f.garbage);
        assert_eq!(f.to_string(), "delay=250,drop-after=3,bad-crc");
        assert_eq!(Faults::none().to_string(), "none");
        let f = Faults::parse(["refuse", "close-on-accept"]).unwrap();
        assert!(f.refuse && f.close_on_accept);
        assert_eq!(f.to_string(), "refuse,close-on-accept");
        assert!(Faults::none().is_none());
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let e = Faults::parse(["explode"]).unwrap_err();
        assert_eq!(e.kind(), "fault");
        assert!(e.to_string().contains("\"explode\""), "{e}");
        assert!(Faults::parse(["delay"])
            .unwrap_err()
            .to_string()
            .contains("delay=MS"));
        assert!(Faults::parse(["delay=soon"]).is_err());
        assert!(Faults::parse(["refuse=1"])
            .unwrap_err()
            .to_string()
            .contains("no value"));
    }
}
