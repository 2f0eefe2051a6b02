//! The command scope (`[policy] scope` and the ticket's `scope` claim) against prl-sim: a
//! command outside it gets a `command_refused` error, never reaches the service, is counted in
//! `/metrics`, and the session stays up.
#![allow(clippy::unwrap_used)]

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use common::*;
use prl_protocol::codes::VmState;
use prl_protocol::commands::{vm_list_from_reply, vm_list_request, VmEvent, VmRequest};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{RelayErrorKind, Secret};
use prl_protocol::scope::CommandScope;
use prl_protocol::{ErrorCode, Uuid};
use prl_proxy::config::DEFAULT_AUDIENCE;
use prl_proxy::ticket::{TicketIssuer, TicketOptions, Tickets};

/// The stopped VM of the simulator's default inventory.
fn stopped_vm(sim: &prl_sim::Simulator) -> (Uuid, String) {
    let spec = prl_sim::Inventory::demo()
        .vms
        .into_iter()
        .find(|v| v.state == VmState::STOPPED)
        .unwrap();
    assert_eq!(sim.vm_state(&spec.uuid), Some(VmState::STOPPED));
    (spec.uuid, spec.uuid_text())
}

/// Lists the VMs through the relay: the count.
async fn list(b: &mut Browser) -> usize {
    let job = Uuid::new_v4();
    let p = vm_list_request(0)
        .to_package(job, b.conn_uuid, &mut Uuid::new_v4)
        .unwrap();
    b.send(&p).await;
    let reply = b.reply_to(job).await.unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    vm_list_from_reply(&reply).len()
}

/// Sends a start of `vm`: its job.
async fn start_vm(b: &mut Browser, vm: &str) -> Uuid {
    let job = Uuid::new_v4();
    b.send(&VmRequest::start(vm).to_package(job, b.conn_uuid, &mut Uuid::new_v4))
        .await;
    job
}

const REFUSED: &str = "prl_proxy_rejections_total{reason=\"command_refused\"}";

#[tokio::test]
async fn a_read_scope_refuses_power_operations_and_the_session_goes_on() {
    let sim = sim().await;
    let h = start(&format!("{}[policy]\nscope = \"read\"\n", sim_target(&sim))).await;
    let (mut b, _) = logged_in(&h, SecurityLevel::Normal).await;
    let (uuid, vm) = stopped_vm(&sim);
    let vms = list(&mut b).await;
    assert!(vms >= 3);
    let job = start_vm(&mut b, &vm).await;
    let e = b.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::CommandRefused);
    assert_eq!(e.code, Some(ErrorCode::ACCESS_DENIED.0));
    assert_eq!(e.refused_request(), Some(job));
    assert!(
        e.message.contains("operate") && e.message.contains("read"),
        "{}",
        e.message
    );
    // The session is up: the browser goes on, and the service never saw the start.
    assert_eq!(list(&mut b).await, vms);
    assert_eq!(b.ping().await.unwrap(), ErrorCode::UNIMPLEMENTED);
    assert_eq!(sim.vm_state(&uuid), Some(VmState::STOPPED));
    assert_eq!(metric(&h.metrics_text(), REFUSED), 1.0);
    // A command of no scope below `all` (the sim-only 9001) is refused too.
    let p = prl_sim::start_long_task_command(1, 0, 0, Uuid::new_v4(), b.conn_uuid);
    b.send(&p).await;
    assert_eq!(
        b.next().await.unwrap_err().kind,
        RelayErrorKind::CommandRefused
    );
    assert_eq!(metric(&h.metrics_text(), REFUSED), 2.0);
    assert_eq!(sim.task_count(), 0);
}

#[tokio::test]
async fn an_operate_scope_allows_power_operations_only() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[policy]\nscope = \"operate\"\n",
        sim_target(&sim)
    ))
    .await;
    let (mut b, _) = logged_in(&h, SecurityLevel::Low).await;
    let (uuid, vm) = stopped_vm(&sim);
    let job = start_vm(&mut b, &vm).await;
    // The state event and the reply come through.
    let mut saw_event = false;
    loop {
        let p = b.next().await.unwrap();
        if let Some(e) = VmEvent::from_package(&p).unwrap() {
            saw_event |= e.vm_uuid == vm;
        } else if p.header.parent_uuid == job {
            assert_eq!(
                prl_protocol::commands::Reply::parse(&p).unwrap().code,
                ErrorCode::SUCCESS
            );
            break;
        }
    }
    assert!(saw_event);
    assert_eq!(sim.vm_state(&uuid), Some(VmState::RUNNING));
    let p = prl_sim::start_long_task_command(1, 0, 0, Uuid::new_v4(), b.conn_uuid);
    b.send(&p).await;
    assert_eq!(
        b.next().await.unwrap_err().kind,
        RelayErrorKind::CommandRefused
    );
    assert_eq!(list(&mut b).await, 4);
}

#[tokio::test]
async fn a_ticket_narrows_the_policy_scope_and_never_widens_it() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    std::fs::write(&key_path, [7u8; 48]).unwrap();
    let key = TicketIssuer::hs256_file(&key_path, None, DEFAULT_AUDIENCE).unwrap();
    let toml = |scope: &str| {
        format!(
            "{}[policy]\nscope = \"{scope}\"\n[tickets]\nkey_file = {:?}\nmax_ttl_secs = 60\n[limits]\nlogin_burst_per_user = 20\n",
            sim_target(&sim),
            key_path.display().to_string()
        )
    };
    let (_, vm) = stopped_vm(&sim);
    for (policy, ticket, refused) in [
        ("all", Some(CommandScope::Read), true),
        ("all", Some(CommandScope::Operate), false),
        ("all", None, false),
        ("read", Some(CommandScope::All), true),
        ("operate", Some(CommandScope::All), false),
    ] {
        let h = start(&toml(policy)).await;
        let origin = own_origin(&h);
        let options = TicketOptions {
            sub: None,
            scope: ticket,
        };
        let t = key.remote("sim", 0, &origin, prl_proxy::util::unix_now(), 30, options);
        let mut req = open_request("sim", SecurityLevel::Low);
        req.ticket = Some(Secret(t));
        let mut b = Browser::open(&h, req).await.unwrap();
        b.login_ok("").await;
        let job = start_vm(&mut b, &vm).await;
        if refused {
            let e = b.next().await.unwrap_err();
            assert_eq!(
                e.kind,
                RelayErrorKind::CommandRefused,
                "{policy} {ticket:?}"
            );
            assert_eq!(e.refused_request(), Some(job));
        } else {
            let code = b.reply_to(job).await.unwrap().code;
            // Started now, or already running from an earlier round.
            assert!(
                code == ErrorCode::SUCCESS || code == ErrorCode::FAILURE,
                "{policy} {ticket:?}: {code}"
            );
        }
        assert!(list(&mut b).await >= 3, "the session is up");
    }
}

#[test]
fn the_ticket_command_issues_a_scope_claim() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    std::fs::write(&key_path, [5u8; 48]).unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[tickets]\nkey_file = {:?}\nmax_ttl_secs = 60\n",
            key_path.display().to_string()
        ),
    )
    .unwrap();
    let run = |scope: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_prl-proxy"))
            .arg("ticket")
            .arg("--config")
            .arg(&config)
            .args(["--target", "lab", "--origin", "https://console.example"])
            .args(["--scope", scope])
            .output()
            .unwrap()
    };
    let out = run("operate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = String::from_utf8(out.stdout).unwrap();
    let c = prl_proxy::Config::load(&config).unwrap();
    let tickets = Tickets::load(c.tickets.as_ref().unwrap()).unwrap();
    let claims = tickets
        .verify(
            ticket.trim(),
            "https://console.example",
            prl_proxy::util::unix_now(),
        )
        .unwrap();
    assert_eq!(claims.scope, Some(CommandScope::Operate));
    let out = run("admin");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope"));
}
