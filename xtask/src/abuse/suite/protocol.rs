//! `cargo xtask abuse`: Protocol abuse after open.

use super::*;

pub async fn protocol_abuse(ctx: &mut Ctx) -> Result<()> {
    let mut rows = String::new();
    let mut uncounted = Vec::new();
    let mut n = 0usize;
    let big = vec![0x41u8; (1 << 20) + 1];
    // First messages (before open).
    let firsts: Vec<(&str, Vec<u8>, &str)> = vec![
        ("first message not JSON", client::frame(true, 1, b"hello", None), "protocol_violation"),
        ("first message 16 KiB of JSON", client::frame(true, 1, &vec![b' '; 16 << 10], None), "limit_reached"),
        ("first message binary", client::frame(true, 2, &[0u8; 90], None), "protocol_violation"),
        ("first frame declares 2^40 bytes", client::frame(true, 1, b"{", Some(1 << 40)), "limit_reached"),
        ("first message fragmented past 8 KiB", [client::frame(false, 1, &[b' '; 6000], None), client::frame(true, 0, &[b' '; 6000], None)].concat(), "limit_reached"),
        ("continuation without a start", client::frame(true, 0, b"{}", None), "protocol_violation"),
        ("unknown message type", client::frame(true, 1, br#"{"type":"attach","version":1}"#, None), "protocol_violation"),
        ("wrong version", client::frame(true, 1, br#"{"type":"open","version":99,"target":{"host":"sim","port":0},"securityLevel":"low","timeoutMs":3000,"mode":"remote"}"#, None), "protocol_violation"),
        ("reserved opcode 3", client::frame(true, 3, b"x", None), "protocol_violation"),
        ("unmasked frame", vec![0x81, 0x02, b'{', b'}'], "protocol_violation"),
    ];
    for (what, bytes, expect) in firsts {
        n += 1;
        let before = refusals(&ctx.metrics().await);
        let got = match client::upgrade(src(20, n), ctx.proxy_addr, Some(&ctx.own_origin)).await {
            Upgrade::Ok(mut ws) => {
                let _ = ws.get_mut().write_all(&bytes).await;
                client::closing_error(&mut ws, Duration::from_secs(8)).await
            }
            other => format!("{other:?}"),
        };
        let after = wait_counted(ctx, &before).await;
        let counted = moved(&before, &after);
        if counted == "none" {
            uncounted.push(what);
        }
        let _ = writeln!(rows, "| {what} | {got} | {counted} |");
        if got != expect {
            ctx.report.note(format!(
                "protocol abuse: {what}: expected {expect}, got {got}"
            ));
        }
    }
    // After open: packages.
    let cases: Vec<&str> = vec![
        "binary message of 1 MiB + 1",
        "frame declaring 2^62 bytes",
        "fragmented package (valid, 3 frames)",
        "continuation without a start",
        "package with a bad header CRC",
        "package declaring a 1 GiB buffer",
        "package declaring 100000 buffers",
        "package from a foreign senderUuid",
        "login with malformed XML",
        "login with a 2 KiB user name",
        "second open on the same socket",
        "text that is not JSON",
        "package shorter than a header",
    ];
    for what in cases {
        n += 1;
        let Some((mut ws, conn)) = opened(ctx, 20, n).await else {
            ctx.report
                .fail(format!("protocol abuse: could not open for {what}"));
            continue;
        };
        let before = refusals(&ctx.metrics().await);
        let ping = |sender: Uuid| {
            simple_command(cmd::USER_PING, Uuid::new_v4(), sender, &mut Uuid::new_v4)
        };
        let raw: Vec<u8> = match what {
            "binary message of 1 MiB + 1" => client::frame(true, 2, &big, None),
            "frame declaring 2^62 bytes" => client::frame(true, 2, &[0u8; 16], Some(1 << 62)),
            "fragmented package (valid, 3 frames)" => {
                let bytes = ping(conn).encode();
                let (a, rest) = bytes.split_at(30);
                let (b, c) = rest.split_at(30);
                [
                    client::frame(false, 2, a, None),
                    client::frame(false, 0, b, None),
                    client::frame(true, 0, c, None),
                ]
                .concat()
            }
            "continuation without a start" => client::frame(true, 0, &ping(conn).encode(), None),
            "package with a bad header CRC" => {
                let mut b = ping(conn).encode();
                b[80] ^= 0xFF;
                client::frame(true, 2, &b, None)
            }
            "package declaring a 1 GiB buffer" => {
                let p = prl_protocol::package::Package::request(
                    cmd::USER_PING,
                    Uuid::new_v4(),
                    conn,
                    vec![prl_protocol::package::text_buffer("x")],
                );
                let mut b = p.encode();
                b[86..90].copy_from_slice(&(1u32 << 30).to_le_bytes());
                client::frame(true, 2, &b, None)
            }
            "package declaring 100000 buffers" => {
                let mut b = ping(conn).encode();
                // buffersNumber is a header field; patch it and recompute nothing: the CRC
                // check or the count check must refuse it.
                b[76..80].copy_from_slice(&100_000u32.to_le_bytes());
                client::frame(true, 2, &b, None)
            }
            "package from a foreign senderUuid" => {
                client::frame(true, 2, &ping(Uuid::new_v4()).encode(), None)
            }
            "login with malformed XML" => {
                let p = prl_protocol::package::Package::request(
                    cmd::USER_LOGIN,
                    Uuid::new_v4(),
                    conn,
                    vec![prl_protocol::package::text_buffer(
                        "<ParallelsEvent><unclosed",
                    )],
                );
                client::frame(true, 2, &p.encode(), None)
            }
            "login with a 2 KiB user name" => {
                let (_, p) = client::login_package(conn, &"x".repeat(2048), "pw", "");
                client::frame(true, 2, &p.encode(), None)
            }
            "second open on the same socket" => client::frame(
                true,
                1,
                client::open_json(client::open_request("sim", 0)).as_bytes(),
                None,
            ),
            "text that is not JSON" => client::frame(true, 1, b"not json", None),
            _ => client::frame(true, 2, &[1, 2, 3], None),
        };
        let _ = ws.get_mut().write_all(&raw).await;
        let got = if what.starts_with("fragmented") {
            match client::reply_to(&mut ws, Uuid::nil(), Duration::from_secs(3)).await {
                Outcome::Refused(k) => k,
                _ => {
                    // Any reply proves it went through; a ping before login gets 0x80000059.
                    "accepted (relayed)".into()
                }
            }
        } else {
            client::closing_error(&mut ws, Duration::from_secs(8)).await
        };
        let after = wait_counted(ctx, &before).await;
        let counted = moved(&before, &after);
        let refused = !got.starts_with("accepted") && got != "still_open";
        if refused && counted == "none" {
            uncounted.push(what);
        }
        let _ = writeln!(rows, "| after open: {what} | {got} | {counted} |");
    }
    // Brute force: one address, one user, wrong passwords.
    let before_m = ctx.metrics().await;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    if let Some((mut ws, conn)) = opened(ctx, 21, 0).await {
        for _ in 0..40 {
            let (job, p) = client::login_package(conn, "brute-one", "wrong-password", "");
            let o = client::request(&mut ws, &p, job, client::STEP).await;
            let label = o.label();
            *outcomes.entry(label.clone()).or_default() += 1;
            if !matches!(o, Outcome::Reply(_)) {
                break;
            }
        }
    }
    // Brute force of one user from many addresses.
    let mut spread: BTreeMap<String, u64> = BTreeMap::new();
    for a in 0..30 {
        if let Some((mut ws, conn)) = opened(ctx, 22, a).await {
            let (job, p) = client::login_package(conn, "brute-many", "guess", "");
            *spread
                .entry(
                    client::request(&mut ws, &p, job, client::STEP)
                        .await
                        .label(),
                )
                .or_default() += 1;
        }
    }
    let after_m = ctx.metrics().await;
    let logins =
        |m: &str, o: &str| metric(m, &format!("prl_proxy_logins_total{{outcome=\"{o}\"}}"));
    let _ = writeln!(
        rows,
        "| brute force: 40 wrong passwords, one address and (unknown) user, one connection | {} | logins failure +{}, throttled +{} |",
        fmt_counts(&outcomes),
        logins(&after_m, "failure") - logins(&before_m, "failure"),
        logins(&after_m, "throttled") - logins(&before_m, "throttled"),
    );
    let _ = writeln!(
        rows,
        "| brute force: one (unknown) user from 30 addresses | {} | throttled +{} |",
        fmt_counts(&spread),
        logins(&after_m, "throttled") - logins(&before_m, "throttled")
    );
    if outcomes.get("reply 0x80000330").copied().unwrap_or(0) > 12 {
        ctx.report
            .fail(format!("brute force was not throttled: {outcomes:?}"));
    }
    // Takeover attempts against a logged-in victim.
    takeovers(ctx, &mut rows, &mut uncounted).await;
    let mut body = String::from(
        "Each case on a fresh connection from its own address; \"counted\" is what moved in \
         `prl_proxy_rejections_total` (or the login counters) for it.\n\n| case | outcome | counted |\n|---|---|---|\n",
    );
    body.push_str(&rows);
    let _ = writeln!(
        body,
        "\nRefusals not counted: {}.",
        if uncounted.is_empty() {
            "none".to_string()
        } else {
            uncounted.join(", ")
        }
    );
    ctx.report
        .figure("uncounted refusals", uncounted.len().to_string());
    if !uncounted.is_empty() {
        ctx.report.fail(format!(
            "refusals not counted in rejections_total: {uncounted:?}"
        ));
    }
    ctx.report
        .section("Protocol abuse after open, brute force, takeover", body);
    Ok(())
}

/// Waits (up to 2 s) until some rejection counter moved; the snapshot.
async fn wait_counted(ctx: &Ctx, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let t = Instant::now();
    loop {
        let after = refusals(&ctx.metrics().await);
        if moved(before, &after) != "none" || t.elapsed() > Duration::from_secs(2) {
            return after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn takeovers(ctx: &mut Ctx, rows: &mut String, uncounted: &mut Vec<&'static str>) {
    let Some((mut victim, vconn)) = opened(ctx, 23, 0).await else {
        ctx.report
            .fail("takeover: the victim could not open".to_string());
        return;
    };
    let (user, password) = ctx.users[0].clone();
    let (job, p) = client::login_package(vconn, &user, &password, "");
    let session = match client::request(&mut victim, &p, job, client::STEP).await {
        Outcome::Reply(r) if r.code == ErrorCode::SUCCESS => uuid_string(&vconn),
        other => {
            ctx.report.fail(format!(
                "takeover: the victim's login failed: {}",
                other.label()
            ));
            return;
        }
    };
    let proxy = ctx.proxy_addr;
    let mut n = 0;
    let mut attempt =
        |what: &'static str, got: String, counted: String, ok: bool, ctx: &mut Ctx| {
            let _ = writeln!(rows, "| takeover: {what} | {got} | {counted} |");
            if !ok {
                ctx.report.fail(format!("takeover: {what}: {got}"));
            }
            if counted == "none" {
                uncounted.push(what);
            }
        };
    // 1. A login naming the victim's live session, no proof.
    for (what, restore) in [
        ("login naming the live session, no restore proof", None),
        (
            "login naming the live session, forged restore proof",
            Some(random_secret("forged")),
        ),
    ] {
        n += 1;
        let before = refusals(&ctx.metrics().await);
        let mut req = client::open_request("sim", 0);
        req.restore = restore.map(prl_protocol::relay::Secret);
        let got = match client::first_message(
            src(24, n),
            proxy,
            Some(&ctx.own_origin),
            &client::open_json(req),
        )
        .await
        {
            Answer::Opened { mut ws, conn, .. } => {
                let (job, p) = client::login_package(conn, "alice", "any", &session);
                client::request(&mut ws, &p, job, client::STEP)
                    .await
                    .label()
            }
            other => other.label(),
        };
        let after = wait_counted(ctx, &before).await;
        let ok = got == "restore_refused";
        attempt(what, got, moved(&before, &after), ok, ctx);
    }
    // 2. A resume with a guessed token.
    n += 1;
    let before = refusals(&ctx.metrics().await);
    let got = client::first_message(
        src(24, n),
        proxy,
        Some(&ctx.own_origin),
        &client::resume_json(&random_secret("guess"), 0),
    )
    .await
    .label();
    let after = wait_counted(ctx, &before).await;
    let ok = got == "resume_failed";
    attempt(
        "resume with a guessed token",
        got,
        moved(&before, &after),
        ok,
        ctx,
    );
    // 3. The victim's session UUID as sender on the attacker's own connection.
    n += 1;
    let before = refusals(&ctx.metrics().await);
    let got = match opened(ctx, 24, n).await {
        Some((mut ws, _)) => {
            let p = simple_command(cmd::USER_PING, Uuid::new_v4(), vconn, &mut Uuid::new_v4);
            let _ = ws.send(Message::Binary(p.encode().into())).await;
            client::closing_error(&mut ws, Duration::from_secs(8)).await
        }
        None => "could not open".into(),
    };
    let after = wait_counted(ctx, &before).await;
    let ok = got == "protocol_violation";
    attempt(
        "the victim's session uuid as sender",
        got,
        moved(&before, &after),
        ok,
        ctx,
    );
    // The victim is still logged in and served.
    let job = Uuid::new_v4();
    let p = simple_command(cmd::USER_PING, job, vconn, &mut Uuid::new_v4);
    let still = client::request(&mut victim, &p, job, client::STEP).await;
    let ok = matches!(&still, Outcome::Reply(r) if r.code == ErrorCode::UNIMPLEMENTED);
    let _ = writeln!(
        rows,
        "| the victim after the attempts | {} (ping answered) | - |",
        still.label()
    );
    if !ok {
        ctx.report.fail(format!(
            "takeover: the victim lost its session: {}",
            still.label()
        ));
    }
    let _ = (*victim).close(None).await;
}
