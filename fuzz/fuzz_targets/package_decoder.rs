//! The incremental package decoder over arbitrary chunkings must agree with one-shot decoding
//! and never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::package::{Limits, Package, PackageDecoder};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_package_len: 64 * 1024,
        max_buffers: 64,
    };
    let (split, bytes) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s).max(1), rest),
        None => return,
    };
    let mut decoder = PackageDecoder::new(limits);
    let mut decoded = Vec::new();
    for chunk in bytes.chunks(split) {
        decoder.push(chunk);
        loop {
            match decoder.next_package() {
                Ok(Some(p)) => decoded.push(p),
                Ok(None) | Err(_) => break,
            }
        }
        assert!(decoder.buffered_len() <= limits.max_package_len + 64 * 8 + 82 + split);
    }
    if let Ok(one) = Package::decode(bytes, &limits) {
        assert_eq!(decoded.first(), Some(&one));
        assert_eq!(one.encode(), bytes);
    }
    for p in &decoded {
        assert_eq!(Package::decode(&p.encode(), &limits).as_ref(), Ok(p));
    }
});
