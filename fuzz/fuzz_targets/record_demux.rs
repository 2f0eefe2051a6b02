//! The record-layer demultiplexer never panics and keeps plain payloads intact.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::record::{encode_plain, Record, RecordDecoder};

fuzz_target!(|data: &[u8]| {
    let mut decoder = RecordDecoder::new();
    for chunk in data.chunks(7) {
        decoder.push(chunk);
        while let Ok(Some(record)) = decoder.next_record() {
            if let Record::Plain(payload) = record {
                let mut again = Vec::new();
                encode_plain(&payload, &mut again);
                let mut check = RecordDecoder::new();
                check.push(&again);
                let mut joined = Vec::new();
                while let Ok(Some(Record::Plain(p))) = check.next_record() {
                    joined.extend_from_slice(&p);
                }
                assert_eq!(joined, payload);
            }
        }
    }
});
