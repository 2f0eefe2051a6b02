//! Property tests of the IOPackage codec: round trips, chunking independence, hostile bytes.

use prl_protocol::package::{
    Buffer, Limits, Package, PackageDecoder, PackageError, PackageHeader, HEADER_LEN,
};
use prl_protocol::Uuid;
use proptest::prelude::*;

fn uuid() -> impl Strategy<Value = Uuid> {
    prop_oneof![Just(Uuid::nil()), any::<u128>().prop_map(Uuid::from_u128)]
}

fn header() -> impl Strategy<Value = PackageHeader> {
    (uuid(), uuid(), uuid(), uuid(), any::<u32>(), any::<u64>()).prop_map(
        |(uuid, parent_uuid, sender_uuid, receiver_uuid, package_type, numeric_id)| PackageHeader {
            uuid,
            parent_uuid,
            sender_uuid,
            receiver_uuid,
            package_type,
            numeric_id,
        },
    )
}

fn buffer() -> impl Strategy<Value = Buffer> {
    (
        prop_oneof![Just(0u32), Just(8u32), any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(encoding, data)| Buffer { encoding, data })
}

fn package() -> impl Strategy<Value = Package> {
    (header(), prop::collection::vec(buffer(), 0..6))
        .prop_map(|(header, buffers)| Package { header, buffers })
}

/// Feeds `bytes` cut at `cuts` (positions, any order) and collects packages until `Ok(None)`
/// at the end, or the first error.
fn feed(bytes: &[u8], cuts: &[usize]) -> (Vec<Package>, Option<PackageError>, usize) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut decoder = PackageDecoder::new(Limits::default());
    let mut out = Vec::new();
    for w in points.windows(2) {
        decoder.push(&bytes[w[0]..w[1]]);
        loop {
            match decoder.next_package() {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(e) => return (out, Some(e), decoder.buffered_len()),
            }
        }
    }
    (out, None, decoder.buffered_len())
}

/// A header with a valid CRC declaring `count` buffers, followed by `tail`: gets past the CRC
/// check, so the limit and length logic sees hostile values.
fn crc_valid_input() -> impl Strategy<Value = Vec<u8>> {
    (
        header(),
        prop_oneof![0u32..4, 1020u32..1030, any::<u32>()],
        prop::collection::vec(prop_oneof![any::<u8>(), Just(0u8), Just(0xffu8)], 0..160),
    )
        .prop_map(|(h, count, tail)| {
            let mut bytes = h.to_bytes(count).to_vec();
            bytes.extend_from_slice(&tail);
            bytes
        })
}

proptest! {
    #[test]
    fn round_trip(p in package()) {
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(&Package::decode(&bytes, &Limits::default())?, &p);

        let mut parts = Vec::new();
        p.write_parts(|part| parts.push(part.to_vec()));
        let non_empty = p.buffers.iter().filter(|b| !b.data.is_empty()).count();
        let descriptors = usize::from(!p.buffers.is_empty());
        prop_assert_eq!(parts.len(), 1 + descriptors + non_empty);
        prop_assert_eq!(parts[0].len(), HEADER_LEN);
        prop_assert!(parts.iter().all(|part| !part.is_empty()));
        prop_assert_eq!(parts.concat(), bytes.clone());

        let mut appended = vec![0xAA];
        p.encode_into(&mut appended);
        prop_assert_eq!(&appended[1..], &bytes[..]);

        // The header alone round-trips with its buffer count.
        let head: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into()?;
        prop_assert_eq!(PackageHeader::from_bytes(&head)?, (p.header, p.buffers.len() as u32));
    }

    #[test]
    fn chunking_does_not_matter(
        packages in prop::collection::vec(package(), 0..5),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream: Vec<u8> = packages.iter().flat_map(Package::encode).collect();
        let (decoded, err, left) = feed(&stream, &cuts);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(decoded, packages);
    }

    #[test]
    fn byte_at_a_time(p in package()) {
        let bytes = p.encode();
        let cuts: Vec<usize> = (0..bytes.len()).collect();
        let (decoded, err, left) = feed(&bytes, &cuts);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(decoded, vec![p]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let _ = Package::decode(&bytes, &Limits::default());
        let _ = Package::decode(&bytes, &Limits::protocol());
        let _ = feed(&bytes, &cuts);
    }

    /// On inputs that pass the CRC, the incremental decoder agrees with repeated one-shot
    /// decoding.
    #[test]
    fn decoder_agrees_with_one_shot(
        bytes in crc_valid_input(),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let (expected, expected_err, expected_left) = one_shot_stream(&bytes)?;
        let (decoded, err, left) = feed(&bytes, &cuts);
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(&err, &expected_err);
        if err.is_none() {
            prop_assert_eq!(left, expected_left);
        }
    }
}

/// Reference for the incremental decoder: `Package::decode` applied package by package.
fn one_shot_stream(
    mut bytes: &[u8],
) -> Result<(Vec<Package>, Option<PackageError>, usize), TestCaseError> {
    let mut out = Vec::new();
    loop {
        match Package::decode(bytes, &Limits::default()) {
            Ok(p) => {
                out.push(p);
                return Ok((out, None, 0));
            }
            Err(PackageError::TrailingBytes(n)) => {
                let (first, rest) = bytes.split_at(bytes.len() - n);
                out.push(Package::decode(first, &Limits::default())?);
                bytes = rest;
            }
            Err(PackageError::Truncated { available, .. }) => return Ok((out, None, available)),
            Err(e) => return Ok((out, Some(e), 0)),
        }
    }
}
