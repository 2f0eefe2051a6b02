//! The relay's rules for one upstream connection, sans-I/O: packages and `now` in, verdicts,
//! bytes to send, events and timer deadlines out (quinn-proto's `Connection` is the model:
//! `handle_*`, `poll_timeout`, `handle_timeout`, `poll_event`). No socket, no task, no clock:
//! every rule here is unit-tested with virtual time, and the tokio shell (`link`) only drives
//! it.
//!
//! What the rules decide:
//! - a package from the browser: well-formed, from this connection (its sender UUID), a command
//!   inside the connection's command scope (`[policy] scope` narrowed by the ticket's: a
//!   command outside it is refused with `command_refused` and the connection goes on), not a
//!   refused local login, and for a login the proxy's own checks (user name length, throttles,
//!   the previous-session rule; see [`RelayRules::handle_browser_package`]). The throttles'
//!   buckets are shared state (in memory, or a cluster's Redis): a login comes back as a
//!   [`LoginGate`] that names the buckets to ask about in turn, and
//!   [`RelayRules::finish_login`] decides from the answers;
//! - a package from the service: login bookkeeping (a successful login reply marks the
//!   connection logged in and spends a granted restore proof);
//! - the timers: the maximum lifetime, the idle timeout (no IO package either way; heartbeats
//!   do not count), the login deadline (no successful login within `login_deadline_ms` of
//!   `opened`), and while detached the resume window.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{package_event, LoginLocalRequest, LoginRequest};
use prl_protocol::package::{Limits, Package, MAX_BUFFERS, MNG_HEARTBEAT};
use prl_protocol::relay::{RelayError, RelayErrorKind};
use prl_protocol::scope::CommandScope;
use prl_protocol::{parse_uuid, Uuid};

use crate::config::LimitsConfig;
use crate::limits::{client_key, user_key, MAX_USER_NAME_BYTES};
use crate::login::{login_outcome, LoginOutcome};
use crate::shared_state::{RestoreRefusal, ThrottleKey, Unavailable};

use super::err;

/// What the `open` of this connection proved about earlier sessions (its `restore` field).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restore {
    /// No `restore` in the open.
    Absent,
    /// A valid proof: logins on this connection may name this session as the previous one.
    Granted(Uuid),
    /// The granted restore succeeded (a login on this connection succeeded): spent.
    Used,
    /// The proof was not accepted.
    Refused(RestoreRefusal),
}

impl fmt::Debug for Restore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restore::Absent => f.write_str("Absent"),
            Restore::Granted(_) => f.write_str("Granted(<redacted>)"),
            Restore::Used => f.write_str("Used"),
            Restore::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

/// The fixed facts and limits the rules of one connection work with.
#[derive(Debug, Clone)]
pub(crate) struct RulesConfig {
    /// The upstream connection's UUID (= the service session UUID once logged in).
    pub(crate) conn_uuid: Uuid,
    /// The browser's address (throttle key).
    pub(crate) client_ip: IpAddr,
    /// `policy.local_login`.
    pub(crate) local_login: bool,
    /// Largest package the browser may send.
    pub(crate) max_message_bytes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) login_deadline: Duration,
    /// What the open proved.
    pub(crate) restore: Restore,
    /// What the browser may send (the narrower of `[policy] scope` and the ticket's).
    pub(crate) scope: CommandScope,
}

impl RulesConfig {
    pub(crate) fn from_limits(
        limits: &LimitsConfig,
        conn_uuid: Uuid,
        client_ip: IpAddr,
        local_login: bool,
        restore: Restore,
    ) -> RulesConfig {
        RulesConfig {
            conn_uuid,
            client_ip,
            local_login,
            max_message_bytes: limits.max_message_bytes,
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            max_lifetime: Duration::from_millis(limits.max_lifetime_ms),
            login_deadline: Duration::from_millis(limits.login_deadline_ms),
            restore,
            scope: CommandScope::All,
        }
    }
}

/// What to do with a package from the browser that the rules accept.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Send it to the service.
    Forward(Box<Package>),
    /// Drop it (a browser heartbeat: the proxy sends the service its own).
    Ignore,
    /// Do not forward it: send the browser this `command_refused` error and go on (the
    /// connection and the session stay up).
    Refuse(RelayError),
    /// A login: send it once the throttles admit it (drive the gate, then
    /// [`RelayRules::finish_login`]).
    Login(Box<Package>, LoginGate),
}

/// A login the proxy's own checks passed so far, waiting for the login throttles. The order
/// keeps the per-user throttle from becoming a lockout tool: the per-address bucket first
/// (bounds probing from one address), then the previous-session rule (decided already), and
/// only for a login that will reach the service, the per-user bucket. [`LoginGate::next`]
/// names the bucket to take a token from; [`LoginGate::record`] takes the answer.
#[derive(Debug)]
pub(crate) struct LoginGate {
    ip: IpAddr,
    user: Option<[u8; 16]>,
    previous: Result<(), &'static str>,
    request: Uuid,
    step: GateStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateStep {
    Ip,
    User,
    Done(GateOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateOutcome {
    Admitted,
    ThrottledIp,
    ThrottledUser,
    PreviousRefused(&'static str),
    Unavailable,
}

impl LoginGate {
    /// The bucket to take a token from next, if any.
    pub(crate) fn next(&self) -> Option<ThrottleKey> {
        match self.step {
            GateStep::Ip => Some(ThrottleKey::Ip(self.ip)),
            GateStep::User => self.user.map(ThrottleKey::User),
            GateStep::Done(_) => None,
        }
    }

    /// The answer for the bucket [`LoginGate::next`] named: a token taken, none left, or the
    /// shared state could not be asked (the login is refused: fail closed).
    pub(crate) fn record(&mut self, answer: Result<bool, Unavailable>) {
        let done = |o| GateStep::Done(o);
        self.step = match (self.step, answer) {
            (GateStep::Done(o), _) => done(o),
            (_, Err(_)) => done(GateOutcome::Unavailable),
            (GateStep::Ip, Ok(false)) => done(GateOutcome::ThrottledIp),
            (GateStep::Ip, Ok(true)) => match (self.previous, self.user) {
                (Err(why), _) => done(GateOutcome::PreviousRefused(why)),
                (Ok(()), Some(_)) => GateStep::User,
                (Ok(()), None) => done(GateOutcome::Admitted),
            },
            (GateStep::User, Ok(false)) => done(GateOutcome::ThrottledUser),
            (GateStep::User, Ok(true)) => done(GateOutcome::Admitted),
        };
    }
}

/// A timer that ended the connection (or, while detached, its wait for a resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// `limits.max_lifetime_ms` after `opened`.
    Lifetime,
    /// `limits.idle_timeout_ms` without an IO package either way (attached only).
    Idle,
    /// No successful login within `limits.login_deadline_ms` of `opened`.
    LoginDeadline,
    /// Detached for `resume.window_ms` without a resume.
    ResumeWindow,
}

impl Expired {
    /// For logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Expired::Lifetime => "maximum session lifetime reached",
            Expired::Idle => "idle timeout: no package either way",
            Expired::LoginDeadline => "no login within the login deadline",
            Expired::ResumeWindow => "resume window expired",
        }
    }
}

/// Something the shell counts or logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A login the proxy refused itself (local login disabled, malformed, name too long, or a
    /// previous session this connection may not name).
    LoginRefused,
    /// A login refused by a throttle.
    LoginThrottled,
    /// A login refused because the throttles could not be asked (shared state unavailable).
    LoginUnavailable,
    /// A login naming a previous session was refused (why; follows `LoginRefused`).
    PreviousSessionRefused(&'static str),
    /// The reply to a forwarded login arrived, `elapsed` after the request.
    LoginReplied {
        outcome: LoginOutcome,
        elapsed: Duration,
    },
    /// The first successful login on this connection.
    LoggedIn,
    /// A command outside the connection's scope was refused (its package type).
    CommandRefused(u32),
}

/// The rules of one upstream connection.
#[derive(Debug)]
pub(crate) struct RelayRules {
    config: RulesConfig,
    lifetime_at: Instant,
    login_deadline_at: Instant,
    last_activity: Instant,
    /// While detached: when the resume window ends.
    detached_until: Option<Instant>,
    /// Forwarded logins waiting for their reply (request UUID, when forwarded); at most 8.
    pending_logins: VecDeque<(Uuid, Instant)>,
    /// A login on this connection succeeded: a service session named by `conn_uuid` exists.
    logged_in: bool,
    restore: Restore,
    events: VecDeque<Event>,
}

impl RelayRules {
    /// The rules of a connection opened (`opened` sent) at `now`.
    pub(crate) fn new(config: RulesConfig, now: Instant) -> RelayRules {
        RelayRules {
            lifetime_at: now + config.max_lifetime,
            login_deadline_at: now + config.login_deadline,
            last_activity: now,
            detached_until: None,
            pending_logins: VecDeque::new(),
            logged_in: false,
            restore: config.restore,
            events: VecDeque::new(),
            config,
        }
    }

    /// A login on this connection has succeeded.
    pub(crate) fn logged_in(&self) -> bool {
        self.logged_in
    }

    /// Whether the connection is detached (waiting for a resume).
    #[cfg(test)]
    pub(crate) fn is_detached(&self) -> bool {
        self.detached_until.is_some()
    }

    /// The next event the shell should count or log.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`RelayRules::handle_timeout`] must next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let mut at = self.lifetime_at;
        match self.detached_until {
            Some(until) => at = at.min(until),
            None => {
                at = at.min(self.last_activity + self.config.idle_timeout);
                if !self.logged_in {
                    at = at.min(self.login_deadline_at);
                }
            }
        }
        Some(at)
    }

    /// The timer that has expired at `now`, if any: the connection ends.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Expired> {
        if now >= self.lifetime_at {
            return Some(Expired::Lifetime);
        }
        match self.detached_until {
            Some(until) => (now >= until).then_some(Expired::ResumeWindow),
            None if now >= self.last_activity + self.config.idle_timeout => Some(Expired::Idle),
            None if !self.logged_in && now >= self.login_deadline_at => {
                Some(Expired::LoginDeadline)
            }
            None => None,
        }
    }

    /// The error the browser gets for an expired timer (attached).
    pub(crate) fn expiry_error(&self, expired: Expired) -> RelayError {
        match expired {
            Expired::LoginDeadline => err(
                RelayErrorKind::LimitReached,
                format!(
                    "no login within {} ms of opened",
                    self.config.login_deadline.as_millis()
                ),
            ),
            other => err(RelayErrorKind::LimitReached, other.reason()),
        }
    }

    /// The browser went away at `now`; the connection waits `window` for a resume.
    pub(crate) fn handle_detached(&mut self, now: Instant, window: Duration) {
        self.detached_until = Some(now + window);
    }

    /// The browser resumed at `now`.
    pub(crate) fn handle_resumed(&mut self, now: Instant) {
        self.detached_until = None;
        self.last_activity = now;
    }

    /// A binary message from the browser at `now`: what to forward, or the error that ends
    /// the connection.
    pub(crate) fn handle_browser_package(
        &mut self,
        now: Instant,
        data: &[u8],
    ) -> Result<Verdict, RelayError> {
        let limits = Limits {
            max_package_len: self.config.max_message_bytes,
            max_buffers: MAX_BUFFERS,
        };
        let mut p = Package::decode(data, &limits).map_err(|e| {
            err(
                RelayErrorKind::ProtocolViolation,
                format!("malformed package from the browser: {e}"),
            )
        })?;
        let t = p.header.package_type;
        if t == MNG_HEARTBEAT {
            return Ok(Verdict::Ignore);
        }
        let conn_uuid = self.config.conn_uuid;
        if p.header.sender_uuid.is_nil() {
            p.header.sender_uuid = conn_uuid;
        } else if p.header.sender_uuid != conn_uuid {
            return Err(err(
                RelayErrorKind::ProtocolViolation,
                "package sender is not this connection's uuid",
            ));
        }
        if !self.config.scope.allows(t) {
            // Refused before it reaches the service; the browser may go on.
            self.last_activity = now;
            self.events.push_back(Event::CommandRefused(t));
            return Ok(Verdict::Refuse(RelayError::command_refused(
                t,
                p.header.uuid,
                self.config.scope,
            )));
        }
        match t {
            cmd::USER_EASY_LOGIN_LOCAL | cmd::USER_LOGIN_LOCAL | cmd::USER_LOGIN_LOCAL_STAGE2
                if !self.config.local_login =>
            {
                self.events.push_back(Event::LoginRefused);
                return Err(err(
                    RelayErrorKind::PolicyDenied,
                    "local login is disabled on this proxy",
                ));
            }
            cmd::USER_LOGIN | cmd::USER_EASY_LOGIN_LOCAL => {
                let gate = self.check_login(&p)?;
                return Ok(Verdict::Login(Box::new(p), gate));
            }
            _ => {}
        }
        self.last_activity = now;
        Ok(Verdict::Forward(Box::new(p)))
    }

    /// The proxy's own checks of a login that need no throttle (malformed, name too long) and
    /// the previous-session rule's answer, for the gate to apply in order.
    fn check_login(&mut self, p: &Package) -> Result<LoginGate, RelayError> {
        let login = match read_login(p) {
            Ok(l) => l,
            Err(e) => {
                self.events.push_back(Event::LoginRefused);
                return Err(e);
            }
        };
        let previous = if login.prev_session.trim().is_empty() {
            Ok(())
        } else {
            self.previous_session_allowed(&login.prev_session)
        };
        Ok(LoginGate {
            ip: client_key(self.config.client_ip),
            // Charged only for a login the service will see: the proxy's own refusals (name
            // length, malformed request, previous session) must not let anyone spend another
            // user's bucket and lock that user out without reaching the service.
            user: login.user_key,
            previous,
            request: p.header.uuid,
            step: GateStep::Ip,
        })
    }

    /// The login `gate` stood for, at `now`, after the throttles answered: forward it
    /// (`Ok`), or the error that ends the connection.
    pub(crate) fn finish_login(&mut self, now: Instant, gate: LoginGate) -> Result<(), RelayError> {
        let outcome = match gate.step {
            GateStep::Done(o) => o,
            // Not every bucket was asked: nothing proves the login may pass.
            _ => GateOutcome::Unavailable,
        };
        match outcome {
            GateOutcome::Admitted => {
                if !gate.request.is_nil() {
                    if self.pending_logins.len() >= 8 {
                        self.pending_logins.pop_front();
                    }
                    self.pending_logins.push_back((gate.request, now));
                }
                self.last_activity = now;
                Ok(())
            }
            GateOutcome::ThrottledIp => {
                self.events.push_back(Event::LoginThrottled);
                Err(err(
                    RelayErrorKind::LimitReached,
                    "too many login attempts from this address; try again later",
                ))
            }
            GateOutcome::ThrottledUser => {
                self.events.push_back(Event::LoginThrottled);
                Err(err(
                    RelayErrorKind::LimitReached,
                    "too many login attempts for this user; try again later",
                ))
            }
            GateOutcome::PreviousRefused(why) => {
                self.events.push_back(Event::LoginRefused);
                self.events.push_back(Event::PreviousSessionRefused(why));
                Err(err(
                    RelayErrorKind::RestoreRefused,
                    format!(
                        "login names a previous session this browser session cannot restore: {why}"
                    ),
                ))
            }
            GateOutcome::Unavailable => {
                self.events.push_back(Event::LoginUnavailable);
                Err(err(
                    RelayErrorKind::StateUnavailable,
                    "the login throttles cannot be checked (the shared state is unavailable); \
                     try again later",
                ))
            }
        }
    }

    /// The service lets a login naming a live session take it over without a password (and
    /// one naming a dead session inherit its lost tasks). Through the proxy a login may name
    /// only this connection's own session (the public-key login's second step, a relogin), or
    /// the session whose restore proof this connection's `open` presented (see
    /// `crate::registry`).
    fn previous_session_allowed(&self, prev: &str) -> Result<(), &'static str> {
        let uuid = parse_uuid(prev).ok_or("the previous session id is not a uuid")?;
        if uuid == self.config.conn_uuid {
            return Ok(());
        }
        match self.restore {
            Restore::Granted(granted) if granted == uuid => Ok(()),
            Restore::Granted(_) => {
                Err("the restore proof of this connection is for another session")
            }
            Restore::Used => Err("the restore proof of this connection was already used"),
            Restore::Absent => Err("the open carried no restore proof"),
            Restore::Refused(_) => Err(
                "the restore proof is unknown, used, superseded, expired or bound to another origin",
            ),
        }
    }

    /// A package from the service at `now`: login bookkeeping; the bytes to send the browser.
    pub(crate) fn handle_service_package(&mut self, now: Instant, p: &Package) -> Bytes {
        if p.header.package_type != MNG_HEARTBEAT {
            // Service traffic counts as activity too (heartbeats do not).
            self.last_activity = now;
        }
        if p.header.is_response() {
            if let Some(i) = self
                .pending_logins
                .iter()
                .position(|(u, _)| *u == p.header.parent_uuid)
            {
                let sent = self.pending_logins.remove(i).map_or(now, |(_, t)| t);
                let outcome = login_outcome(p);
                self.events.push_back(Event::LoginReplied {
                    outcome,
                    elapsed: now.saturating_duration_since(sent),
                });
                if outcome == LoginOutcome::Success {
                    if !self.logged_in {
                        self.events.push_back(Event::LoggedIn);
                    }
                    self.logged_in = true;
                    if matches!(self.restore, Restore::Granted(_)) {
                        // Consumed on use.
                        self.restore = Restore::Used;
                    }
                }
            }
        }
        Bytes::from(p.encode())
    }
}

/// Who a login names, as far as the proxy's checks need it.
#[derive(Debug)]
struct LoginClaim {
    /// The throttle key of the user name (none for a local login).
    user_key: Option<[u8; 16]>,
    /// The previous session it names (may be empty).
    prev_session: String,
}

/// The one place the proxy reads a login request (2039, 2186): the user name (its length is
/// checked here) and the previous session. A remote login is only peeked at
/// ([`LoginRequest::peek`]): the proxy never decodes the password, so what the service itself
/// refuses (an over-long password: `PRL_ERR_INVALID_ARG`) reaches the browser as the service's
/// answer.
fn read_login(p: &Package) -> Result<LoginClaim, RelayError> {
    let malformed = |_| err(RelayErrorKind::ProtocolViolation, "malformed login request");
    if p.header.package_type == cmd::USER_EASY_LOGIN_LOCAL {
        let local = package_event(p)
            .and_then(|event| LoginLocalRequest::from_event(&event))
            .map_err(malformed)?;
        return Ok(LoginClaim {
            user_key: None,
            prev_session: local.prev_session_uuid,
        });
    }
    let login = LoginRequest::peek(p).map_err(malformed)?;
    if login.user.len() > MAX_USER_NAME_BYTES {
        return Err(err(
            RelayErrorKind::LimitReached,
            format!(
                "login user name too long: {} bytes, the limit is {MAX_USER_NAME_BYTES}",
                login.user.len()
            ),
        ));
    }
    Ok(LoginClaim {
        user_key: Some(user_key(&login.user)),
        prev_session: login.prev_session_uuid.clone(),
    })
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
