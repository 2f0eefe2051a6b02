//! Client side of the handshake (`cli_sendHandshake` + `cli_parseHandshake`).

use std::fmt;

use uuid::Uuid;

use super::peer::{sealed, Exchange, PeerHello};
use super::{Handshake, HandshakeError, HandshakeHeader, ProtocolVersion, RoutingTable};
use super::{SecurityLevel, SenderType, SERVER_HELLO_LEN};

/// The client result: what the server said and the table both sides now route by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutcome {
    /// The server's protocol version (same major as ours).
    pub server_version: ProtocolVersion,
    /// The server's sender type and connection UUID.
    pub server_header: HandshakeHeader,
    /// The accepted routing table the server sent (the client routes by it, unchecked).
    pub accepted_table: RoutingTable,
}

/// Client side of the handshake (`cli_sendHandshake` + `cli_parseHandshake`): sends its hello
/// and takes the server's version, header and accepted table ([`Handshake`]).
pub struct ClientHandshake {
    exchange: Exchange,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("exchange", &self.exchange)
            .finish()
    }
}

impl ClientHandshake {
    /// A client (`SenderType::CLIENT`) with the helper table for `level`.
    pub fn new(
        version: ProtocolVersion,
        connection_uuid: Uuid,
        level: SecurityLevel,
    ) -> Result<Self, HandshakeError> {
        let header = HandshakeHeader {
            sender_type: SenderType::CLIENT,
            connection_uuid,
        };
        Self::with_table(version, header, &RoutingTable::client(level))
    }

    /// A client with any header and table (e.g. a table in a given `QHash` order). Its hello
    /// is version (72) + header (20) + routing table.
    pub fn with_table(
        version: ProtocolVersion,
        header: HandshakeHeader,
        table: &RoutingTable,
    ) -> Result<Self, HandshakeError> {
        let mut hello = Vec::with_capacity(SERVER_HELLO_LEN + table.encoded_len());
        hello.extend_from_slice(&version.to_bytes()?);
        hello.extend_from_slice(&header.to_bytes());
        table.encode(&mut hello)?;
        Ok(Self {
            exchange: Exchange::new(hello, version.major),
        })
    }
}

impl sealed::Role for ClientHandshake {
    type Outcome = ClientOutcome;

    fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    fn exchange_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }

    /// The client routes by the table the server sent, unchecked beyond `fromBuffer`.
    fn complete(&mut self, peer: PeerHello) -> Result<ClientOutcome, HandshakeError> {
        Ok(ClientOutcome {
            server_version: peer.version,
            server_header: peer.header,
            accepted_table: peer.table,
        })
    }
}

impl Handshake for ClientHandshake {}
