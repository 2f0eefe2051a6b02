//! The pieces of the `vm_list` benchmark: a simulator serving `n` VMs, a proxy that forwards a
//! list that large, and the list asked for and read as `@prl-web/client`'s `getVmList` does
//! it (2029 with flags 0, as `PrlSrv_GetVmList`; the reply and every VM's configuration read
//! with the core's parsers), on the direct path and through the proxy.

use prl_protocol::codes::VmState;
use prl_protocol::commands::{vm_list_from_reply, vm_list_request};
use prl_protocol::Uuid;
use prl_proxy::ProxyHandle;
use prl_sim::{Inventory, Simulator, VmSpec};

use super::{
    check, proxy_config, reply_to, run_proxy, sim_config, BenchError, BrowserSession,
    DirectSession, Link, SIM_TARGET,
};

/// The largest package the list's proxy forwards (`limits.max_package_bytes`). One VM's
/// configuration is about 17 KB as the real serializer writes it, ~20 KB escaped in the reply:
/// 1000 VMs make a reply of ~20 MB, above the proxy's default of 16 MiB (about 800 VMs).
pub const LIST_PACKAGE_BYTES: usize = 64 << 20;

/// Most packages skipped while waiting for the list's reply (heartbeats, events).
const SKIP: usize = 64;

/// `n` VMs named `vm-0000`, `vm-0001`, ..., every other one running; the simulator's host.
pub fn inventory(n: usize) -> Inventory {
    let vms = (0..n)
        .map(|i| VmSpec {
            state: if i % 2 == 0 {
                VmState::RUNNING
            } else {
                VmState::STOPPED
            },
            description: format!("benchmark VM {i}"),
            ..VmSpec::new(&format!("vm-{i:04}"))
        })
        .collect();
    Inventory {
        vms,
        ..Inventory::demo()
    }
}

/// Starts prl-sim (as [`super::start_sim`]) serving [`inventory`]`(n)`.
pub async fn start_sim_with_vms(n: usize) -> Result<Simulator, BenchError> {
    let mut config = sim_config()?;
    config.inventory = inventory(n);
    Ok(Simulator::start(config).await?)
}

/// A `ws://` proxy in front of `sim` (as [`super::start_proxy`]) that forwards packages up to
/// [`LIST_PACKAGE_BYTES`].
pub async fn start_list_proxy(sim: std::net::SocketAddr) -> Result<ProxyHandle, BenchError> {
    let mut config = proxy_config(&[(SIM_TARGET, sim)], false)?;
    config.limits.max_package_bytes = LIST_PACKAGE_BYTES;
    run_proxy(config).await
}

/// Asks for the VM list and reads it: the reply, then every entry as a `VmSummary`; returns
/// the number of VMs (an entry that does not read is an error).
async fn vm_list(link: &mut impl Link) -> Result<usize, BenchError> {
    let job = Uuid::new_v4();
    let request = vm_list_request(0)
        .to_package(job, link.connection_uuid(), &mut Uuid::new_v4)
        .map_err(|e| BenchError::Unexpected {
            what: "vm list request",
            detail: e.to_string(),
        })?;
    link.send(request).await?;
    let reply = reply_to(link, job, "vm list reply", SKIP).await?;
    check("vm list", &reply)?;
    let mut vms = 0;
    for entry in vm_list_from_reply(&reply) {
        entry.map_err(|e| BenchError::Unexpected {
            what: "vm configuration",
            detail: e.to_string(),
        })?;
        vms += 1;
    }
    Ok(vms)
}

impl DirectSession {
    /// `PrlSrv_GetVmList` and every VM read; returns the number of VMs.
    pub async fn get_vm_list(&mut self) -> Result<usize, BenchError> {
        vm_list(self).await
    }
}

impl BrowserSession {
    /// `getVmList` through the proxy, read as the browser client reads it; returns the number
    /// of VMs.
    pub async fn get_vm_list(&mut self) -> Result<usize, BenchError> {
        vm_list(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProxyEndpoint;
    use prl_protocol::handshake::SecurityLevel;

    /// Both paths read every VM: 10, and 1000 (a reply above the proxy's and the transport's
    /// default 16 MiB package limit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_paths_read_every_vm_of_a_large_list() {
        for n in [10, 1000] {
            let sim = start_sim_with_vms(n).await.unwrap();
            let addr = sim.tcp_addr().unwrap();
            let proxy = start_list_proxy(addr).await.unwrap();
            let mut direct = DirectSession::connect(addr, SecurityLevel::Normal)
                .await
                .unwrap();
            direct.login().await.unwrap();
            let endpoint = ProxyEndpoint::of(&proxy).unwrap();
            let mut browser = BrowserSession::open(&endpoint, SIM_TARGET, SecurityLevel::Normal)
                .await
                .unwrap();
            browser.login().await.unwrap();
            assert_eq!(direct.get_vm_list().await.unwrap(), n);
            assert_eq!(browser.get_vm_list().await.unwrap(), n);
            direct.logoff().await.unwrap();
            browser.logoff().await.unwrap();
            proxy.shutdown();
        }
    }

    #[test]
    fn the_inventory_alternates_running_and_stopped_vms() {
        let inv = inventory(4);
        let states: Vec<VmState> = inv.vms.iter().map(|v| v.state).collect();
        assert_eq!(
            states,
            [
                VmState::RUNNING,
                VmState::STOPPED,
                VmState::RUNNING,
                VmState::STOPPED
            ]
        );
        assert_eq!(inv.vms[3].name, "vm-0003");
    }
}
