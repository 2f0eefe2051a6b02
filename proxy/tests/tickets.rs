//! Tickets as JWTs: the test vectors of `docs/tickets.md` against the proxy's own code,
//! `prl-proxy keygen` and `prl-proxy ticket` (HS256 and EdDSA), and key rotation by reload
//! with the refusal reasons counted in the metrics.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use prl_protocol::relay::ConnectMode;
use prl_proxy::jws::{KeySet, Signer, VerifyingKey};
use prl_proxy::ticket::{TicketError, TicketIssuer, TicketOptions, Tickets};
use prl_proxy::ticket_keys;
use ring::signature::Ed25519KeyPair;

const BIN: &str = env!("CARGO_BIN_EXE_prl-proxy");

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tickets.md");
    std::fs::read_to_string(path).unwrap()
}

/// The `text` blocks of the document that start with `vector:`, as field maps.
fn vectors(doc: &str) -> Vec<HashMap<String, String>> {
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in doc.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```text") => block = Some(Vec::new()),
            (Some(lines), "```") => {
                if lines.first().is_some_and(|l| l.starts_with("vector:")) {
                    out.push(
                        lines
                            .iter()
                            .map(|l| {
                                let (k, v) = l.split_once(':').unwrap();
                                (k.to_string(), v.trim().to_string())
                            })
                            .collect(),
                    );
                }
                block = None;
            }
            (Some(lines), l) => lines.push(l),
            (None, _) => {}
        }
    }
    out
}

/// The signer and the verification key a vector names.
fn keys_of(v: &HashMap<String, String>) -> (Signer, VerifyingKey) {
    let kid = match v["kid"].as_str() {
        "-" => None,
        kid => Some(kid.to_string()),
    };
    match v["alg"].as_str() {
        "HS256" => {
            let secret = ticket_keys::parse_secret(v["secret"].as_bytes()).unwrap();
            assert_eq!(secret.as_slice(), (0u8..32).collect::<Vec<_>>());
            (
                Signer::hs256(kid.clone(), &secret),
                VerifyingKey::hs256(kid, &secret),
            )
        }
        "EdDSA" => {
            let seed = URL_SAFE_NO_PAD.decode(&v["seed"]).unwrap();
            let x: [u8; 32] = URL_SAFE_NO_PAD.decode(&v["x"]).unwrap().try_into().unwrap();
            let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, &x).unwrap();
            (
                Signer::ed25519(kid.clone(), pair),
                VerifyingKey::ed25519(kid, x),
            )
        }
        other => panic!("alg {other}"),
    }
}

#[test]
fn the_documented_vectors_hold() {
    let doc = doc();
    let vectors = vectors(&doc);
    let algs: Vec<&str> = vectors.iter().map(|v| v["alg"].as_str()).collect();
    assert_eq!(algs, ["HS256", "EdDSA", "HS256", "EdDSA"]);
    for v in &vectors {
        let name = &v["vector"];
        let (signer, key) = keys_of(v);
        // The exact token from the exact bytes, and the header the proxy itself writes.
        let token = signer.sign_parts(v["header"].as_bytes(), v["payload"].as_bytes());
        assert_eq!(token, v["token"], "{name}");
        assert_eq!(signer.header_json(), v["header"].as_bytes(), "{name}");
        // Accepted as documented, and the claims written back are the payload's bytes.
        let tickets = Tickets {
            keys: KeySet::new(vec![key]).unwrap(),
            audience: v["audience"].clone(),
            required: true,
            max_ttl_secs: 120,
        };
        let now: u64 = v["now"].parse().unwrap();
        let claims = tickets.verify(&v["token"], &v["origin"], now).unwrap();
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            v["payload"],
            "{name}"
        );
        let open: Vec<&str> = v["open"].split(' ').collect();
        match open.as_slice() {
            ["local"] => claims.check_open(ConnectMode::Local, "", 0).unwrap(),
            ["remote", host, port] => {
                let port = port.parse().unwrap();
                claims.check_open(ConnectMode::Remote, host, port).unwrap();
                assert_eq!(
                    claims.check_open(ConnectMode::Local, host, port),
                    Err(TicketError::ModeMismatch)
                );
            }
            other => panic!("{name}: open {other:?}"),
        }
        // And refused a second after it expires, or for another audience or origin.
        assert_eq!(
            tickets.verify(&v["token"], &v["origin"], claims.exp),
            Err(TicketError::Expired),
            "{name}"
        );
        let other = Tickets {
            audience: "another-proxy".into(),
            ..tickets
        };
        assert_eq!(
            other.verify(&v["token"], &v["origin"], now),
            Err(TicketError::WrongAudience)
        );
        assert_eq!(
            other.verify(&v["token"], "https://evil.example", now),
            Err(TicketError::WrongAudience)
        );
    }
    // The PEM forms the document gives are the EdDSA vectors' key.
    let x = &vectors[1]["x"];
    let pk = ticket_keys::parse_ed25519_public(pem_block(&doc, "PUBLIC KEY").as_bytes()).unwrap();
    assert_eq!(&URL_SAFE_NO_PAD.encode(pk), x);
    let pair =
        ticket_keys::parse_ed25519_private(pem_block(&doc, "PRIVATE KEY").as_bytes()).unwrap();
    let signer = Signer::ed25519(None, pair);
    assert_eq!(
        &URL_SAFE_NO_PAD.encode(signer.ed25519_public_key().unwrap()),
        x
    );
}

/// The PEM block with this label: from its own `-----BEGIN …-----` line to its end line.
fn pem_block(doc: &str, label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let lines: Vec<&str> = doc
        .lines()
        .skip_while(|l| l.trim() != begin)
        .take_while(|l| l.trim() != end)
        .collect();
    assert!(!lines.is_empty(), "no {label} block");
    format!("{}\n{end}\n", lines.join("\n"))
}

#[test]
fn every_refusal_reason_is_documented() {
    let doc = doc();
    for kind in TicketError::KINDS {
        assert!(
            doc.contains(&format!("| `{kind}` |")),
            "{kind} not in the table"
        );
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_and_the_ticket_command_mint_both_algorithms() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("ed.pem");
    let public = dir.path().join("ed.pub.pem");
    let secret = dir.path().join("hs.key");
    let jwk = ok(&run(&[
        "keygen",
        "ed25519",
        "--private-key",
        s(&private),
        "--public-key",
        s(&public),
    ]));
    ok(&run(&["keygen", "hs256", "--out", s(&secret)]));
    // The public JWK printed is the public key written.
    let pk = ticket_keys::parse_ed25519_public(std::fs::read(&public).unwrap().as_slice()).unwrap();
    assert_eq!(
        ticket_keys::parse_ed25519_public(jwk.trim().as_bytes()).unwrap(),
        pk
    );
    #[cfg(unix)]
    for (file, mode) in [(&private, 0o600), (&secret, 0o600)] {
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{}", file.display());
    }
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(std::fs::read_to_string(&secret).unwrap().trim())
            .unwrap()
            .len(),
        32
    );
    // Never over an existing file.
    let again = run(&["keygen", "hs256", "--out", s(&secret)]);
    assert_eq!(again.status.code(), Some(2));
    let missing = run(&[
        "keygen",
        "ed25519",
        "--private-key",
        s(&dir.path().join("x")),
    ]);
    assert_eq!(missing.status.code(), Some(2));

    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        "[tickets]\naudience = \"aud-x\"\nmax_ttl_secs = 60\n\
         [[tickets.keys]]\nkid = \"ed-1\"\nalg = \"EdDSA\"\nfile = \"ed.pub.pem\"\n\
         [[tickets.keys]]\nkid = \"hs-1\"\nalg = \"HS256\"\nfile = \"hs.key\"\n",
    )
    .unwrap();
    assert_eq!(run(&["check-config", s(&config)]).status.code(), Some(0));
    let tickets = Tickets::load(
        prl_proxy::Config::load(&config)
            .unwrap()
            .tickets
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let origin = "https://console.example.com";
    let mint = |extra: &[&str]| {
        let mut args = vec!["ticket", "--config", s(&config), "--origin", origin];
        args.extend_from_slice(extra);
        run(&args)
    };
    let header = |t: &str| {
        String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    // EdDSA with the private key: the key's kid is found from its public half.
    let t = ok(&mint(&[
        "--target",
        "@local",
        "--private-key",
        s(&private),
        "--subject",
        "u-1",
    ]));
    let t = t.trim();
    assert_eq!(header(t), r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1"}"#);
    let c = tickets
        .verify(t, origin, prl_proxy::util::unix_now())
        .unwrap();
    assert_eq!(
        (c.mode, c.sub.as_deref()),
        (ConnectMode::Local, Some("u-1"))
    );
    // HS256 with the only HS256 key.
    let t = ok(&mint(&["--target", "[2001:DB8::5]:8443", "--ttl", "30"]));
    let t = t.trim();
    assert_eq!(header(t), r#"{"alg":"HS256","typ":"JWT","kid":"hs-1"}"#);
    let c = tickets
        .verify(t, origin, prl_proxy::util::unix_now())
        .unwrap();
    assert_eq!(c.target.as_deref(), Some("[2001:db8::5]:8443"));
    assert_eq!(c.exp - c.iat, 30);
    // Refused: a private key the config does not know, a kid of the other algorithm, a
    // lifetime above the maximum.
    let stranger = dir.path().join("stranger.pem");
    std::fs::write(
        &stranger,
        ticket_keys::ed25519_private_pem(&[9u8; 32]).as_bytes(),
    )
    .unwrap();
    for args in [
        vec!["--target", "lab", "--private-key", s(&stranger)],
        vec!["--target", "lab", "--kid", "ed-1"],
        vec!["--target", "lab", "--ttl", "61"],
        vec!["--target", "lab", "--private-key", s(&public)],
    ] {
        let out = mint(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

fn hs_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, URL_SAFE_NO_PAD.encode([byte; 32])).unwrap();
    p
}

#[tokio::test]
async fn keys_rotate_by_reload_and_refusals_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let old = hs_file(dir.path(), "old.key", 1);
    let new = hs_file(dir.path(), "new.key", 2);
    let ed_public = dir.path().join("ed.pub.pem");
    let seed = [4u8; 32];
    std::fs::write(
        &ed_public,
        ticket_keys::ed25519_public_pem(&ticket_keys::ed25519_public_of(&seed).unwrap()),
    )
    .unwrap();
    let key = |kid: &str, alg: &str, file: &Path| {
        format!("[[tickets.keys]]\nkid = \"{kid}\"\nalg = \"{alg}\"\nfile = {file:?}\n")
    };
    let toml = |keys: &[String]| format!("[tickets]\nmax_ttl_secs = 60\n{}", keys.concat());
    let h = start(&toml(&[
        key("old", "HS256", &old),
        key("ed", "EdDSA", &ed_public),
    ]))
    .await;
    let origin = own_origin(&h);
    let aud = prl_proxy::config::DEFAULT_AUDIENCE;
    let issue = |issuer: &TicketIssuer| {
        issuer.remote(
            "lab",
            0,
            &origin,
            prl_proxy::util::unix_now(),
            30,
            TicketOptions::default(),
        )
    };
    let by_old = TicketIssuer::hs256(&[1u8; 32], Some("old"), aud);
    let by_new = TicketIssuer::hs256(&[2u8; 32], Some("new"), aud);
    let by_ed = TicketIssuer::new(
        Signer::ed25519(
            Some("ed".into()),
            Ed25519KeyPair::from_seed_unchecked(&seed).unwrap(),
        ),
        aud,
    );
    let offer = |t: &str| {
        let origin = origin.clone();
        let t = format!("prl-ticket.{t}");
        let addr = h.local_addr();
        async move {
            ws_connect(addr, Some(&origin), &["prl-relay.v1", &t])
                .await
                .map(|_| ())
        }
    };
    assert_eq!(offer(&issue(&by_old)).await, Ok(()));
    assert_eq!(offer(&issue(&by_ed)).await, Ok(()));
    assert_eq!(offer(&issue(&by_new)).await, Err(403));
    // The Ed25519 public key as an HMAC secret under the EdDSA key's kid.
    let pk = ticket_keys::ed25519_public_of(&seed).unwrap();
    let confused = TicketIssuer::hs256(&pk, Some("ed"), aud);
    assert_eq!(offer(&issue(&confused)).await, Err(403));
    // Another audience.
    let elsewhere = TicketIssuer::hs256(&[1u8; 32], Some("old"), "other-proxy");
    assert_eq!(offer(&issue(&elsewhere)).await, Err(403));
    // Step 1: add the new key.
    let both = prl_proxy::Config::from_toml_str(&toml(&[
        key("old", "HS256", &old),
        key("new", "HS256", &new),
        key("ed", "EdDSA", &ed_public),
    ]))
    .unwrap();
    h.reload_with(both).unwrap();
    assert_eq!(offer(&issue(&by_new)).await, Ok(()));
    assert_eq!(offer(&issue(&by_old)).await, Ok(()));
    // Step 3: drop the old one.
    let only_new = prl_proxy::Config::from_toml_str(&toml(&[key("new", "HS256", &new)])).unwrap();
    h.reload_with(only_new).unwrap();
    assert_eq!(offer(&issue(&by_old)).await, Err(403));
    assert_eq!(offer(&issue(&by_new)).await, Ok(()));
    // A replay of a ticket the proxy took.
    let t = issue(&by_new);
    assert_eq!(offer(&t).await, Ok(()));
    assert_eq!(offer(&t).await, Err(403));
    let m = h.metrics_text();
    for (reason, n) in [
        ("unknown_key", 2.0),
        ("alg_not_allowed", 1.0),
        ("wrong_audience", 1.0),
        ("replayed", 1.0),
    ] {
        assert_eq!(
            metric(
                &m,
                &format!("prl_proxy_ticket_rejections_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}"
        );
    }
    assert_eq!(
        metric(&m, "prl_proxy_rejections_total{reason=\"ticket_invalid\"}"),
        5.0
    );
}
