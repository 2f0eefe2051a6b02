//! The session driver: one browser WebSocket to prl-proxy, the core's sans-I/O
//! `ClientSession` on top, and automatic restore. Here: the operations `lib.rs` exposes.
//!
//! - `state`: [`ClientState`] (the phase, the core session, the connection, pending jobs, the
//!   login kept for restore, the restore proof) and [`Client`], the handle with the borrow rule;
//! - `connection`: the relay exchange, installing a connection and its reader, `establish`
//!   (open + login) and the one connect clock;
//! - `jobs`: the one request path (submit → await → cancel → map the result);
//! - `ops`: the host and VM operations after login, each one `jobs::request`;
//! - `restore`: a lost connection, automatic restore and when it gives up.
//!
//! Layering (no cycles): `state` ← `jobs` ← `connection` ← `restore` ← this module, and
//! `jobs` ← `ops` ← this module. A connection reports its end through the `OnLost` function
//! it was installed with, so `connection` does not know `restore`.

mod connection;
mod jobs;
mod ops;
mod restore;
mod state;

use prl_protocol::commands::LoginResponse;
use prl_protocol::ErrorCode;

use self::connection::{establish, LoginPlan};
pub use self::ops::{call, Answer, Call, Watch};
use self::state::new_id;
pub use self::state::{
    Client, ClientState, ConnectParams, Credentials, Options, Phase, TicketSource,
};
use crate::abort::AbortWatch;
use crate::error::{ClientError, Op};

/// `login` / `loginLocal`: resolves with the reply and whether `prev_session` restored
/// something (the same live session, or lost tasks).
pub async fn login(
    client: Client,
    params: ConnectParams,
    credentials: Credentials,
    prev_session: String,
    mut abort: Option<AbortWatch>,
) -> Result<(LoginResponse, bool), ClientError> {
    let op = match credentials {
        Credentials::Remote { .. } => Op::Login,
        Credentials::Local => Op::LoginLocal,
    };
    let proof = client.with(|state| {
        match state.phase() {
            Phase::Disconnected => {}
            // free() came before this login's first step ran.
            Phase::Closed => return Err(ClientError::closed(op, "the client was freed")),
            _ => {
                return Err(ClientError::InvalidState {
                    op,
                    detail: "already logged in or connecting",
                    code: ErrorCode::ALREADY_CONNECTED_TO_DISPATCHER,
                })
            }
        }
        state.set_phase(Phase::Connecting);
        Ok(state.proof_for(&prev_session))
    })?;
    let plan = LoginPlan {
        op,
        params: &params,
        credentials: &credentials,
        prev_session: &prev_session,
        proof,
    };
    let result = establish(&client, plan, &mut abort, restore::connection_lost).await;
    client.with(|state| {
        if state.phase() == Phase::Closed {
            // free() ended the login underway: its connection is closed.
            return Err(ClientError::closed(op, "the client was freed"));
        }
        match result {
            Ok(response) => {
                let restored = !prev_session.is_empty()
                    && (response.session_uuid == prev_session
                        || !response.running_tasks.is_empty());
                state.login = Some(state::LoginInfo {
                    params,
                    credentials: state.opts.auto_restore.then_some(credentials),
                    session_uuid: response.session_uuid.clone(),
                    product_version: response.product_version.clone(),
                });
                state.keep_proof(&response.session_uuid);
                state.set_phase(Phase::Connected);
                Ok((response, restored))
            }
            Err(e) => {
                state.set_phase(Phase::Disconnected);
                Err(e)
            }
        }
    })
}

/// `logoff`.
pub async fn logoff(client: Client) -> Result<(), ClientError> {
    let op = Op::Logoff;
    let logged_in = client.with(|state| match state.phase() {
        Phase::Connected => Ok(true),
        Phase::Unstable | Phase::Restoring => {
            // Stop restoring; the proxy drops the kept upstream when its window ends.
            state.proof = None;
            state.forget_login();
            state.teardown(ClientError::closed(op, "logged off"));
            state.set_phase(Phase::Disconnected);
            Ok(false)
        }
        Phase::LoggingOff => Err(ClientError::InvalidState {
            op,
            detail: "a logoff is already under way",
            code: ErrorCode::NOT_CONNECTED_TO_DISPATCHER,
        }),
        _ => Err(jobs::not_logged_in(op)),
    })?;
    if !logged_in {
        return Ok(());
    }
    let job = jobs::start(&client, op, None, |state, job| {
        state
            .session
            .logoff(job, &mut new_id)
            .map_err(|_| ClientError::protocol(op, "session refused the logoff"))?;
        // Logging off gives up every claim on earlier sessions (the proof is zeroized) and
        // needs the credentials no more.
        state.proof = None;
        if let Some(login) = state.login.as_mut() {
            login.credentials = None;
        }
        state.set_phase(Phase::LoggingOff);
        Ok(())
    })?;
    let outcome = job.outcome(&client, &mut None).await;
    client.with(|state| {
        state.forget_login();
        state.teardown(ClientError::closed(op, "logged off"));
        state.set_phase(Phase::Disconnected);
    });
    match outcome {
        Err(e @ (ClientError::Service { .. } | ClientError::Canceled { .. })) => Err(e),
        // A closed connection ends the session on the service too (it destroys the session
        // on disconnect), so the logoff is done either way.
        _ => Ok(()),
    }
}

/// `free()`: end everything now.
pub fn shutdown(client: &Client) {
    client.with(|state| {
        if state.phase() == Phase::Closed {
            return;
        }
        state.forget_login();
        state.proof = None;
        state.teardown(ClientError::closed(Op::Connect, "the client was freed"));
        state.set_phase(Phase::Closed);
    });
}
