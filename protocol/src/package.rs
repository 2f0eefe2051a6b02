//! IOPackage: the 82-byte little-endian header, buffer descriptors and buffers.
//!
//! Byte-exact to libprlcommon `Libraries/IOService/src/IOCommunication/IOProtocol.h`
//! (`IOPackage::PODHeader`, `IOPackage::PODData`, packed, written as raw x86 memory) and
//! `IOProtocol.cpp` (`writeToStream`, `headerChecksumCRC16`, `SIZE_LIMIT`, `MAX_BUFFERS_COUNT`).
//! The receive checks follow `Socket/SocketClient_p.cpp` (`doJob`), the write calls
//! `Socket/Socket_p.cpp` (`SocketWriteThread::doJob`).
//!
//! ```text
//! offset size field
//!      0   16 uuid            raw RFC-4122 bytes (package id; a request's id is its job id)
//!     16   16 parentUuid      non-nil = response; the uuid of the request it answers
//!     32   16 senderUuid      sender's connection uuid
//!     48   16 receiverUuid    direct responses: the request's senderUuid
//!     64    4 type            u32 LE
//!     68    8 numericId       u64 LE
//!     76    4 buffersNumber   u32 LE, <= MAX_BUFFERS_COUNT (1024)
//!     80    2 crc16           u16 LE, CRC-16/X-25 (qChecksum) over bytes 0..80
//!     82  8*n descriptors     only if buffersNumber > 0: n x { u32 encoding, u32 size } LE
//!      …    … buffers         the buffer bytes, concatenated in order, no padding
//! ```
//!
//! The whole package must be at most `IOPackage::SIZE_LIMIT` (1 GiB); the real receiver checks
//! this after the descriptors, before reading any buffer. [`Limits`] lets callers pick a lower
//! bound. Unlike the real receiver (whose `quint32` size sum can wrap), the declared size is
//! summed without overflow.
//!
//! The real sender writes a package in separate calls, each becoming one or more records of the
//! record layer: the header, the descriptor array (if any), then every *non-empty* buffer. See
//! [`Package::write_parts`].

use thiserror::Error;
use uuid::Uuid;

use crate::reader::{Reader, Trailing, Truncated};

/// Size of the package header on the wire.
pub const HEADER_LEN: usize = 82;
/// Size of one buffer descriptor (`PODData`) on the wire.
pub const DESCRIPTOR_LEN: usize = 8;
/// Largest number of buffers a package may declare (`MAX_BUFFERS_COUNT`).
pub const MAX_BUFFERS: usize = 1024;
/// The protocol's own size limit for a whole package (`IOPackage::SIZE_LIMIT`).
pub const PROTOCOL_SIZE_LIMIT: usize = 1 << 30;

/// Byte offset of the `crc16` field; the checksum covers the bytes before it.
const CRC_OFFSET: usize = 80;

/// Buffer encodings (`IOPackage::EncodingType`).
pub const ENCODING_RAW: u32 = 0;
/// Page-aligned allocation on receive; otherwise identical to raw.
pub const ENCODING_RAW_ALIGNED: u32 = 8;

/// Management package types (`IOCommunicationMngPackage::Type`, `B = 1`).
/// They are consumed by the IO layer and never reach the application.
pub const MNG_START_TRAFFIC_REPORT: u32 = 3;
/// `StopTrafficReport`.
pub const MNG_STOP_TRAFFIC_REPORT: u32 = 4;
/// `TrafficReport`.
pub const MNG_TRAFFIC_REPORT: u32 = 5;
/// `TimeSync`.
pub const MNG_TIME_SYNC: u32 = 6;
/// `AttachClient`.
pub const MNG_ATTACH_CLIENT: u32 = 7;
/// `DetachClientRequest`.
pub const MNG_DETACH_CLIENT_REQUEST: u32 = 8;
/// `DetachClientResponse`.
pub const MNG_DETACH_CLIENT_RESPONSE: u32 = 9;
/// `HeartBeat`: header only, all UUIDs nil, sent every 10 s.
pub const MNG_HEARTBEAT: u32 = 10;
/// `DetachBothSidesRequest`.
pub const MNG_DETACH_BOTH_SIDES_REQUEST: u32 = 11;

/// The routing and identity fields of a package header (buffer count and CRC are derived).
///
/// `Debug` redacts `sender_uuid` and `receiver_uuid`: they are connection UUIDs, and a client's
/// connection UUID is its session id.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageHeader {
    /// Package id; a request's id is its job id.
    pub uuid: Uuid,
    /// Non-nil for a response: the `uuid` of the request it answers.
    pub parent_uuid: Uuid,
    /// The sender's connection UUID.
    pub sender_uuid: Uuid,
    /// The receiver's connection UUID (direct responses).
    pub receiver_uuid: Uuid,
    /// Package type: command id, event type or management type.
    pub package_type: u32,
    /// Event ordering id (protocol >= 6.8); 0 unless generated.
    pub numeric_id: u64,
}

/// One package buffer.
///
/// `Debug` shows the encoding and length only: buffers carry passwords and session ids.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Buffer {
    /// `ENCODING_RAW` or `ENCODING_RAW_ALIGNED`.
    pub encoding: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A whole IO package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    /// Header fields.
    pub header: PackageHeader,
    /// Buffers, in order.
    pub buffers: Vec<Buffer>,
}

/// Bounds applied by the decoders (and by [`Package::check_limits`] on the send side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted package, header + descriptors + buffers, in bytes.
    pub max_package_len: usize,
    /// Largest accepted `buffersNumber`.
    pub max_buffers: usize,
}

impl Default for Limits {
    /// A conservative bound for clients and relays: 16 MiB, 1024 buffers.
    fn default() -> Self {
        Limits {
            max_package_len: 16 << 20,
            max_buffers: MAX_BUFFERS,
        }
    }
}

impl Limits {
    /// What the real IO layer accepts: 1 GiB (`SIZE_LIMIT`), 1024 buffers (`MAX_BUFFERS_COUNT`).
    pub const fn protocol() -> Self {
        Limits {
            max_package_len: PROTOCOL_SIZE_LIMIT,
            max_buffers: MAX_BUFFERS,
        }
    }
}

/// Why a package could not be decoded (or a buffer read as text).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackageError {
    /// The header's `crc16` does not match its first 80 bytes; the real peer disconnects.
    #[error("package header crc mismatch: expected {expected:#06x}, found {found:#06x}")]
    BadCrc {
        /// CRC computed over the received header bytes.
        expected: u16,
        /// CRC field as received.
        found: u16,
    },
    /// The input ends inside the package (one-shot decode only).
    #[error("package truncated: needs at least {needed} bytes, {available} available")]
    Truncated {
        /// Bytes needed as far as the package could be read.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// Bytes follow the package (one-shot decode only).
    #[error("{0} trailing bytes after the package")]
    TrailingBytes(usize),
    /// `buffersNumber` exceeds the limit.
    #[error("package declares {declared} buffers, limit is {limit}")]
    TooManyBuffers {
        /// `buffersNumber` from the header.
        declared: u64,
        /// `Limits::max_buffers`.
        limit: usize,
    },
    /// Header + descriptors + declared buffer sizes exceed the limit.
    #[error("package declares {declared} bytes, limit is {limit}")]
    TooLarge {
        /// Declared total size (saturating).
        declared: u64,
        /// `Limits::max_package_len`.
        limit: usize,
    },
    /// A text buffer has no NUL terminator.
    #[error("text buffer {index} is not nul-terminated")]
    TextUnterminated {
        /// Buffer index.
        index: usize,
    },
    /// A text buffer is not valid UTF-8 before its NUL.
    #[error("text buffer {index} is not utf-8 (valid up to byte {valid_up_to})")]
    TextNotUtf8 {
        /// Buffer index.
        index: usize,
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
}

impl PackageError {
    /// Stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            PackageError::BadCrc { .. } => "bad_crc",
            PackageError::Truncated { .. } => "truncated",
            PackageError::TrailingBytes(_) => "trailing_bytes",
            PackageError::TooManyBuffers { .. } => "too_many_buffers",
            PackageError::TooLarge { .. } => "too_large",
            PackageError::TextUnterminated { .. } => "text_unterminated",
            PackageError::TextNotUtf8 { .. } => "text_not_utf8",
        }
    }
}

/// A `usize` limit as `u64` (saturating on exotic targets).
fn limit_u64(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX)
}

/// A length or count as the wire's `u32`, saturating at `u32::MAX`.
///
/// Only a package far above the protocol's 1 GiB limit saturates ([`Package::check_limits`]
/// rejects it first). Its saturated header or descriptor declares more than any receiver
/// accepts (more than 1024 buffers, or more than 1 GiB), so the peer refuses it before reading
/// a body byte instead of misreading the stream.
fn wire_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl From<Truncated> for PackageError {
    /// Counted from the start of the decoded bytes.
    fn from(e: Truncated) -> Self {
        PackageError::Truncated {
            needed: e.needed_total(),
            available: e.available_total(),
        }
    }
}

impl From<Trailing> for PackageError {
    fn from(e: Trailing) -> Self {
        PackageError::TrailingBytes(e.count)
    }
}

impl PackageHeader {
    /// True for a response package (`IOPackage::isResponsePackage`: `parentUuid` is non-nil).
    pub fn is_response(&self) -> bool {
        !self.parent_uuid.is_nil()
    }

    /// The 82 wire bytes of this header with the given `buffersNumber`, CRC filled in.
    pub fn to_bytes(&self, buffers_number: u32) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..16].copy_from_slice(self.uuid.as_bytes());
        out[16..32].copy_from_slice(self.parent_uuid.as_bytes());
        out[32..48].copy_from_slice(self.sender_uuid.as_bytes());
        out[48..64].copy_from_slice(self.receiver_uuid.as_bytes());
        out[64..68].copy_from_slice(&self.package_type.to_le_bytes());
        out[68..76].copy_from_slice(&self.numeric_id.to_le_bytes());
        out[76..80].copy_from_slice(&buffers_number.to_le_bytes());
        let crc = crate::crc::crc16_x25(&out[..CRC_OFFSET]);
        out[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses the 82 header bytes (exactly), checking the CRC first. Returns the header and
    /// its `buffersNumber`.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Self, u32), PackageError> {
        let mut r = Reader::new(bytes);
        let covered = r.take(CRC_OFFSET, "package header")?;
        let found = r.u16_le("package header crc")?;
        r.finish("package header")?;
        let expected = crate::crc::crc16_x25(covered);
        if expected != found {
            return Err(PackageError::BadCrc { expected, found });
        }
        let mut r = Reader::new(covered);
        let header = PackageHeader {
            uuid: r.uuid("package uuid")?,
            parent_uuid: r.uuid("package parent uuid")?,
            sender_uuid: r.uuid("package sender uuid")?,
            receiver_uuid: r.uuid("package receiver uuid")?,
            package_type: r.u32_le("package type")?,
            numeric_id: r.u64_le("package numeric id")?,
        };
        let buffers_number = r.u32_le("package buffer count")?;
        r.finish("package header")?;
        Ok((header, buffers_number))
    }
}

impl std::fmt::Debug for PackageHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |u: &Uuid| if u.is_nil() { "nil" } else { "<redacted>" };
        f.debug_struct("PackageHeader")
            .field("uuid", &self.uuid)
            .field("parent_uuid", &self.parent_uuid)
            .field(
                "sender_uuid",
                &format_args!("{}", redact(&self.sender_uuid)),
            )
            .field(
                "receiver_uuid",
                &format_args!("{}", redact(&self.receiver_uuid)),
            )
            .field("package_type", &self.package_type)
            .field("numeric_id", &self.numeric_id)
            .finish()
    }
}

impl Buffer {
    /// A raw-encoded buffer.
    pub fn raw(data: Vec<u8>) -> Self {
        Buffer {
            encoding: ENCODING_RAW,
            data,
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("encoding", &self.encoding)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// A dispatcher text buffer: the UTF-8 bytes plus a trailing NUL (`size = utf8.size() + 1`).
pub fn text_buffer(text: &str) -> Buffer {
    let mut data = Vec::with_capacity(text.len() + 1);
    data.extend_from_slice(text.as_bytes());
    data.push(0);
    Buffer::raw(data)
}

impl Package {
    /// A heartbeat (`HeartBeat`, type 10): header only, everything else zero.
    pub fn heartbeat() -> Self {
        Package {
            header: PackageHeader {
                package_type: MNG_HEARTBEAT,
                ..PackageHeader::default()
            },
            buffers: Vec::new(),
        }
    }

    /// A request. The real IO layer fills a nil `uuid` with a fresh one and a nil `sender_uuid`
    /// with the connection UUID at send time; a sans-I/O caller passes both.
    pub fn request(package_type: u32, uuid: Uuid, sender_uuid: Uuid, buffers: Vec<Buffer>) -> Self {
        Package {
            header: PackageHeader {
                uuid,
                sender_uuid,
                package_type,
                ..PackageHeader::default()
            },
            buffers,
        }
    }

    /// A direct response to `request` (`IOPackage::makeDirectResponse`): `parentUuid =
    /// request.uuid`, `receiverUuid = request.senderUuid`; `sender_uuid` is the responder's
    /// connection UUID (what its IO layer would fill in).
    pub fn direct_response(
        request: &Package,
        package_type: u32,
        uuid: Uuid,
        sender_uuid: Uuid,
        buffers: Vec<Buffer>,
    ) -> Self {
        Package {
            header: PackageHeader {
                uuid,
                parent_uuid: request.header.uuid,
                sender_uuid,
                receiver_uuid: request.header.sender_uuid,
                package_type,
                numeric_id: 0,
            },
            buffers,
        }
    }

    /// A broadcast response to `request` (`IOPackage::makeBroadcastResponse`): `parentUuid =
    /// request.uuid` only, `receiverUuid` stays zero. `IOPackage::createInstance(type, n,
    /// parent)` defaults to this, so every reply built from a data stream is one, the 5003
    /// login reply among them (`DispatcherPackage::createInstance(type, stream, size, parent)`).
    pub fn broadcast_response(
        request: &Package,
        package_type: u32,
        uuid: Uuid,
        sender_uuid: Uuid,
        buffers: Vec<Buffer>,
    ) -> Self {
        let mut package = Self::direct_response(request, package_type, uuid, sender_uuid, buffers);
        package.header.receiver_uuid = Uuid::nil();
        package
    }

    /// Appends a text buffer ([`text_buffer`]).
    pub fn with_text(mut self, text: &str) -> Self {
        self.buffers.push(text_buffer(text));
        self
    }

    /// Buffer `index` read as dispatcher text: the UTF-8 up to the first NUL (the receiver
    /// reads it as a C string). `None` if there is no such buffer.
    pub fn text(&self, index: usize) -> Option<Result<&str, PackageError>> {
        let data = &self.buffers.get(index)?.data;
        let Some(end) = data.iter().position(|&b| b == 0) else {
            return Some(Err(PackageError::TextUnterminated { index }));
        };
        Some(
            std::str::from_utf8(&data[..end]).map_err(|e| PackageError::TextNotUtf8 {
                index,
                valid_up_to: e.valid_up_to(),
            }),
        )
    }

    /// Number of bytes [`Package::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        self.buffers.iter().fold(
            HEADER_LEN.saturating_add(DESCRIPTOR_LEN.saturating_mul(self.buffers.len())),
            |acc, b| acc.saturating_add(b.data.len()),
        )
    }

    /// Checks this package against `limits` before sending (the peer would disconnect).
    pub fn check_limits(&self, limits: &Limits) -> Result<(), PackageError> {
        if self.buffers.len() > limits.max_buffers {
            return Err(PackageError::TooManyBuffers {
                declared: self.buffers.len() as u64,
                limit: limits.max_buffers,
            });
        }
        let len = self.encoded_len();
        if len > limits.max_package_len {
            return Err(PackageError::TooLarge {
                declared: len as u64,
                limit: limits.max_package_len,
            });
        }
        Ok(())
    }

    /// Yields the wire pieces as the real sender's separate write calls
    /// (`SocketWriteThread::doJob`): the 82-byte header, the descriptor array if there are
    /// buffers, then each non-empty buffer. Zero-size buffers are described but not written.
    ///
    /// Never panics. Check [`Package::check_limits`] first: a buffer count or size above
    /// `u32::MAX` cannot be expressed on the wire and is written saturated, which every
    /// receiver refuses.
    pub fn write_parts(&self, mut f: impl FnMut(&[u8])) {
        f(&self.header.to_bytes(wire_u32(self.buffers.len())));
        if self.buffers.is_empty() {
            return;
        }
        let mut descriptors = Vec::with_capacity(DESCRIPTOR_LEN * self.buffers.len());
        for b in &self.buffers {
            descriptors.extend_from_slice(&b.encoding.to_le_bytes());
            descriptors.extend_from_slice(&wire_u32(b.data.len()).to_le_bytes());
        }
        f(&descriptors);
        for b in self.buffers.iter().filter(|b| !b.data.is_empty()) {
            f(&b.data);
        }
    }

    /// Appends the wire bytes to `out`.
    /// Never panics (see [`Package::write_parts`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write_parts(|part| out.extend_from_slice(part));
    }

    /// The wire bytes.
    /// Never panics (see [`Package::write_parts`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one package from `bytes`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Package, PackageError> {
        match scan(bytes, limits)? {
            Scan::NeedMore(needed) => Err(PackageError::Truncated {
                needed,
                available: bytes.len(),
            }),
            Scan::Ready(layout) => {
                let mut r = Reader::new(bytes);
                let frame = r.take(layout.total, "package")?;
                r.finish("package")?;
                layout.assemble(frame)
            }
        }
    }
}

/// A package whose header and descriptors are read and within limits.
#[derive(Debug)]
struct Layout {
    header: PackageHeader,
    /// `(encoding, size)` per buffer.
    descriptors: Vec<(u32, usize)>,
    /// Header + descriptors + buffers, at most the limit.
    total: usize,
}

enum Scan {
    /// At least this many bytes (from the package start) are needed to go on.
    NeedMore(usize),
    Ready(Layout),
}

/// Reads the header and descriptors at the start of `buf`, enforcing `limits` in the real
/// receiver's order: CRC, buffer count, then declared total size (before any buffer is read).
fn scan(buf: &[u8], limits: &Limits) -> Result<Scan, PackageError> {
    let mut r = Reader::new(buf);
    let Ok(header_bytes) = r.take(HEADER_LEN, "package header") else {
        return Ok(Scan::NeedMore(HEADER_LEN));
    };
    let (header, count) = PackageHeader::from_bytes(header_bytes)?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= limits.max_buffers)
        .ok_or(PackageError::TooManyBuffers {
            declared: u64::from(count),
            limit: limits.max_buffers,
        })?;
    // count <= max_buffers, and the descriptors below are only read once present in `buf`.
    let desc_len = DESCRIPTOR_LEN
        .checked_mul(count)
        .ok_or(PackageError::TooLarge {
            declared: u64::MAX,
            limit: limits.max_package_len,
        })?;
    let mut descs = match r.take(desc_len, "buffer descriptors") {
        Ok(bytes) => Reader::new(bytes),
        Err(short) => return Ok(Scan::NeedMore(short.needed_total())),
    };
    let mut declared = r.position() as u64;
    let mut descriptors = Vec::with_capacity(count);
    for _ in 0..count {
        let encoding = descs.u32_le("buffer encoding")?;
        let size = descs.u32_le("buffer size")?;
        declared = declared.saturating_add(u64::from(size));
        descriptors.push((encoding, size as usize));
    }
    if declared > limit_u64(limits.max_package_len) {
        return Err(PackageError::TooLarge {
            declared,
            limit: limits.max_package_len,
        });
    }
    // declared <= max_package_len, a usize.
    let total = usize::try_from(declared).unwrap_or(usize::MAX);
    Ok(Scan::Ready(Layout {
        header,
        descriptors,
        total,
    }))
}

impl Layout {
    /// Builds the package from its `total` bytes.
    fn assemble(self, frame: &[u8]) -> Result<Package, PackageError> {
        let truncated = |_| PackageError::Truncated {
            needed: self.total,
            available: frame.len(),
        };
        let mut r = Reader::new(frame);
        r.take(
            HEADER_LEN + DESCRIPTOR_LEN * self.descriptors.len(),
            "package head",
        )
        .map_err(truncated)?;
        let mut buffers = Vec::with_capacity(self.descriptors.len());
        for &(encoding, size) in &self.descriptors {
            let data = r.take(size, "buffer").map_err(truncated)?;
            buffers.push(Buffer {
                encoding,
                data: data.to_vec(),
            });
        }
        Ok(Package {
            header: self.header,
            buffers,
        })
    }
}

/// Incremental decoder for a stream of packages (the record layer's plaintext).
///
/// Feed bytes with [`push`](Self::push) in any chunking and call
/// [`next_package`](Self::next_package) until it returns `Ok(None)`. A size or count over the
/// limits is rejected as soon as the header and descriptors are in, so the bytes held stay
/// below `max(max_package_len, 82 + 8 * max_buffers)` plus whatever the caller pushes without
/// draining. After an error the decoder stays failed: it drops its input and ignores pushes.
#[derive(Debug)]
pub struct PackageDecoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Start of the current package in `buf`.
    start: usize,
    /// Bytes needed (from `start`) before scanning again makes progress.
    need: usize,
    /// The current package's header and descriptors, once scanned.
    layout: Option<Layout>,
    failed: Option<PackageError>,
}

impl PackageDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        PackageDecoder {
            limits,
            buf: Vec::new(),
            start: 0,
            need: HEADER_LEN,
            layout: None,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as packages.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete package, `Ok(None)` if more bytes are needed.
    pub fn next_package(&mut self) -> Result<Option<Package>, PackageError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Ok(p) => Ok(p),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                self.layout = None;
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<Package>, PackageError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        if pending.len() < self.need {
            return Ok(None);
        }
        let layout = match self.layout.take() {
            Some(layout) => layout,
            None => match scan(pending, &self.limits)? {
                Scan::NeedMore(n) => {
                    self.need = n;
                    return Ok(None);
                }
                Scan::Ready(layout) => layout,
            },
        };
        let Some(frame) = pending.get(..layout.total) else {
            self.need = layout.total;
            self.layout = Some(layout);
            return Ok(None);
        };
        let total = layout.total;
        let package = layout.assemble(frame)?;
        self.start += total;
        self.need = HEADER_LEN;
        if self.start == self.buf.len() {
            // All returned: an idle connection keeps no buffer.
            self.buf = Vec::new();
            self.start = 0;
        }
        Ok(Some(package))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_header_kat() -> Result<(), PackageError> {
        // protocol.md §2: 00×64 | 0a 00 00 00 | 00×8 | 00 00 00 00 | b6 1c
        let mut expected = [0u8; HEADER_LEN];
        expected[64] = 0x0a;
        expected[80] = 0xb6;
        expected[81] = 0x1c;
        assert_eq!(Package::heartbeat().encode(), expected);
        let decoded = Package::decode(&expected, &Limits::default())?;
        assert_eq!(decoded, Package::heartbeat());
        assert!(!decoded.header.is_response());
        Ok(())
    }

    #[test]
    fn inexpressible_lengths_saturate_and_are_refused_by_the_receiver() {
        // No panic for a count or size the wire's u32 cannot hold (a 4 GiB buffer cannot be
        // allocated in a test; this is the conversion every length goes through).
        assert_eq!(wire_u32(usize::MAX), u32::MAX);
        assert_eq!(wire_u32(1 << 20), 1 << 20);
        // What the saturated values declare is refused before any body byte is read.
        let header = Package::heartbeat().header.to_bytes(wire_u32(usize::MAX));
        assert_eq!(
            Package::decode(&header, &Limits::protocol()).map_err(|e| e.kind()),
            Err("too_many_buffers")
        );
        let p = Package::request(7, Uuid::nil(), Uuid::nil(), vec![Buffer::raw(vec![1])]);
        let mut bytes = p.encode();
        bytes[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&wire_u32(usize::MAX).to_le_bytes());
        assert_eq!(
            Package::decode(&bytes, &Limits::protocol()).map_err(|e| e.kind()),
            Err("too_large")
        );
    }

    #[test]
    fn debug_redacts_connection_uuids_and_buffer_bytes() {
        let p = Package::request(2039, Uuid::from_u128(1), Uuid::from_u128(0xfeed), vec![])
            .with_text("secret");
        let s = format!("{p:?}");
        assert!(!s.contains("feed"), "{s}");
        assert!(!s.contains("115"), "{s}"); // 's' of "secret" as a byte
        assert!(s.contains("<redacted>") && s.contains("len: 7"), "{s}");
    }
}
