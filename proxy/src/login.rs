//! Recognising login replies in the package stream (for metrics).

use prl_protocol::commands::Reply;
use prl_protocol::package::Package;

/// Outcome of a reply to a login request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A full login reply with a session.
    Success,
    /// Success without a session yet (first step of a public-key login).
    Intermediate,
    /// An error code or an unparseable reply.
    Failure,
}

/// Classify the reply to a login request.
pub fn login_outcome(reply: &Package) -> LoginOutcome {
    match Reply::parse(reply) {
        Ok(r) if !r.code.is_error() && r.login.is_some() => LoginOutcome::Success,
        Ok(r) if !r.code.is_error() => LoginOutcome::Intermediate,
        _ => LoginOutcome::Failure,
    }
}
