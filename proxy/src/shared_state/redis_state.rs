//! Several proxies: the shared state lives in Redis (`[cluster]`). Every decision that must
//! hold across instances is one atomic Lua script or one atomic command; every key has a TTL;
//! every key name is `<key_prefix><kind>:<id>` with the id keyed by the cluster secret
//! ([`super::keys`]). Key schema (also in `docs/scaling.md`):
//!
//! | key | type | what | TTL |
//! |---|---|---|---|
//! | `epoch` | string | Redis time (s) when the replay store began: older tickets are refused | 1 day, renewed by every heartbeat |
//! | `inst:<instance id>` | string | the instance's public URL: it is alive | 3 heartbeats |
//! | `ticket:<id>` | string | a used ticket | until the ticket expires |
//! | `thr:ip:<id>`, `thr:user:<id>` | hash `n` tokens, `t` ms | a login token bucket | until full again |
//! | `proof:<id>` | hash `h` holder, `s` sealed session, `o` origin, `u` subject, `t` twin key | a restore proof (`h` = instance while its link lives, "" once closed, "!" once taken) | link lifetime + `restore_ttl_ms`; closed: `restore_ttl_ms` |
//! | `resume:<id>` | string | the instance holding the link parked under that token | `resume.window_ms` |
//! | `ua:all`, `ua:ip:<id>` | sorted set, member = lease, score = expiry (ms) | upstream connections waiting for their first login | the longest lease |
//!
//! Time inside scripts is Redis's own (`TIME`), so the instances' clocks need not agree.
//! The connection is a `redis::aio::ConnectionManager` (one multiplexed connection,
//! reconnected with backoff); each operation is bounded by `cluster.op_timeout_ms`, and a
//! failed or late one is [`Unavailable`]. A heartbeat task renews the registration and probes
//! Redis: `available()` (the `/readyz` and `shared_state_up` view) follows every answer.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{ClusterConfig, LimitsConfig, ResumeConfig};
use crate::limits::client_key;
use crate::metrics::Metrics;
use crate::registry::TokenKeys;
use crate::util::Token;

use super::keys::{Domain, Keyring};
use super::{
    BoxFut, Lease, LeaseError, ProofFacts, ProofRefusal, RestoreRefusal, SharedState, ThrottleKey,
    TicketUseError, Unavailable,
};

/// How long the replay epoch lives without a heartbeat renewing it.
const EPOCH_TTL_SECS: u64 = 86_400;

/// The state in Redis.
#[derive(Debug)]
pub struct RedisState {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct Inner {
    conn: ConnectionManager,
    keys: Keyring,
    prefix: String,
    me: String,
    public_url: String,
    peers: BTreeMap<String, String>,
    op_timeout: Duration,
    heartbeat: Duration,
    registration_ttl: Duration,
    rates: Rates,
    resume: ResumeConfig,
    /// Longest life of a held proof: a link's maximum lifetime plus the restore TTL.
    held_ttl: Duration,
    health: Health,
}

/// The limits the scripts apply (from `[limits]` at start).
#[derive(Debug, Clone, Copy)]
struct Rates {
    burst_ip: u32,
    per_minute_ip: u32,
    burst_user: u32,
    per_minute_user: u32,
    unauth_all: usize,
    unauth_ip: usize,
    lease: Duration,
}

/// Whether Redis answers, with the metrics that show it.
#[derive(Debug)]
struct Health {
    up: AtomicBool,
    gauge: Gauge,
    errors: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Health {
    fn ok(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!("shared state (redis) reachable");
        }
        self.gauge.set(1);
    }

    fn failed(&self, op: &'static str, why: &str) {
        self.errors.get_or_create(&[("op", op)]).inc();
        self.gauge.set(0);
        if self.up.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                op,
                error = why,
                "shared state (redis) unavailable: failing closed"
            );
        }
    }
}

/// Why Redis did not answer, without anything that could name a key.
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "redis timed out".into()
    } else if e.is_connection_refusal() {
        "redis refused the connection".into()
    } else if e.is_io_error() {
        "redis connection failed".into()
    } else {
        format!("redis error ({:?})", e.kind())
    }
}

impl RedisState {
    /// Check what a start would load (secret, password, CA, URL) without connecting.
    pub fn check(cluster: &ClusterConfig) -> Result<(), String> {
        Keyring::load(&cluster.secret_file)?;
        client(cluster).map(drop)
    }

    /// Set up the connection (lazily: a Redis that is down at start is retried, and the proxy
    /// starts degraded) and the heartbeat. Needs a tokio runtime.
    pub fn start(
        cluster: &ClusterConfig,
        limits: &LimitsConfig,
        resume: &ResumeConfig,
        metrics: &Metrics,
    ) -> Result<Arc<RedisState>, String> {
        let keys = Keyring::load(&cluster.secret_file)?;
        let op_timeout = Duration::from_millis(cluster.op_timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(1_000));
        let conn = ConnectionManager::new_lazy_with_config(client(cluster)?, config)
            .map_err(|e| format!("cannot set up the redis connection: {}", describe(&e)))?;
        metrics.shared_state_up.set(0);
        let inner = Arc::new(Inner {
            conn,
            keys,
            prefix: cluster.key_prefix.clone(),
            me: cluster.instance_id.clone(),
            public_url: cluster.public_url.clone(),
            peers: cluster.peers.clone(),
            op_timeout,
            heartbeat: Duration::from_millis(cluster.heartbeat_ms),
            registration_ttl: Duration::from_millis(cluster.registration_ttl_ms()),
            rates: Rates {
                burst_ip: limits.login_burst_per_ip,
                per_minute_ip: limits.login_per_minute_per_ip,
                burst_user: limits.login_burst_per_user,
                per_minute_user: limits.login_per_minute_per_user,
                unauth_all: limits.max_unauthenticated_upstreams,
                unauth_ip: limits.max_unauthenticated_upstreams_per_ip,
                // Taken before the connect, held until the first login, which must come
                // within the login deadline of `opened`.
                lease: Duration::from_millis(
                    limits
                        .connect_timeout_ms
                        .saturating_add(limits.login_deadline_ms)
                        .saturating_add(5_000),
                ),
            },
            resume: resume.clone(),
            held_ttl: Duration::from_millis(
                limits.max_lifetime_ms.saturating_add(resume.restore_ttl_ms),
            ),
            health: Health {
                up: AtomicBool::new(false),
                gauge: metrics.shared_state_up.clone(),
                errors: metrics.shared_state_errors.clone(),
            },
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(heartbeat(Arc::clone(&inner), stopped));
        Ok(Arc::new(RedisState { inner, stop }))
    }
}

/// The redis client for `cluster` (URL, credentials, trust anchors).
fn client(cluster: &ClusterConfig) -> Result<redis::Client, String> {
    use redis::IntoConnectionInfo;
    let bad = |e: RedisError| format!("invalid config key `cluster.redis_url`: {e}");
    let mut info = cluster
        .redis_url
        .as_str()
        .into_connection_info()
        .map_err(bad)?;
    let mut settings = info.redis_settings().clone();
    if let Some(path) = &cluster.password_file {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read `cluster.password_file` {}: {e}",
                path.display()
            )
        })?);
        let password = text.trim_end();
        if password.is_empty() {
            return Err(format!(
                "`cluster.password_file` {} is empty",
                path.display()
            ));
        }
        settings = settings.set_password(password);
    }
    if let Some(user) = &cluster.username {
        settings = settings.set_username(user);
    }
    info = info.set_redis_settings(settings);
    match &cluster.ca_file {
        Some(path) => {
            let root = std::fs::read(path)
                .map_err(|e| format!("cannot read `cluster.ca_file` {}: {e}", path.display()))?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            )
            .map_err(|e| format!("invalid config key `cluster.ca_file`: {e}"))
        }
        None => redis::Client::open(info).map_err(bad),
    }
}

/// Renew the registration every heartbeat (it doubles as the health probe); withdraw it on
/// shutdown.
async fn heartbeat(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(inner.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = inner.register().await;
            }
            _ = stop.changed() => break,
        }
    }
}

static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
if not redis.call('SET', KEYS[2], t[1], 'NX', 'EX', ARGV[3]) then
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
",
    )
});

static TICKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1])
local e = redis.call('GET', KEYS[1])
if not e then
  redis.call('SET', KEYS[1], t[1], 'EX', ARGV[3])
  e = t[1]
end
if tonumber(ARGV[1]) < tonumber(e) then return 'before_start' end
local ttl = (tonumber(ARGV[2]) - now) * 1000
if ttl < 1000 then ttl = 1000 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ttl) then return 'fresh' end
return 'replayed'
",
    )
});

static THROTTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'n', 't')
local n = tonumber(b[1])
local last = tonumber(b[2])
if n == nil or last == nil then
  n = burst
  last = now
end
if now > last then n = math.min(burst, n + (now - last) * rate) end
local ok = 0
if n >= 1 then
  n = n - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'n', tostring(n), 't', tostring(now))
local ttl = 86400000
if rate > 0 then ttl = math.ceil((burst - n) / rate) + 1000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return ok
",
    )
});

static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 2 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 1 end
local expires = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
redis.call('ZADD', KEYS[2], expires, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
",
    )
});

/// Write a proof's records (current token, and its twin) as held by `ARGV[1]` ("" = closed),
/// unless another instance holds them or they were taken.
static PROOF_WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i, k in ipairs(KEYS) do
  local h = redis.call('HGET', k, 'h')
  if h == false or h == ARGV[2] then
    local b = 3 + (i - 1) * 4
    redis.call('HSET', k, 'h', ARGV[1], 's', ARGV[b + 1], 'o', ARGV[b + 2], 'u', ARGV[b + 3], 't', ARGV[b + 4])
    redis.call('PEXPIRE', k, ARGV[3])
  end
end
return 1
",
    )
});

/// Take a proof: refused unless origin and subject match and no live instance holds it; the
/// records (both keys) become tombstones so a late write cannot bring them back.
static PROOF_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'h', 's', 'o', 'u', 't')
if r[1] == false or r[1] == '!' or r[2] == false then return {'unknown'} end
if r[3] ~= ARGV[1] or r[4] ~= ARGV[2] then return {'mismatch'} end
if r[1] ~= '' then
  if r[1] == ARGV[4] then return {'held_here'} end
  if redis.call('EXISTS', ARGV[3] .. r[1]) == 1 then return {'held_elsewhere'} end
end
local function bury(k)
  redis.call('DEL', k)
  redis.call('HSET', k, 'h', '!')
  redis.call('PEXPIRE', k, ARGV[5])
end
bury(KEYS[1])
if r[5] and r[5] ~= '' then bury(r[5]) end
return {'granted', r[2]}
",
    )
});

impl Inner {
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn proof_key(&self, token: &str) -> String {
        self.key("proof", &self.keys.token(token))
    }

    fn resume_key(&self, token: &str) -> String {
        self.key("resume", &self.keys.token(token))
    }

    /// One operation, bounded by the op timeout; its outcome updates the health.
    async fn run<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(Ok(v)) => {
                self.health.ok();
                Ok(v)
            }
            Ok(Err(e)) => {
                let why = describe(&e);
                self.health.failed(op, &why);
                Err(Unavailable(format!("{op}: {why}")))
            }
            Err(_) => {
                let why = format!("no answer within {} ms", self.op_timeout.as_millis());
                self.health.failed(op, &why);
                Err(Unavailable(format!("{op}: {why}")))
            }
        }
    }

    async fn register(&self) -> Result<(), Unavailable> {
        let mut c = self.conn.clone();
        let mut inv = REGISTER.prepare_invoke();
        inv.key(self.key("inst", &self.me))
            .key(format!("{}epoch", self.prefix))
            .arg(&self.public_url)
            .arg(ms(self.registration_ttl))
            .arg(EPOCH_TTL_SECS);
        self.run("register", inv.invoke_async::<i64>(&mut c))
            .await
            .map(drop)
    }

    /// The proof records of `keys` for `facts`, held by `holder` ("" = closed), for `ttl`.
    fn write_proof(
        self: &Arc<Self>,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
        holder: &str,
        ttl: Duration,
        op: &'static str,
    ) -> BoxFut<'static, ()> {
        let current = self.proof_key(keys.current.expose());
        let previous = keys.previous.map(|t| self.proof_key(t.expose()));
        let subject = self.keys.subject(facts.subject);
        let mut inv = PROOF_WRITE.prepare_invoke();
        inv.key(&current);
        if let Some(p) = &previous {
            inv.key(p);
        }
        inv.arg(holder).arg(&self.me).arg(ms(ttl));
        // Per key: sealed session (under that key's own token), origin, subject, twin key.
        inv.arg(Keyring::seal_session(keys.current.expose(), facts.session))
            .arg(facts.origin)
            .arg(&subject)
            .arg(previous.as_deref().unwrap_or(""));
        if let Some(prev) = keys.previous {
            inv.arg(Keyring::seal_session(prev.expose(), facts.session))
                .arg(facts.origin)
                .arg(&subject)
                .arg(&current);
        }
        let inner = Arc::clone(self);
        Box::pin(async move {
            let mut c = inner.conn.clone();
            let _ = inner.run(op, inv.invoke_async::<i64>(&mut c)).await;
        })
    }

    fn set_resume(
        self: &Arc<Self>,
        keys: TokenKeys<'_>,
        window: Option<Duration>,
    ) -> BoxFut<'static, ()> {
        let mut names = vec![self.resume_key(keys.current.expose())];
        if let Some(p) = keys.previous {
            names.push(self.resume_key(p.expose()));
        }
        let inner = Arc::clone(self);
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for k in &names {
                match window {
                    Some(w) => pipe.cmd("SET").arg(k).arg(&inner.me).arg("PX").arg(ms(w)),
                    None => pipe.cmd("DEL").arg(k),
                };
                pipe.ignore();
            }
            let mut c = inner.conn.clone();
            let op = if window.is_some() { "park" } else { "unpark" };
            let _ = inner.run(op, pipe.exec_async(&mut c)).await;
        })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Gives a lease's slot back when dropped (and the lease expires in Redis anyway).
struct LeaseRelease {
    inner: Arc<Inner>,
    keys: [String; 2],
    member: String,
}

impl Drop for LeaseRelease {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let keys = std::mem::take(&mut self.keys);
        let member = std::mem::take(&mut self.member);
        rt.spawn(async move {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("ZREM").arg(k).arg(&member).ignore();
            }
            let mut c = inner.conn.clone();
            let _ = inner.run("lease_release", pipe.exec_async(&mut c)).await;
        });
    }
}

impl SharedState for RedisState {
    fn public_url(&self) -> Option<&str> {
        Some(&self.inner.public_url)
    }

    fn available(&self) -> bool {
        self.inner.health.up.load(Ordering::SeqCst)
    }

    fn holder_grace(&self) -> Duration {
        self.inner.registration_ttl + self.inner.heartbeat / 2
    }

    fn consume_ticket<'a>(
        &'a self,
        id: &'a str,
        issued_at: u64,
        expires_at: u64,
        _now: u64,
    ) -> BoxFut<'a, Result<(), TicketUseError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut inv = TICKET.prepare_invoke();
            inv.key(format!("{}epoch", inner.prefix))
                .key(inner.key("ticket", &inner.keys.id(Domain::Ticket, id.as_bytes())))
                .arg(issued_at)
                .arg(expires_at)
                .arg(EPOCH_TTL_SECS);
            let mut c = inner.conn.clone();
            let answer: String = inner.run("ticket", inv.invoke_async(&mut c)).await?;
            match answer.as_str() {
                "fresh" => Ok(()),
                "replayed" => Err(TicketUseError::Replayed),
                "before_start" => Err(TicketUseError::BeforeStart),
                _ => Err(Unavailable("ticket: unexpected answer".into()).into()),
            }
        })
    }

    fn login_attempt(
        &self,
        key: ThrottleKey,
        _now: Instant,
    ) -> BoxFut<'_, Result<bool, Unavailable>> {
        Box::pin(async move {
            let inner = &self.inner;
            let r = &inner.rates;
            let (name, burst, per_minute) = match key {
                ThrottleKey::Ip(ip) => (
                    inner.key(
                        "thr:ip",
                        &inner
                            .keys
                            .id(Domain::Ip, client_key(ip).to_string().as_bytes()),
                    ),
                    r.burst_ip,
                    r.per_minute_ip,
                ),
                ThrottleKey::User(u) => (
                    inner.key("thr:user", &inner.keys.id(Domain::User, &u)),
                    r.burst_user,
                    r.per_minute_user,
                ),
            };
            if burst == 0 {
                // A burst of 0 disables the throttle (as in one process).
                return Ok(true);
            }
            let mut inv = THROTTLE.prepare_invoke();
            inv.key(name).arg(burst).arg(per_minute);
            let mut c = inner.conn.clone();
            let ok: i64 = inner.run("throttle", inv.invoke_async(&mut c)).await?;
            Ok(ok == 1)
        })
    }

    fn hold_restore_proof(
        &self,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
    ) -> BoxFut<'static, ()> {
        let inner = &self.inner;
        inner.write_proof(keys, facts, &inner.me, inner.held_ttl, "proof_hold")
    }

    fn keep_restore_proof(
        &self,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
        ttl: Duration,
        _max: usize,
    ) -> BoxFut<'static, ()> {
        if ttl.is_zero() {
            return Box::pin(std::future::ready(()));
        }
        self.inner.write_proof(keys, facts, "", ttl, "proof_keep")
    }

    fn forget_token(&self, token: &Token) -> BoxFut<'static, ()> {
        let inner = Arc::clone(&self.inner);
        let names = [
            inner.proof_key(token.expose()),
            inner.resume_key(token.expose()),
        ];
        Box::pin(async move {
            let mut c = inner.conn.clone();
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&names[0]).arg(&names[1]);
            let _ = inner.run("forget", cmd.exec_async(&mut c)).await;
        })
    }

    fn take_restore_proof<'a>(
        &'a self,
        token: &'a str,
        origin: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFut<'a, Result<Uuid, ProofRefusal>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut inv = PROOF_TAKE.prepare_invoke();
            inv.key(inner.proof_key(token))
                .arg(origin)
                .arg(inner.keys.subject(subject))
                .arg(inner.key("inst", ""))
                .arg(&inner.me)
                .arg(ms(Duration::from_millis(inner.resume.restore_ttl_ms)));
            let mut c = inner.conn.clone();
            let answer: Vec<String> = inner
                .run("proof_take", inv.invoke_async(&mut c))
                .await
                .map_err(ProofRefusal::Unavailable)?;
            match answer.first().map(String::as_str) {
                Some("granted") => answer
                    .get(1)
                    .and_then(|sealed| Keyring::open_session(token, sealed))
                    .ok_or_else(|| {
                        ProofRefusal::Unavailable(Unavailable(
                            "proof_take: malformed record".into(),
                        ))
                    }),
                Some("unknown") => Err(ProofRefusal::Refused(RestoreRefusal::Unknown)),
                Some("mismatch") => Err(ProofRefusal::Refused(RestoreRefusal::Mismatch)),
                Some("held_here") => Err(ProofRefusal::HeldHere),
                Some("held_elsewhere") => Err(ProofRefusal::HeldElsewhere),
                _ => Err(ProofRefusal::Unavailable(Unavailable(
                    "proof_take: unexpected answer".into(),
                ))),
            }
        })
    }

    fn parked(&self, keys: TokenKeys<'_>, window: Duration) -> BoxFut<'static, ()> {
        self.inner.set_resume(keys, Some(window))
    }

    fn unparked(&self, keys: TokenKeys<'_>) -> BoxFut<'static, ()> {
        self.inner.set_resume(keys, None)
    }

    fn holder(&self, token: &str) -> BoxFut<'_, Result<Option<String>, Unavailable>> {
        let name = self.inner.resume_key(token);
        Box::pin(async move {
            let inner = &self.inner;
            let mut c = inner.conn.clone();
            let id: Option<String> = inner
                .run("locate", redis::cmd("GET").arg(&name).query_async(&mut c))
                .await?;
            let Some(id) = id else { return Ok(None) };
            if id == inner.me {
                // Parked here by the record, but not in this process any more (claimed or
                // closed a moment ago).
                return Ok(None);
            }
            // Only a configured instance's URL is ever handed to a browser.
            let Some(url) = inner.peers.get(&id) else {
                tracing::warn!(
                    instance = %id,
                    "a parked link is recorded for an instance not in cluster.peers; not redirected"
                );
                return Ok(None);
            };
            let alive: bool = inner
                .run(
                    "locate",
                    redis::cmd("EXISTS")
                        .arg(inner.key("inst", &id))
                        .query_async(&mut c),
                )
                .await?;
            Ok(alive.then(|| url.clone()))
        })
    }

    fn unauthenticated_lease(&self, client: IpAddr) -> BoxFut<'_, Result<Lease, LeaseError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let r = &inner.rates;
            let keys = [
                inner.key("ua", "all"),
                inner.key(
                    "ua:ip",
                    &inner
                        .keys
                        .id(Domain::Ip, client_key(client).to_string().as_bytes()),
                ),
            ];
            let member = crate::util::random_uuid().simple().to_string();
            let mut inv = LEASE.prepare_invoke();
            inv.key(&keys[0])
                .key(&keys[1])
                .arg(&member)
                .arg(ms(r.lease))
                .arg(r.unauth_all)
                .arg(r.unauth_ip);
            let mut c = inner.conn.clone();
            let answer: i64 = inner
                .run("lease", inv.invoke_async(&mut c))
                .await
                .map_err(LeaseError::Unavailable)?;
            match answer {
                0 => Ok(Lease::holding(LeaseRelease {
                    inner: Arc::clone(inner),
                    keys,
                    member,
                })),
                2 => Err(LeaseError::Full("unauthenticated_upstreams_per_ip")),
                _ => Err(LeaseError::Full("unauthenticated_upstreams")),
            }
        })
    }

    fn shutdown(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let _ = self.stop.send(true);
            let inner = &self.inner;
            let mut c = inner.conn.clone();
            let _ = inner
                .run(
                    "deregister",
                    redis::cmd("DEL")
                        .arg(inner.key("inst", &inner.me))
                        .exec_async(&mut c),
                )
                .await;
        })
    }
}

impl Drop for RedisState {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
