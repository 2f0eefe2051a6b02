//! IOPackage: the 82-byte little-endian header, buffer descriptors and buffers.

use uuid::Uuid;

/// Size of the package header on the wire.
pub const HEADER_LEN: usize = 82;
/// Largest number of buffers a package may declare (`MAX_BUFFERS_COUNT`).
pub const MAX_BUFFERS: usize = 1024;
/// The protocol's own size limit for a whole package (`IOPackage::SIZE_LIMIT`).
pub const PROTOCOL_SIZE_LIMIT: usize = 1 << 30;

/// Buffer encodings (`IOPackage::EncodingType`).
pub const ENCODING_RAW: u32 = 0;
/// Page-aligned allocation on receive; otherwise identical to raw.
pub const ENCODING_RAW_ALIGNED: u32 = 8;

/// The routing and identity fields of a package header (buffer count and CRC are derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
