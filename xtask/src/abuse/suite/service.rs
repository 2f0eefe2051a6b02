//! `cargo xtask abuse`: Hostile service.

use super::*;

pub async fn hostile_service(ctx: &mut Ctx) -> Result<()> {
    let mut rows = String::new();
    for (i, fault) in FAULTS.iter().enumerate() {
        let port = FAULT_BASE_PORT + i as u16;
        let t0 = Instant::now();
        let (user, password) = ctx.user(i);
        let mut req = client::open_request("127.0.0.2", port);
        req.timeout_ms = 1500;
        let first = client::open_json(req);
        let got = match ctx.first_message(src(25, i), &first).await {
            Answer::Opened { mut ws, conn, .. } => {
                let (job, p) = client::login_package(conn, &user, &password, "");
                format!(
                    "opened; login: {}",
                    client::request(&mut ws, &p, job, client::STEP)
                        .await
                        .label()
                )
            }
            other => other.label(),
        };
        let took = t0.elapsed();
        let healthy = ctx.healthy().await;
        let _ = writeln!(
            rows,
            "| `--fault {fault}` | {got} | {} ms | {} |",
            took.as_millis(),
            if healthy { "yes" } else { "NO" }
        );
        if !healthy || !ctx.proxy.alive() {
            ctx.report
                .fail(format!("hostile service {fault}: the proxy is not healthy"));
        }
        if took > Duration::from_secs(12) || got.contains("no_answer") {
            ctx.report
                .fail(format!("hostile service {fault}: {got} after {took:?}"));
        }
    }
    let mut body = String::from(
        "The proxy against each prl-sim fault mode (open with a 1.5 s connect budget, then a \
         login), from a scripted client; the browser client's view is in \"Faults with \
         counting\".\n\n| simulator | outcome | time | proxy healthy after |\n|---|---|---|---|\n",
    );
    body.push_str(&rows);
    ctx.report.section("Hostile service", body);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Faults with counting (the proxy's side; the browser's runs in tests/e2e/abuse.mjs)

pub async fn faults(ctx: &mut Ctx) -> Result<String> {
    let mut rows = String::new();
    // Service killed mid-login.
    let specs: Vec<String> = ctx.users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    let log = ctx.work.join("sim-kill.log");
    let mut sim = procs::start_sim(
        &ctx.bin,
        addr(KILL_SIM),
        &specs,
        &["--auth-delay-ms", "3000"],
        &log,
    )?;
    let first = client::open_json(client::open_request("127.0.0.2", addr(KILL_SIM).port()));
    let (user, password) = ctx.user(7);
    let t0 = Instant::now();
    let got = match ctx.first_message(src(26, 0), &first).await {
        Answer::Opened { mut ws, conn, .. } => {
            let (job, p) = client::login_package(conn, &user, &password, "");
            let _ = ws.send(Message::Binary(p.encode().into())).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            sim.kill();
            client::reply_to(&mut ws, job, client::STEP).await.label()
        }
        other => format!("open: {}", other.label()),
    };
    let took = t0.elapsed();
    let healthy = ctx.healthy().await;
    let _ = writeln!(rows, "| service killed (SIGKILL) 0.5 s into a login | {got} after {} ms | proxy healthy: {healthy} |", took.as_millis());
    if got != "closed" || !healthy {
        ctx.report.fail(format!(
            "service killed mid-login: {got}, healthy {healthy}"
        ));
    }
    let mut sim = procs::start_sim(&ctx.bin, addr(KILL_SIM), &specs, &[], &log)?;
    let first = client::open_json(client::open_request("127.0.0.2", addr(KILL_SIM).port()));
    let again = match client::first_message(
        src(26, 1),
        ctx.proxy_addr,
        Some(&ctx.own_origin),
        &first,
    )
    .await
    {
        Answer::Opened { mut ws, conn, .. } => {
            ctx.remember_uuid(conn);
            let (job, p) = client::login_package(conn, &user, &password, "");
            client::request(&mut ws, &p, job, client::STEP)
                .await
                .label()
        }
        other => other.label(),
    };
    let _ = writeln!(rows, "| the service back: a new login | {again} | - |");
    if again != "reply 0x00000000" {
        ctx.report
            .fail(format!("after the service came back: {again}"));
    }
    sim.stop();

    // Proxy restarted mid-session.
    let (user, password) = ctx.user(8);
    let mut line = String::new();
    if let Some((mut ws, conn)) = opened(ctx, 26, 2).await {
        let (job, p) = client::login_package(conn, &user, &password, "");
        let _ = client::request(&mut ws, &p, job, client::STEP).await;
        drop(ws);
        let token_opened = ctx
            .secrets
            .lock()
            .ok()
            .and_then(|s| s.tokens.last().cloned())
            .unwrap_or_default();
        ctx.proxy.stop();
        let log = ctx.work.join("proxy.log");
        ctx.proxy = procs::start_proxy(&ctx.bin, &ctx.config, &log)?;
        let resume = client::first_message(
            src(26, 3),
            ctx.proxy_addr,
            Some(&ctx.own_origin),
            &client::resume_json(&token_opened, 0),
        )
        .await
        .label();
        let mut req = client::open_request("sim", 0);
        req.restore = Some(prl_protocol::relay::Secret(token_opened.clone()));
        let relogin = match ctx.first_message(src(26, 4), &client::open_json(req)).await {
            Answer::Opened {
                mut ws, conn: c2, ..
            } => {
                let (job, p) = client::login_package(c2, &user, &password, &uuid_string(&conn));
                client::request(&mut ws, &p, job, client::STEP)
                    .await
                    .label()
            }
            other => other.label(),
        };
        let fresh = ctx
            .legit_login()
            .await
            .map(|d| format!("ok in {} ms", d.as_millis()))
            .unwrap_or_else(|e| e);
        let _ = write!(line, "| proxy restarted (SIGTERM, started again) mid-session | resume: {resume}; login naming the old session with its proof: {relogin}; a new login: {fresh} | - |");
        if resume != "resume_failed" || relogin != "restore_refused" || !fresh.starts_with("ok") {
            ctx.report.fail(format!("proxy restart: {line}"));
        }
    }
    let _ = writeln!(rows, "{line}");
    Ok(rows)
}
