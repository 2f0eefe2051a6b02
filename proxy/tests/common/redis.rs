//! A `redis-server` for the tests: Debian's binary (or `$REDIS_SERVER`), started as the current
//! user from a temp dir on a free loopback port, without persistence; stopped (and waited for)
//! when dropped. A missing binary fails the test: the Redis half of the shared-state suite never
//! skips (`cargo xtask setup` installs it).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary the tests run.
pub fn redis_server_binary() -> PathBuf {
    let path = std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    assert!(
        path.exists(),
        "{} not found: the Redis half of the shared-state tests needs redis-server \
         (`cargo xtask setup` installs Debian's; REDIS_SERVER names another)",
        path.display()
    );
    path
}

/// TLS material for a `rediss://` server: a CA-less self-signed certificate for 127.0.0.1.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    password: Option<String>,
    tls: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None, false)
    }

    /// With `requirepass` and / or TLS only (`rediss://`).
    pub fn start_with(password: Option<&str>, tls: bool) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedisServer {
            child: None,
            dir,
            port: free_port(),
            password: password.map(str::to_string),
            tls,
        };
        if tls {
            let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
            std::fs::write(s.dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
            std::fs::write(
                s.dir.path().join("key.pem"),
                cert.signing_key.serialize_pem(),
            )
            .unwrap();
        }
        s.run();
        s
    }

    /// The certificate a `rediss://` client must trust.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join("cert.pem"),
            key: self.dir.path().join("key.pem"),
        }
    }

    /// `redis://127.0.0.1:PORT` (or `rediss://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let mut cmd = Command::new(redis_server_binary());
        cmd.current_dir(self.dir.path())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .args(["--dir", &self.dir.path().display().to_string()]);
        if self.tls {
            let f = self.tls_files();
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-cert-file", &f.cert.display().to_string()])
                .args(["--tls-key-file", &f.key.display().to_string()])
                .args(["--tls-ca-cert-file", &f.cert.display().to_string()])
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Ready when it accepts connections.
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "redis-server not listening after 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop it (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
