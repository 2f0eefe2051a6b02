//! How answers reach a connection: the connection that asked
//! (`sendSimpleResponseToClient(h, ...)`), or the connection of the session the answer belongs
//! to (`CDspClient::sendPackage`), which after a live session was taken over from another
//! connection is that other one. Reply faults apply to direct replies; task events and results
//! go out unchanged.

use prl_protocol::commands::simple_response;
use prl_protocol::package::{Package, HEADER_LEN};
use prl_protocol::{ErrorCode, Uuid};
use prl_transport::PackageSender;

use super::state::{ConnectionHandler, SimService, UserSession};
use crate::faults::Faults;

/// The connection a reply goes out on, as far as building the reply is concerned.
pub(super) struct ReplyTarget {
    /// Our connection uuid on it (the reply's sender).
    pub(super) local_uuid: Uuid,
    /// Its peer takes the binary login reply 5003 (`IOPROTOCOL_BINARY_RESPONSE_SUPPORT` of
    /// that connection's client).
    pub(super) binary_response: bool,
}

impl ConnectionHandler {
    /// Sends a reply on this connection, applying its reply faults
    /// (`CDspService::sendSimpleResponseToClient(h, ...)`: to the connection that asked).
    pub(super) async fn reply(&self, package: Package) {
        deliver(&self.sender, &self.faults, self.id, package).await;
    }

    /// A simple 5001 reply with `code` on this connection.
    pub(super) async fn simple(&self, request: &Package, code: ErrorCode) {
        let reply = simple_response(
            request,
            self.info.local_connection_uuid,
            Uuid::new_v4(),
            code,
            &[],
            &mut Uuid::new_v4,
        );
        self.reply(reply).await;
    }

    /// Sends a reply the way `CDspClient` sends (`sendPackage`, `sendSimpleResponse`): to the
    /// session's own connection (`m_clientHandle`). After a live session was restored from
    /// another connection (`processAuthorizeCmd` registers the new connection with the old
    /// session object), that is the session's original connection, not this one; if it is
    /// gone the reply is lost, as in the service. `make` builds the reply for the connection
    /// it goes out on.
    pub(super) async fn reply_via_session(
        &self,
        session: &UserSession,
        make: impl FnOnce(&ReplyTarget) -> Package,
    ) {
        if session.handle == self.handle_str() {
            let target = ReplyTarget {
                local_uuid: self.info.local_connection_uuid,
                binary_response: self.info.peer_version.supports_binary_response(),
            };
            return self.reply(make(&target)).await;
        }
        let link = self.service.registry().link_of(&session.handle).map(|l| {
            let target = ReplyTarget {
                local_uuid: l.local_uuid,
                binary_response: l.binary_response,
            };
            (l.sender.clone(), target, l.faults.clone(), l.id)
        });
        match link {
            Some((sender, target, faults, id)) => {
                tracing::debug!(
                    conn = self.id,
                    to = id,
                    "reply sent to the session's connection"
                );
                deliver(&sender, &faults, id, make(&target)).await;
            }
            None => tracing::debug!(
                conn = self.id,
                "the session's connection is gone: reply lost"
            ),
        }
    }

    /// A simple reply through the session (see [`ConnectionHandler::reply_via_session`]).
    pub(super) async fn simple_via_session(
        &self,
        request: &Package,
        session: &UserSession,
        code: ErrorCode,
    ) {
        self.reply_via_session(session, |target| {
            simple_response(
                request,
                target.local_uuid,
                Uuid::new_v4(),
                code,
                &[],
                &mut Uuid::new_v4,
            )
        })
        .await;
    }
}

/// Writes a reply on a connection, applying that connection's reply faults.
async fn deliver(sender: &PackageSender, faults: &Faults, conn: u64, package: Package) {
    if let Some(d) = faults.reply_delay {
        tokio::time::sleep(d).await;
    }
    let result = if faults.garbage {
        sender.send_raw_wire(vec![0x5A; 64]).await
    } else if faults.bad_crc {
        // The package's own write parts, with the header's CRC corrupted.
        let mut parts = Vec::new();
        package.write_parts(|part| parts.push(part.to_vec()));
        if let Some(b) = parts.first_mut().and_then(|h| h.get_mut(HEADER_LEN - 1)) {
            *b ^= 0xFF;
        }
        sender
            .send_raw_parts(package.header.package_type, parts)
            .await
    } else {
        sender.send(package).await
    };
    if let Err(e) = result {
        tracing::debug!(conn, error = %e, "reply not sent");
    }
}

/// Sends a package, unchanged, to the connection of a session (lost if that connection is
/// gone, as in the service). `make` builds it for our connection uuid on that connection.
pub(super) async fn send_to_session(
    service: &SimService,
    session: &UserSession,
    make: impl FnOnce(Uuid) -> Package,
) {
    let target = service
        .registry()
        .link_of(&session.handle)
        .map(|l| (l.sender.clone(), l.local_uuid));
    if let Some((sender, local)) = target {
        let _ = sender.send(make(local)).await;
    }
}

/// Sends a reply to the connection of a session, with that connection's reply faults: how a
/// VM operation that runs on its own (a fork of `CDspVmManager`) answers through the session's
/// `CDspClient`. Lost if the connection is gone.
pub(super) async fn reply_to_session(
    service: &SimService,
    session: &UserSession,
    make: impl FnOnce(Uuid) -> Package,
) {
    let link = service
        .registry()
        .link_of(&session.handle)
        .map(|l| (l.sender.clone(), l.local_uuid, l.faults.clone(), l.id));
    match link {
        Some((sender, local, faults, id)) => deliver(&sender, &faults, id, make(local)).await,
        None => tracing::debug!("the session's connection is gone: reply lost"),
    }
}
