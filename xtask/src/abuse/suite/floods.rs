//! `cargo xtask abuse`: Floods.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flood {
    Slowloris,
    Preauth,
    OpenNoLogin,
}

/// Counts of one flood's attempts.
#[derive(Debug, Default)]
struct FloodCount {
    attempts: AtomicU64,
    held: AtomicU64,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl FloodCount {
    fn refuse(&self, why: String) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(why).or_default() += 1;
        }
    }
}

/// One flooding connection slot: connect, hold as long as the proxy lets it, repeat.
async fn flood_slot(
    kind: Flood,
    from: IpAddr,
    proxy: SocketAddr,
    origin: String,
    stop: Arc<AtomicBool>,
    count: Arc<FloodCount>,
) {
    while !stop.load(Ordering::SeqCst) {
        count.attempts.fetch_add(1, Ordering::SeqCst);
        match kind {
            Flood::Slowloris => {
                let Ok(mut s) = client::tcp_from(from, proxy).await else {
                    count.refuse("connect failed".into());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let head = format!("GET /ws HTTP/1.1\r\nHost: {proxy}\r\nOrigin: {origin}\r\n");
                if s.write_all(head.as_bytes()).await.is_err() {
                    count.refuse("closed at once".into());
                    continue;
                }
                count.held.fetch_add(1, Ordering::SeqCst);
                // One header byte a second, never the end of the head.
                let mut held_for = 0;
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    held_for += 1;
                    if s.write_all(b"X").await.is_err() {
                        break;
                    }
                }
                count.held.fetch_sub(1, Ordering::SeqCst);
                if held_for < 2 {
                    count.refuse("closed within 2 s".into());
                }
            }
            Flood::Preauth | Flood::OpenNoLogin => {
                let mut ws = match client::upgrade(from, proxy, Some(&origin)).await {
                    Upgrade::Ok(ws) => ws,
                    Upgrade::Status(s) => {
                        count.refuse(format!("http_{s}"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Upgrade::Failed(_) => {
                        count.refuse("no answer".into());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if kind == Flood::OpenNoLogin {
                    let first = client::open_json(client::open_request("sim", 0));
                    if ws.send(Message::Text(first.into())).await.is_err() {
                        count.refuse("closed".into());
                        continue;
                    }
                    match client::next_control(&mut ws, client::STEP).await {
                        Some(prl_protocol::relay::ProxyMessage::Opened(_)) => {}
                        Some(prl_protocol::relay::ProxyMessage::Error(e)) => {
                            count.refuse(e.kind.as_str().to_string());
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        _ => {
                            count.refuse("no answer".into());
                            continue;
                        }
                    }
                }
                count.held.fetch_add(1, Ordering::SeqCst);
                // Silent until the proxy ends it (or the flood stops).
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match tokio::time::timeout(
                        Duration::from_millis(250),
                        futures_util::StreamExt::next(&mut *ws),
                    )
                    .await
                    {
                        Err(_) => continue,
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                        Ok(Some(Ok(Message::Text(t)))) => {
                            if let Ok(prl_protocol::relay::ProxyMessage::Error(e)) =
                                prl_protocol::relay::ProxyMessage::from_json(&t)
                            {
                                count.refuse(format!("ended: {}", e.kind.as_str()));
                            }
                            break;
                        }
                        _ => break,
                    }
                }
                count.held.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

struct FloodSpec {
    name: &'static str,
    kind: Flood,
    addresses: usize,
    per_address: usize,
}

pub async fn floods(ctx: &mut Ctx) -> Result<()> {
    let full = ctx.plan.full;
    let secs = if full { 25 } else { 4 };
    let specs = [
        FloodSpec {
            name: "slowloris upgrades",
            kind: Flood::Slowloris,
            // 64 addresses x 8 fill the pre-auth pool (512): the documented bound.
            addresses: if full { 63 } else { 40 },
            per_address: 9,
        },
        FloodSpec {
            name: "pre-auth flood, 1 address",
            kind: Flood::Preauth,
            addresses: 1,
            per_address: 64,
        },
        FloodSpec {
            name: "pre-auth flood, 40 addresses",
            kind: Flood::Preauth,
            addresses: 40,
            per_address: 9,
        },
        FloodSpec {
            // 80 x 8 is more than the pre-auth pool (512): its per-address share alone
            // cannot keep it from filling.
            name: "pre-auth flood, 80 addresses",
            kind: Flood::Preauth,
            addresses: 80,
            per_address: 9,
        },
        FloodSpec {
            name: "open without login, 1 address",
            kind: Flood::OpenNoLogin,
            addresses: 1,
            per_address: 32,
        },
        FloodSpec {
            name: "open without login, 40 addresses",
            kind: Flood::OpenNoLogin,
            addresses: 40,
            per_address: 9,
        },
    ];
    let ticks = procs::clock_ticks();
    let mut drains = String::new();
    let mut table = String::from(
        "| flood | connections | held at peak | refused (why) | legit logins ok | p50 / p99 / max latency | proxy RSS peak | proxy CPU |\n|---|---|---|---|---|---|---|---|\n",
    );
    // Baseline: legitimate logins with nothing else going on.
    let mut base = Vec::new();
    for _ in 0..10 {
        if let Ok(d) = ctx.legit_login().await {
            base.push(d);
        }
    }
    let (b50, b99, bmax) = percentiles(&mut base);
    let (rss0, _) = procs::usage(ctx.proxy.pid()).unwrap_or((0, 0));
    let _ = writeln!(
        table,
        "| none (baseline) | 0 | 0 | - | {}/10 | {b50} / {b99} / {bmax} ms | {} MiB | - |",
        base.len(),
        rss0 / 1024
    );
    for (g, spec) in specs.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        let mut tasks = Vec::new();
        for a in 0..spec.addresses {
            let from = src(4 + g as u8, a);
            for _ in 0..spec.per_address {
                tasks.push(tokio::spawn(flood_slot(
                    spec.kind,
                    from,
                    ctx.proxy_addr,
                    ctx.own_origin.clone(),
                    stop.clone(),
                    count.clone(),
                )));
            }
        }
        let pid = ctx.proxy.pid();
        let (_, cpu0) = procs::usage(pid).unwrap_or((0, 0));
        let t0 = Instant::now();
        // Let the flood fill what it can, then log in legitimately throughout.
        let fill = Instant::now();
        let mut peak_held = 0;
        while fill.elapsed() < Duration::from_millis(if full { 3000 } else { 1500 }) {
            peak_held = peak_held.max(count.held.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut lat = Vec::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        let mut tries = 0;
        let mut peak_rss = 0;
        while t0.elapsed() < Duration::from_secs(secs) {
            tries += 1;
            match ctx.legit_login().await {
                Ok(d) => lat.push(d),
                Err(e) => *failures.entry(e).or_default() += 1,
            }
            peak_held = peak_held.max(count.held.load(Ordering::SeqCst));
            if let Some((rss, _)) = procs::usage(pid) {
                peak_rss = peak_rss.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let wall = t0.elapsed();
        let (_, cpu1) = procs::usage(pid).unwrap_or((0, 0));
        stop.store(true, Ordering::SeqCst);
        // A slot may be in the middle of an upgrade or an open: stop them all (their sockets
        // close with them).
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let cpu = (cpu1.saturating_sub(cpu0)) as f64 / ticks as f64 / wall.as_secs_f64() * 100.0;
        let ok = lat.len();
        let (p50, p99, max) = percentiles(&mut lat);
        let refused = count
            .refused
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let fails = failures
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            table,
            "| {} ({} × {}) | {} | {peak_held} | {} | {ok}/{tries}{} | {p50} / {p99} / {max} ms | {} MiB | {cpu:.0} % |",
            spec.name,
            spec.addresses,
            spec.per_address,
            count.attempts.load(Ordering::SeqCst),
            if refused.is_empty() { "-".into() } else { refused },
            if fails.is_empty() { String::new() } else { format!(" (failed: {fails})") },
            peak_rss / 1024,
        );
        ctx.report.figure(
            &format!("flood {}: legit logins ok", spec.name),
            format!("{ok}/{tries}, p99 {p99} ms"),
        );
        // An open whose upstream connect ran out of its budget while the flood's own opens
        // load the service's handshakes (anonymous DH, CPU-bound: up to
        // max_unauthenticated_upstreams at once) measures the service's capacity, not the
        // proxy's admission: noted. Any other failure, every refusal above all, fails.
        let slow = match spec.kind {
            Flood::OpenNoLogin => failures.get("open: timeout").copied().unwrap_or(0),
            _ => 0,
        };
        let failed = (tries - ok) as u64;
        if failed > slow {
            ctx.report.fail(format!(
                "flood {}: {failed} of {tries} legitimate logins failed: {fails}",
                spec.name
            ));
        } else if slow > 0 {
            ctx.report.note(format!(
                "flood {}: {slow} of {tries} legitimate opens ran out of their connect budget \
                 in the upstream handshake while the flood's opens loaded the service",
                spec.name
            ));
        }
        if !ctx.healthy().await {
            ctx.report.fail(format!(
                "flood {}: the proxy stopped answering /healthz",
                spec.name
            ));
        }
        // Let the proxy forget the flood's connections before the next one (bounded).
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(if full { 40 } else { 10 }) {
            let m = ctx.metrics().await;
            if metric(&m, "prl_proxy_sessions_active") == 0.0
                && metric(&m, "prl_proxy_connections") <= 2.0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let m = ctx.metrics().await;
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let _ = writeln!(
            drains,
            "- {}: {} connections left {} after the flood's clients closed (the suite's own open files: {fds})",
            spec.name,
            metric(&m, "prl_proxy_connections"),
            crate::fmt_duration(t.elapsed()),
        );
        println!(
            "abuse: flood {}: drained in {} (connections {}, sessions {}, detached {}; our open fds {fds})",
            spec.name,
            crate::fmt_duration(t.elapsed()),
            metric(&m, "prl_proxy_connections"),
            metric(&m, "prl_proxy_sessions_active"),
            metric(&m, "prl_proxy_sessions_detached")
        );
    }
    let mut body = format!(
        "Each flood runs {secs} s from its own loopback addresses (127.x.y.z) against the \
         example configuration's limits; after {} s to fill, a legitimate client (a fresh address \
         and user each time: the per-address and per-user login throttles do not apply to it) \
         upgrades, opens and logs in every 150 ms, timed from TCP connect to the login reply. \
         \"held at peak\": flood connections the proxy held at once. RSS and CPU of the proxy \
         process from /proc.\n\n",
        if full { "3" } else { "1.5" }
    );
    body.push_str(&table);
    let _ = write!(
        body,
        "\nThe proxy's `prl_proxy_connections` gauge after each flood (waited for until at most \
         one connection besides the suite's metrics request was left, bounded):\n\n{drains}"
    );
    ctx.report.section("Floods", body);
    Ok(())
}

fn percentiles(v: &mut [Duration]) -> (u128, u128, u128) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1].as_millis();
    (at(0.5), at(0.99), v[v.len() - 1].as_millis())
}
