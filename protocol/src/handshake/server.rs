//! Server side of the handshake (`srv_sendHandshake` + `srv_parseHandshake` +
//! `srv_sendRoutingTable`).

use std::fmt;

use uuid::Uuid;

use super::peer::{sealed, Exchange, PeerHello};
use super::{Handshake, HandshakeError, HandshakeHeader, ProtocolVersion, RoutingTable};
use super::{SecurityLevel, SenderType, SERVER_HELLO_LEN};

/// The server result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOutcome {
    /// The client's protocol version (same major as ours).
    pub client_version: ProtocolVersion,
    /// The client's sender type and connection UUID (the future session id).
    pub client_header: HandshakeHeader,
    /// The table both sides route by.
    pub accepted_table: RoutingTable,
    /// The accepted table's bytes, to send to the client (`srv_sendRoutingTable`).
    pub reply: Vec<u8>,
}

/// Server side of the handshake: sends its hello right after accept, takes the client's
/// version, header and table and answers with the accepted table ([`Handshake`]). On any
/// error the real server just closes the socket.
pub struct ServerHandshake {
    table: RoutingTable,
    exchange: Exchange,
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("table", &self.table)
            .field("exchange", &self.exchange)
            .finish()
    }
}

impl ServerHandshake {
    /// A dispatcher (`SenderType::DISPATCHER`) with the helper server table for `min_level`.
    pub fn new(
        version: ProtocolVersion,
        server_uuid: Uuid,
        min_level: SecurityLevel,
    ) -> Result<Self, HandshakeError> {
        let header = HandshakeHeader {
            sender_type: SenderType::DISPATCHER,
            connection_uuid: server_uuid,
        };
        Self::with_table(version, header, RoutingTable::server(min_level))
    }

    /// A server with any header and table. Its hello is version (72) + header (20).
    pub fn with_table(
        version: ProtocolVersion,
        header: HandshakeHeader,
        table: RoutingTable,
    ) -> Result<Self, HandshakeError> {
        let mut hello = Vec::with_capacity(SERVER_HELLO_LEN);
        hello.extend_from_slice(&version.to_bytes()?);
        hello.extend_from_slice(&header.to_bytes());
        Ok(Self {
            table,
            exchange: Exchange::new(hello, version.major),
        })
    }

    /// The server's own routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }
}

impl sealed::Role for ServerHandshake {
    type Outcome = ServerOutcome;

    fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    fn exchange_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }

    /// `IORoutingTable::accept` of the client's table, and the accepted table's bytes.
    fn complete(&mut self, peer: PeerHello) -> Result<ServerOutcome, HandshakeError> {
        let accepted_table = self.table.accept(&peer.table)?;
        let reply = accepted_table.to_bytes()?;
        Ok(ServerOutcome {
            client_version: peer.version,
            client_header: peer.header,
            accepted_table,
            reply,
        })
    }
}

impl Handshake for ServerHandshake {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::ClientHandshake;

    fn uuid(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn server_checks_in_order() {
        let mut s = ServerHandshake::new(ProtocolVersion::current(), uuid(2), SecurityLevel::Low)
            .expect("server");
        let mut hello =
            ClientHandshake::new(ProtocolVersion::current(), uuid(1), SecurityLevel::Low)
                .expect("client")
                .hello();
        hello[72..76].copy_from_slice(&0u32.to_le_bytes());
        hello[76..92].copy_from_slice(&[0; 16]);
        // Both the sender type and the uuid are bad: the uuid is checked first.
        assert_eq!(
            s.feed(&hello).map_err(|e| e.kind()),
            Err("nil_connection_uuid")
        );
        // Poisoned afterwards.
        assert_eq!(
            s.feed(&[]).map_err(|e| e.kind()),
            Err("nil_connection_uuid")
        );
    }
}
