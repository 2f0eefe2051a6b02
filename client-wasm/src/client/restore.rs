//! What happens when a connection is lost, and automatic restore.
//!
//! A lost connection of a logged-in client with `autoRestore` on keeps the session and its
//! pending jobs and goes `unstable`; [`run`] then retries with jittered exponential backoff:
//! first resuming through the proxy (same session, nothing lost), else logging in again with
//! the previous session UUID (its restore proof), else, when the proxy refuses that proof, a
//! plain login to a new session. [`Attempts`] decides when it gives up: after
//! `backoff::MAX_ATTEMPTS` attempts, or at once on a failure another attempt cannot fix; then
//! the client is `disconnected`, the `statechange` carries the error, and the login with its
//! credentials is forgotten.

use gloo_timers::future::TimeoutFuture;
use prl_protocol::parse_uuid;
use prl_protocol::relay::{
    ClientMessage, ProxyMessage, RelayErrorKind, ResumeRequest, Secret, RELAY_VERSION,
};

use super::connection::{
    establish, install, relay_error, relay_exchange, take_token, Bound, LoginPlan,
};
use super::state::{now_ms, Client, Note, Phase, ResumeInfo};
use crate::backoff;
use crate::error::{ClientError, Op};
use crate::js;

/// How long a resume waits for the proxy's answer. A resume is not a connect: the session
/// stays logged in meanwhile and the proxy answers from what it holds, without an upstream
/// connect.
const RESUME_ANSWER_MS: u32 = 10_000;

/// Failures that another attempt cannot fix.
fn permanent(e: &ClientError) -> bool {
    match e {
        // `authentication` and `service`: the service said no.
        ClientError::Service { .. }
        | ClientError::InvalidArgument(_)
        | ClientError::InvalidState { .. } => true,
        ClientError::Relay { kind, .. } => matches!(
            kind,
            RelayErrorKind::PolicyDenied
                | RelayErrorKind::OriginDenied
                | RelayErrorKind::TicketInvalid
                | RelayErrorKind::WrongProtocolVersion
                | RelayErrorKind::HandshakeFailed
        ),
        _ => false,
    }
}

/// When restore gives up (sans-I/O: the delays are returned, not slept).
#[derive(Debug, Default)]
pub(super) struct Attempts {
    made: u32,
    last_error: Option<ClientError>,
}

impl Attempts {
    /// The delay before the next attempt (`unit`: a uniform random value in [0, 1)), or
    /// `None` when the attempts ran out.
    pub(super) fn next_delay(&mut self, unit: f64) -> Option<u32> {
        if self.made >= backoff::MAX_ATTEMPTS {
            return None;
        }
        let delay = backoff::delay_ms(self.made, unit);
        self.made += 1;
        Some(delay)
    }

    /// Records a failed attempt.
    pub(super) fn failed(&mut self, e: ClientError) {
        self.last_error = Some(e);
    }

    /// Whether the last failure is one another attempt cannot fix.
    pub(super) fn hopeless(&self) -> bool {
        self.last_error.as_ref().is_some_and(permanent)
    }

    /// Why restore gave up.
    pub(super) fn reason(self) -> ClientError {
        self.last_error
            .unwrap_or_else(|| ClientError::closed(Op::Connect, "restore gave up"))
    }
}

/// The connection of `generation` is gone (an [`super::connection::OnLost`]).
pub(super) fn connection_lost(client: &Client, generation: u64, err: ClientError) {
    let restore = client.with(|state| {
        let Some(conn) = state.conn.take_if(|c| c.generation == generation) else {
            return false;
        };
        // While logging off, the logoff's own continuation ends the session.
        let logged_in = state.phase() == Phase::Connected && state.login.is_some();
        if logged_in && state.opts.auto_restore {
            // Keep the session and its pending jobs: a resume through the proxy continues it.
            state.resume = Some(ResumeInfo {
                token: conn.resume_token.clone(),
                window_ms: conn.resume_window_ms,
                received: conn.received,
                lost_at_ms: now_ms(),
                instance: conn.instance.clone(),
            });
            drop(conn);
            state.set_phase(Phase::Unstable);
            return true;
        }
        drop(conn);
        state.teardown(err);
        if logged_in {
            state.forget_login();
            state.set_phase(Phase::Disconnected);
        }
        false
    });
    if restore {
        wasm_bindgen_futures::spawn_local(run(client.clone()));
    }
}

/// What one resume exchange found.
#[derive(Debug)]
enum Resume {
    /// Resumed and installed.
    Done,
    /// The connection is gone (the proxy's window ended, or it never had it).
    Gone,
    /// Another instance of a cluster holds it: its public URL.
    Elsewhere(Option<String>),
}

/// One resume exchange at `url` (the proxy's URL when `None`).
async fn resume_at(
    client: &Client,
    resume: &ResumeInfo,
    url: Option<&str>,
) -> Result<Resume, ClientError> {
    let op = Op::Connect;
    let message = ClientMessage::Resume(ResumeRequest {
        version: RELAY_VERSION,
        token: Secret(resume.token.to_string()),
        received: resume.received,
    });
    let bound = Bound::Fixed(RESUME_ANSWER_MS);
    let (socket, rx, answer) = relay_exchange(client, message, op, bound, &mut None, url).await?;
    match answer {
        ProxyMessage::Resumed(mut r) => {
            let token = take_token(&mut r.resume_token);
            {
                // Every resume rotates the token: only the newest proves ownership.
                let mut state = client.borrow_mut();
                let session = state
                    .login
                    .as_ref()
                    .and_then(|l| parse_uuid(&l.session_uuid));
                if let Some(proof) = state.proof.as_mut().filter(|p| Some(p.session) == session) {
                    proof.token = token.clone();
                }
            }
            install(
                client,
                socket,
                rx,
                resume.received,
                token,
                resume.window_ms,
                r.instance.take(),
                connection_lost,
            );
            Ok(Resume::Done)
        }
        ProxyMessage::Error(e) if e.kind == RelayErrorKind::ResumeElsewhere => {
            Ok(Resume::Elsewhere(e.instance))
        }
        ProxyMessage::Error(e)
            if matches!(
                e.kind,
                RelayErrorKind::ResumeFailed | RelayErrorKind::Closed
            ) =>
        {
            Ok(Resume::Gone)
        }
        ProxyMessage::Error(e) => Err(relay_error(op, e)),
        ProxyMessage::Opened(_) => Ok(Resume::Gone),
    }
}

/// Where a resume is sent, sans-I/O: [`ResumeRoute::next`] turns the outcome of one exchange
/// into the next step.
///
/// Through the proxy's URL first (in a cluster a balancer may send it to any instance). An
/// instance that does not hold the connection names the one that does (`resume_elsewhere`);
/// the client follows that once, directly, and only to the instance the connection itself
/// named in `opened` / `resumed`; an unreachable holder is gone (its browsers restore through
/// any instance). When the first attempt fails for a passing reason (the balancer, or the
/// shared state the instance it chose needs, is unavailable), the holder is asked directly
/// once too: it needs nothing shared to resume what it holds.
#[derive(Debug)]
struct ResumeRoute<'a> {
    /// The instance that holds the connection, as `opened` / `resumed` named it.
    holder: Option<&'a str>,
    /// Whether the holder has been asked directly.
    direct: bool,
    /// Why the first attempt failed, when the holder is then asked directly.
    failed: Option<ClientError>,
}

/// The next step of a [`ResumeRoute`].
#[derive(Debug, PartialEq)]
enum RouteStep<'a> {
    /// Resume at this instance's URL.
    Ask(&'a str),
    /// Done: `Ok(true)` resumed, `Ok(false)` no proxy has the connection any more (restore
    /// through any instance), `Err` transient (try again later).
    Finish(Result<bool, ClientError>),
}

impl<'a> ResumeRoute<'a> {
    /// A route whose first exchange goes to the proxy's URL.
    fn new(holder: Option<&'a str>) -> Self {
        Self {
            holder,
            direct: false,
            failed: None,
        }
    }

    fn next(&mut self, outcome: Result<Resume, ClientError>) -> RouteStep<'a> {
        let step = match (outcome, self.holder) {
            (Ok(Resume::Done), _) => RouteStep::Finish(Ok(true)),
            (Ok(Resume::Gone), _) => RouteStep::Finish(Ok(false)),
            (Ok(Resume::Elsewhere(url)), Some(holder))
                if !self.direct && url.as_deref() == Some(holder) =>
            {
                RouteStep::Ask(holder)
            }
            // Redirected to anywhere the connection never named, or twice: not followed.
            (Ok(Resume::Elsewhere(_)), _) => {
                RouteStep::Finish(self.failed.take().map_or(Ok(false), Err))
            }
            (Err(e), Some(holder)) if !self.direct => {
                self.failed = Some(e);
                RouteStep::Ask(holder)
            }
            // Sent to the holder, which is out of reach: it is gone.
            (Err(ClientError::ProxyUnreachable { .. }), _)
                if self.direct && self.failed.is_none() =>
            {
                RouteStep::Finish(Ok(false))
            }
            // The first failure stands: try again later.
            (Err(e), _) => RouteStep::Finish(Err(self.failed.take().unwrap_or(e))),
        };
        if matches!(step, RouteStep::Ask(_)) {
            self.direct = true;
        }
        step
    }
}

/// Tries to resume the kept upstream connection (see [`ResumeRoute`]). `Ok(true)`: resumed;
/// `Ok(false)`: no proxy has it any more (fall back to a new login); `Err`: transient, try
/// again later.
async fn try_resume(client: &Client, resume: &ResumeInfo) -> Result<bool, ClientError> {
    let mut route = ResumeRoute::new(resume.instance.as_deref());
    let mut url = None;
    loop {
        let outcome = resume_at(client, resume, url).await;
        match route.next(outcome) {
            RouteStep::Ask(next) => url = Some(next),
            RouteStep::Finish(result) => return result,
        }
    }
}

/// Automatic restore after an unexpected loss (see the module documentation).
async fn run(client: Client) {
    let mut attempts = Attempts::default();
    while let Some(delay) = attempts.next_delay(js_sys::Math::random()) {
        TimeoutFuture::new(delay).await;
        let plan = client.with(|state| {
            if !matches!(state.phase(), Phase::Unstable | Phase::Restoring) {
                return None;
            }
            let login = state.login.as_ref()?;
            let kept = (
                login.params.clone(),
                login.credentials.clone(),
                login.session_uuid.clone(),
            );
            state.set_phase(Phase::Restoring);
            let resume = state
                .resume
                .take()
                .filter(|r| now_ms() - r.lost_at_ms < f64::from(r.window_ms));
            Some((resume, kept))
        });
        let Some((resume, (params, credentials, old_session))) = plan else {
            return;
        };
        if let Some(resume) = resume {
            match try_resume(&client, &resume).await {
                Ok(true) => {
                    client.with(|state| {
                        state.set_phase(Phase::Connected);
                        state.notes.push(Note::Event(
                            "restored",
                            js::restored_detail("resumed", &old_session, &old_session, &[]),
                        ));
                    });
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    attempts.failed(e);
                    client.with(|state| {
                        state.resume = Some(resume);
                        state.set_phase(Phase::Unstable);
                    });
                    continue;
                }
            }
        }
        let Some(credentials) = credentials else {
            break;
        };
        // The old connection is gone for good: its pending jobs fail now.
        let proof = client.with(|state| {
            state.teardown(ClientError::closed(
                Op::Connect,
                "connection lost; the session was logged in again",
            ));
            state.proof_for(&old_session)
        });
        // Without a proof the proxy would refuse the previous session: log in afresh.
        let mut fresh = proof.is_none();
        let plan = LoginPlan {
            op: Op::Connect,
            params: &params,
            credentials: &credentials,
            prev_session: if fresh { "" } else { &old_session },
            proof,
        };
        let mut result = establish(&client, plan, &mut None, connection_lost).await;
        if let Err(ClientError::Relay {
            kind: RelayErrorKind::RestoreRefused,
            ..
        }) = &result
        {
            // The proxy no longer holds the proof (it restarted, or the proof expired): the
            // old session's lost tasks are out of reach, but a new session keeps the
            // application connected. The `restored` event says so (`mode: "new_session"`).
            fresh = true;
            let plan = LoginPlan {
                op: Op::Connect,
                params: &params,
                credentials: &credentials,
                prev_session: "",
                proof: None,
            };
            result = establish(&client, plan, &mut None, connection_lost).await;
        }
        match result {
            Ok(response) => {
                client.with(|state| {
                    if state.phase() != Phase::Restoring {
                        state.teardown(ClientError::closed(Op::Connect, "restore abandoned"));
                        return;
                    }
                    if let Some(login) = state.login.as_mut() {
                        login.session_uuid = response.session_uuid.clone();
                        login.product_version = response.product_version.clone();
                    }
                    state.keep_proof(&response.session_uuid);
                    state.set_phase(Phase::Connected);
                    state.notes.push(Note::Event(
                        "restored",
                        js::restored_detail(
                            if fresh { "new_session" } else { "relogin" },
                            &response.session_uuid,
                            &old_session,
                            &response.running_tasks,
                        ),
                    ));
                });
                return;
            }
            Err(e) => {
                attempts.failed(e);
                if attempts.hopeless() {
                    break;
                }
                client.with(|state| {
                    if state.phase() == Phase::Restoring {
                        state.set_phase(Phase::Unstable);
                    }
                });
            }
        }
    }
    client.with(|state| {
        if !matches!(state.phase(), Phase::Unstable | Phase::Restoring) {
            return;
        }
        let reason = attempts.reason();
        state.forget_login();
        state.teardown(reason.clone());
        state.set_phase_because(Phase::Disconnected, Some(&reason));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::ErrorCode;

    fn auth_failed() -> ClientError {
        ClientError::service(Op::Connect, ErrorCode::AUTHENTICATION_FAILED, None)
    }

    fn unreachable() -> ClientError {
        ClientError::ProxyUnreachable {
            op: Op::Connect,
            url: "ws://x".into(),
        }
    }

    #[test]
    fn permanent_failures_stop_restore() {
        assert!(permanent(&auth_failed()));
        assert!(!permanent(&ClientError::closed(Op::Connect, "x")));
        assert!(!permanent(&ClientError::Timeout {
            op: Op::Connect,
            ms: 1
        }));
        assert!(!permanent(&unreachable()));
    }

    #[test]
    fn permanent_relay_kinds_are_the_refusals() {
        for kind in RelayErrorKind::ALL {
            let e = ClientError::Relay {
                op: Op::Connect,
                kind,
                code: None,
                message: String::new(),
            };
            let refusal = [
                "policy_denied",
                "origin_denied",
                "ticket_invalid",
                "wrong_protocol_version",
                "handshake_failed",
            ]
            .contains(&kind.as_str());
            assert_eq!(permanent(&e), refusal, "{kind}");
        }
    }

    #[test]
    fn restore_gives_up_when_the_attempts_run_out_with_the_last_error() {
        let mut attempts = Attempts::default();
        let mut waited = Vec::new();
        while let Some(delay) = attempts.next_delay(1.0) {
            waited.push(delay);
            attempts.failed(unreachable());
            assert!(!attempts.hopeless());
            assert!(waited.len() <= 100, "restore never gives up");
        }
        assert_eq!(waited.len(), backoff::MAX_ATTEMPTS as usize);
        assert_eq!(
            waited,
            (0..backoff::MAX_ATTEMPTS)
                .map(|a| backoff::delay_ms(a, 1.0))
                .collect::<Vec<_>>()
        );
        assert_eq!(attempts.next_delay(0.0), None);
        assert_eq!(attempts.reason(), unreachable());
    }

    #[test]
    fn restore_gives_up_at_once_on_a_changed_password() {
        let mut attempts = Attempts::default();
        assert!(attempts.next_delay(0.5).is_some());
        attempts.failed(unreachable());
        assert!(!attempts.hopeless());
        assert!(attempts.next_delay(0.5).is_some());
        attempts.failed(auth_failed());
        assert!(attempts.hopeless());
        assert_eq!(attempts.reason().kind(), "authentication");
    }

    const HOLDER: &str = "wss://relay-b.example.com/ws";

    fn closed() -> ClientError {
        ClientError::closed(Op::Connect, "x")
    }

    #[test]
    fn a_resume_through_the_proxy_url_needs_no_second_exchange() {
        for holder in [None, Some(HOLDER)] {
            let mut route = ResumeRoute::new(holder);
            assert_eq!(route.next(Ok(Resume::Done)), RouteStep::Finish(Ok(true)));
            let mut route = ResumeRoute::new(holder);
            assert_eq!(route.next(Ok(Resume::Gone)), RouteStep::Finish(Ok(false)));
        }
        // A single proxy: a failure is simply transient.
        let mut route = ResumeRoute::new(None);
        assert_eq!(route.next(Err(closed())), RouteStep::Finish(Err(closed())));
    }

    #[test]
    fn a_redirect_to_the_holder_is_followed_once() {
        let mut route = ResumeRoute::new(Some(HOLDER));
        let elsewhere = || Ok(Resume::Elsewhere(Some(HOLDER.into())));
        assert_eq!(route.next(elsewhere()), RouteStep::Ask(HOLDER));
        assert_eq!(route.next(Ok(Resume::Done)), RouteStep::Finish(Ok(true)));
        // Redirected again by the holder itself: not followed.
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(route.next(elsewhere()), RouteStep::Ask(HOLDER));
        assert_eq!(route.next(elsewhere()), RouteStep::Finish(Ok(false)));
    }

    #[test]
    fn a_redirect_anywhere_the_connection_never_named_is_not_followed() {
        for holder in [None, Some(HOLDER)] {
            for url in [None, Some("wss://evil.example.com/ws".to_string())] {
                let mut route = ResumeRoute::new(holder);
                assert_eq!(
                    route.next(Ok(Resume::Elsewhere(url))),
                    RouteStep::Finish(Ok(false))
                );
            }
        }
    }

    #[test]
    fn an_unreachable_holder_is_gone_and_its_browsers_restore() {
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(
            route.next(Ok(Resume::Elsewhere(Some(HOLDER.into())))),
            RouteStep::Ask(HOLDER)
        );
        assert_eq!(route.next(Err(unreachable())), RouteStep::Finish(Ok(false)));
    }

    #[test]
    fn a_passing_failure_asks_the_holder_directly_and_otherwise_stands() {
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(route.next(Err(closed())), RouteStep::Ask(HOLDER));
        assert_eq!(route.next(Ok(Resume::Done)), RouteStep::Finish(Ok(true)));
        // The holder cannot be reached either: the first failure is reported (try again),
        // not a lost connection.
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(route.next(Err(closed())), RouteStep::Ask(HOLDER));
        assert_eq!(
            route.next(Err(unreachable())),
            RouteStep::Finish(Err(closed()))
        );
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(route.next(Err(closed())), RouteStep::Ask(HOLDER));
        assert_eq!(
            route.next(Ok(Resume::Elsewhere(Some(HOLDER.into())))),
            RouteStep::Finish(Err(closed()))
        );
        // The holder says the connection is gone: it is.
        let mut route = ResumeRoute::new(Some(HOLDER));
        assert_eq!(route.next(Err(closed())), RouteStep::Ask(HOLDER));
        assert_eq!(route.next(Ok(Resume::Gone)), RouteStep::Finish(Ok(false)));
    }

    #[test]
    fn without_any_failure_the_reason_is_closed() {
        assert_eq!(Attempts::default().reason().kind(), "closed");
    }
}
