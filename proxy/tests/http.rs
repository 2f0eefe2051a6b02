//! The HTTP side of the proxy over real loopback sockets: upgrade checks (Origin,
//! subprotocol, tickets, URL secrets), static files, health, readiness, metrics, caps,
//! handshake deadline, wss.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod common;

use std::time::Duration;

use common::*;
use prl_proxy::config::DEFAULT_AUDIENCE;
use prl_proxy::ticket::TicketIssuer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RELAY: &str = "prl-relay.v1";

#[tokio::test]
async fn own_origin_is_accepted_and_the_subprotocol_selected() {
    let h = start("").await;
    let origin = own_origin(&h);
    let (_ws, proto) = ws_connect(h.local_addr(), Some(&origin), &[RELAY])
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some(RELAY));
    // The localhost spelling of a loopback listener is the same site.
    let localhost = format!("http://localhost:{}", h.local_addr().port());
    assert!(ws_connect(h.local_addr(), Some(&localhost), &[RELAY])
        .await
        .is_ok());
}

#[tokio::test]
async fn foreign_and_missing_origins_are_refused_before_the_upgrade() {
    let h = start("").await;
    let addr = h.local_addr();
    for origin in [
        Some("https://evil.example"),
        Some("null"),
        Some("http://127.0.0.1"),
        Some("https://127.0.0.1.evil.example"),
        None,
    ] {
        assert_eq!(
            ws_connect(addr, origin, &[RELAY]).await.err(),
            Some(403),
            "{origin:?}"
        );
    }
    let text = h.metrics_text();
    assert_eq!(
        metric(
            &text,
            "prl_proxy_rejections_total{reason=\"origin_denied\"}"
        ),
        5.0
    );
}

#[tokio::test]
async fn configured_origins_are_exact() {
    let h = start("[server]\nallowed_origins = [\"https://console.example.com\"]\n").await;
    let addr = h.local_addr();
    assert!(
        ws_connect(addr, Some("https://console.example.com"), &[RELAY])
            .await
            .is_ok()
    );
    assert_eq!(
        ws_connect(addr, Some(&own_origin(&h)), &[RELAY])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(addr, Some("https://x.console.example.com"), &[RELAY])
            .await
            .err(),
        Some(403)
    );
}

#[tokio::test]
async fn the_relay_subprotocol_is_required_and_urls_carry_nothing() {
    let h = start("").await;
    let addr = h.local_addr();
    let origin = own_origin(&h);
    assert_eq!(ws_connect(addr, Some(&origin), &[]).await.err(), Some(400));
    assert_eq!(
        ws_connect(addr, Some(&origin), &["chat"]).await.err(),
        Some(400)
    );
    let req = format!(
        "GET /ws?ticket=abc HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: prl-relay.v1\r\n\r\n"
    );
    let (status, _, _) = http(addr, &req).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = start("").await;
    let addr = h.local_addr();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let (status, head, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/openmetrics-text"));
    // Plain http: no Strict-Transport-Security (it is only honoured over https anyway).
    assert!(!head.contains("strict-transport-security"), "{head}");
    // Passed on by a same-host reverse proxy: the loopback peer is not the client.
    for header in [
        "X-Forwarded-For: 203.0.113.7",
        "Forwarded: for=203.0.113.7",
        "X-Real-IP: 203.0.113.7",
    ] {
        let (status, _, _) = http(
            addr,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{header}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 403, "{header}");
    }
    // With allow_remote it is served to anyone.
    let open = start("[metrics]\nallow_remote = true\n").await;
    let (status, _, _) = http(
        open.local_addr(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("prl_proxy_sessions_active"), "{body}");
    assert!(body.contains("prl_proxy_connect_seconds"), "{body}");
    h.shutdown();
}

#[tokio::test]
async fn static_files_have_mime_types_and_a_csp() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>console</title>",
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    std::fs::write(pkg.join("prl_client_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(pkg.join("prl_client.js"), "export {}").unwrap();
    let toml = format!(
        "[static]\nroot = {:?}\n[[static.mount]]\nprefix = \"/pkg/\"\ndir = {:?}\n",
        web.display().to_string(),
        pkg.display().to_string()
    );
    let h = start(&toml).await;
    let addr = h.local_addr();
    let (status, head, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"));
    assert!(head.contains(
        "content-security-policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'"
    ));
    assert!(head.contains("x-content-type-options: nosniff"));
    assert!(body.starts_with(b"<!doctype html>"));
    let (status, head, body) = get(addr, "/pkg/prl_client_bg.wasm").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert_eq!(body, b"\0asm\x01\0\0\0");
    let (_, head, _) = get(addr, "/pkg/prl_client.js").await;
    assert!(head.contains("content-type: text/javascript"));
    for bad in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/pkg/..%2f..%2fsecret.txt",
        "/pkg/%2e%2e/web/index.html",
    ] {
        let (status, _, body) = get(addr, bad).await;
        assert!(status == 400 || status == 404, "{bad}: {status}");
        assert!(!String::from_utf8_lossy(&body).contains("do not serve"));
    }
    assert_eq!(get(addr, "/nothing.js").await.0, 404);
    // A file larger than one chunk arrives whole, with its length (streamed, not buffered).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(pkg.join("big.wasm"), &big).unwrap();
    let (status, head, body) = get(addr, "/pkg/big.wasm").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-length: 300000"), "{head}");
    assert!(body == big, "{} bytes", body.len());
    let (status, head, body) = http(
        addr,
        &format!("HEAD /pkg/big.wasm HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(head.contains("content-length: 300000"), "{head}");
    assert!(body.is_empty());
    let (status, _, _) = http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 405);
}

/// A GET of `path` with extra request header lines.
async fn get_with(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"),
    )
    .await
}

/// The value of header `name` (lower case) in a lower-cased response head.
fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test]
async fn pre_compressed_variants_by_accept_encoding_with_etags_and_304() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("client_bg.wasm"), b"\0asm original bytes").unwrap();
    std::fs::write(pkg.join("client_bg.wasm.br"), b"brotli bytes").unwrap();
    std::fs::write(pkg.join("client_bg.wasm.gz"), b"gzip bytes!").unwrap();
    std::fs::write(pkg.join("plain.js"), b"export {}").unwrap();
    let h = start(&format!(
        "[[static.mount]]\nprefix = \"/pkg/\"\ndir = {:?}\n",
        pkg.display().to_string()
    ))
    .await;
    let addr = h.local_addr();
    let wasm = "/pkg/client_bg.wasm";
    // Brotli first, gzip when brotli is not accepted, the file itself otherwise; the type is
    // the file's, the length the variant's, and the response says it varies.
    for (accept, body, coding) in [
        (
            "Accept-Encoding: gzip, deflate, br, zstd\r\n",
            &b"brotli bytes"[..],
            Some("br"),
        ),
        (
            "Accept-Encoding: gzip;q=0.5, br;q=0\r\n",
            b"gzip bytes!",
            Some("gzip"),
        ),
        (
            "Accept-Encoding: identity\r\n",
            b"\0asm original bytes",
            None,
        ),
        ("", b"\0asm original bytes", None),
    ] {
        let (status, head, got) = get_with(addr, wasm, accept).await;
        assert_eq!(status, 200, "{accept}");
        assert_eq!(got, body, "{accept}");
        assert_eq!(header_of(&head, "content-encoding"), coding, "{accept}");
        assert_eq!(header_of(&head, "content-type"), Some("application/wasm"));
        assert_eq!(header_of(&head, "vary"), Some("accept-encoding"), "{head}");
        assert_eq!(
            header_of(&head, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(header_of(&head, "cache-control"), Some("no-cache"));
    }
    // Each representation has its own validator; a match is answered 304 without a body.
    let (_, head, _) = get_with(addr, wasm, "Accept-Encoding: br\r\n").await;
    let br_tag = header_of(&head, "etag").unwrap().to_owned();
    let (_, head, _) = get_with(addr, wasm, "").await;
    let plain_tag = header_of(&head, "etag").unwrap().to_owned();
    assert_ne!(br_tag, plain_tag);
    let (status, head, body) = get_with(
        addr,
        wasm,
        &format!("Accept-Encoding: br\r\nIf-None-Match: \"x\", {br_tag}\r\n"),
    )
    .await;
    assert_eq!(status, 304, "{head}");
    assert!(body.is_empty());
    assert_eq!(header_of(&head, "etag"), Some(br_tag.as_str()));
    // The identity validator does not match the brotli representation.
    let (status, _, body) = get_with(
        addr,
        wasm,
        &format!("Accept-Encoding: br\r\nIf-None-Match: {plain_tag}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, b"brotli bytes");
    // A variant older than its file is stale and never served.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(pkg.join("client_bg.wasm"), b"\0asm new bytes").unwrap();
    let (status, head, body) = get_with(addr, wasm, "Accept-Encoding: br, gzip\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(body, b"\0asm new bytes");
    assert_eq!(header_of(&head, "content-encoding"), None);
    // A file without variants does not vary.
    let (_, head, _) = get_with(addr, "/pkg/plain.js", "Accept-Encoding: br\r\n").await;
    assert_eq!(header_of(&head, "vary"), None);
    assert!(header_of(&head, "etag").is_some());
}

#[tokio::test]
async fn metrics_are_loopback_only_by_default_and_can_be_disabled() {
    let h = start("[metrics]\nenabled = false\n").await;
    assert_eq!(get(h.local_addr(), "/metrics").await.0, 404);
}

#[tokio::test]
async fn a_silent_client_is_cut_at_the_handshake_deadline() {
    let h = start("[limits]\nhandshake_timeout_ms = 300\n").await;
    let mut s = TcpStream::connect(h.local_addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap(); // never finishes
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "connection not closed");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn per_ip_and_preauth_caps() {
    let h = start("[limits]\nmax_connections_per_ip = 2\n").await;
    let addr = h.local_addr();
    let origin = own_origin(&h);
    let a = ws_connect(addr, Some(&origin), &[RELAY]).await.unwrap();
    let b = ws_connect(addr, Some(&origin), &[RELAY]).await.unwrap();
    // The third connection from the same address is closed at accept.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"per_ip_connections\"}"
        ),
        1.0
    );
    drop((a, b));
    metric_becomes(&h, "prl_proxy_connections", 0.0).await;
    assert_eq!(get(addr, "/healthz").await.0, 200);

    // Over the pre-auth cap: an explicit 503 with Retry-After (the first-message deadline,
    // by which every pre-auth slot has turned over), not a silent close.
    let h = start("[limits]\nmax_preauth_connections = 1\nfirst_message_timeout_ms = 2500\n").await;
    let addr = h.local_addr();
    let _held = TcpStream::connect(addr).await.unwrap();
    metric_becomes(&h, "prl_proxy_connections", 1.0).await;
    let (status, head, body) = get(addr, "/healthz").await;
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("\r\nretry-after: 3\r\n"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(body, b"too many connections\n");
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"preauth_connections\"}"
        ),
        1.0
    );
}

fn ticket_setup(extra: &str) -> (tempfile::TempDir, String, TicketIssuer) {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("ticket.key");
    std::fs::write(&key_path, [42u8; 32]).unwrap();
    let key = TicketIssuer::hs256_file(&key_path, None, DEFAULT_AUDIENCE).unwrap();
    let toml = format!(
        "[tickets]\nkey_file = {:?}\nmax_ttl_secs = 60\n{extra}",
        key_path.display().to_string()
    );
    (dir, toml, key)
}

#[tokio::test]
async fn tickets_in_the_subprotocol_header_are_checked_before_the_upgrade() {
    let (_dir, toml, key) = ticket_setup("");
    let h = start(&toml).await;
    let addr = h.local_addr();
    let origin = own_origin(&h);
    let now = prl_proxy::util::unix_now();
    let good = key.remote("lab", 0, &origin, now, 30, Default::default());
    let offer = format!("prl-ticket.{good}");
    let (_ws, proto) = ws_connect(addr, Some(&origin), &[RELAY, &offer])
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some(RELAY), "the ticket is never echoed");
    // Replayed.
    assert_eq!(
        ws_connect(addr, Some(&origin), &[RELAY, &offer])
            .await
            .err(),
        Some(403)
    );
    // Expired, wrong origin, forged, too long-lived, garbage.
    let expired = key.remote("lab", 0, &origin, now - 100, 30, Default::default());
    let foreign = key.remote(
        "lab",
        0,
        "https://evil.example",
        now,
        30,
        Default::default(),
    );
    let other_key = TicketIssuer::hs256(&[1u8; 32], None, DEFAULT_AUDIENCE);
    let forged = other_key.remote("lab", 0, &origin, now, 30, Default::default());
    let eternal = key.remote("lab", 0, &origin, now, 86_400, Default::default());
    for t in [expired, foreign, forged, eternal, "garbage".to_string()] {
        let offer = format!("prl-ticket.{t}");
        assert_eq!(
            ws_connect(addr, Some(&origin), &[RELAY, &offer])
                .await
                .err(),
            Some(403),
            "{t}"
        );
    }
    let m = h.metrics_text();
    assert_eq!(
        metric(&m, "prl_proxy_rejections_total{reason=\"ticket_invalid\"}"),
        6.0
    );
    for (reason, n) in [
        ("replayed", 1.0),
        ("expired", 1.0),
        ("origin_mismatch", 1.0),
        ("bad_signature", 1.0),
        ("lifetime_too_long", 1.0),
        ("malformed", 1.0),
    ] {
        let series = format!("prl_proxy_ticket_rejections_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &series), n, "{reason}");
    }
}

#[tokio::test]
async fn wss_with_a_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        dir.path().join("cert.pem").display().to_string(),
        dir.path().join("key.pem").display().to_string()
    );
    let h = start(&toml).await;
    assert!(h.url().starts_with("wss://"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = TcpStream::connect(h.local_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let origin = format!("https://localhost:{}", h.local_addr().port());
    let req = ws_request(
        &format!("wss://localhost:{}", h.local_addr().port()),
        Some(&origin),
        &[RELAY],
    );
    let (_ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    assert_eq!(
        resp.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
    // A plain-text client gets nothing.
    let (status, _, _) = get(h.local_addr(), "/healthz").await;
    assert_eq!(status, 0);
}

#[tokio::test]
async fn keep_alive_static_connections_do_not_hold_pre_auth_slots() {
    let h = start("[limits]\nmax_preauth_connections = 2\n").await;
    let addr = h.local_addr();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
        held.push(tcp); // kept alive, idle
    }
    // Four idle keep-alive connections, a pre-auth cap of 2: a WebSocket still opens.
    let origin = own_origin(&h);
    let _a = ws_connect(addr, Some(&origin), &[RELAY]).await.unwrap();
    // And an upgrade on a connection that served a static request needs a slot again:
    // with both slots taken by WebSockets that have not opened a relay, it is refused.
    let _b = ws_connect(addr, Some(&origin), &[RELAY]).await.unwrap();
    let mut tcp = held.pop().unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    tcp.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Protocol: {RELAY}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 5\r\n"), "{head}");
}

#[tokio::test]
async fn a_preauth_flood_from_one_address_leaves_room_for_others() {
    let h = start("[limits]\nmax_preauth_connections = 6\nmax_preauth_per_ip = 3\n").await;
    let addr = h.local_addr();
    let origin = own_origin(&h);
    // The flood: upgraded WebSockets that never send a message, all from one address.
    let mut flood = Vec::new();
    for _ in 0..3 {
        flood.push(
            ws_connect_from("127.0.0.2", addr, Some(&origin), &[RELAY])
                .await
                .unwrap(),
        );
    }
    for _ in 0..3 {
        assert_eq!(
            ws_connect_from("127.0.0.2", addr, Some(&origin), &[RELAY])
                .await
                .err(),
            Some(503)
        );
    }
    let reason = |r: &str| {
        metric(
            &h.metrics_text(),
            &format!("prl_proxy_rejections_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(reason("preauth_per_ip"), 3.0);
    // Everyone else still gets in, up to the pool.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(
            ws_connect_from("127.0.0.3", addr, Some(&origin), &[RELAY])
                .await
                .unwrap(),
        );
    }
    // And beyond it, by taking the flood's oldest slot (tests/flood.rs).
    ws_connect_from("127.0.0.4", addr, Some(&origin), &[RELAY])
        .await
        .unwrap();
    assert_eq!(reason("preauth_evicted"), 1.0);
    assert_eq!(reason("preauth_connections"), 0.0);
}

#[tokio::test]
async fn a_silent_websocket_is_cut_at_the_first_message_deadline() {
    use futures_util::StreamExt;
    // The TLS / HTTP deadline is long; the first message has its own, short one, and the
    // slot it held is free again at once.
    let h = start(
        "[limits]\nhandshake_timeout_ms = 60000\nfirst_message_timeout_ms = 300\n\
         max_preauth_connections = 1\n",
    )
    .await;
    let addr = h.local_addr();
    let origin = own_origin(&h);
    let (mut ws, _) = ws_connect(addr, Some(&origin), &[RELAY]).await.unwrap();
    let t0 = std::time::Instant::now();
    let error = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a silent websocket held its slot past the first-message deadline")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            break t.to_string();
        }
    };
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert!(error.contains("limit_reached"), "{error}");
    assert!(error.contains("within 300 ms of the upgrade"), "{error}");
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"first_message_timeout\"}"
        ),
        1.0
    );
    drop(ws);
    metric_becomes(&h, "prl_proxy_connections", 0.0).await;
    assert!(ws_connect(addr, Some(&origin), &[RELAY]).await.is_ok());
}

/// A TCP connection that has sent a WebSocket upgrade request (the response is not read).
async fn raw_upgrade(addr: std::net::SocketAddr, origin: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {RELAY}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tcp
}

#[tokio::test]
async fn a_framing_error_in_the_first_message_is_refused_and_counted() {
    let h = start("").await;
    let addr = h.local_addr();
    let mut tcp = raw_upgrade(addr, &own_origin(&h)).await;
    // An unmasked frame: a browser never sends one.
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("protocol_violation"), "{text}");
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"protocol_violation\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn an_oversize_first_message_is_refused_from_its_frame_header() {
    let h = start("").await;
    let addr = h.local_addr();
    let mut tcp = raw_upgrade(addr, &own_origin(&h)).await;
    // A masked text frame announcing 1 MiB (the general message limit), of which only the
    // first KiB is sent: the proxy must not wait for (and buffer) the rest.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend(vec![b' '; 1024]);
    let t0 = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = false;
    while !String::from_utf8_lossy(&got).contains("limit_reached") {
        if !sent && got.windows(4).any(|w| w == b"\r\n\r\n") {
            tcp.write_all(&frame).await.unwrap();
            sent = true;
        }
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
            .await
            .expect("no refusal before the proxy's handshake deadline")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(
        String::from_utf8_lossy(&got).contains("first message too long"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"limit_reached\"}"
        ),
        1.0
    );
}
