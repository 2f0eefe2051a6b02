//! `cargo xtask abuse`: Secrets.

use super::*;

/// Every spelling of a secret that would betray it in a log.
fn spellings_of(secrets: &Secrets) -> Vec<(String, &'static str)> {
    let b64 = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut out = Vec::new();
    for p in &secrets.passwords {
        out.push((p.clone(), "password"));
        for e in &b64 {
            let enc = e.encode(p);
            // Any 4-symbol-aligned prefix appears in every base64 text that holds it.
            out.push((enc[..enc.len().min(16)].to_string(), "password (base64)"));
        }
    }
    for u in &secrets.uuids {
        let braced = uuid_string(u);
        let bare = braced.trim_matches(|c| c == '{' || c == '}').to_string();
        let simple = bare.replace('-', "");
        for s in [braced, bare, simple] {
            out.push((s.to_uppercase(), "uuid"));
            out.push((s, "uuid"));
        }
    }
    for t in &secrets.tokens {
        out.push((t.clone(), "resume token"));
    }
    for t in &secrets.tickets {
        out.push((t.clone(), "ticket"));
    }
    out
}

pub fn scan_logs(secrets: &Secrets, logs: &[PathBuf]) -> (u64, u64, Vec<String>) {
    let needles = spellings_of(secrets);
    let mut bytes = 0u64;
    let mut leaks = 0u64;
    let mut where_ = Vec::new();
    for log in logs {
        let Ok(text) = std::fs::read(log) else {
            continue;
        };
        bytes += text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        for (needle, what) in &needles {
            if needle.len() >= 8 && text.contains(needle.as_str()) {
                leaks += 1;
                where_.push(format!(
                    "{what} in {}",
                    log.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
            }
        }
    }
    (bytes, leaks, where_)
}

/// Issues a ticket with the proxy's CLI and uses it (in the open message and as a
/// subprotocol), so that tickets are among the secrets the logs are scanned for.
pub async fn tickets(ctx: &mut Ctx) -> Result<String> {
    let mut out = String::new();
    for (i, via_header) in [false, true].into_iter().enumerate() {
        let ticket = crate::stdout_of(
            std::process::Command::new(ctx.bin.join("prl-proxy"))
                .args(["ticket", "--config"])
                .arg(&ctx.config)
                .args(["--target", "sim", "--origin", &ctx.own_origin]),
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
        if ticket.is_empty() {
            ctx.report
                .fail("tickets: `prl-proxy ticket` printed nothing".to_string());
            continue;
        }
        if let Ok(mut s) = ctx.secrets.lock() {
            s.tickets.push(ticket.clone());
        }
        let mut req = client::open_request("sim", 0);
        let label = if via_header {
            let proto = format!("{}{ticket}", prl_protocol::relay::TICKET_SUBPROTOCOL_PREFIX);
            match client::upgrade_with(
                src(27, i),
                ctx.proxy_addr,
                Some(&ctx.own_origin),
                &[prl_protocol::relay::SUBPROTOCOL, &proto],
            )
            .await
            {
                Upgrade::Ok(mut ws) => {
                    let _ = ws.send(Message::Text(client::open_json(req).into())).await;
                    match client::next_control(&mut ws, client::STEP).await {
                        Some(prl_protocol::relay::ProxyMessage::Opened(_)) => "opened".to_string(),
                        other => format!("{other:?}"),
                    }
                }
                other => format!("{other:?}"),
            }
        } else {
            req.ticket = Some(prl_protocol::relay::Secret(ticket.clone()));
            client::first_message(
                src(27, i),
                ctx.proxy_addr,
                Some(&ctx.own_origin),
                &client::open_json(req),
            )
            .await
            .label()
        };
        let _ = write!(
            out,
            "{} ticket: {label}; ",
            if via_header {
                "subprotocol"
            } else {
                "open-message"
            }
        );
        if label != "opened" {
            ctx.report
                .fail(format!("tickets: a valid ticket was refused: {label}"));
        }
    }
    Ok(out)
}
