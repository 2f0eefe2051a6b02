//! The shared-state trait: one suite, run against both implementations (`MemoryState` always,
//! `RedisState` against a `redis-server` these tests start, which must be installed: missing,
//! it fails), then what only a cluster has: several instances on one Redis, its key schema
//! (keyed ids, TTLs, nothing raw), Redis going away and coming back, auth and TLS.
#![allow(clippy::unwrap_used)]

#[path = "common/redis.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prl_proxy::config::{ClusterConfig, LimitsConfig, ResumeConfig};
use prl_proxy::metrics::Metrics;
use prl_proxy::registry::TokenKeys;
use prl_proxy::shared_state::{
    LeaseError, MemoryState, ProofFacts, ProofRefusal, RedisState, RestoreRefusal, SharedState,
    ThrottleKey, TicketUseError,
};
use prl_proxy::util::{unix_now, Token};
use redis_server::RedisServer;
use uuid::Uuid;

const O: &str = "https://console.example";
const TTL: Duration = Duration::from_secs(600);

fn limits() -> LimitsConfig {
    LimitsConfig {
        login_burst_per_ip: 3,
        login_per_minute_per_ip: 1,
        login_burst_per_user: 2,
        login_per_minute_per_user: 1,
        max_unauthenticated_upstreams: 3,
        max_unauthenticated_upstreams_per_ip: 2,
        ..LimitsConfig::default()
    }
}

fn one(t: &Token) -> TokenKeys<'_> {
    TokenKeys {
        current: t,
        previous: None,
    }
}

fn facts(s: Uuid) -> ProofFacts<'static> {
    ProofFacts {
        session: s,
        origin: O,
        subject: None,
    }
}

/// A cluster instance's configuration on `redis`.
struct Instance {
    dir: tempfile::TempDir,
    config: ClusterConfig,
}

fn instance(redis: &RedisServer, id: &str, peers: &[&str]) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.key");
    std::fs::write(&secret, "a-test-cluster-secret-of-more-than-32-bytes\n").unwrap();
    let url = |id: &str| format!("wss://relay-{id}.example.com/ws");
    let config = ClusterConfig {
        redis_url: redis.url(),
        username: None,
        password_file: None,
        ca_file: None,
        instance_id: id.into(),
        public_url: url(id),
        peers: peers
            .iter()
            .map(|p| (p.to_string(), url(p)))
            .collect::<BTreeMap<_, _>>(),
        secret_file: secret,
        key_prefix: "test:".into(),
        heartbeat_ms: 100,
        op_timeout_ms: 500,
    };
    Instance { dir, config }
}

fn start(i: &Instance) -> Arc<RedisState> {
    RedisState::start(
        &i.config,
        &limits(),
        &ResumeConfig::default(),
        &Metrics::new(),
    )
    .unwrap()
}

/// Until `state` has answered (its first heartbeat).
async fn up(state: &dyn SharedState) {
    let end = Instant::now() + Duration::from_secs(10);
    while !state.available() {
        assert!(
            Instant::now() < end,
            "shared state not available after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The behaviour both implementations share.
async fn suite(s: &dyn SharedState) {
    let now = unix_now();
    // Tickets: once, everywhere this state reaches; each id on its own; older than the cache
    // refused.
    s.consume_ticket("jti-1", now, now + 60, now).await.unwrap();
    assert_eq!(
        s.consume_ticket("jti-1", now, now + 60, now).await,
        Err(TicketUseError::Replayed)
    );
    s.consume_ticket("jti-2", now, now + 60, now).await.unwrap();
    assert_eq!(
        s.consume_ticket("jti-3", now - 3600, now + 60, now).await,
        Err(TicketUseError::BeforeStart)
    );

    // Login buckets: the burst, then nothing (one token a minute); keys apart.
    let t0 = Instant::now();
    let ip = ThrottleKey::Ip("192.0.2.7".parse().unwrap());
    for i in 0..3 {
        assert_eq!(s.login_attempt(ip, t0).await, Ok(true), "attempt {i}");
    }
    assert_eq!(s.login_attempt(ip, t0).await, Ok(false));
    let alice = ThrottleKey::User(prl_proxy::limits::user_key("alice"));
    assert_eq!(s.login_attempt(alice, t0).await, Ok(true));
    assert_eq!(s.login_attempt(alice, t0).await, Ok(true));
    assert_eq!(s.login_attempt(alice, t0).await, Ok(false));
    let bob = ThrottleKey::User(prl_proxy::limits::user_key("bob"));
    assert_eq!(s.login_attempt(bob, t0).await, Ok(true));
    // IPv6 counts per /64.
    let v6a = ThrottleKey::Ip(prl_proxy::limits::client_key(
        "2001:db8::1".parse().unwrap(),
    ));
    let v6b = ThrottleKey::Ip(prl_proxy::limits::client_key(
        "2001:db8::2".parse().unwrap(),
    ));
    for _ in 0..3 {
        assert_eq!(s.login_attempt(v6a, t0).await, Ok(true));
    }
    assert_eq!(s.login_attempt(v6b, t0).await, Ok(false));

    // Restore proofs: kept when the link closes, taken once, by the right origin and subject.
    let (t, session) = (Token::generate(), Uuid::new_v4());
    s.keep_restore_proof(one(&t), facts(session), TTL, 100)
        .await;
    assert_eq!(
        s.take_restore_proof(t.expose(), "https://evil.example", None)
            .await,
        Err(ProofRefusal::Refused(RestoreRefusal::Mismatch))
    );
    assert_eq!(
        s.take_restore_proof(t.expose(), O, Some("mallory")).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Mismatch))
    );
    assert_eq!(s.take_restore_proof(t.expose(), O, None).await, Ok(session));
    assert_eq!(
        s.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );
    assert_eq!(
        s.take_restore_proof(Token::generate().expose(), O, None)
            .await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );
    // Two keys (the token before the last rotation too): either, once.
    let (new, old, session) = (Token::generate(), Token::generate(), Uuid::new_v4());
    let both = TokenKeys {
        current: &new,
        previous: Some(&old),
    };
    let bob_facts = ProofFacts {
        subject: Some("bob"),
        ..facts(session)
    };
    s.keep_restore_proof(both, bob_facts, TTL, 100).await;
    assert_eq!(
        s.take_restore_proof(old.expose(), O, Some("bob")).await,
        Ok(session)
    );
    assert_eq!(
        s.take_restore_proof(new.expose(), O, Some("bob")).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );
    // A zero TTL keeps nothing.
    let t = Token::generate();
    s.keep_restore_proof(one(&t), facts(session), Duration::ZERO, 100)
        .await;
    assert_eq!(
        s.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );
    // A proof that expired is gone.
    let t = Token::generate();
    s.keep_restore_proof(one(&t), facts(session), Duration::from_millis(50), 100)
        .await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        s.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );
    // Nothing parked anywhere else answers for a token this state never saw parked.
    assert_eq!(s.holder(Token::generate().expose()).await, Ok(None));
}

#[tokio::test]
async fn memory_state_passes_the_suite() {
    let s = MemoryState::new(&limits(), 100, unix_now());
    assert!(s.available());
    assert_eq!(s.public_url(), None);
    suite(&s).await;
    // One process: the local caps are the whole limit, no lease is ever refused.
    for _ in 0..10 {
        assert!(s
            .unauthenticated_lease("192.0.2.7".parse().unwrap())
            .await
            .is_ok());
    }
}

#[tokio::test]
async fn redis_state_passes_the_suite() {
    let redis = RedisServer::start();
    let a = instance(&redis, "a", &[]);
    let s = start(&a);
    up(&*s).await;
    assert_eq!(s.public_url(), Some("wss://relay-a.example.com/ws"));
    suite(&*s).await;
    s.shutdown().await;
}

#[tokio::test]
async fn instances_share_tickets_throttles_proofs_and_limits() {
    let redis = RedisServer::start();
    let (ia, ib) = (instance(&redis, "a", &["b"]), instance(&redis, "b", &["a"]));
    let (a, b) = (start(&ia), start(&ib));
    up(&*a).await;
    up(&*b).await;
    let now = unix_now();

    // A ticket used on A is refused on B.
    a.consume_ticket("jti", now, now + 60, now).await.unwrap();
    assert_eq!(
        b.consume_ticket("jti", now, now + 60, now).await,
        Err(TicketUseError::Replayed)
    );

    // One user's bucket across instances: two attempts in all, wherever they land.
    let user = ThrottleKey::User(prl_proxy::limits::user_key("Carol"));
    let t0 = Instant::now();
    assert_eq!(a.login_attempt(user, t0).await, Ok(true));
    assert_eq!(b.login_attempt(user, t0).await, Ok(true));
    let same = ThrottleKey::User(prl_proxy::limits::user_key("CAROL"));
    assert_eq!(a.login_attempt(same, t0).await, Ok(false));
    assert_eq!(b.login_attempt(user, t0).await, Ok(false));

    // Upstream connections waiting for a login: 2 per address, 3 in all, cluster-wide.
    let x = "192.0.2.1".parse().unwrap();
    let y = "192.0.2.2".parse().unwrap();
    let l1 = a.unauthenticated_lease(x).await.unwrap();
    let _l2 = b.unauthenticated_lease(x).await.unwrap();
    assert_eq!(
        a.unauthenticated_lease(x).await.unwrap_err(),
        LeaseError::Full("unauthenticated_upstreams_per_ip")
    );
    let _l3 = b.unauthenticated_lease(y).await.unwrap();
    assert_eq!(
        a.unauthenticated_lease(y).await.unwrap_err(),
        LeaseError::Full("unauthenticated_upstreams")
    );
    // A lease given back frees its slot (released in the background).
    drop(l1);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match a.unauthenticated_lease(y).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < end, "slot not given back: {e:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    // A proof held by a live A: not B's to grant yet; A's own view says it holds it.
    let (t, session) = (Token::generate(), Uuid::new_v4());
    a.hold_restore_proof(one(&t), facts(session)).await;
    assert_eq!(
        b.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::HeldElsewhere)
    );
    assert_eq!(
        a.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::HeldHere)
    );
    // Another origin is refused whoever holds it.
    assert_eq!(
        b.take_restore_proof(t.expose(), "https://evil.example", None)
            .await,
        Err(ProofRefusal::Refused(RestoreRefusal::Mismatch))
    );
    // A closes the link: the proof is B's to take, once, and A's late write cannot bring
    // it back.
    a.keep_restore_proof(one(&t), facts(session), TTL, 100)
        .await;
    assert_eq!(b.take_restore_proof(t.expose(), O, None).await, Ok(session));
    a.keep_restore_proof(one(&t), facts(session), TTL, 100)
        .await;
    a.hold_restore_proof(one(&t), facts(session)).await;
    assert_eq!(
        a.take_restore_proof(t.expose(), O, None).await,
        Err(ProofRefusal::Refused(RestoreRefusal::Unknown))
    );

    // A link parked on A: a resume reaching B is sent to A's configured URL.
    let (t, older) = (Token::generate(), Token::generate());
    let keys = TokenKeys {
        current: &t,
        previous: Some(&older),
    };
    a.parked(keys, Duration::from_secs(60)).await;
    let url = Some("wss://relay-a.example.com/ws".to_string());
    assert_eq!(b.holder(t.expose()).await, Ok(url.clone()));
    assert_eq!(b.holder(older.expose()).await, Ok(url.clone()));
    // A itself does not redirect to itself.
    assert_eq!(a.holder(t.expose()).await, Ok(None));
    a.unparked(keys).await;
    assert_eq!(b.holder(t.expose()).await, Ok(None));
    // The token the browser showed it no longer needs names nothing.
    a.parked(keys, Duration::from_secs(60)).await;
    a.forget_token(&older).await;
    assert_eq!(b.holder(older.expose()).await, Ok(None));
    assert_eq!(b.holder(t.expose()).await, Ok(url));

    // A dies (its registration goes): B no longer sends resumes there, and the proofs A
    // held become usable (its links died with it).
    let (t2, s2) = (Token::generate(), Uuid::new_v4());
    a.hold_restore_proof(one(&t2), facts(s2)).await;
    a.shutdown().await;
    assert_eq!(b.holder(t.expose()).await, Ok(None));
    assert_eq!(b.take_restore_proof(t2.expose(), O, None).await, Ok(s2));
    b.shutdown().await;
}

#[tokio::test]
async fn a_resume_is_never_sent_to_an_instance_that_is_not_configured() {
    let redis = RedisServer::start();
    // C is not among B's peers: whatever Redis says, B never hands out C's URL.
    let (ic, ib) = (instance(&redis, "c", &["b"]), instance(&redis, "b", &["a"]));
    let (c, b) = (start(&ic), start(&ib));
    up(&*c).await;
    up(&*b).await;
    let t = Token::generate();
    c.parked(one(&t), Duration::from_secs(60)).await;
    assert_eq!(b.holder(t.expose()).await, Ok(None));
    c.shutdown().await;
    b.shutdown().await;
}

/// Every key and value in Redis.
async fn dump(redis: &RedisServer) -> Vec<(String, i64, String)> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let ty: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let value = match ty.as_str() {
            "string" => redis::cmd("GET")
                .arg(&k)
                .query_async::<String>(&mut c)
                .await
                .unwrap(),
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async::<Vec<String>>(&mut c)
                .await
                .unwrap()
                .join(" "),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async::<Vec<String>>(&mut c)
                .await
                .unwrap()
                .join(" "),
            other => panic!("unexpected type {other} of {k}"),
        };
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        out.push((k, ttl, value));
    }
    out
}

#[tokio::test]
async fn redis_holds_only_keyed_ids_and_every_key_expires() {
    let redis = RedisServer::start();
    let ia = instance(&redis, "a", &["b"]);
    let a = start(&ia);
    up(&*a).await;
    let now = unix_now();
    let jti = "ticket-id-in-clear";
    a.consume_ticket(jti, now, now + 60, now).await.unwrap();
    let t0 = Instant::now();
    let user = "alice-the-user";
    a.login_attempt(ThrottleKey::User(prl_proxy::limits::user_key(user)), t0)
        .await
        .unwrap();
    let ip: std::net::IpAddr = "198.51.100.77".parse().unwrap();
    a.login_attempt(ThrottleKey::Ip(ip), t0).await.unwrap();
    let _lease = a.unauthenticated_lease(ip).await.unwrap();
    let (t, prev, session) = (Token::generate(), Token::generate(), Uuid::new_v4());
    let keys = TokenKeys {
        current: &t,
        previous: Some(&prev),
    };
    let subject = ProofFacts {
        subject: Some("subject-in-clear"),
        ..facts(session)
    };
    a.hold_restore_proof(keys, subject).await;
    a.parked(keys, Duration::from_secs(60)).await;
    let t2 = Token::generate();
    a.keep_restore_proof(one(&t2), facts(session), TTL, 100)
        .await;

    let all = dump(&redis).await;
    assert!(all.len() >= 9, "{all:?}");
    let secrets = [
        jti.to_string(),
        user.to_string(),
        "198.51.100".to_string(),
        t.expose().to_string(),
        prev.expose().to_string(),
        t2.expose().to_string(),
        session.to_string(),
        session.simple().to_string(),
        "subject-in-clear".to_string(),
    ];
    for (k, ttl, v) in &all {
        assert!(k.starts_with("test:"), "{k} lacks the configured prefix");
        assert!(*ttl > 0, "{k} has no ttl ({ttl})");
        for s in &secrets {
            assert!(
                !k.contains(s.as_str()) && !v.contains(s.as_str()),
                "{s} in {k} = {v}"
            );
        }
    }
    // The instance registration names the configured public URL, and expires.
    assert!(all
        .iter()
        .any(|(k, _, v)| k == "test:inst:a" && v == "wss://relay-a.example.com/ws"));
    a.shutdown().await;
    assert!(!dump(&redis).await.iter().any(|(k, ..)| k == "test:inst:a"));
}

#[tokio::test]
async fn without_redis_everything_fails_closed_and_recovers_when_it_returns() {
    let mut redis = RedisServer::start();
    let ia = instance(&redis, "a", &[]);
    let metrics = Metrics::new();
    let a = RedisState::start(&ia.config, &limits(), &ResumeConfig::default(), &metrics).unwrap();
    up(&*a).await;
    let now = unix_now();
    let before_outage = now;
    redis.stop();
    // Every operation answers within the op timeout, refusing.
    let started = Instant::now();
    let t0 = Instant::now();
    assert!(matches!(
        a.consume_ticket("j", now, now + 60, now).await,
        Err(TicketUseError::Unavailable(_))
    ));
    assert!(a
        .login_attempt(ThrottleKey::Ip("192.0.2.1".parse().unwrap()), t0)
        .await
        .is_err());
    assert!(matches!(
        a.take_restore_proof(Token::generate().expose(), O, None)
            .await,
        Err(ProofRefusal::Unavailable(_))
    ));
    assert!(a.holder(Token::generate().expose()).await.is_err());
    assert!(matches!(
        a.unauthenticated_lease("192.0.2.1".parse().unwrap()).await,
        Err(LeaseError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!a.available());
    let text = metrics.render();
    assert!(text.contains("prl_proxy_shared_state_up 0"), "{text}");
    assert!(
        text.contains("prl_proxy_shared_state_errors_total{op=\"ticket\"}"),
        "{text}"
    );
    // Redis comes back (empty: no persistence): the heartbeat finds it, no restart needed.
    redis.restart();
    up(&*a).await;
    assert!(metrics.render().contains("prl_proxy_shared_state_up 1"));
    let now = unix_now();
    a.consume_ticket("fresh", now, now + 60, now).await.unwrap();
    // Redis lost what it knew: a ticket issued before the loss might have been used, so it
    // is refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        a.consume_ticket("j", before_outage - 1, now + 60, unix_now())
            .await,
        Err(TicketUseError::BeforeStart)
    );
    a.shutdown().await;
}

#[tokio::test]
async fn auth_and_tls_are_supported() {
    // requirepass: the password comes from a file, never the URL.
    let redis = RedisServer::start_with(Some("s3cret-redis-pass"), false);
    let mut ia = instance(&redis, "a", &[]);
    let pw = ia.dir.path().join("redis.password");
    std::fs::write(&pw, "s3cret-redis-pass\n").unwrap();
    ia.config.password_file = Some(pw.clone());
    let a = start(&ia);
    up(&*a).await;
    let now = unix_now();
    a.consume_ticket("j", now, now + 60, now).await.unwrap();
    a.shutdown().await;
    // A wrong password is refused: never available.
    std::fs::write(&pw, "wrong").unwrap();
    let bad = start(&ia);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!bad.available());
    assert!(bad.consume_ticket("k", now, now + 60, now).await.is_err());
    bad.shutdown().await;

    // rediss:// with this run's certificate as the trust anchor.
    let tls = RedisServer::start_with(None, true);
    let mut it = instance(&tls, "t", &[]);
    assert!(it.config.redis_url.starts_with("rediss://"));
    it.config.ca_file = Some(tls.tls_files().cert);
    let t = start(&it);
    up(&*t).await;
    // Issued after this Redis began (a ticket older than its replay store is refused).
    let now = unix_now();
    t.consume_ticket("j", now, now + 60, now).await.unwrap();
    assert_eq!(
        t.consume_ticket("j", now, now + 60, now).await,
        Err(TicketUseError::Replayed)
    );
    t.shutdown().await;
    // Without that anchor (the system's roots) the server is not trusted.
    it.config.ca_file = None;
    let untrusted = start(&it);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!untrusted.available());
    untrusted.shutdown().await;
}
