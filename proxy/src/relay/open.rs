//! The first message's work: authorise an `open` (ticket, mode), open the upstream connection
//! within the browser's budget, check its restore proof; or take over a parked link for a
//! `resume`. Also the one mapping from transport errors to relay error kinds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prl_protocol::package::{Limits, MAX_BUFFERS};
use prl_protocol::relay::{ConnectMode, OpenRequest, RelayError, RelayErrorKind, ResumeRequest};
use prl_protocol::{uuid_string, ErrorCode};
use prl_transport::{ClientConfig, Endpoint, Stage, TransportError};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::budget::ByteBudget;
use crate::policy::PolicyError;
use crate::shared_state::{LeaseError, ProofRefusal, RestoreRefusal, Unavailable};
use crate::state::ActiveConfig;
use crate::ticket::{check_ticket, Claims, TicketError};
use crate::util::{random_uuid, Token};

use super::link::{now, Facts, ServiceLink};
use super::ring::{ReplayError, ReplayRing};
use super::rules::{RelayRules, Restore, RulesConfig};
use super::writer::CLOSE_GRACE;
use super::{err, Context};

/// Bytes waiting to be written to the service beyond which the browser is not read (or
/// `limits.queue_bytes` if smaller). The service's socket buffer takes what a browser sends
/// at once, so this binds only when the service stops reading: then a few packages wait here
/// and the browser waits too, as it always did with the proxy's small queue toward the service.
const SERVICE_BACKLOG: usize = 8 * 1024;

/// When a transport error happened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum During {
    /// While connecting within a budget of this many ms, to a unix socket or not.
    Connect { budget_ms: u64, unix: bool },
    /// On an established connection.
    Established,
}

/// A refused `open` or `resume`: the error for the browser and the `rejections_total` label
/// (the error's kind unless a more specific reason applies).
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) error: RelayError,
    pub(super) reason: &'static str,
}

impl From<RelayError> for Refused {
    fn from(error: RelayError) -> Refused {
        Refused {
            reason: error.kind.as_str(),
            error,
        }
    }
}

fn budget_expired(budget_ms: u64) -> RelayError {
    err(
        RelayErrorKind::Timeout,
        format!("connect budget of {budget_ms} ms expired"),
    )
}

/// The one mapping from a transport failure to the relay error the browser gets. Addresses
/// and socket paths are the operator's business: messages never show them.
pub(crate) fn transport_error(e: &TransportError, during: During) -> RelayError {
    let (budget_ms, unix) = match during {
        During::Established => {
            let kind = match e {
                TransportError::Oversize(_) => RelayErrorKind::LimitReached,
                TransportError::Package(_) | TransportError::Record(_) => {
                    RelayErrorKind::ProtocolViolation
                }
                _ => RelayErrorKind::Closed,
            };
            return err(
                kind,
                format!(
                    "service connection failed: {}",
                    e.to_string().to_lowercase()
                ),
            );
        }
        During::Connect { budget_ms, unix } => (budget_ms, unix),
    };
    let kind = match e {
        TransportError::Timeout { .. } => RelayErrorKind::Timeout,
        TransportError::Handshake(_) if e.prl_code() == ErrorCode::WRONG_PROTOCOL_VERSION => {
            RelayErrorKind::WrongProtocolVersion
        }
        other => match other.stage() {
            Stage::Resolve => RelayErrorKind::DnsFailed,
            Stage::Connect => RelayErrorKind::ConnectionRefused,
            Stage::Handshake => RelayErrorKind::HandshakeFailed,
            Stage::Tls => RelayErrorKind::TlsFailed,
            Stage::Established => RelayErrorKind::Closed,
        },
    };
    tracing::debug!(kind = kind.as_str(), detail = %e, "upstream connect failed");
    let mut error = match (kind, e) {
        (RelayErrorKind::Timeout, _) => budget_expired(budget_ms),
        (_, TransportError::Connect { source, .. }) => {
            let what = if unix {
                "the local service socket"
            } else {
                "the target"
            };
            err(
                kind,
                format!(
                    "cannot connect to {what}: {}",
                    source.to_string().to_lowercase()
                ),
            )
        }
        _ => err(kind, e.to_string().to_lowercase()),
    };
    if kind == RelayErrorKind::HandshakeFailed {
        // Keeps WRONG_CONNECTION_SECURITY_LEVEL where the transport can tell.
        error.code = Some(e.prl_code().0);
    }
    error
}

/// The browser's view of a refused ticket: `ticket_invalid` (or `limit_reached` for a full
/// replay cache, `state_unavailable` when a cluster's replay cache cannot be reached) with a
/// message that starts with the reason (`expired: ticket expired`), counted in
/// `ticket_rejections_total{reason}`.
fn ticket_error(ctx: &Context, e: TicketError) -> RelayError {
    ctx.state.metrics.ticket_refused(e.kind());
    tracing::info!(client = %ctx.client, reason = e.kind(), "ticket refused");
    let kind = match e {
        TicketError::CacheFull => RelayErrorKind::LimitReached,
        TicketError::Unavailable => {
            return unavailable("the ticket cannot be checked against the replay cache")
        }
        _ => RelayErrorKind::TicketInvalid,
    };
    err(kind, format!("{}: {e}", e.kind()))
}

/// The refusal of something only the shared state could prove (a cluster's Redis is down):
/// the detail stays in the proxy's log and metrics.
pub(super) fn unavailable(what: &str) -> RelayError {
    err(
        RelayErrorKind::StateUnavailable,
        format!("{what} (the shared state is unavailable); try again later"),
    )
}

/// The ticket claims that authorise this open (if tickets are configured). A header ticket
/// was verified and consumed before the upgrade; a ticket in the message is checked here,
/// once, bound to the open's mode and target.
async fn authorise(
    ctx: &Context,
    active: &ActiveConfig,
    req: &OpenRequest,
) -> Result<Option<Claims>, RelayError> {
    let port = req.target.effective_port();
    let bind = |c: &Claims| c.check_open(req.mode, &req.target.host, port);
    match (&active.tickets, &ctx.header_claims, &req.ticket) {
        (None, _, Some(_)) => Err(err(
            RelayErrorKind::TicketInvalid,
            "tickets are not enabled on this proxy",
        )),
        (None, _, None) => Ok(None),
        (Some(_), Some(_), Some(_)) => Err(ticket_error(ctx, TicketError::Conflict)),
        (Some(_), Some(claims), None) => {
            bind(claims).map_err(|e| ticket_error(ctx, e))?;
            Ok(Some(claims.clone()))
        }
        (Some(tickets), None, Some(ticket)) => check_ticket(
            tickets,
            &*ctx.state.shared,
            ticket.expose(),
            &ctx.origin,
            crate::util::unix_now(),
            bind,
        )
        .await
        .map(Some)
        .map_err(|e| ticket_error(ctx, e)),
        (Some(tickets), None, None) => {
            if tickets.required {
                Err(ticket_error(ctx, TicketError::Missing))
            } else {
                Ok(None)
            }
        }
    }
}

/// The browser's view of a refused target. For a host given as a DNS name, the message is
/// fixed per error kind: what the name resolved to (which address, which special range,
/// whether it resolved at all beyond `dns_failed`) stays on the proxy, logged at debug, so the
/// proxy is no oracle into the DNS view of its network. Refusals about what the browser itself
/// sent (an IP literal, a malformed host, a configured target's port) keep their detail.
fn policy_error(host: &str, e: PolicyError) -> RelayError {
    let named = matches!(
        crate::policy::parse_host(host),
        Ok(crate::policy::Host::Name(_))
    );
    let kind = if e.is_dns() {
        RelayErrorKind::DnsFailed
    } else {
        RelayErrorKind::PolicyDenied
    };
    let leaks = matches!(
        e,
        PolicyError::AddressDenied(_)
            | PolicyError::SpecialDenied { .. }
            | PolicyError::PortDenied { .. }
            | PolicyError::DnsFailed(_)
            | PolicyError::NoAddress
    );
    if named && leaks {
        tracing::debug!(reason = e.kind(), detail = %e, "target name refused");
        let message = if e.is_dns() {
            "the target name did not resolve"
        } else {
            "the target is not allowed by this proxy's policy"
        };
        return err(kind, message);
    }
    err(kind, e.to_string())
}

/// Authorise an `open`, connect within its budget and build the link.
pub(super) async fn open(
    ctx: &Context,
    active: &ActiveConfig,
    req: OpenRequest,
) -> Result<Box<ServiceLink>, Refused> {
    let claims = authorise(ctx, active, &req).await?;
    let limits = active.config.limits.clone();
    let ceiling = limits.connect_timeout_ms;
    let budget_ms = if req.timeout_ms == 0 {
        ceiling
    } else {
        u64::from(req.timeout_ms).min(ceiling)
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(budget_ms);
    let policy = &active.config.policy;
    let endpoint = match req.mode {
        ConnectMode::Local => {
            if !policy.local_login {
                return Err(err(
                    RelayErrorKind::PolicyDenied,
                    "local login is disabled on this proxy",
                )
                .into());
            }
            match &policy.local_socket {
                // The service identifies the proxy's OS user by SO_PEERCRED.
                Some(path) => Endpoint::Unix(path.clone()),
                None => Endpoint::Addrs(vec![policy.local_target]),
            }
        }
        ConnectMode::Remote => {
            match tokio::time::timeout_at(
                deadline,
                active.policy.resolve(&req.target.host, req.target.port),
            )
            .await
            {
                Ok(r) => Endpoint::Addrs(r.map_err(|e| policy_error(&req.target.host, e))?),
                Err(_) => return Err(budget_expired(budget_ms).into()),
            }
        }
    };
    // The scarce resource is the service's connections. Until its first successful login, the upstream connection holds a slot of the
    // unauthenticated pool: opens that never log in cannot take every service connection.
    let unauthenticated = ctx
        .state
        .caps
        .unauthenticated(ctx.client.ip, &ctx.state.metrics)
        .map_err(|reason| Refused {
            error: err(
                RelayErrorKind::LimitReached,
                "too many connections are waiting for a login; try again later",
            ),
            reason,
        })?;
    // In a cluster the same limit holds across every instance (the service is shared).
    let lease = match ctx.state.shared.unauthenticated_lease(ctx.client.ip).await {
        Ok(lease) => lease,
        Err(LeaseError::Full(reason)) => {
            return Err(Refused {
                error: err(
                    RelayErrorKind::LimitReached,
                    "too many connections are waiting for a login; try again later",
                ),
                reason,
            })
        }
        Err(LeaseError::Unavailable(e)) => {
            tracing::debug!(error = %e, "unauthenticated lease refused");
            return Err(unavailable("the connection cannot be counted").into());
        }
    };
    let conn_uuid = random_uuid();
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(budget_expired(budget_ms).into());
    }
    let mut config = ClientConfig::new(req.security_level)
        .with_budget(Some(remaining))
        .with_connection_uuid(conn_uuid);
    config.stream.limits = Limits {
        max_package_len: limits.max_package_bytes,
        max_buffers: MAX_BUFFERS,
    };
    let during = During::Connect {
        budget_ms,
        unix: matches!(endpoint, Endpoint::Unix(_)),
    };
    // Driven by the session's own task: no task, queue or buffer of its own while idle.
    let mut conn = prl_transport::connect_inline(&endpoint, &config)
        .await
        .map_err(|e| transport_error(&e, during))?;
    // The browser is not read while this much waits to be written to the service.
    conn.set_send_limit(limits.queue_bytes.min(SERVICE_BACKLOG));
    // A link that ends may still write what is queued (a logoff) this long.
    conn.set_close_grace(Duration::from_millis(limits.write_stall_ms).min(CLOSE_GRACE));
    let metrics = &ctx.state.metrics;
    metrics
        .connect_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.sessions_opened.inc();
    let info = conn.info_arc();
    let facts = Facts {
        service_protocol: format!("{}.{}", info.peer_version.major, info.peer_version.minor),
        service_build: info.peer_version.text.clone(),
        security_level: info.security_level,
        cipher: info.cipher.clone(),
        tls_version: info.tls_version.clone(),
    };
    let to_service = ByteBudget::new(limits.queue_bytes, Some(metrics.queued_bytes.clone()), None);
    let mut lineage_bytes = [0u8; 8];
    crate::util::fill_random(&mut lineage_bytes);
    let lineage = u64::from_le_bytes(lineage_bytes);
    tracing::info!(
        client = %ctx.client,
        lineage,
        level = ?facts.security_level,
        cipher = %facts.cipher,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "upstream connection opened"
    );
    // The narrower of the policy's scope and the ticket's.
    let scope = claims
        .as_ref()
        .and_then(|c| c.scope)
        .map_or(policy.scope, |s| s.narrower(policy.scope));
    let subject = claims.and_then(|c| c.sub);
    let restore = match &req.restore {
        None => Restore::Absent,
        Some(token) => restore_proof(ctx, token.expose(), subject.as_deref(), lineage, deadline)
            .await
            .map_err(|e| {
                tracing::warn!(lineage, error = %e, "restore proof not checked");
                unavailable("the restore proof cannot be checked")
            })?,
    };
    let resume = active.config.resume.clone();
    let rules = RelayRules::new(
        RulesConfig {
            scope,
            ..RulesConfig::from_limits(
                &limits,
                conn_uuid,
                ctx.client.ip,
                policy.local_login,
                restore,
            )
        },
        now(),
    );
    Ok(Box::new(ServiceLink {
        state: Arc::clone(&ctx.state),
        hub: Arc::clone(&ctx.hub),
        conn_uuid,
        conn_uuid_text: uuid_string(&conn_uuid),
        facts,
        conn,
        to_service,
        queued_to_service: 0,
        ring: ReplayRing::new(resume.buffer_packages, resume.buffer_bytes),
        sent_mark: 0,
        token: Token::generate(),
        prev_token: None,
        origin: ctx.origin.clone(),
        subject,
        lineage,
        client_ip: ctx.client.ip,
        rules,
        limits,
        resume,
        slots: Arc::clone(&ctx.slots),
        unauthenticated: Some(unauthenticated),
        lease: Some(lease),
    }))
}

/// Check and consume the `restore` proof of an open (after its upstream connection is up, so
/// a failed connect does not spend it). A token that still names a parked link ends that link
/// first (the browser gave up resuming it): closing it turns the token into its restore
/// proof. The proof must match this browser's origin and ticket subject.
///
/// In a cluster the proof may still be held by the instance whose link it names: this one
/// (the link is closing: ask again), or another live one (its link may close, or the instance
/// may have died and its registration is about to expire): asked again until
/// `holder_grace` has passed or the connect budget's `deadline`, then refused. A shared state
/// that cannot be reached fails the open (`Err`): a proof is never granted on a guess.
async fn restore_proof(
    ctx: &Context,
    token: &str,
    subject: Option<&str>,
    lineage: u64,
    deadline: Instant,
) -> Result<Restore, Unavailable> {
    let shared = &ctx.state.shared;
    let give_up = deadline.min(Instant::now() + shared.holder_grace());
    let refused = |r: RestoreRefusal| {
        ctx.state.metrics.reject(r.kind());
        tracing::warn!(lineage, reason = r.kind(), "restore proof refused");
        Restore::Refused(r)
    };
    loop {
        end_parked(ctx, token).await;
        match shared.take_restore_proof(token, &ctx.origin, subject).await {
            Ok(session) => {
                tracing::info!(lineage, "restore proof accepted");
                return Ok(Restore::Granted(session));
            }
            Err(ProofRefusal::Refused(r)) => return Ok(refused(r)),
            Err(ProofRefusal::Unavailable(e)) => return Err(e),
            Err(ProofRefusal::HeldHere | ProofRefusal::HeldElsewhere) => {
                if Instant::now() >= give_up {
                    // Still held by a live link (attached, or on an instance that keeps it).
                    return Ok(refused(RestoreRefusal::Unknown));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// End the parked link `token` names in this process, if any (its restore proof is kept as it
/// closes).
async fn end_parked(ctx: &Context, token: &str) {
    if let Some(claim) = ctx.hub.parked.take(token) {
        let (tx, rx) = oneshot::channel();
        if claim.send(tx).is_ok() {
            if let Ok(parked) = rx.await {
                tracing::info!(
                    lineage = parked.lineage,
                    "parked upstream connection ended by a restore"
                );
                ctx.state.shared.unparked(parked.token_keys()).await;
                drop(parked);
            }
        }
    }
}

/// Take over the parked link a `resume` names: the packages to replay after `received`.
pub(super) async fn resume(
    ctx: &Context,
    req: ResumeRequest,
) -> Result<(Box<ServiceLink>, Vec<Bytes>), Refused> {
    let gone = || {
        err(
            RelayErrorKind::ResumeFailed,
            "unknown, used or expired resume token",
        )
    };
    let Some(claim) = ctx.hub.parked.take(req.token.expose()) else {
        // Not parked here. In a cluster another live instance may hold it: send the browser
        // there (a configured instance's URL, never anything the browser said).
        return match ctx.state.shared.holder(req.token.expose()).await {
            Ok(Some(url)) => {
                ctx.state.metrics.resume_redirects.inc();
                tracing::info!(client = %ctx.client, instance = %url, "resume sent to the instance that holds the connection");
                let mut e = err(
                    RelayErrorKind::ResumeElsewhere,
                    "another instance holds this connection",
                );
                e.instance = Some(url);
                Err(e.into())
            }
            Ok(None) => Err(gone().into()),
            Err(e) => {
                tracing::warn!(error = %e, "resume not located");
                Err(unavailable("the connection cannot be located").into())
            }
        };
    };
    let (tx, rx) = oneshot::channel();
    claim.send(tx).map_err(|_| gone())?;
    let mut link = rx.await.map_err(|_| gone())?;
    if link.origin != ctx.origin {
        // A token presented from another origin was stolen: end the link.
        return Err(err(
            RelayErrorKind::ResumeFailed,
            "resume token presented from another origin",
        )
        .into());
    }
    let replay = match link.ring.replay_from(req.received) {
        Ok(r) => r,
        Err(ReplayError::Ahead) => {
            return Err(err(
                RelayErrorKind::ResumeFailed,
                "received count is ahead of what was sent",
            )
            .into())
        }
        Err(ReplayError::Lost) => {
            return Err(err(
                RelayErrorKind::ResumeFailed,
                "packages the browser missed are no longer buffered",
            )
            .into())
        }
    };
    // No longer parked: a resume that reaches another instance is not sent here any more.
    tokio::spawn(ctx.state.shared.unparked(link.token_keys()));
    // The browser holds the token it presented until `resumed` reaches it; if this
    // connection fails before it shows it did, that token still names the link.
    let presented = std::mem::replace(&mut link.token, Token::generate());
    if let Some(older) = link.prev_token.replace(presented) {
        // Resumed twice without a package between: the oldest token names nothing now.
        tokio::spawn(ctx.state.shared.forget_token(&older));
    }
    link.rules.handle_resumed(now());
    link.hold_proof();
    ctx.state.metrics.sessions_resumed.inc();
    tracing::info!(client = %ctx.client, lineage = link.lineage, replayed = replay.len(), "session resumed");
    Ok((link, replay))
}
