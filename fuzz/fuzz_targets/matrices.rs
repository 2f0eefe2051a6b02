//! The login reply's binary matrices (COsesMatrix, CFeaturesMatrix): never panic; what decodes
//! re-encodes to exactly the input (the decoders refuse trailing bytes and out-of-range values).
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::matrices::{FeaturesMatrix, OsesMatrix};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = OsesMatrix::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = FeaturesMatrix::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
