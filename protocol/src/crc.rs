//! The package header checksum.
//!
//! `IOPackage::headerChecksumCRC16` (libprlcommon
//! `Libraries/IOService/src/IOCommunication/IOProtocol.cpp`) is Qt's `qChecksum` over the first
//! 80 header bytes. Qt 4/5's `qChecksum` is CRC-16/X-25 (also catalogued as CRC-16/IBM-SDLC):
//! reflected polynomial 0x1021, init 0xFFFF, final xor 0xFFFF; check value for `"123456789"` is
//! 0x906E.

use crc::{Crc, CRC_16_IBM_SDLC};

/// Table-driven CRC-16/X-25, built at compile time.
const X25: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_SDLC);

/// CRC-16/X-25 of `data` (Qt's `qChecksum` with the default `Qt::ChecksumIso3309`).
pub fn crc16_x25(data: &[u8]) -> u16 {
    X25.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::crc16_x25;

    #[test]
    fn check_value() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
    }

    #[test]
    fn empty_input_is_init_xor_xorout() {
        // init 0xFFFF ^ xorout 0xFFFF
        assert_eq!(crc16_x25(&[]), 0x0000);
    }
}
