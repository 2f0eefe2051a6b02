//! A burst source for the relay-throughput benchmark.
//!
//! prl-sim's task 9001 paces its steps with a tokio timer, whose resolution is a millisecond:
//! even with `sim_task_interval_ms = 0` it sends about 900 events a second, so it measures the
//! timer, not the relay. [`BurstService`] answers the same command the same way, only without
//! pausing: every progress event back to back, then the final reply. It is a service in the
//! real wire protocol all the same: prl-transport's server role (plaintext handshake, ADH TLS,
//! records routed by the accepted table), the packages built by the same `prl-protocol`
//! functions prl-sim uses (`progress_event`, `login_reply`, `simple_response`).
//!
//! Commands: login 2039 ([`USER`](crate::USER) / [`PASSWORD`](crate::PASSWORD); 5003 with the
//! session UUID = the client's connection UUID, or 5001 `AUTHENTICATION_FAILED`), logoff 2042
//! (5001 `SUCCESS`, then close), task 9001 (`sim_task_steps` events, at most 10000, then 5001
//! `SUCCESS` with opcode 9001), anything else 5001 `PRL_ERR_UNIMPLEMENTED`.

use std::net::SocketAddr;
use std::time::Duration;

use prl_protocol::codes::cmd;
use prl_protocol::commands::{
    login_event, login_reply, package_event, progress_event, simple_response, LoginRequest,
    ServerInfo,
};
use prl_protocol::package::Package;
use prl_protocol::{uuid_string, ErrorCode, Uuid};
use prl_sim::{SIM_CMD_START_LONG_TASK, SIM_TASK_STEPS};
use prl_transport::{accept_tcp, ConnectionInfo, PackageSender, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{BenchError, PASSWORD, USER};

/// Most events one task command asks for (prl-sim's bound).
pub const MAX_STEPS: u32 = 10_000;

/// A running burst source; dropping it stops the listener.
#[derive(Debug)]
pub struct BurstService {
    addr: SocketAddr,
    listener: JoinHandle<()>,
}

impl Drop for BurstService {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl BurstService {
    /// Listens on an ephemeral loopback port (minimum security LOW, like the service; no
    /// heartbeats, like [`start_sim`](crate::start_sim)'s hourly ones).
    pub async fn start() -> Result<BurstService, BenchError> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let mut config = ServerConfig::new()?;
        config.handshake_timeout = Some(crate::WAIT);
        config.stream.heartbeat_interval = None;
        let listener = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = accept_tcp(stream, &config).await {
                        let (tx, mut rx, info) = conn.split();
                        while let Some(Ok(p)) = rx.recv().await {
                            if !answer(&tx, &info, &p).await {
                                break;
                            }
                        }
                        let _ = tx.close().await;
                    }
                });
            }
        });
        Ok(BurstService { addr, listener })
    }

    /// The TCP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Answers one package; `false` when the connection is to be closed.
async fn answer(tx: &PackageSender, info: &ConnectionInfo, p: &Package) -> bool {
    let me = info.local_connection_uuid;
    let reply = |code| simple_response(p, me, Uuid::new_v4(), code, &[], &mut Uuid::new_v4);
    match p.header.package_type {
        cmd::USER_LOGIN => {
            let login = package_event(p)
                .ok()
                .and_then(|e| LoginRequest::from_event(&e, true).ok());
            let ok = login.is_some_and(|l| l.user == USER && l.password.expose() == PASSWORD);
            let answer = if ok {
                let session = uuid_string(&info.peer_connection_uuid);
                let event = login_event(&session, &ServerInfo::default(), &[]);
                login_reply(
                    p,
                    me,
                    Uuid::new_v4(),
                    &event,
                    info.peer_version.supports_binary_response(),
                    &mut Uuid::new_v4,
                )
            } else {
                reply(ErrorCode::AUTHENTICATION_FAILED)
            };
            tx.send(answer).await.is_ok()
        }
        cmd::USER_LOGOFF => {
            let _ = tx.send(reply(ErrorCode::SUCCESS)).await;
            false
        }
        SIM_CMD_START_LONG_TASK => {
            let steps = package_event(p)
                .ok()
                .and_then(|e| e.uint(SIM_TASK_STEPS))
                .unwrap_or(10)
                .clamp(1, MAX_STEPS);
            let issuer = uuid_string(&me);
            // One event per percent value, built once; each step sends a copy with its own
            // package uuid (the sim builds each afresh: that cost belongs to the source, not
            // to the relay being measured).
            let templates: Vec<Package> = (0..=100)
                .map(|percent| {
                    progress_event(
                        p.header.uuid,
                        p.header.sender_uuid,
                        me,
                        Uuid::nil(),
                        &issuer,
                        percent,
                        &mut Uuid::new_v4,
                    )
                })
                .collect();
            for step in 1..=steps {
                let percent = step.saturating_mul(100) / steps;
                let Some(template) = templates.get(percent as usize) else {
                    return false;
                };
                let mut event = template.clone();
                event.header.uuid = Uuid::new_v4();
                if tx.send(event).await.is_err() {
                    return false;
                }
            }
            tx.send(reply(ErrorCode::SUCCESS)).await.is_ok()
        }
        _ => tx.send(reply(ErrorCode::UNIMPLEMENTED)).await.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_events_are_a_few_hundred_bytes_on_the_wire() {
        let issuer = uuid_string(&Uuid::new_v4());
        for percent in [1, 50, 100] {
            let p = progress_event(
                Uuid::new_v4(),
                Uuid::new_v4(),
                Uuid::new_v4(),
                Uuid::new_v4(),
                &issuer,
                percent,
                &mut Uuid::new_v4,
            );
            let len = p.encoded_len();
            println!("progress event at {percent}%: {len} bytes");
            assert!((200..1000).contains(&len), "{len}");
        }
    }
}
