//! Test helpers: an in-process proxy on an ephemeral loopback port, raw HTTP, WebSockets.
#![allow(dead_code)]

mod net;
pub use net::*;

use prl_proxy::{Config, Proxy, ProxyHandle};

/// Start a proxy from TOML text (listen forced to 127.0.0.1:0).
pub async fn start(toml: &str) -> ProxyHandle {
    let mut config = Config::from_toml_str(toml).expect("test config");
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let proxy = Proxy::bind(config, None).await.expect("bind");
    let handle = proxy.handle();
    tokio::spawn(proxy.run());
    handle
}

/// The origin a page served by this proxy has.
pub fn own_origin(h: &ProxyHandle) -> String {
    let scheme = if h.url().starts_with("wss") {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", h.local_addr())
}

/// Wait until the proxy's gauge or counter `series` reads `value`.
pub async fn metric_becomes(h: &ProxyHandle, series: &str, value: f64) {
    wait_until(&format!("{series} = {value}"), || {
        metric(&h.metrics_text(), series) == value
    })
    .await
}
