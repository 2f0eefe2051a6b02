//! `cargo xtask abuse`: Cross-site WebSocket hijacking.

use super::*;

pub async fn cswsh(ctx: &mut Ctx) -> Result<()> {
    let p = ctx.proxy_addr;
    let port = p.port();
    let own = ctx.own_origin.clone();
    let cases: Vec<(String, String)> = vec![
        ("foreign".into(), "Origin: http://evil.example\r\n".into()),
        (
            "foreign https".into(),
            "Origin: https://evil.example\r\n".into(),
        ),
        ("missing".into(), String::new()),
        ("null".into(), "Origin: null\r\n".into()),
        ("empty".into(), "Origin: \r\n".into()),
        (
            "look-alike: suffix".into(),
            format!("Origin: http://127.0.0.1:{port}.evil.example\r\n"),
        ),
        (
            "look-alike: userinfo".into(),
            format!("Origin: http://127.0.0.1:{port}@evil.example\r\n"),
        ),
        (
            "look-alike: trailing slash".into(),
            format!("Origin: {own}/\r\n"),
        ),
        ("look-alike: path".into(), format!("Origin: {own}/ws\r\n")),
        (
            "look-alike: https".into(),
            format!("Origin: https://127.0.0.1:{port}\r\n"),
        ),
        (
            "look-alike: no port".into(),
            "Origin: http://127.0.0.1\r\n".into(),
        ),
        (
            "look-alike: other port".into(),
            format!("Origin: http://127.0.0.1:{}\r\n", port + 1),
        ),
        (
            "look-alike: trailing dot".into(),
            format!("Origin: http://127.0.0.1.:{port}\r\n"),
        ),
        (
            "look-alike: decimal host".into(),
            format!("Origin: http://2130706433:{port}\r\n"),
        ),
        (
            "look-alike: mapped IPv6".into(),
            format!("Origin: http://[::ffff:127.0.0.1]:{port}\r\n"),
        ),
        (
            "look-alike: other loopback".into(),
            format!("Origin: http://127.0.0.2:{port}\r\n"),
        ),
        (
            "look-alike: fullwidth digits".into(),
            format!("Origin: http://\u{ff11}27.0.0.1:{port}\r\n"),
        ),
        (
            "look-alike: trailing space junk".into(),
            format!("Origin: {own} evil\r\n"),
        ),
        (
            "list of origins".into(),
            format!("Origin: http://evil.example, {own}\r\n"),
        ),
        (
            "two Origin headers".into(),
            format!("Origin: http://evil.example\r\nOrigin: {own}\r\n"),
        ),
        ("file".into(), "Origin: file://\r\n".into()),
        (
            "extension".into(),
            "Origin: chrome-extension://abcdefghijklmnop\r\n".into(),
        ),
        (
            "Sec-WebSocket-Origin only".into(),
            format!("Sec-WebSocket-Origin: {own}\r\n"),
        ),
        ("Referer only".into(), format!("Referer: {own}/\r\n")),
        (
            "foreign Origin, own Host spoofed".into(),
            "Origin: http://evil.example\r\nX-Forwarded-Host: 127.0.0.1\r\n".into(),
        ),
    ];
    let before = rejections(&ctx.metrics().await);
    let mut rows = String::new();
    let mut upgrades = 0;
    for (i, (what, headers)) in cases.iter().enumerate() {
        let status = client::raw_status(src(3, i), p, &client::upgrade_request(p, headers)).await;
        if status == 101 {
            upgrades += 1;
        }
        let _ = writeln!(
            rows,
            "| {what} | `{}` | {status} |",
            headers
                .trim_end()
                .replace("\r\n", " / ")
                .replace('|', "\\|")
        );
    }
    // Other spellings of the proxy's own origin (a browser never sends them: it serialises
    // its origin lower-case without a leading zero) name the same origin: reported, not
    // counted as foreign.
    let mut same = Vec::new();
    for (i, o) in [
        format!("HTTP://127.0.0.1:{port}"),
        format!("http://127.0.0.1:0{port}"),
    ]
    .iter()
    .enumerate()
    {
        let status = client::raw_status(
            src(3, 100 + i),
            p,
            &client::upgrade_request(p, &format!("Origin: {o}\r\n")),
        )
        .await;
        same.push(format!("`{o}` {status}"));
    }
    // Control: the own origin upgrades.
    let control = client::raw_status(
        src(3, 200),
        p,
        &client::upgrade_request(p, &format!("Origin: {own}\r\n")),
    )
    .await;
    let after = rejections(&ctx.metrics().await);
    let mut body = String::new();
    let _ = writeln!(body, "{} upgrade requests with a foreign, missing, `null` or look-alike Origin; the control with the proxy's own origin got {control}.\n", cases.len());
    let _ = writeln!(
        body,
        "**Upgrades: {upgrades}**. Refusals counted: {}.\n",
        moved(&before, &after)
    );
    let _ = writeln!(body, "| case | headers | status |\n|---|---|---|\n{rows}");
    let _ = writeln!(
        body,
        "\nOther spellings of the proxy's own origin, which no browser sends (the \
        scheme is case-insensitive and the port a number, so they name the same origin): {}.",
        same.join(", ")
    );
    ctx.report
        .figure("cross-site upgrades", upgrades.to_string());
    if upgrades > 0 {
        ctx.report
            .fail(format!("cswsh: {upgrades} foreign upgrades"));
    }
    if control != 101 {
        ctx.report
            .fail(format!("cswsh: the own-origin control got {control}"));
    }
    ctx.report.section("Cross-site WebSocket hijacking", body);
    Ok(())
}
