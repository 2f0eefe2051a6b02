//! Core codec: package encode and incremental decode (captured login package, 1 MiB package),
//! CVmEvent XML parse and serialise (the login event), binary 5003 decode. Baseline: a plain
//! copy of the same bytes into a buffer allocated once.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use prl_bench::fixtures::{self, RECORD_CHUNK};
use prl_protocol::event::Event;
use prl_protocol::package::{Limits, Package, PackageDecoder};

pub fn benches(c: &mut Criterion) {
    let (login, login_bytes) = fixtures::login_package();
    package_group(c, "codec_login_package", &login, &login_bytes);
    let (large, large_bytes) = fixtures::large_package();
    package_group(c, "codec_package_1MiB", &large, &large_bytes);

    let xml = fixtures::login_event_xml();
    let event = Event::from_xml_buffer(&xml).expect("the captured login event parses");
    let mut g = c.benchmark_group("codec_login_event_xml");
    g.throughput(Throughput::Bytes(xml.len() as u64));
    memcpy_baseline(&mut g, &xml);
    g.bench_function("parse", |b| {
        b.iter(|| Event::from_xml_buffer(black_box(&xml)).expect("parses"))
    });
    g.bench_function("serialise", |b| {
        b.iter(|| black_box(&event).to_xml_buffer())
    });
    g.finish();

    let body = fixtures::login_reply_body();
    let mut g = c.benchmark_group("codec_login_reply_5003");
    g.throughput(Throughput::Bytes(body.len() as u64));
    memcpy_baseline(&mut g, &body);
    g.bench_function("decode_binary", |b| {
        b.iter(|| Event::decode_binary_all(black_box(&body)).expect("decodes"))
    });
    g.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// `baseline_memcpy`: copy `bytes` into a buffer allocated once.
fn memcpy_baseline(g: &mut Group<'_>, bytes: &[u8]) {
    let mut dst = vec![0u8; bytes.len()];
    g.bench_function("baseline_memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(bytes));
            black_box(&mut dst);
        })
    });
}

fn package_group(c: &mut Criterion, name: &str, package: &Package, bytes: &[u8]) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    memcpy_baseline(&mut g, bytes);
    // The stream decoder as the transport drives it: one long-lived decoder fed record-sized
    // chunks, asked for a package after each.
    let mut decoder = PackageDecoder::new(Limits::default());
    g.bench_function("decode_incremental", |b| {
        b.iter(|| {
            let mut got = None;
            for chunk in bytes.chunks(RECORD_CHUNK) {
                decoder.push(black_box(chunk));
                if let Some(p) = decoder.next_package().expect("decodes") {
                    got = Some(p);
                }
            }
            got.expect("one whole package")
        })
    });
    g.bench_function("decode_whole", |b| {
        b.iter(|| Package::decode(black_box(bytes), &Limits::default()).expect("decodes"))
    });
    // Into a buffer that keeps its capacity, like a connection's write buffer.
    let mut out = Vec::with_capacity(bytes.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(package).encode_into(&mut out);
            black_box(&mut out);
        })
    });
    g.finish();
}
