//! Serving a connection: admission (the handshake-stage faults), the package loop, and the
//! dispatch of each package to its handler, in the order of
//! `CDspClientManager::handleToDispatcherPackage`: IO management packages are consumed, logins
//! are handled without a session, everything else needs one.
//!
//! Adding a command (a host or VM operation) is one arm in
//! [`ConnectionHandler::session_command`] and a handler in a module of its own, written as a
//! method of [`ConnectionHandler`] like those of `login` and `tasks`.

use std::sync::Arc;

use prl_protocol::codes::cmd;
use prl_protocol::handshake::ServerOutcome;
use prl_protocol::package::Package;
use prl_protocol::ErrorCode;
use prl_transport::{AcceptPolicy, Admission, Connection, Peer};

use super::state::{ConnectionHandler, Flow, LiveConnection, SimService, UserSession};
use super::tasks::{end_session_tasks, SIM_CMD_START_LONG_TASK};

/// Highest IO management package type (`IOCommunicationMngPackage`); these never reach the
/// dispatcher.
const LAST_MANAGEMENT_TYPE: u32 = 11;

/// The accept policy: handshake-stage faults.
pub(crate) struct FaultPolicy {
    pub(crate) service: Arc<SimService>,
}

impl AcceptPolicy for FaultPolicy {
    fn on_connect(&self, peer: &Peer) -> Admission {
        let f = self.service.run_faults();
        // `refuse` closes the listeners; a connection accepted just before is closed here.
        if f.close_on_accept || f.refuse {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault close-on-accept: closing");
            Admission::Close
        } else if f.stall_handshake {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-handshake");
            Admission::Stall
        } else {
            Admission::Continue
        }
    }

    fn on_client_hello(&self, peer: &Peer, hello: &ServerOutcome) -> Admission {
        let f = self.service.faults_for(hello.client_header.connection_uuid);
        // Per connection, `refuse` and `close-on-accept` act at the first point the connection
        // uuid is known: right after the client's hello.
        if f.refuse || f.close_on_accept {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault close-on-accept: closing after the hello");
            Admission::Close
        } else if f.stall_handshake {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-handshake");
            Admission::Stall
        } else if f.stall_tls {
            tracing::info!(conn = peer.id, peer = %peer.address, "fault stall-tls");
            Admission::StallTls
        } else {
            Admission::Continue
        }
    }
}

/// Serves a connection until it closes.
pub(crate) async fn serve(service: Arc<SimService>, conn: Connection) {
    let (sender, mut receiver, info) = conn.split();
    let handle = info.peer_connection_uuid;
    // Logs name the connection by its number, never by `handle`: the client's connection
    // uuid is its session id, and naming a live session logs in without a password.
    let id = info.connection_id;
    let faults = service.take_faults_for(handle);
    let duplicate = {
        let mut registry = service.registry();
        let duplicate = registry.links.contains_key(&handle);
        if !duplicate {
            registry.links.insert(
                handle,
                LiveConnection {
                    sender: sender.clone(),
                    local_uuid: info.local_connection_uuid,
                    faults: faults.clone(),
                    id,
                    binary_response: info.peer_version.supports_binary_response(),
                },
            );
        }
        duplicate
    };
    if duplicate {
        // `srv_validateAfterHandshake`: a connection uuid already connected is refused.
        tracing::info!(conn = id, "connection uuid already connected: closing");
        let _ = sender.close().await;
        return;
    }
    tracing::info!(
        conn = id,
        peer = %info.peer_address,
        level = ?info.security_level,
        version = %info.peer_version,
        "client connected"
    );
    let mut conn = ConnectionHandler {
        service: service.clone(),
        sender,
        info,
        handle,
        id,
        faults,
    };
    let mut received: u64 = 0;
    while let Some(item) = receiver.recv().await {
        let package = match item {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(conn = id, error = %e, kind = e.kind(), "connection failed");
                break;
            }
        };
        received += 1;
        let flow = conn.dispatch(package).await;
        if matches!(flow, Flow::Close) {
            let _ = conn.sender.close().await;
            break;
        }
        if conn.faults.drop_after.is_some_and(|n| received >= n) {
            tracing::info!(
                conn = id,
                received,
                "fault drop-after: dropping the connection"
            );
            let _ = conn.sender.close().await;
            break;
        }
    }
    conn.disconnected();
}

impl ConnectionHandler {
    /// One package from the client.
    async fn dispatch(&mut self, mut p: Package) -> Flow {
        let t = p.header.package_type;
        if (1..=LAST_MANAGEMENT_TYPE).contains(&t) {
            tracing::debug!(
                conn = self.id,
                package_type = t,
                "io management package ignored"
            );
            return Flow::Continue;
        }
        tracing::debug!(conn = self.id, package_type = t, "command");
        if matches!(t, cmd::USER_LOGIN | cmd::USER_EASY_LOGIN_LOCAL) {
            return self.login_command(&mut p).await;
        }
        let Some(session) = self.session() else {
            self.simple(&p, ErrorCode::USER_OPERATION_NOT_AUTHORISED)
                .await;
            return Flow::Continue;
        };
        self.session_command(&p, &session).await
    }

    /// A command of a logged-in connection: one arm per command the simulator implements.
    async fn session_command(&self, p: &Package, session: &Arc<UserSession>) -> Flow {
        match p.header.package_type {
            cmd::USER_LOGOFF => return self.logoff(p, session).await,
            cmd::USER_CANCEL_OPERATION => self.cancel(p, session).await,
            cmd::ATTACH_TO_LOST_TASK => self.attach(p, session).await,
            SIM_CMD_START_LONG_TASK => self.start_task(p, session).await,
            cmd::USER_GET_HOST_HW_INFO => self.host_info(p, session).await,
            cmd::DIR_GET_VM_LIST => self.vm_list(p, session).await,
            cmd::GET_VM_INFO => self.vm_info(p, session).await,
            // `CDspRouter` routes the VM command range to the VM manager.
            t if cmd::is_vm_command(t) => self.vm_command(p, session).await,
            // Not handled by the dispatcher's switch and not routable: `PRL_ERR_UNIMPLEMENTED`
            // (this includes DspCmdUserPing, which the service never implemented).
            _ => self.simple(p, ErrorCode::UNIMPLEMENTED).await,
        }
        Flow::Continue
    }

    /// `handleClientDisconnected`: the session dies with its connection; tasks flagged
    /// `PACF_CANCEL_TASK_ON_END_SESSION` are cancelled, the others keep running.
    fn disconnected(&self) {
        let mut registry = self.service.registry();
        registry.links.remove(&self.handle);
        registry.logons.remove(&self.handle);
        if let Some(session) = registry.sessions.remove(&self.handle) {
            end_session_tasks(&registry, &self.handle_str());
            tracing::info!(conn = self.id, user = %session.user, "session ended");
        }
        tracing::info!(conn = self.id, "client disconnected");
    }
}
