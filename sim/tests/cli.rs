//! The `prl-sim` binary: ready lines, serving, logs without secrets, flag errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::ErrorCode;
use prl_transport::{connect, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_prl-sim");

/// Kills the child it holds when dropped (a failing test must not leave it running).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_and_prints_the_ready_lines() {
    let dir = temp_dir();
    let sock = dir.join("sim.sock");
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        "[[user]]\nname = \"fileuser\"\npassword = \"filepass\"\n",
    )
    .unwrap();
    let mut child = Child(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--unix"])
            .arg(&sock)
            .args(["--users"])
            .arg(&users)
            .args(["--user", "testuser:s3cr3t-Pa55", "--min-security", "normal"])
            .args(["--server-uuid", "{01234567-89ab-cdef-0123-456789abcdef}"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let tcp_line = lines.next().unwrap().unwrap();
    let unix_line = lines.next().unwrap().unwrap();
    let addr = tcp_line
        .strip_prefix("prl-sim listening on tcp://")
        .expect(&tcp_line)
        .parse::<std::net::SocketAddr>()
        .unwrap();
    assert_eq!(
        unix_line,
        format!("prl-sim listening on unix://{}", sock.display())
    );

    let conn = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client_config(SecurityLevel::Normal),
    )
    .await
    .unwrap();
    let mut c = Client {
        conn,
        backlog: Vec::new(),
    };
    assert_eq!(
        c.login("testuser", "not-the-password", "").await.code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    let r = c.login("testuser", "s3cr3t-Pa55", "").await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(
        r.login_response().unwrap().server_uuid,
        "{01234567-89ab-cdef-0123-456789abcdef}"
    );
    assert_eq!(c.logoff().await.code, ErrorCode::SUCCESS);
    // The users file works as well, on the unix socket.
    let conn = connect(
        &Endpoint::unix(&sock),
        &client_config(SecurityLevel::Normal),
    )
    .await
    .unwrap();
    let mut u = Client {
        conn,
        backlog: Vec::new(),
    };
    assert_eq!(
        u.login("fileuser", "filepass", "").await.code,
        ErrorCode::SUCCESS
    );
    // Min security: a LOW client is refused.
    let e = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client_config(SecurityLevel::Low),
    )
    .await
    .unwrap_err();
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);

    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("session started"), "{logs}");
    for secret in ["s3cr3t-Pa55", "not-the-password", "filepass"] {
        assert!(!logs.contains(secret), "a password reached the logs");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every spelling a UUID may take in a log line.
fn spellings(u: &prl_protocol::Uuid) -> Vec<String> {
    let bare = u.to_string();
    let simple = u.simple().to_string();
    let mut all = vec![
        format!("{{{bare}}}"),
        bare.clone(),
        simple.clone(),
        format!("{:?}", u.as_bytes()),
    ];
    all.extend(all.clone().iter().map(|s| s.to_uppercase()));
    all
}

#[tokio::test]
async fn trace_logs_hold_no_password_and_no_session_uuid() {
    use base64::Engine as _;
    use prl_protocol::codes::cmd;
    const SECRET: &str = "Tr4ce-Secr3t-Passw0rd";
    let mut child = Child(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--user"])
            .arg(format!("testuser:{SECRET}"))
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = ready_tcp_addr(&mut child.0);
    let endpoint = Endpoint::tcp("127.0.0.1", addr.port());
    let mut a = Client {
        conn: connect(&endpoint, &client_config(SecurityLevel::Low))
            .await
            .unwrap(),
        backlog: Vec::new(),
    };
    let mut jobs = Vec::new();
    // A failed login, a good one, a live-session restore from another connection, a ping, a
    // logoff.
    let p = a.login_package("testuser", "Wr0ng-Passw0rd-Tr4ce", "");
    jobs.push(p.header.uuid);
    assert_eq!(a.request(p).await.code, ErrorCode::AUTHENTICATION_FAILED);
    let p = a.login_package("testuser", SECRET, "");
    jobs.push(p.header.uuid);
    let r = a.request(p).await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    let session = session_of(&r);
    let mut b = Client {
        conn: connect(&endpoint, &client_config(SecurityLevel::Low))
            .await
            .unwrap(),
        backlog: Vec::new(),
    };
    let p = b.login_package("testuser", "", &session);
    jobs.push(p.header.uuid);
    b.conn.send(p).await.unwrap();
    let p = b.simple(cmd::USER_PING);
    assert_eq!(b.request(p).await.code, ErrorCode::UNIMPLEMENTED);
    assert_eq!(a.logoff().await.code, ErrorCode::SUCCESS);
    let b_session = braced(&b.me());
    // The log is read as it is written; both connections' ends must be in it (b's drop is
    // logged by the simulator's own task) before the process is stopped.
    let logged = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = child.0.stderr.take().unwrap();
    let sink = logged.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    drop(b);
    wait_until("both disconnections are logged", || {
        logged
            .lock()
            .unwrap()
            .matches("client disconnected")
            .count()
            >= 2
    })
    .await;

    let _ = child.0.kill();
    let _ = child.0.wait();
    reader.join().unwrap();
    let logs = logged.lock().unwrap().clone();
    // The run was logged, naming connections by number.
    for expected in [
        "authentication failed",
        "session started",
        "live session restored",
        "logged off",
        "conn=",
        "DEBUG",
    ] {
        assert!(logs.contains(expected), "{expected:?} missing:\n{logs}");
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for password in [SECRET, "Wr0ng-Passw0rd-Tr4ce"] {
        assert!(!logs.contains(password), "a password reached the logs");
        for engine in &engines {
            let b64 = engine.encode(password);
            // Any 4-symbol-aligned prefix is in every base64 text of the password.
            assert!(
                !logs.contains(&b64[..16]),
                "a base64 password reached the logs"
            );
        }
        let wire = prl_protocol::commands::Password::new(password).encode(true);
        assert!(!logs.contains(&wire[..16]));
    }
    let session_uuid = prl_protocol::parse_uuid(&session).unwrap();
    let b_uuid = prl_protocol::parse_uuid(&b_session).unwrap();
    for secret in [session_uuid, b_uuid].iter().chain(&jobs) {
        for spelling in spellings(secret) {
            assert!(
                !logs.contains(&spelling),
                "{spelling} (a session or login package uuid) reached the logs"
            );
        }
    }
}

#[test]
fn fault_refuse_from_the_command_line_refuses_connections() {
    let mut child = Child(
        Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--user",
                "a:b",
                "--fault",
                "refuse",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The ready line names the address it would serve.
    let addr = ready_tcp_addr(&mut child.0);
    let e = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

fn run_bad(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty(), "no ready line on error");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_flags_and_config_name_the_problem() {
    assert!(run_bad(&["--mode", "weird"]).contains("--mode"));
    assert!(run_bad(&["--min-security", "max"]).contains("--min-security"));
    assert!(run_bad(&["--user", "nopassword"]).contains("NAME:PASSWORD"));
    assert!(run_bad(&["--local-user", "root:abc"]).contains("uid"));
    assert!(run_bad(&["--fault", "explode"]).contains("unknown fault"));
    assert!(run_bad(&["--users", "/nonexistent/users.toml"]).contains("users file"));
    assert!(run_bad(&["--server-uuid", "xyz"]).contains("--server-uuid"));
    assert!(run_bad(&["--listen", "not-an-address"]).contains("--listen"));
    for spec in ["10", "0:100", "10001:1", "5:60001", "x:1", "5:-1"] {
        let e = run_bad(&["--task-on-login", spec]);
        assert!(
            e.contains("--task-on-login") && e.contains("STEPS:INTERVAL_MS"),
            "{e}"
        );
    }
    for spec in ["start", "boot=10", "stop=x", "all=600001"] {
        let e = run_bad(&["--transition-ms", spec]);
        assert!(e.contains("--transition-ms") && e.contains("OP=MS"), "{e}");
    }
    assert!(run_bad(&["--vms", "/nonexistent/vms.toml"]).contains("vms file: cannot read"));
    let dir = temp_dir();
    let vms = dir.join("vms.toml");
    std::fs::write(&vms, "[[vm]]\nname = \"db\"\nstate = \"starting\"\n").unwrap();
    let e = run_bad(&["--vms", vms.to_str().unwrap()]);
    assert!(e.contains("vms file: VM \"db\": state \"starting\""), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = run_bad(&[
        "--mode",
        "desktop",
        "--listen",
        "127.0.0.1:0",
        "--unix",
        "/tmp/x.sock",
        "--local-user",
        "me:1000",
    ]);
    assert!(e.contains("desktop mode"), "{e}");
    assert!(run_bad(&["--mode", "desktop"]).contains("--unix"));
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert!(run_bad(&["--listen", &addr, "--user", "a:b"]).contains(&format!("tcp://{addr}")));
}

#[tokio::test]
async fn certificate_mode_from_the_command_line() {
    let dir = temp_dir();
    let (cert, key) = test_certificate("prl-sim-host");
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let mut child = Child(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--user", "testuser:testpass"])
            .arg("--tls-cert")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.join("key.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = ready_tcp_addr(&mut child.0);
    let creds = prl_transport::Credentials::from_pem(&cert, &key).unwrap();
    let conn = connect(
        &Endpoint::tcp("127.0.0.1", addr.port()),
        &client_config(SecurityLevel::High)
            .with_tls(prl_transport::TlsConfig::client_with_credentials(&creds).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.info().key_exchange,
        Some(prl_transport::KeyExchange::Rsa)
    );
    let mut c = Client {
        conn,
        backlog: Vec::new(),
    };
    c.login_ok().await;
    drop(child);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(run_bad(&[
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key"
    ])
    .contains("--tls-cert"));
}
