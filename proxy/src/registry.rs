//! The resume registry of this process: upstream connections kept for resume (parked, by
//! resume-token hash). Parked links are objects of this process, so they never leave it; what
//! other instances must know about them (where a link is parked, its restore proof) goes
//! through [`crate::shared_state`]. Generic over what is parked, so it depends on nothing of
//! the relay.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::util::Token;

/// How a resumer takes a detached session: it sends a reply channel, the detached task
/// answers with the session.
pub(crate) type Claim<S> = oneshot::Sender<oneshot::Sender<S>>;

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The resume tokens that name one session: the current one and, until the browser has shown
/// that it received the current one (by sending a package after its resume), the one it
/// presented to resume. A `resumed` message lost with the connection that carried it would
/// otherwise leave the browser holding only a spent token.
#[derive(Debug, Clone, Copy)]
pub struct TokenKeys<'a> {
    /// The token most recently handed to the browser.
    pub current: &'a Token,
    /// The token it resumed with, until it showed it got `current`.
    pub previous: Option<&'a Token>,
}

impl TokenKeys<'_> {
    fn hashes(&self) -> (TokenHash, Option<TokenHash>) {
        (
            hash(self.current.expose()),
            self.previous.map(|t| hash(t.expose())),
        )
    }
}

/// Registry of parked (detached) upstream connections `T` (by resume-token hash).
#[derive(Debug)]
pub struct ResumeRegistry<T> {
    detached: Mutex<Parked<T>>,
}

/// Parked sessions: each under the hash of its current token, and through `aliases` under
/// the hash of the token it was resumed with, while that one is still valid.
#[derive(Debug)]
struct Parked<T> {
    by_token: HashMap<TokenHash, Detached<T>>,
    /// Previous-token hash -> current-token hash.
    aliases: HashMap<TokenHash, TokenHash>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Parked {
            by_token: HashMap::new(),
            aliases: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Detached<T> {
    claim: Claim<T>,
    /// The previous-token hash that also names this session, if any.
    alias: Option<TokenHash>,
}

impl<T> Parked<T> {
    /// Remove the session `key` (a current-token hash) and its alias.
    fn remove(&mut self, key: &TokenHash) -> Option<Detached<T>> {
        let d = self.by_token.remove(key)?;
        if let Some(alias) = &d.alias {
            self.aliases.remove(alias);
        }
        Some(d)
    }
}

impl<T> Default for ResumeRegistry<T> {
    fn default() -> Self {
        ResumeRegistry::new()
    }
}

impl<T> ResumeRegistry<T> {
    /// Empty.
    pub fn new() -> ResumeRegistry<T> {
        ResumeRegistry {
            detached: Mutex::new(Parked::default()),
        }
    }

    /// Park a detached session under its token(s); false if `max` are already parked.
    pub(crate) fn park(&self, keys: TokenKeys<'_>, claim: Claim<T>, max: usize) -> bool {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<TokenHash> = g
            .by_token
            .iter()
            .filter(|(_, d)| d.claim.is_closed())
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            g.remove(k);
        }
        if g.by_token.len() >= max {
            return false;
        }
        let (current, alias) = keys.hashes();
        if let Some(alias) = alias {
            g.aliases.insert(alias, current);
        }
        g.by_token.insert(current, Detached { claim, alias });
        true
    }

    /// Take the claim of a parked session by either of its tokens (single use: every key of
    /// the session is removed).
    pub(crate) fn take(&self, token: &str) -> Option<Claim<T>> {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        let h = hash(token);
        let key = g.aliases.get(&h).copied().unwrap_or(h);
        g.remove(&key).map(|d| d.claim)
    }

    /// Forget a parked session (window expired).
    pub(crate) fn unpark(&self, keys: TokenKeys<'_>) {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&keys.hashes().0);
    }

    /// Number of parked sessions.
    pub fn detached_count(&self) -> usize {
        let g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.by_token.values().filter(|d| !d.claim.is_closed()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(t: &Token) -> TokenKeys<'_> {
        TokenKeys {
            current: t,
            previous: None,
        }
    }

    type Registry = ResumeRegistry<()>;

    #[test]
    fn a_parked_session_is_claimed_by_either_token_once_and_counted_once() {
        let r = Registry::new();
        let (new, old) = (Token::generate(), Token::generate());
        let keys = TokenKeys {
            current: &new,
            previous: Some(&old),
        };
        let (tx, _rx) = oneshot::channel();
        assert!(r.park(keys, tx, 2));
        assert_eq!(r.detached_count(), 1);
        // The cap counts sessions, not keys.
        let other = Token::generate();
        let (tx2, _rx2) = oneshot::channel();
        assert!(r.park(one(&other), tx2, 2));
        let (tx3, _rx3) = oneshot::channel();
        assert!(!r.park(one(&Token::generate()), tx3, 2));
        assert!(r.take(old.expose()).is_some());
        assert!(r.take(new.expose()).is_none());
        assert!(r.take(old.expose()).is_none());
        assert_eq!(r.detached_count(), 1);
        r.unpark(one(&other));
        assert_eq!(r.detached_count(), 0);
    }
}
