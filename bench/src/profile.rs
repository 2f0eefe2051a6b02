//! Where an idle session's memory goes: a memory run with the proxy under heaptrack (Debian's
//! `heaptrack`), its peak consumers grouped into parts and divided by the sessions held.
//! `prl-load profile` runs it; the report shows the table.

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Binaries, MemorySpec, PROFILE_WRAP_ENV};
use crate::report::Profile;
use crate::BenchError;

/// The parts a peak consumer is filed under, by the frames of its allocation stack (first
/// match wins).
const PARTS: &[(&str, &[&str])] = &[
    ("rustls connection (wss)", &["rustls"]),
    (
        "upstream TLS after the handshake (AES-GCM keys and records, OpenSSL freed)",
        &["GcmSession", "gcm::"],
    ),
    (
        "tungstenite buffers",
        &["tungstenite", "BytesMut::reserve", "bytes_mut"],
    ),
    (
        "OpenSSL per-connection state (SSL object, cipher contexts, session, DH key)",
        &[
            "SSL_",
            "CRYPTO_",
            "EVP_",
            "BN_",
            "BIO_",
            "BUF_MEM",
            "OPENSSL_",
            "libcrypto",
            "libssl",
        ],
    ),
    (
        "replay ring (the login reply)",
        &["service_package", "ring"],
    ),
    (
        "tokio socket registrations",
        &["PollEvented", "registration", "Registration"],
    ),
    ("tokio channels", &["mpsc"]),
    ("timers", &["interval", "Sleep", "sleep"]),
    (
        "the session's task and link",
        &["spawn", "serve", "relay", "open", "establish"],
    ),
    ("hyper connection", &["hyper"]),
];

/// `2.19M` / `816.64K` / `512B` (heaptrack's units, powers of 1000) in KiB.
fn kib(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        'G' => (&t[..t.len() - 1], 1e9),
        'M' => (&t[..t.len() - 1], 1e6),
        'K' => (&t[..t.len() - 1], 1e3),
        'B' => (&t[..t.len() - 1], 1.0),
        _ => (t, 1.0),
    };
    Some(num.parse::<f64>().ok()? * mult / 1024.0)
}

/// Groups heaptrack_print's `--print-peaks --merge-backtraces 0` output into parts, KiB per
/// session; largest first.
pub fn parts(peaks: &str, sessions: usize) -> Vec<(String, f64)> {
    let mut totals: Vec<(String, f64)> = Vec::new();
    let mut add = |part: &str, v: f64| match totals.iter_mut().find(|(n, _)| n == part) {
        Some((_, t)) => *t += v,
        None => totals.push((part.to_owned(), v)),
    };
    let mut entry: Option<(f64, String)> = None;
    let flush = |entry: &mut Option<(f64, String)>, add: &mut dyn FnMut(&str, f64)| {
        if let Some((size, frames)) = entry.take() {
            let part = PARTS
                .iter()
                .find(|(_, keys)| keys.iter().any(|k| frames.contains(k)))
                .map_or("other", |(name, _)| name);
            add(part, size);
        }
    };
    for line in peaks.lines() {
        if let Some(size) = line
            .split_once(" peak memory consumed")
            .and_then(|(s, _)| kib(s))
        {
            flush(&mut entry, &mut add);
            entry = Some((size, String::new()));
        } else if let Some((_, frames)) = &mut entry {
            // The innermost few frames decide (below them is the runtime).
            if frames.lines().count() < 6 {
                frames.push_str(line.trim());
                frames.push('\n');
            }
        }
    }
    flush(&mut entry, &mut add);
    let n = sessions.max(1) as f64;
    let mut out: Vec<(String, f64)> = totals.into_iter().map(|(p, v)| (p, v / n)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Runs `spec` (one checkpoint) with the proxy under heaptrack writing to `dir`, then reads
/// the profile. The proxy is stopped with SIGTERM so that heaptrack finishes its file.
pub async fn run(bins: &Binaries, spec: &MemorySpec, dir: &Path) -> Result<Profile, BenchError> {
    let sessions = spec.checkpoints.iter().copied().max().unwrap_or(0);
    let file = dir.join("heaptrack-proxy");
    std::env::set_var(PROFILE_WRAP_ENV, format!("heaptrack -o {}", file.display()));
    let result = load::memory_run(bins, spec).await;
    std::env::remove_var(PROFILE_WRAP_ENV);
    result?;
    // The harness stopped the profiled proxy with SIGTERM (see `ProxyProcess`'s drop): wait
    // until heaptrack has written its file (its size stable for a second; at most 30 s).
    let mut last = None;
    let mut data = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let found = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("heaptrack-proxy"))
            });
        let size = found
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len());
        if size.is_some() && size == last {
            data = found;
            break;
        }
        last = size;
    }
    let data = data.ok_or(BenchError::Closed("heaptrack wrote no file"))?;
    let out = std::process::Command::new("heaptrack_print")
        .arg("-f")
        .arg(&data)
        .args([
            "--print-peaks",
            "1",
            "--print-allocators",
            "0",
            "--print-temporary",
            "0",
            "--print-leaks",
            "0",
            "--merge-backtraces",
            "0",
            "--peak-limit",
            "200",
        ])
        .output()?;
    let _ = std::fs::remove_file(&data);
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(Profile {
        what: format!(
            "{} {}, {sessions} sessions",
            if spec.wss { "wss" } else { "ws" },
            load::level_name(spec.level)
        ),
        parts: parts(&text, sessions + 20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_grouped_per_session() {
        let text = "PEAK MEMORY CONSUMERS\n\
            2.00M peak memory consumed over 287 calls from\n  CRYPTO_zalloc\n    in /lib/libcrypto.so.3\n  SSL_new\n\
            1.00M peak memory consumed over 315 calls from\n  alloc::raw_vec::finish_grow\n  tokio_rustls::common::Stream::read_io\n\
            512.00K peak memory consumed over 2 calls from\n  something::else\n";
        let p = parts(text, 1000);
        assert_eq!(
            p[0].0,
            "OpenSSL per-connection state (SSL object, cipher contexts, session, DH key)"
        );
        assert!((p[0].1 - 2e6 / 1024.0 / 1000.0).abs() < 1e-9);
        assert_eq!(p[1].0, "rustls connection (wss)");
        assert_eq!(p[2].0, "other");
        assert_eq!(kib("512B"), Some(0.5));
    }
}
