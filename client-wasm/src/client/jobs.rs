//! The one request path: submit → await → cancel → map the result.
//!
//! Every request to the service is a job of the core session (its package uuid). [`start`]
//! queues it and sends it at once; [`Job::outcome`] awaits its reply, sends the SDK's cancel
//! (2053) when the caller's `AbortSignal` fires, and maps a failure to its typed error. An
//! operation after login is one call of [`request`] with the core session's builder for it
//! (the host and VM operations describe their command as a `RequestSpec`):
//!
//! ```text
//! let reply = jobs::request(&client, Op::GetVmList, None, abort, |session, job| {
//!     session.request(job, &vm_list_request(0), &mut new_id)
//! })
//! .await?;
//! ```
//!
//! Abort after login: the cancel (2053) is a job of its own, and the operation's promise
//! rejects with `canceled` once the service answered it (or [`CANCEL_ANSWER_MS`] passed, or
//! the connection went), saying whether the service confirmed the cancel. The operation's own
//! job ends at the abort: its late reply (and a real service's duplicate of a forked failure)
//! is dropped by the core session. A login's abort does not wait: its connection is closed
//! right after, which ends the login on the service whatever it answers.

use std::pin::pin;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use gloo_timers::future::TimeoutFuture;
use js_sys::Function;
use prl_protocol::commands::{param, LoginResponse, Reply};
use prl_protocol::session::{ClientSession, JobResult, SessionError};
use prl_protocol::{ErrorCode, Uuid};

use super::state::{new_id, Client, ClientState, PendingJob, Phase};
use crate::abort::{wait_opt, AbortWatch};
use crate::error::{ClientError, Op};

/// How long an aborted operation waits for the service's answer to its cancel (2053) before
/// it rejects without one. The real service answers a cancel at once (`cancelOperation` runs
/// on the dispatcher's thread); this bounds a service or relay that does not.
pub(super) const CANCEL_ANSWER_MS: u32 = 10_000;

/// A request on its way: its job uuid, the operation it serves, and where its outcome lands.
#[derive(Debug)]
pub(super) struct Job {
    id: Uuid,
    op: Op,
    reply: oneshot::Receiver<Result<JobResult, ClientError>>,
}

/// What a successful job gave back.
#[derive(Debug)]
pub(super) enum Success {
    /// A login reply.
    LoggedIn(LoginResponse),
    /// Any other reply.
    Done(Reply),
}

impl Success {
    /// The login reply a login must end with.
    pub(super) fn into_login(self, op: Op) -> Result<LoginResponse, ClientError> {
        match self {
            Success::LoggedIn(response) => Ok(response),
            Success::Done(_) => Err(ClientError::protocol(
                op,
                "login finished without a login reply",
            )),
        }
    }

    /// The reply of a request other than a login.
    pub(super) fn into_reply(self, op: Op) -> Result<Reply, ClientError> {
        match self {
            Success::Done(reply) => Ok(reply),
            Success::LoggedIn(_) => Err(ClientError::protocol(op, "unexpected login reply")),
        }
    }
}

/// The error of a request that needs a login.
pub(super) fn not_logged_in(op: Op) -> ClientError {
    ClientError::InvalidState {
        op,
        detail: "not logged in",
        code: ErrorCode::NOT_CONNECTED_TO_DISPATCHER,
    }
}

/// Queues one request as a new job and sends it before returning. `send` makes the core
/// session queue the request under the given job uuid; it may update the state in the same
/// borrow; when it fails no job is registered. `on_progress` gets the job's progress events.
pub(super) fn start(
    client: &Client,
    op: Op,
    on_progress: Option<Function>,
    send: impl FnOnce(&mut ClientState, Uuid) -> Result<(), ClientError>,
) -> Result<Job, ClientError> {
    let id = new_id();
    let (waiter, reply) = oneshot::channel();
    client.with(|state| {
        send(state, id)?;
        state.jobs.insert(
            id,
            PendingJob {
                waiter,
                on_progress,
            },
        );
        state.drain();
        Ok(Job { id, op, reply })
    })
}

impl Job {
    /// Awaits the reply. When `abort` fires first, the SDK's cancel (2053) goes out and the
    /// job fails as `canceled` (see the module docs); a failure reply becomes its typed error.
    pub(super) async fn outcome(
        self,
        client: &Client,
        abort: &mut Option<AbortWatch>,
    ) -> Result<Success, ClientError> {
        let Job { id, op, reply } = self;
        let result = match select(reply, pin!(wait_opt(abort))).await {
            Either::Left((Ok(result), _)) => result.map_err(|e| e.with_op(op))?,
            Either::Left((Err(_), _)) => return Err(ClientError::closed(op, "connection closed")),
            Either::Right(((), _)) => return Err(cancel(client, id, op).await),
        };
        match result {
            JobResult::LoggedIn(response) => Ok(Success::LoggedIn(response)),
            JobResult::Done(reply) => Ok(Success::Done(reply)),
            JobResult::Failed { code, .. } if code == ErrorCode::OPERATION_WAS_CANCELED => {
                Err(ClientError::Canceled {
                    op,
                    confirmed: true,
                    cancel_code: None,
                })
            }
            JobResult::Failed { code, error } => Err(ClientError::service(
                op,
                code,
                error.and_then(|e| e.string(param::DETAILS).map(str::to_owned)),
            )),
        }
    }
}

/// Sends the SDK's cancel (2053) for job `id` of `op` (the job ends at once, canceled) and,
/// after login, waits for the service's answer to it: the `canceled` error says what the
/// service made of it.
async fn cancel(client: &Client, id: Uuid, op: Op) -> ClientError {
    let cancel_id = new_id();
    let (waiter, answer) = oneshot::channel();
    let wait = !matches!(op, Op::Login | Op::LoginLocal);
    let sent = client.with(|state| {
        let sent = state.session.cancel(id, cancel_id, &mut new_id).is_ok();
        if sent && wait {
            state.jobs.insert(
                cancel_id,
                PendingJob {
                    waiter,
                    on_progress: None,
                },
            );
        }
        state.drain();
        sent
    });
    if !(sent && wait) {
        return ClientError::canceled(op);
    }
    let timer = TimeoutFuture::new(CANCEL_ANSWER_MS);
    let cancel_code = match select(answer, timer).await {
        Either::Left((Ok(Ok(JobResult::Done(reply))), _)) => Some(reply.code),
        Either::Left((Ok(Ok(JobResult::Failed { code, .. })), _)) => Some(code),
        // The connection went (the cancel is lost with it), or an unexpected answer.
        Either::Left(_) => None,
        Either::Right(_) => {
            // No answer: stop waiting for it, here and in the core session.
            client.with(|state| {
                state.jobs.remove(&cancel_id);
                let _ = state.session.fail_job(cancel_id, ErrorCode::TIMEOUT);
                state.drain();
            });
            None
        }
    };
    ClientError::Canceled {
        op,
        confirmed: cancel_code.is_some_and(|c| !c.is_error()),
        cancel_code,
    }
}

/// A request while logged in, from submit to its reply: refused with `invalid_state` unless
/// logged in; `build` queues the request in the core session under the job uuid it is given.
pub(super) async fn request(
    client: &Client,
    op: Op,
    on_progress: Option<Function>,
    mut abort: Option<AbortWatch>,
    build: impl FnOnce(&mut ClientSession, Uuid) -> Result<Uuid, SessionError>,
) -> Result<Reply, ClientError> {
    let job = start(client, op, on_progress, |state, id| {
        if state.phase() != Phase::Connected {
            return Err(not_logged_in(op));
        }
        build(&mut state.session, id)
            .map(drop)
            .map_err(|_| ClientError::protocol(op, "session refused the request"))
    })?;
    job.outcome(client, &mut abort).await?.into_reply(op)
}
