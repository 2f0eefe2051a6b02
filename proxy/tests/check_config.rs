//! `prl-proxy check-config FILE`: the loaders start-up and reload use, without listening.
//! Every broken configuration gets the same error from check-config, from start-up and from a
//! reload of a running proxy; a good one passes all three.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::path::Path;
use std::process::{Command, Output};

use prl_proxy::{Config, Proxy};

const BIN: &str = env!("CARGO_BIN_EXE_prl-proxy");

/// A configuration every check accepts: wss (self-signed), tickets, a static root, a named
/// target. With [tls] in force, a reload loads the certificate files too (a reload that adds
/// [tls] does not: that applies at the next start, which check-config checks for).
const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
[tls]
self_signed = true
[static]
root = "www"
[policy]
resolve_names = false
[[policy.target]]
name = "lab"
host = "127.0.0.1"
port = 64000
[tickets]
key_file = "ticket.key"
audience = "https://proxy.example.com"
[[tickets.keys]]
kid = "ed-1"
alg = "EdDSA"
file = "ed.pub.pem"
[[tickets.keys]]
kid = "hs-2"
alg = "HS256"
file = "ticket.key"
"#;

/// Broken configurations (listen is an ephemeral loopback port wherever the case allows, so
/// that start-up gets as far as the failing loader) and a word of the error each must name.
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "unknown key",
        "[server]\nlisten = \"127.0.0.1:0\"\n[limits]\nqueue_pakages = 3\n",
        "queue_pakages",
    ),
    ("not toml", "[server\nlisten = 1\n", "parse"),
    (
        "bad cidr",
        "[server]\nlisten = \"127.0.0.1:0\"\n[[policy.allow]]\ncidr = \"10.0.0.0/40\"\n",
        "policy.allow[0].cidr",
    ),
    (
        "plain ws on a public address",
        "[server]\nlisten = \"0.0.0.0:0\"\npublic_origin = \"http://x.example\"\n",
        "server.listen",
    ),
    (
        "missing certificate",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert_file = \"no-cert.pem\"\nkey_file = \"no-key.pem\"\n",
        "no-cert.pem",
    ),
    (
        "short ticket key",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\nkey_file = \"short.key\"\n",
        "tickets.key_file",
    ),
    (
        "a private key where the EdDSA public key belongs",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\n[[tickets.keys]]\nalg = \"EdDSA\"\nfile = \"ed.pem\"\n",
        "tickets.keys[0].file",
    ),
    (
        "an HS256 key file that is an Ed25519 public key (too short)",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\n[[tickets.keys]]\nalg = \"HS256\"\nfile = \"short.key\"\n",
        "tickets.keys[0].file",
    ),
    (
        "two ticket keys with one kid",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\n[[tickets.keys]]\nkid = \"a\"\nalg = \"HS256\"\nfile = \"ticket.key\"\n[[tickets.keys]]\nkid = \"a\"\nalg = \"EdDSA\"\nfile = \"ed.pub.pem\"\n",
        "tickets.keys[1].kid",
    ),
    (
        "no ticket key",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\nrequired = true\n",
        "tickets.keys",
    ),
    (
        "ticket algorithm none",
        "[server]\nlisten = \"127.0.0.1:0\"\n[tickets]\n[[tickets.keys]]\nalg = \"none\"\nfile = \"ticket.key\"\n",
        "alg",
    ),
    (
        "missing static directory",
        "[server]\nlisten = \"127.0.0.1:0\"\n[static]\nroot = \"no-such-dir\"\n",
        "no-such-dir",
    ),
];

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The error check-config printed, without its `prl-proxy: FILE: ` prefix.
fn check_error(out: &Output, file: &Path) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("prl-proxy: {}: ", file.display());
    err.trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {err:?}"))
        .to_string()
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("ticket.key"), [7u8; 32]).unwrap();
    std::fs::write(dir.path().join("short.key"), b"short").unwrap();
    let seed = [3u8; 32];
    let public = prl_proxy::ticket_keys::ed25519_public_of(&seed).unwrap();
    std::fs::write(
        dir.path().join("ed.pub.pem"),
        prl_proxy::ticket_keys::ed25519_public_pem(&public),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ed.pem"),
        prl_proxy::ticket_keys::ed25519_private_pem(&seed).as_bytes(),
    )
    .unwrap();
    dir
}

#[test]
fn a_good_configuration_exits_0() {
    let dir = workdir();
    let file = dir.path().join("good.toml");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(&["check-config"], &file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("prl-proxy: {}: configuration ok", file.display())
    );
}

#[test]
fn the_shipped_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("prl-proxy.example.toml");
    let out = run(&["check-config"], &example);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent.toml");
    let out = run(&["check-config"], &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(check_error(&out, &file).contains("absent.toml"));
}

#[test]
fn broken_configurations_exit_2_with_the_error_start_up_gives() {
    let dir = workdir();
    for (i, (case, body, names)) in BROKEN.iter().enumerate() {
        let file = dir.path().join(format!("broken-{i}.toml"));
        std::fs::write(&file, body).unwrap();
        let out = run(&["check-config"], &file);
        assert_eq!(out.status.code(), Some(2), "{case}");
        let error = check_error(&out, &file);
        assert!(error.contains(names), "{case}: {error}");
        // Start-up refuses it with the same error (and exit code).
        let start = run(&["--config"], &file);
        let start_err = String::from_utf8_lossy(&start.stderr);
        assert_eq!(start.status.code(), Some(2), "{case}: {start_err}");
        assert!(
            start_err.contains(&format!("prl-proxy: {error}")),
            "{case}: start-up said {start_err:?}, check-config {error:?}"
        );
    }
}

#[tokio::test]
async fn a_reload_refuses_what_check_config_refuses_with_the_same_error() {
    let dir = workdir();
    let file = dir.path().join("proxy.toml");
    std::fs::write(&file, GOOD).unwrap();
    let proxy = Proxy::bind(Config::load(&file).unwrap(), Some(file.clone()))
        .await
        .unwrap();
    let handle = proxy.handle();
    tokio::spawn(proxy.run());
    for (case, body, _) in BROKEN {
        std::fs::write(&file, body).unwrap();
        let error = check_error(&run(&["check-config"], &file), &file);
        let reload = handle
            .reload()
            .map_err(|e| e.to_string().trim_end().to_string());
        assert_eq!(reload, Err(error), "{case}");
    }
    // And what check-config accepts, a reload applies.
    std::fs::write(&file, GOOD.replace("name = \"lab\"", "name = \"lab2\"")).unwrap();
    assert_eq!(run(&["check-config"], &file).status.code(), Some(0));
    assert!(handle.reload().is_ok());
    assert!(handle
        .config()
        .policy
        .target
        .iter()
        .any(|t| t.name == "lab2"));
    handle.shutdown();
}
