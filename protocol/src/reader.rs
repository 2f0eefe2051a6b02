//! The crate's one byte cursor.
//!
//! Every binary decoder reads through a [`Reader`]: the handshake parts, package headers and
//! descriptors, record headers, binary `CVmEvent`s and the login reply's matrices. A read past
//! the end is a [`Truncated`] error naming the field (never a zero, never a panic), and
//! [`Reader::finish`] turns bytes left after the last field into a [`Trailing`] error. Each
//! decoder converts them into its own typed error (its `Truncated` / `TrailingBytes` variants,
//! through `From`), so callers keep one error type per decoder. An incremental decoder reads
//! what it has and treats [`Truncated`] as "need more" ([`Truncated::needed_total`] says how
//! many bytes from the start).
//!
//! Integers are read in the byte order the wire field has: the IO layer is little-endian
//! (packed x86 structs), `QDataStream` payloads are big-endian.

use uuid::Uuid;

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A field that does not fit in what is left of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated {
    /// The field being read.
    pub what: &'static str,
    /// Where the field starts, in bytes from the start of the input.
    pub offset: usize,
    /// Bytes the field needs.
    pub needed: usize,
    /// Bytes left at `offset`.
    pub available: usize,
}

impl Truncated {
    /// Bytes the input needs, from its start, to hold the field.
    pub fn needed_total(&self) -> usize {
        self.offset.saturating_add(self.needed)
    }

    /// Bytes the input has.
    pub fn available_total(&self) -> usize {
        self.offset.saturating_add(self.available)
    }
}

/// Bytes left after the last field of a decoder that takes the whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailing {
    /// What was read before them.
    pub after: &'static str,
    /// How many.
    pub count: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let available = self.remaining();
        let end = self.pos.checked_add(n).filter(|_| n <= available);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Truncated {
                what,
                offset: self.pos,
                needed: n,
                available,
            }),
        }
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Truncated> {
        let at = self.pos;
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Truncated {
            what,
            offset: at,
            needed: N,
            available: bytes.len(),
        })
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    /// A little-endian `u16`.
    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// A big-endian `u16`.
    pub fn u16_be(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_be_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A big-endian `u32`.
    pub fn u32_be(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// A big-endian `i32` (a `QDataStream` `qint32`).
    pub fn i32_be(&mut self, what: &'static str) -> Result<i32, Truncated> {
        self.array(what).map(i32::from_be_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A UUID as its 16 raw RFC-4122 bytes.
    pub fn uuid(&mut self, what: &'static str) -> Result<Uuid, Truncated> {
        self.array(what).map(Uuid::from_bytes)
    }

    /// Succeeds when every byte has been read; `after` names what was read.
    pub fn finish(&self, after: &'static str) -> Result<(), Trailing> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Trailing { after, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_both_byte_orders() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16_le("a"), Ok(0x0201));
        assert_eq!(r.u16_be("b"), Ok(0x0304));
        assert_eq!(r.u32_le("c"), Ok(0x0807_0605));
        assert_eq!(r.u8("d"), Ok(9));
        assert_eq!(r.position(), 9);
        assert_eq!(r.remaining(), 2);
        assert_eq!(
            r.finish("d"),
            Err(Trailing {
                after: "d",
                count: 2
            })
        );
        assert_eq!(r.take(2, "e"), Ok(&[10, 11][..]));
        assert_eq!(r.finish("e"), Ok(()));
    }

    #[test]
    fn a_short_read_names_the_field_and_consumes_nothing() {
        let bytes = [0xff; 6];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32_be("first"), Ok(u32::MAX));
        let e = r.u32_le("second").unwrap_err();
        assert_eq!(
            e,
            Truncated {
                what: "second",
                offset: 4,
                needed: 4,
                available: 2
            }
        );
        assert_eq!((e.needed_total(), e.available_total()), (8, 6));
        assert_eq!(r.position(), 4);
        assert_eq!(r.i32_be("third").map_err(|e| e.what), Err("third"));
        assert_eq!(
            r.take(usize::MAX, "huge").map_err(|e| e.needed),
            Err(usize::MAX)
        );
        assert_eq!(r.uuid("id").map_err(|e| e.needed), Err(16));
        assert_eq!(r.u64_le("n").map_err(|e| e.available), Err(2));
        assert_eq!(r.u16_le("last"), Ok(u16::MAX));
    }
}
