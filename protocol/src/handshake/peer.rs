//! What both roles share: reading the peer's three parts (version, header, routing table)
//! incrementally with the checks of `cli_parseHandshake` / `srv_parseHandshake`, and the
//! [`Handshake`] trait whose default methods drive that reader, so each role adds only its
//! hello and what a complete peer hello means to it.

use std::fmt;

use super::routing::TableHeader;
use super::{HandshakeError, HandshakeHeader, ProtocolVersion, RoutingTable};
use super::{HANDSHAKE_HEADER_LEN, PROTOCOL_VERSION_LEN, ROUTING_TABLE_HEADER_LEN};
use crate::reader::Reader;

/// What both roles of the plaintext handshake have in common, so one driver that owns the
/// socket can run either: send `hello`, `feed` what arrives until an outcome, `eof` when the
/// peer closes first. Implemented by [`super::ClientHandshake`] and [`super::ServerHandshake`]
/// only (sealed); every method has its one implementation here.
pub trait Handshake: sealed::Role {
    /// The bytes this side sends first.
    fn hello(&self) -> Vec<u8> {
        self.exchange().hello.clone()
    }

    /// Feeds bytes from the peer. Returns the outcome once the peer's version, header and
    /// routing table are complete and accepted; bytes after them are kept for
    /// [`Handshake::take_leftover`]. After an error every call returns that error.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<Self::Outcome>, HandshakeError> {
        let Some(peer) = self.exchange_mut().reader.feed(bytes)? else {
            return Ok(None);
        };
        self.complete(peer).map(Some).inspect_err(|e| {
            self.exchange_mut().reader.stage = Stage::Failed(e.clone());
        })
    }

    /// The error to report when the peer closes the connection now.
    fn eof(&mut self) -> HandshakeError {
        self.exchange_mut().reader.eof()
    }

    /// Whether the handshake has completed.
    fn is_complete(&self) -> bool {
        matches!(self.exchange().reader.stage, Stage::Done)
    }

    /// Bytes received after the peer's hello (the start of the TLS handshake).
    fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.exchange_mut().reader.leftover)
    }
}

pub(super) mod sealed {
    use super::{Exchange, PeerHello};
    use crate::handshake::HandshakeError;

    /// The role-specific part of a [`super::Handshake`].
    pub trait Role {
        /// What a completed handshake yields.
        type Outcome;
        /// The hello and the peer reader.
        fn exchange(&self) -> &Exchange;
        /// The hello and the peer reader.
        fn exchange_mut(&mut self) -> &mut Exchange;
        /// What the peer's complete, checked hello gives this role (the server's `accept`).
        fn complete(&mut self, peer: PeerHello) -> Result<Self::Outcome, HandshakeError>;
    }
}

/// This side's hello and the reader of the peer's.
pub struct Exchange {
    hello: Vec<u8>,
    reader: PeerReader,
}

impl Exchange {
    /// `hello` is what this side sends first; `local_major` the major number the peer must have.
    pub(super) fn new(hello: Vec<u8>, local_major: u16) -> Self {
        Exchange {
            hello,
            reader: PeerReader::new(local_major),
        }
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("stage", &self.reader.stage.name())
            .field("hello_len", &self.hello.len())
            .field("leftover_len", &self.reader.leftover.len())
            .finish()
    }
}

/// The peer's three parts, read and checked.
#[derive(Debug)]
pub struct PeerHello {
    /// Its protocol version (same major as ours).
    pub version: ProtocolVersion,
    /// Its sender type and connection UUID.
    pub header: HandshakeHeader,
    /// Its routing table (not null).
    pub table: RoutingTable,
}

/// Incremental reader of the fixed-size parts of a handshake (bounded by the largest part).
#[derive(Debug, Default)]
struct PartReader {
    buf: Vec<u8>,
}

impl PartReader {
    /// Moves bytes from `input` until `want` are buffered; returns them once complete.
    fn fill(&mut self, input: &mut &[u8], want: usize) -> Option<Vec<u8>> {
        let need = want.saturating_sub(self.buf.len());
        let (now, later) = input.split_at(need.min(input.len()));
        self.buf.extend_from_slice(now);
        *input = later;
        (self.buf.len() >= want).then(|| std::mem::take(&mut self.buf))
    }
}

/// What is being read, with what has been read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Version,
    Header {
        version: ProtocolVersion,
    },
    TableHeader {
        version: ProtocolVersion,
        header: HandshakeHeader,
    },
    Routes {
        version: ProtocolVersion,
        header: HandshakeHeader,
        table_header: Vec<u8>,
        len: usize,
    },
    Done,
    Failed(HandshakeError),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Version => "protocol version",
            Stage::Header { .. } => "handshake header",
            Stage::TableHeader { .. } => "routing table header",
            Stage::Routes { .. } => "routing table routes",
            Stage::Done | Stage::Failed(_) => "record layer",
        }
    }
}

/// Reads the peer's version, header and table, in that order, each checked once complete.
#[derive(Debug)]
struct PeerReader {
    local_major: u16,
    stage: Stage,
    part: PartReader,
    leftover: Vec<u8>,
}

impl PeerReader {
    fn new(local_major: u16) -> Self {
        Self {
            local_major,
            stage: Stage::Version,
            part: PartReader::default(),
            leftover: Vec::new(),
        }
    }

    /// Reads the peer's parts; the hello once all three are in.
    fn feed(&mut self, mut input: &[u8]) -> Result<Option<PeerHello>, HandshakeError> {
        loop {
            match &self.stage {
                Stage::Failed(e) => return Err(e.clone()),
                Stage::Done => return Err(HandshakeError::AlreadyComplete),
                _ => {}
            }
            match self.step(&mut input) {
                Ok(Some(hello)) => {
                    self.stage = Stage::Done;
                    self.leftover.extend_from_slice(input);
                    return Ok(Some(hello));
                }
                Ok(None) if input.is_empty() => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    self.stage = Stage::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Advances by at most one part. On an error the caller replaces the stage.
    fn step(&mut self, input: &mut &[u8]) -> Result<Option<PeerHello>, HandshakeError> {
        let want = match &self.stage {
            Stage::Version => PROTOCOL_VERSION_LEN,
            Stage::Header { .. } => HANDSHAKE_HEADER_LEN,
            Stage::TableHeader { .. } => ROUTING_TABLE_HEADER_LEN,
            Stage::Routes { len, .. } => *len,
            Stage::Done | Stage::Failed(_) => return Ok(None),
        };
        let Some(part) = self.part.fill(input, want) else {
            return Ok(None);
        };
        let (next, hello) = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Version => {
                let version = ProtocolVersion::from_bytes(&part)?;
                if version.major != self.local_major {
                    return Err(HandshakeError::MajorVersionMismatch {
                        expected: self.local_major,
                        found: version.major,
                        found_minor: version.minor,
                    });
                }
                (Stage::Header { version }, None)
            }
            Stage::Header { version } => {
                let header = HandshakeHeader::from_bytes(&part)?;
                header.check()?;
                (Stage::TableHeader { version, header }, None)
            }
            Stage::TableHeader { version, header } => {
                let count = TableHeader::read(&mut Reader::new(&part))?.routes_number;
                match RoutingTable::wire_len(count)? - ROUTING_TABLE_HEADER_LEN {
                    0 => {
                        let table = finish_table(part, &[])?;
                        (Stage::Done, Some(hello(version, header, table)))
                    }
                    len => {
                        let table_header = part;
                        let routes = Stage::Routes {
                            version,
                            header,
                            table_header,
                            len,
                        };
                        (routes, None)
                    }
                }
            }
            Stage::Routes {
                version,
                header,
                table_header,
                ..
            } => {
                let table = finish_table(table_header, &part)?;
                (Stage::Done, Some(hello(version, header, table)))
            }
            done_or_failed => (done_or_failed, None),
        };
        self.stage = next;
        Ok(hello)
    }

    fn eof(&mut self) -> HandshakeError {
        let e = match &self.stage {
            Stage::Failed(e) => return e.clone(),
            Stage::Done => return HandshakeError::AlreadyComplete,
            s => HandshakeError::PeerClosed { stage: s.name() },
        };
        self.stage = Stage::Failed(e.clone());
        e
    }
}

fn hello(version: ProtocolVersion, header: HandshakeHeader, table: RoutingTable) -> PeerHello {
    PeerHello {
        version,
        header,
        table,
    }
}

/// The table from its header and routes; a null table is refused (`RoutingTableAcceptError`
/// on the client, a closed socket on the server).
fn finish_table(mut table: Vec<u8>, routes: &[u8]) -> Result<RoutingTable, HandshakeError> {
    table.extend_from_slice(routes);
    let table = RoutingTable::from_bytes(&table)?;
    if table.is_null() {
        return Err(HandshakeError::NullRoutingTable);
    }
    Ok(table)
}
