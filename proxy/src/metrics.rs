//! Prometheus metrics (text exposition via `prometheus-client`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Label1 = [(&'static str, &'static str); 1];

/// Every metric the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Relay sessions with a live browser WebSocket.
    pub sessions_active: Gauge,
    /// Sessions whose browser is gone but whose upstream is kept for resume.
    pub sessions_detached: Gauge,
    /// Upstream connections opened.
    pub sessions_opened: Counter,
    /// Successful resumes.
    pub sessions_resumed: Counter,
    /// Logins by outcome (`success`, `failure`, `throttled`, `refused`).
    pub logins: Family<Label1, Counter>,
    /// Upstream connect time (DNS + TCP + handshake + TLS), seconds.
    pub connect_seconds: Histogram,
    /// Login round trip (request forwarded to reply seen), seconds.
    pub login_seconds: Histogram,
    /// Bytes relayed, by direction (`to_service`, `to_browser`).
    pub bytes: Family<Label1, Counter>,
    /// Refusals by reason.
    pub rejections: Family<Label1, Counter>,
    /// Refused tickets by reason (`crate::ticket::TicketError::kind`).
    pub ticket_rejections: Family<Label1, Counter>,
    /// How the client address of requests was decided (`crate::forwarded::Outcome::label`).
    pub forwarded: Family<Label1, Counter>,
    /// Bytes currently queued inside the proxy (both directions, all sessions).
    pub queued_bytes: Gauge,
    /// Open TCP connections to the proxy.
    pub connections: Gauge,
    /// 1 while the shared state answers (always for a single proxy), 0 while a cluster's
    /// Redis does not (the relay then fails closed).
    pub shared_state_up: Gauge,
    /// Failed or late operations on the shared state, by operation.
    pub shared_state_errors: Family<Label1, Counter>,
    /// Resumes answered `resume_elsewhere` (another instance holds the link).
    pub resume_redirects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("prl_proxy");
        let sessions_active = Gauge::default();
        let sessions_detached = Gauge::default();
        let sessions_opened = Counter::default();
        let sessions_resumed = Counter::default();
        let logins = Family::<Label1, Counter>::default();
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ];
        let connect_seconds = Histogram::new(buckets);
        let login_seconds = Histogram::new(buckets);
        let bytes = Family::<Label1, Counter>::default();
        let rejections = Family::<Label1, Counter>::default();
        let ticket_rejections = Family::<Label1, Counter>::default();
        let forwarded = Family::<Label1, Counter>::default();
        let queued_bytes = Gauge::default();
        let connections = Gauge::default();
        let shared_state_up = Gauge::default();
        shared_state_up.set(1);
        let shared_state_errors = Family::<Label1, Counter>::default();
        let resume_redirects = Counter::default();
        registry.register(
            "sessions_active",
            "Relay sessions with a browser attached",
            sessions_active.clone(),
        );
        registry.register(
            "sessions_detached",
            "Sessions kept for resume without a browser",
            sessions_detached.clone(),
        );
        registry.register(
            "sessions_opened",
            "Upstream connections opened",
            sessions_opened.clone(),
        );
        registry.register(
            "sessions_resumed",
            "Sessions resumed after a browser reconnect",
            sessions_resumed.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register(
            "connect_seconds",
            "Upstream connect time (DNS, TCP, handshake, TLS)",
            connect_seconds.clone(),
        );
        registry.register(
            "login_seconds",
            "Login request to reply",
            login_seconds.clone(),
        );
        registry.register("bytes", "Bytes relayed by direction", bytes.clone());
        registry.register(
            "rejections",
            "Refused connections and requests by reason",
            rejections.clone(),
        );
        registry.register(
            "ticket_rejections",
            "Refused tickets by reason",
            ticket_rejections.clone(),
        );
        registry.register(
            "forwarded",
            "Requests by how their client address was decided (trusted proxies)",
            forwarded.clone(),
        );
        registry.register(
            "queued_bytes",
            "Bytes queued inside the proxy",
            queued_bytes.clone(),
        );
        registry.register(
            "connections",
            "Open client TCP connections",
            connections.clone(),
        );
        registry.register(
            "shared_state_up",
            "Whether the shared state (a cluster's Redis) answers",
            shared_state_up.clone(),
        );
        registry.register(
            "shared_state_errors",
            "Failed or late shared-state operations by operation",
            shared_state_errors.clone(),
        );
        registry.register(
            "resume_redirects",
            "Resumes sent to the instance that holds the connection",
            resume_redirects.clone(),
        );
        Metrics {
            registry,
            sessions_active,
            sessions_detached,
            sessions_opened,
            sessions_resumed,
            logins,
            connect_seconds,
            login_seconds,
            bytes,
            rejections,
            ticket_rejections,
            forwarded,
            queued_bytes,
            connections,
            shared_state_up,
            shared_state_errors,
            resume_redirects,
        }
    }

    /// Count a refusal.
    pub fn reject(&self, reason: &'static str) {
        self.rejections.get_or_create(&[("reason", reason)]).inc();
    }

    /// Count a refused ticket (`reason`: a `TicketError::kind`).
    pub fn ticket_refused(&self, reason: &'static str) {
        self.ticket_rejections
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Count how a request's client address was decided.
    pub fn forwarded(&self, outcome: &'static str) {
        self.forwarded.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// Count a login outcome.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// Count relayed bytes.
    pub fn relayed(&self, direction: &'static str, n: usize) {
        self.bytes
            .get_or_create(&[("direction", direction)])
            .inc_by(n as u64);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.reject("origin_denied");
        m.ticket_refused("expired");
        m.login("success");
        m.relayed("to_browser", 10);
        m.connect_seconds.observe(0.2);
        let text = m.render();
        for needle in [
            "prl_proxy_sessions_active",
            "prl_proxy_rejections_total{reason=\"origin_denied\"} 1",
            "prl_proxy_logins_total{outcome=\"success\"} 1",
            "prl_proxy_ticket_rejections_total{reason=\"expired\"} 1",
            "prl_proxy_bytes_total{direction=\"to_browser\"} 10",
            "prl_proxy_connect_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }
}
