//! The record layer after the plaintext handshake (sans-I/O).
//!
//! Ported from OpenVZ/libprlcommon, `Libraries/IOService/src/IOCommunication/`:
//! - `Socket/Socket_p.h` `struct SSLv3Header { u8 type; u16 sslVersion; u16 sslDataLength; }`;
//! - `Socket/Socket_p.cpp` `SocketWriteThread::plainWrite` (0xFF records, `sslVersion = 3` in
//!   host order, i.e. bytes `03 00`, big-endian length, chunks of `SSLMaxDataLength = 16384`),
//!   `sslWrite` (application data goes to OpenSSL at most `BIO_get_write_guarantee` bytes at a
//!   time, so each TLS record carries at most `SSLHelper::SSLBuffSize = 15 KiB`), and the write
//!   loop (`findRoute(type) == SSLRoute` → TLS, anything else → plain);
//! - `Socket/SocketClient_p.cpp` `sslHandshake` (handshake bytes go raw between the socket and
//!   OpenSSL, with no header check) and `sslReadAndWait`/`sslHeaderCheck` (afterwards every
//!   record header is checked: `sslVersion` read in host order must be 3 or `TLS1_2_VERSION`,
//!   i.e. bytes `03 00` or `03 03`, and `0 < length <= 16384`, for plain and TLS records alike;
//!   type 0xFF is copied out plainly, any other type is fed, header included, to OpenSSL).
//!
//! # Size limits
//! The real reader refuses any record longer than 16384 bytes, including TLS records, whose
//! ciphertext may legally be up to 16384 + 2048. That is why the real writer hands OpenSSL at
//! most 15 KiB at a time; [`RecordLayer::send`] does the same ([`TLS_WRITE_CHUNK`]), so an
//! AES-GCM record is at most 15360 + 24 bytes. During the TLS handshake the real code does not
//! parse records at all; [`RecordDecoder`] in [`RecordPhase::TlsHandshake`] frames them with
//! the TLS limits (any `03 xx` version, up to 16384 + 2048 bytes), since the first ClientHello
//! record is versioned `03 01` (see the captures).

use std::fmt;

use crate::handshake::{RouteName, RoutingTable};
use crate::package::Package;
use crate::reader::{Reader, Truncated};

/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 5;
/// Record type of plaintext records.
pub const RECORD_PLAIN: u8 = 0xFF;
/// `SSLMaxDataLength`: the largest record payload the real reader accepts (plain or TLS).
pub const MAX_RECORD_PAYLOAD: usize = 16384;
/// The largest TLS record payload framed during the TLS handshake (RFC 5246 `TLSCiphertext`).
pub const MAX_TLS_HANDSHAKE_RECORD_PAYLOAD: usize = 16384 + 2048;
/// `sslVersion` of plain records as the source writes it (host order: bytes `03 00`).
pub const PLAIN_RECORD_VERSION: u16 = 3;
/// `TLS1_2_VERSION` (bytes `03 03`).
pub const TLS1_2_VERSION: u16 = 0x0303;
/// `SSLHelper::SSLBuffSize`: the most application bytes written to TLS at once.
pub const TLS_WRITE_CHUNK: usize = 15 * 1024;
/// TLS record type of application data.
pub const TLS_APPLICATION_DATA: u8 = 0x17;

/// `SSLv3Header`: type, version and big-endian length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// 0xFF for plain records, else a TLS content type.
    pub record_type: u8,
    /// `sslVersion` as the source reads it: the two bytes in host (little-endian) order, so
    /// `03 00` is 3 and `03 03` is 0x0303 (a TLS 1.0 `03 01` reads as 0x0103).
    pub version: u16,
    /// `sslDataLength` (big-endian on the wire): the payload length.
    pub length: u16,
}

impl RecordHeader {
    /// The header of a plain record carrying `length` bytes.
    pub fn plain(length: u16) -> Self {
        Self {
            record_type: RECORD_PLAIN,
            version: PLAIN_RECORD_VERSION,
            length,
        }
    }

    /// The 5 wire bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_HEADER_LEN] {
        let v = self.version.to_le_bytes();
        let l = self.length.to_be_bytes();
        [self.record_type, v[0], v[1], l[0], l[1]]
    }

    /// Parses the 5 wire bytes (exactly; no checks of the values).
    pub fn from_bytes(b: &[u8]) -> Result<Self, RecordError> {
        let length = || RecordError::HeaderLength { found: b.len() };
        let mut r = Reader::new(b);
        let header = Self::read(&mut r).map_err(|_| length())?;
        r.finish("record header").map_err(|_| length())?;
        Ok(header)
    }

    /// Reads a header (no checks of the values).
    fn read(r: &mut Reader<'_>) -> Result<Self, Truncated> {
        Ok(Self {
            record_type: r.u8("record type")?,
            version: r.u16_le("record version")?,
            length: r.u16_be("record length")?,
        })
    }

    /// Whether this is a plain (0xFF) record.
    pub fn is_plain(&self) -> bool {
        self.record_type == RECORD_PLAIN
    }

    /// `sslHeaderCheck`: version 3 or 0x0303, then length <= 16384, then length > 0.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.version != PLAIN_RECORD_VERSION && self.version != TLS1_2_VERSION {
            return Err(RecordError::BadVersion {
                record_type: self.record_type,
                version: self.version,
            });
        }
        if usize::from(self.length) > MAX_RECORD_PAYLOAD {
            return Err(RecordError::Oversize {
                record_type: self.record_type,
                length: usize::from(self.length),
                limit: MAX_RECORD_PAYLOAD,
            });
        }
        if self.length == 0 {
            return Err(RecordError::Empty {
                record_type: self.record_type,
            });
        }
        Ok(())
    }

    /// The framing check used while the TLS handshake runs: a TLS record (not 0xFF) with a
    /// `03 xx` version and at most 16384 + 2048 bytes.
    pub fn check_tls_handshake(&self) -> Result<(), RecordError> {
        if self.is_plain() {
            return Err(RecordError::PlainDuringTlsHandshake);
        }
        if self.version & 0xFF != 3 {
            return Err(RecordError::BadVersion {
                record_type: self.record_type,
                version: self.version,
            });
        }
        if usize::from(self.length) > MAX_TLS_HANDSHAKE_RECORD_PAYLOAD {
            return Err(RecordError::Oversize {
                record_type: self.record_type,
                length: usize::from(self.length),
                limit: MAX_TLS_HANDSHAKE_RECORD_PAYLOAD,
            });
        }
        Ok(())
    }
}

/// Record layer failures. All of them end the connection in the real code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A header whose version the reader refuses.
    #[error("record version {version:#06x} is wrong for record type {record_type:#04x}: expected 0x0003 or 0x0303")]
    BadVersion {
        /// The record type.
        record_type: u8,
        /// `sslVersion` as read (host order).
        version: u16,
    },
    /// A record longer than the reader accepts.
    #[error("record of type {record_type:#04x} is {length} bytes: at most {limit} allowed")]
    Oversize {
        /// The record type.
        record_type: u8,
        /// Its declared length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// A zero-length record (`sslHeaderCheck` refuses them).
    #[error("record of type {record_type:#04x} is empty")]
    Empty {
        /// The record type.
        record_type: u8,
    },
    /// A record header that is not 5 bytes ([`RecordHeader::from_bytes`]).
    #[error("record header is {found} bytes: expected 5")]
    HeaderLength {
        /// The bytes given.
        found: usize,
    },
    /// A 0xFF record while the TLS handshake runs (the real code would feed it to OpenSSL).
    #[error("plain record received during the tls handshake")]
    PlainDuringTlsHandshake,
    /// Application data sent or received before the TLS handshake completed.
    #[error("tls handshake not complete: no application data may flow yet")]
    TlsHandshakeIncomplete,
    /// The TLS engine failed.
    #[error("tls engine: {0}")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl RecordError {
    /// Stable snake_case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadVersion { .. } => "bad_record_version",
            Self::Oversize { .. } => "oversize_record",
            Self::Empty { .. } => "empty_record",
            Self::HeaderLength { .. } => "record_header_length",
            Self::PlainDuringTlsHandshake => "plain_record_during_tls_handshake",
            Self::TlsHandshakeIncomplete => "tls_handshake_incomplete",
            Self::Tls(_) => "tls",
        }
    }

    fn tls<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Self::Tls(Box::new(e))
    }
}

/// Appends `data` as plain records (`plainWrite`): `ff 03 00 LEN_BE` + at most 16384 bytes
/// each. Empty data produces nothing (the real writer never writes empty parts).
pub fn encode_plain(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len().div_ceil(MAX_RECORD_PAYLOAD) * RECORD_HEADER_LEN);
    for chunk in data.chunks(MAX_RECORD_PAYLOAD) {
        // chunks() never yields more than MAX_RECORD_PAYLOAD (< u16::MAX) bytes.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&RecordHeader::plain(len).to_bytes());
        out.extend_from_slice(chunk);
    }
}

/// One record.
#[derive(Clone, PartialEq, Eq)]
pub enum Record {
    /// The payload of a 0xFF record.
    Plain(Vec<u8>),
    /// A whole TLS record, 5-byte header included, as OpenSSL wants it.
    Tls(Vec<u8>),
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads may hold passwords: show sizes only.
        match self {
            Record::Plain(p) => write!(f, "Record::Plain({} bytes)", p.len()),
            Record::Tls(r) => write!(f, "Record::Tls({} bytes)", r.len()),
        }
    }
}

/// Which header check the decoder applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPhase {
    /// While the TLS handshake runs: TLS records only, TLS framing limits.
    TlsHandshake,
    /// Afterwards: `sslHeaderCheck`.
    Established,
}

/// Incremental record decoder: push bytes, pull records.
///
/// It holds at most what was pushed and not yet pulled; a record is returned as soon as it is
/// complete, and a bad header is reported as soon as its 5 bytes are in (it stays in place, so
/// every further call reports it again).
#[derive(Clone)]
pub struct RecordDecoder {
    buf: Vec<u8>,
    pos: usize,
    phase: RecordPhase,
}

impl fmt::Debug for RecordDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordDecoder")
            .field("phase", &self.phase)
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl Default for RecordDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordDecoder {
    /// A decoder for the established phase (`sslHeaderCheck`).
    pub fn new() -> Self {
        Self::with_phase(RecordPhase::Established)
    }

    /// A decoder for the TLS handshake phase.
    pub fn for_tls_handshake() -> Self {
        Self::with_phase(RecordPhase::TlsHandshake)
    }

    /// A decoder in the given phase.
    pub fn with_phase(phase: RecordPhase) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            phase,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> RecordPhase {
        self.phase
    }

    /// Switches phase (records already returned are not re-checked).
    pub fn set_phase(&mut self, phase: RecordPhase) {
        self.phase = phase;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            // Everything was returned: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed and not yet returned as records.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Removes and returns the bytes not yet returned as records.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        rest
    }

    /// The header of the next record, if its 5 bytes are in (unchecked).
    pub fn peek_header(&self) -> Option<RecordHeader> {
        RecordHeader::read(&mut Reader::new(self.buf.get(self.pos..)?)).ok()
    }

    /// The next complete record, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        let pending = self.buf.get(self.pos..).unwrap_or_default();
        let mut r = Reader::new(pending);
        let Ok(header) = RecordHeader::read(&mut r) else {
            return Ok(None);
        };
        match self.phase {
            RecordPhase::TlsHandshake => header.check_tls_handshake()?,
            RecordPhase::Established => header.check()?,
        }
        let Ok(payload) = r.take(usize::from(header.length), "record payload") else {
            return Ok(None);
        };
        let record = if header.is_plain() {
            Record::Plain(payload.to_vec())
        } else {
            Record::Tls(pending.get(..r.position()).unwrap_or_default().to_vec())
        };
        self.pos += r.position();
        if self.pos == self.buf.len() {
            // All returned: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.pos = 0;
        }
        Ok(Some(record))
    }
}

/// A TLS implementation driven over memory (the openssl one lives in `transport/`).
pub trait TlsEngine {
    /// The engine's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Feed whole TLS records (5-byte header included) received from the peer.
    fn feed(&mut self, records: &[u8]);
    /// Advance the handshake; Ok(true) once complete.
    fn handshake(&mut self) -> Result<bool, Self::Error>;
    /// Encrypt application bytes (all of them).
    fn write_app(&mut self, data: &[u8]) -> Result<(), Self::Error>;
    /// Append every application byte that can be decrypted now to `out`.
    fn read_app(&mut self, out: &mut Vec<u8>) -> Result<(), Self::Error>;
    /// Drain the bytes the engine wants sent raw on the socket (TLS records).
    fn take_outgoing(&mut self, out: &mut Vec<u8>);
}

/// The record layer of one connection: TLS handshake, then routed sends and demuxed receives.
pub struct RecordLayer<E: TlsEngine> {
    engine: E,
    table: RoutingTable,
    decoder: RecordDecoder,
    established: bool,
}

impl<E: TlsEngine> fmt::Debug for RecordLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordLayer")
            .field("table", &self.table)
            .field("decoder", &self.decoder)
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

impl<E: TlsEngine> RecordLayer<E> {
    /// A record layer routing by the accepted table; the TLS handshake has not run yet.
    pub fn new(engine: E, accepted_table: RoutingTable) -> Self {
        Self {
            engine,
            table: accepted_table,
            decoder: RecordDecoder::for_tls_handshake(),
            established: false,
        }
    }

    /// The accepted routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine, mutably.
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// Whether the TLS handshake has completed.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The route of a package type (`findRoute` on the accepted table).
    pub fn route_for(&self, package_type: u32) -> RouteName {
        self.table.route_for(package_type)
    }

    /// Drives the TLS handshake: `incoming` are bytes from the peer (possibly empty, e.g. for
    /// the client's first call, which produces the ClientHello); whatever the engine wants sent
    /// is appended to `out`. Returns true once complete. Bytes after the handshake stay
    /// buffered and are processed by the next [`RecordLayer::receive`] (call it, even with no
    /// new bytes, when this returns true).
    pub fn drive_handshake(
        &mut self,
        incoming: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, RecordError> {
        self.decoder.push(incoming);
        if self.established {
            return Ok(true);
        }
        loop {
            let done = self.engine.handshake().map_err(RecordError::tls)?;
            self.engine.take_outgoing(out);
            if done {
                self.established = true;
                self.decoder.set_phase(RecordPhase::Established);
                return Ok(true);
            }
            match self.decoder.next_record()? {
                Some(Record::Tls(r)) => self.engine.feed(&r),
                // check_tls_handshake refuses plain records in this phase.
                Some(Record::Plain(_)) => return Err(RecordError::PlainDuringTlsHandshake),
                None => return Ok(false),
            }
        }
    }

    /// Sends one part (a package header, its descriptors or one buffer) on `route`: plain
    /// records unless the route is `SSL`; TLS output is drained right away so the on-wire
    /// order is the call order.
    pub fn send(
        &mut self,
        route: RouteName,
        part: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if !self.established {
            return Err(RecordError::TlsHandshakeIncomplete);
        }
        // Anything the engine still holds goes first.
        self.engine.take_outgoing(out);
        if route.is_ssl() {
            for chunk in part.chunks(TLS_WRITE_CHUNK) {
                self.engine.write_app(chunk).map_err(RecordError::tls)?;
                self.engine.take_outgoing(out);
            }
        } else {
            encode_plain(part, out);
        }
        Ok(())
    }

    /// [`RecordLayer::send`] on the route of `package_type`.
    pub fn send_for_type(
        &mut self,
        package_type: u32,
        part: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let route = self.route_for(package_type);
        self.send(route, part, out)
    }

    /// Sends a whole package on its type's route, one write per part (header, descriptors,
    /// each non-empty buffer) as the real sender does, so record boundaries match the SDK's.
    pub fn send_package(
        &mut self,
        package: &Package,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let route = self.route_for(package.header.package_type);
        let mut result = Ok(());
        package.write_parts(|part| {
            if result.is_ok() {
                result = self.send(route, part, out);
            }
        });
        result
    }

    /// Demuxes received bytes: plain payloads and decrypted TLS data are appended to `app_out`
    /// in the order their records arrived. Records may split anywhere across calls. On error
    /// the bytes decoded before the bad record are already in `app_out`.
    pub fn receive(&mut self, bytes: &[u8], app_out: &mut Vec<u8>) -> Result<(), RecordError> {
        if !self.established {
            // Nothing is consumed: before TLS completes, bytes go to `drive_handshake`.
            return Err(RecordError::TlsHandshakeIncomplete);
        }
        self.decoder.push(bytes);
        while let Some(record) = self.decoder.next_record()? {
            match record {
                Record::Plain(p) => app_out.extend_from_slice(&p),
                Record::Tls(r) => {
                    self.engine.feed(&r);
                    self.engine.read_app(app_out).map_err(RecordError::tls)?;
                }
            }
        }
        Ok(())
    }

    /// Drains bytes the engine produced outside [`RecordLayer::send`] (e.g. alerts or
    /// renegotiation answers after [`RecordLayer::receive`]).
    pub fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        self.engine.take_outgoing(out);
    }

    /// The engine and any buffered, not yet decoded bytes.
    pub fn into_parts(mut self) -> (E, RoutingTable, Vec<u8>) {
        let rest = self.decoder.take_buffered();
        (self.engine, self.table, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{RouteRequirement, SecurityLevel};

    /// Test-only fake TLS: a one-flight "handshake" (client `16 03 01`, server `16 03 03`) and
    /// an XOR "cipher" in `17 03 03` records. It exists only to exercise the demux.
    #[derive(Debug)]
    struct XorTls {
        client: bool,
        done: bool,
        sent_hello: bool,
        inbox: Vec<u8>,
        outbox: Vec<u8>,
        max_record: usize,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("xor tls: {0}")]
    struct XorError(&'static str);

    impl XorTls {
        fn new(client: bool) -> Self {
            Self {
                client,
                done: false,
                sent_hello: false,
                inbox: Vec::new(),
                outbox: Vec::new(),
                max_record: 0,
            }
        }
        fn record(&mut self, ty: u8, ver: [u8; 2], payload: &[u8]) {
            self.max_record = self.max_record.max(payload.len());
            self.outbox.push(ty);
            self.outbox.extend_from_slice(&ver);
            self.outbox
                .extend_from_slice(&(payload.len() as u16).to_be_bytes());
            self.outbox.extend_from_slice(payload);
        }
        fn pop(&mut self) -> Option<(u8, Vec<u8>)> {
            if self.inbox.len() < 5 {
                return None;
            }
            let len = u16::from_be_bytes([self.inbox[3], self.inbox[4]]) as usize;
            let ty = self.inbox[0];
            let rec: Vec<u8> = self.inbox.drain(..5 + len).collect();
            Some((ty, rec[5..].to_vec()))
        }
    }

    impl TlsEngine for XorTls {
        type Error = XorError;
        fn feed(&mut self, records: &[u8]) {
            self.inbox.extend_from_slice(records);
        }
        fn handshake(&mut self) -> Result<bool, XorError> {
            if self.done {
                return Ok(true);
            }
            if self.client && !self.sent_hello {
                self.sent_hello = true;
                self.record(0x16, [3, 1], b"hello");
                return Ok(false);
            }
            match self.pop() {
                None => Ok(false),
                Some((0x16, p)) if !self.client && p == b"hello" => {
                    self.record(0x16, [3, 3], b"welcome");
                    self.done = true;
                    Ok(true)
                }
                Some((0x16, p)) if self.client && p == b"welcome" => {
                    self.done = true;
                    Ok(true)
                }
                Some(_) => Err(XorError("unexpected handshake record")),
            }
        }
        fn write_app(&mut self, data: &[u8]) -> Result<(), XorError> {
            for chunk in data.chunks(16384) {
                let x: Vec<u8> = chunk.iter().map(|b| b ^ 0x5A).collect();
                self.record(0x17, [3, 3], &x);
            }
            Ok(())
        }
        fn read_app(&mut self, out: &mut Vec<u8>) -> Result<(), XorError> {
            while let Some((ty, p)) = self.pop() {
                if ty != 0x17 {
                    return Err(XorError("not application data"));
                }
                out.extend(p.iter().map(|b| b ^ 0x5A));
            }
            Ok(())
        }
        fn take_outgoing(&mut self, out: &mut Vec<u8>) {
            out.append(&mut self.outbox);
        }
    }

    fn pair(level: SecurityLevel) -> (RecordLayer<XorTls>, RecordLayer<XorTls>) {
        let t = RoutingTable::client(level);
        let mut c = RecordLayer::new(XorTls::new(true), t.clone());
        let mut s = RecordLayer::new(XorTls::new(false), t);
        let mut c2s = Vec::new();
        let mut s2c = Vec::new();
        assert!(!c.drive_handshake(&[], &mut c2s).expect("client starts"));
        assert!(s.drive_handshake(&c2s, &mut s2c).expect("server done"));
        assert!(c
            .drive_handshake(&s2c, &mut Vec::new())
            .expect("client done"));
        (c, s)
    }

    #[test]
    fn send_package_routes_each_part_by_type() {
        let login = Package::request(2039, Default::default(), Default::default(), vec![])
            .with_text("<ParallelsEvent/>");
        let heartbeat = Package::heartbeat();
        for level in [
            SecurityLevel::Low,
            SecurityLevel::Normal,
            SecurityLevel::High,
        ] {
            let (mut c, mut s) = pair(level);
            let mut wire = Vec::new();
            c.send_package(&login, &mut wire).expect("send login");
            c.send_package(&heartbeat, &mut wire)
                .expect("send heartbeat");
            // One record per part: header, descriptors, buffer; then the heartbeat header.
            let mut decoder = RecordDecoder::new();
            decoder.push(&wire);
            let mut kinds = Vec::new();
            while let Some(r) = decoder.next_record().expect("valid records") {
                kinds.push(matches!(r, Record::Plain(_)));
            }
            let login_plain = level == SecurityLevel::Low;
            let heartbeat_plain = level != SecurityLevel::High;
            assert_eq!(
                kinds,
                vec![login_plain, login_plain, login_plain, heartbeat_plain],
                "{level:?}"
            );
            let mut app = Vec::new();
            s.receive(&wire, &mut app).expect("receive");
            let mut expected = login.encode();
            expected.extend_from_slice(&heartbeat.encode());
            assert_eq!(app, expected);
        }
    }

    #[test]
    fn encode_plain_chunks_at_16384() {
        let data: Vec<u8> = (0..40000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode_plain(&data, &mut out);
        assert_eq!(&out[..5], &[0xFF, 0x03, 0x00, 0x40, 0x00]);
        assert_eq!(&out[16389..16394], &[0xFF, 0x03, 0x00, 0x40, 0x00]);
        assert_eq!(&out[32778..32783], &[0xFF, 0x03, 0x00, 0x1C, 0x40]);
        assert_eq!(out.len(), 40000 + 15);
        let mut empty = Vec::new();
        encode_plain(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn header_check_rules() {
        let h = |v: [u8; 2], len: u16| {
            let l = len.to_be_bytes();
            RecordHeader::from_bytes(&[0x17, v[0], v[1], l[0], l[1]]).expect("5 bytes")
        };
        assert!(h([3, 0], 1).check().is_ok());
        assert!(h([3, 3], 16384).check().is_ok());
        assert_eq!(
            h([3, 1], 1).check().map_err(|e| e.kind()),
            Err("bad_record_version")
        );
        assert_eq!(
            h([0, 3], 1).check().map_err(|e| e.kind()),
            Err("bad_record_version")
        );
        assert_eq!(
            h([3, 3], 16385).check().map_err(|e| e.kind()),
            Err("oversize_record")
        );
        assert_eq!(
            h([3, 3], 0).check().map_err(|e| e.kind()),
            Err("empty_record")
        );
        assert!(h([3, 1], 18432).check_tls_handshake().is_ok());
        assert_eq!(
            h([3, 1], 18433).check_tls_handshake().map_err(|e| e.kind()),
            Err("oversize_record")
        );
        // Exactly 5 bytes: fewer or more is a typed error, never a zero-filled header.
        for bytes in [&[0xff, 3, 0, 0][..], &[0xff, 3, 0, 0, 1, 0][..]] {
            assert_eq!(
                RecordHeader::from_bytes(bytes).map_err(|e| e.kind()),
                Err("record_header_length")
            );
        }
    }

    #[test]
    fn demux_interleaves_plain_and_tls_in_arrival_order() {
        let (mut c, mut s) = pair(SecurityLevel::Normal);
        let mut wire = Vec::new();
        c.send_for_type(2039, b"login-", &mut wire).expect("ssl");
        c.send_for_type(10, b"heartbeat-", &mut wire)
            .expect("plain");
        c.send(RouteName::SSL, b"secret-", &mut wire).expect("ssl");
        c.send(RouteName::UNKNOWN, b"unknown-is-plain", &mut wire)
            .expect("plain");
        assert_eq!(wire[0], 0x17);
        let mut app = Vec::new();
        for b in &wire {
            s.receive(std::slice::from_ref(b), &mut app)
                .expect("receive");
        }
        assert_eq!(app, b"login-heartbeat-secret-unknown-is-plain");
    }

    #[test]
    fn large_tls_writes_are_cut_at_15k() {
        let (mut c, mut s) = pair(SecurityLevel::High);
        let data: Vec<u8> = (0..50000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = Vec::new();
        c.send_for_type(10, &data, &mut wire).expect("send");
        assert_eq!(c.engine().max_record, TLS_WRITE_CHUNK);
        let mut app = Vec::new();
        s.receive(&wire, &mut app).expect("receive");
        assert_eq!(app, data);
    }

    #[test]
    fn no_application_data_before_tls() {
        let mut c = RecordLayer::new(XorTls::new(true), RoutingTable::client(SecurityLevel::Low));
        let mut out = Vec::new();
        assert_eq!(
            c.send(RouteName::PLAIN, b"x", &mut out)
                .map_err(|e| e.kind()),
            Err("tls_handshake_incomplete")
        );
        assert_eq!(
            c.receive(b"", &mut out).map_err(|e| e.kind()),
            Err("tls_handshake_incomplete")
        );
    }

    #[test]
    fn plain_record_during_tls_handshake_is_refused() {
        let mut s = RecordLayer::new(XorTls::new(false), RoutingTable::client(SecurityLevel::Low));
        let mut rec = Vec::new();
        encode_plain(b"early", &mut rec);
        assert_eq!(
            s.drive_handshake(&rec, &mut Vec::new())
                .map_err(|e| e.kind()),
            Err("plain_record_during_tls_handshake")
        );
    }

    #[test]
    fn bytes_after_the_handshake_are_kept() {
        let t = RoutingTable::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        let mut c = RecordLayer::new(XorTls::new(true), t.clone());
        let mut s = RecordLayer::new(XorTls::new(false), t);
        let mut c2s = Vec::new();
        c.drive_handshake(&[], &mut c2s).expect("hello");
        let mut s2c = Vec::new();
        s.drive_handshake(&c2s, &mut s2c).expect("server");
        // The server's first plain record arrives with its last handshake flight.
        s.send(RouteName::PLAIN, b"first", &mut s2c).expect("send");
        assert!(c.drive_handshake(&s2c, &mut Vec::new()).expect("done"));
        let mut app = Vec::new();
        c.receive(&[], &mut app).expect("flush");
        assert_eq!(app, b"first");
    }

    #[test]
    fn tls_engine_errors_surface() {
        let (_, mut s) = pair(SecurityLevel::High);
        let mut app = Vec::new();
        // A TLS alert-typed record: the fake engine refuses it.
        let bad = [0x15, 3, 3, 0, 1, 0];
        assert_eq!(s.receive(&bad, &mut app).map_err(|e| e.kind()), Err("tls"));
    }
}
