//! The one request path: submit → await → cancel → map the result.
//!
//! Every request to the service is a job of the core session (its package uuid). [`start`]
//! queues it and sends it at once; [`Job::outcome`] awaits its reply, sends the SDK's cancel
//! (2053) when the caller's `AbortSignal` fires, and maps a failure to its typed error. An
//! operation after login is one call of [`request`] with the core session's builder for it:
//!
//! ```text
//! let reply = jobs::request(&client, Op::GetVmList, None, abort, |session, job| {
//!     session.get_vm_list(job, &mut new_id)
//! })
//! .await?;
//! ```

use std::pin::pin;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use js_sys::Function;
use prl_protocol::commands::{LoginResponse, Reply};
use prl_protocol::session::{ClientSession, JobResult, SessionError};
use prl_protocol::{ErrorCode, Uuid};

use super::state::{new_id, Client, ClientState, PendingJob, Phase};
use crate::abort::{wait_opt, AbortWatch};
use crate::error::{ClientError, Op};

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
    /// job fails as `canceled`; a failure reply becomes its typed error.
    pub(super) async fn outcome(
        self,
        client: &Client,
        abort: &mut Option<AbortWatch>,
    ) -> Result<Success, ClientError> {
        let Job { id, op, reply } = self;
        let result = match select(reply, pin!(wait_opt(abort))).await {
            Either::Left((Ok(result), _)) => result.map_err(|e| e.with_op(op))?,
            Either::Left((Err(_), _)) => return Err(ClientError::closed(op, "connection closed")),
            Either::Right(_) => {
                client.with(|state| {
                    let _ = state.session.cancel(id, new_id(), &mut new_id);
                    state.drain();
                });
                return Err(ClientError::canceled(op));
            }
        };
        match result {
            JobResult::LoggedIn(response) => Ok(Success::LoggedIn(response)),
            JobResult::Done(reply) => Ok(Success::Done(reply)),
            JobResult::Failed { code, .. } if code == ErrorCode::OPERATION_WAS_CANCELED => {
                Err(ClientError::canceled(op))
            }
            JobResult::Failed { code, .. } => Err(ClientError::Service { op, code }),
        }
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
