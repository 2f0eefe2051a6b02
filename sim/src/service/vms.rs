//! Host and VM commands: host info 2051 (`CDspShellHelper::sendHostHardwareInfo`), the VM list
//! 2029 (`CDspVmDirHelper::sendVmList`), VM info 2062 (`sendVmInfo`), the VM power operations
//! 1000..=1999 (`CDspVmManager`: routing, `Command::Dispatcher`, the forked bodies and their
//! replies), and the VM events (`CDspVmStateSender`, `sendVmConfigChangedEvent`,
//! `sendVmRemovedEvent`) sent to every session that may see the VM.
//!
//! A power operation runs on its own task (the service forks it), so the connection keeps
//! being served and a `getVmState` during the transition reports the old state. Operations on
//! one VM run one after the other, in arrival order (the exclusive-operation locks). What an
//! operation does is decided by `power::plan` from the VM's state when its turn comes.

use std::sync::Arc;

use prl_protocol::codes::{cmd, flags, ErrorCode, VmState};
use prl_protocol::commands::{
    error_with_details, forked_failure_replies, host_info_reply, package_event,
    parse_without_params, simple_response, vm_event_package, vm_info_reply, vm_list_reply,
    vm_state_event, Command, VmConfig, VmInfo, VmSecurity, PVT_VM,
};
use prl_protocol::event::Event;
use prl_protocol::package::Package;
use prl_protocol::Uuid;

use super::delivery::{reply_to_session, send_to_session};
use super::power::{plan, Op, Plan, VmView};
use super::state::{ConnectionHandler, SimService, SimVm, UserSession};
use crate::inventory::VmSpec;

/// The request a VM operation answers, without its payload.
fn header_only(p: &Package) -> Package {
    Package {
        header: p.header,
        buffers: Vec::new(),
    }
}

/// Dates the sim writes into VM configurations (`yyyy-MM-dd hh:mm:ss`).
const CREATED: &str = "2025-06-02 09:14:05";
const CHANGED: &str = "2025-06-02 09:20:41";

impl ConnectionHandler {
    /// 2051: the host hardware info (a task of the session, `Task_SendHostHardwareInfo`).
    pub(super) async fn host_info(&self, p: &Package, session: &Arc<UserSession>) {
        let valid = package_event(p)
            .ok()
            .is_some_and(|e| parse_without_params(cmd::USER_GET_HOST_HW_INFO, &e).is_ok());
        if !valid {
            return self
                .simple_via_session(p, session, ErrorCode::FAILURE)
                .await;
        }
        let xml = &self.service.host_xml;
        self.reply_via_session(session, |target| {
            host_info_reply(p, target.local_uuid, Uuid::new_v4(), xml, &mut Uuid::new_v4)
        })
        .await;
    }

    /// 2029 (`sendVmList`): one configuration per VM, templates first, the ones the session may
    /// not read as their inaccessible entry.
    pub(super) async fn vm_list(&self, p: &Package, session: &Arc<UserSession>) {
        let Ok(list_flags) =
            package_event(p).and_then(|e| parse_without_params(cmd::DIR_GET_VM_LIST, &e))
        else {
            return self
                .simple_via_session(p, session, ErrorCode::FAILURE)
                .await;
        };
        let vms: Vec<(VmSpec, VmState)> = {
            let registry = self.service.registry();
            let templates = registry.vms.iter().filter(|v| v.spec.template);
            let others = registry.vms.iter().filter(|v| !v.spec.template);
            templates
                .chain(others)
                .map(|v| (v.spec.clone(), v.state))
                .collect()
        };
        let only_ct = list_flags & flags::PGVLF_GET_ONLY_CT != 0
            && list_flags & flags::PGVLF_GET_ONLY_VM == 0;
        let only_templates = list_flags & flags::PGVLF_GET_ONLY_VM_TEMPLATES != 0;
        let entries: Vec<String> = vms
            .iter()
            .filter(|_| !only_ct)
            .filter(|(spec, _)| !only_templates || spec.template)
            .map(|(spec, state)| {
                vm_config(&self.service, spec, *state, &session.user, list_flags).to_xml()
            })
            .collect();
        tracing::debug!(conn = self.id, vms = entries.len(), "vm list");
        self.reply_via_session(session, |target| {
            vm_list_reply(
                p,
                target.local_uuid,
                Uuid::new_v4(),
                &entries,
                &mut Uuid::new_v4,
            )
        })
        .await;
    }

    /// 2062 (`sendVmInfo`): the VM's state now; a simple error for an unknown VM or one the
    /// session may not read. Answered to the connection that asked.
    pub(super) async fn vm_info(&self, p: &Package, session: &Arc<UserSession>) {
        let uuid = match Command::parse(p, true) {
            Ok(Command::GetVmInfo { vm_uuid }) => vm_uuid,
            _ => return self.simple(p, ErrorCode::FAILURE).await,
        };
        let found = {
            let registry = self.service.registry();
            registry.vm(&uuid).map(|v| (v.spec.clone(), v.state))
        };
        let Some((spec, state)) = found else {
            return self.simple(p, ErrorCode::VM_UUID_NOT_FOUND).await;
        };
        if !spec.readable_by(&session.user) {
            return self.simple(p, ErrorCode::ACCESS_TO_VM_DENIED).await;
        }
        let info = VmInfo::new(state, &security_for(&spec, &session.user));
        let local = self.info.local_connection_uuid;
        self.reply(vm_info_reply(
            p,
            local,
            Uuid::new_v4(),
            &info,
            &mut Uuid::new_v4,
        ))
        .await;
    }

    /// 1000..=1999: `CDspVmManager::handleFromDispatcherPackage`. A malformed request, 1009 and
    /// any type the manager has no handler for get `PRL_ERR_UNRECOGNIZED_REQUEST`; an operation
    /// on an unknown VM fails at once; the others run on their own task, one at a time per VM.
    pub(super) async fn vm_command(&self, p: &Package, session: &Arc<UserSession>) {
        let request = match Command::parse(p, true) {
            Ok(Command::Vm(request)) => request,
            _ => return self.simple(p, ErrorCode::UNRECOGNIZED_REQUEST).await,
        };
        let Some(op) = Op::of(&request) else {
            return self.simple(p, ErrorCode::UNRECOGNIZED_REQUEST).await;
        };
        let behaviour = self.service.config.vm_behaviour;
        let admitted = {
            let mut registry = self.service.registry();
            if registry.vm_ops_in_flight >= behaviour.max_in_flight {
                Err(Some((
                    ErrorCode::TRY_AGAIN,
                    "too many vm operations in flight",
                )))
            } else {
                match registry.vm_mut(&request.vm_uuid) {
                    None => Err(None),
                    Some(vm) if vm.queued >= behaviour.max_queued_per_vm => Err(Some((
                        ErrorCode::VM_IS_EXCLUSIVELY_LOCKED,
                        "too many operations queued for this vm",
                    ))),
                    Some(vm) => {
                        vm.queued += 1;
                        let ops = vm.ops.clone();
                        registry.vm_ops_in_flight += 1;
                        Ok(ops)
                    }
                }
            }
        };
        let ops = match admitted {
            Ok(ops) => ops,
            Err(Some((code, details))) => {
                return reply_to_session(&self.service, session, |local| {
                    error_with_details(p, local, Uuid::new_v4(), code, details, &mut Uuid::new_v4)
                })
                .await
            }
            Err(None) => {
                // A uuid the service does not know: the state is VMS_UNKNOWN, the operation
                // fails at once.
                let plan = plan(op, None);
                return answer(&self.service, session, &header_only(p), plan).await;
            }
        };
        tracing::debug!(
            conn = self.id,
            op = request.action.name(),
            "vm operation queued"
        );
        let run = VmOperation {
            service: self.service.clone(),
            session: session.clone(),
            request: header_only(p),
            uuid: request.vm_uuid,
            op,
        };
        tokio::spawn(run.run(ops));
    }
}

/// One VM operation on its own task.
struct VmOperation {
    service: Arc<SimService>,
    session: Arc<UserSession>,
    request: Package,
    uuid: String,
    op: Op,
}

/// Gives an operation's place back when it ends, however it ends.
struct Slot {
    service: Arc<SimService>,
    uuid: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut registry = self.service.registry();
        registry.vm_ops_in_flight = registry.vm_ops_in_flight.saturating_sub(1);
        if let Some(vm) = registry.vm_mut(&self.uuid) {
            vm.queued = vm.queued.saturating_sub(1);
        }
    }
}

impl VmOperation {
    async fn run(self, ops: Arc<tokio::sync::Mutex<()>>) {
        let _slot = Slot {
            service: self.service.clone(),
            uuid: self.uuid.clone(),
        };
        let _turn = ops.lock_owned().await;
        let service = &self.service;
        let view = {
            let registry = service.registry();
            registry.vm(&self.uuid).map(|v| VmView {
                state: v.state,
                readable: v.spec.readable_by(&self.session.user),
                template: v.spec.template,
            })
        };
        let plan = plan(self.op, view);
        let Plan::Go {
            to,
            event,
            transient,
        } = plan
        else {
            return answer(service, &self.session, &self.request, plan).await;
        };
        let behaviour = service.config.vm_behaviour;
        let transient = transient.filter(|_| behaviour.transient_states);
        if let Some(during) = transient {
            set_state(service, &self.uuid, during).await;
        }
        let timing = &behaviour.timing;
        let took = match self.op {
            Op::Start => timing.start,
            Op::Kill | Op::Shutdown => timing.stop,
            Op::Pause => timing.pause,
            Op::Suspend => timing.suspend,
            Op::Reset => timing.reset,
            Op::Restart => timing.restart,
        };
        tokio::time::sleep(took).await;
        let reply = || answer(service, &self.session, &self.request, plan);
        let notify = event || transient.is_some();
        if behaviour.reply_before_event {
            reply().await;
            if notify {
                set_state(service, &self.uuid, to).await;
            }
        } else {
            if notify {
                set_state(service, &self.uuid, to).await;
            }
            reply().await;
        }
        tracing::debug!(vm = %self.uuid, state = %to, "vm operation done");
    }
}

/// The reply (or replies) of a plan: success, an error with its `Details`, or a forked
/// failure's two replies (unless `--no-duplicate-replies`).
async fn answer(service: &SimService, session: &UserSession, request: &Package, plan: Plan) {
    let ids = &mut Uuid::new_v4;
    match plan {
        Plan::Go { .. } => {
            reply_to_session(service, session, |local| {
                simple_response(request, local, Uuid::new_v4(), ErrorCode::SUCCESS, &[], ids)
            })
            .await
        }
        Plan::Fail {
            code,
            details,
            forked,
        } => {
            if forked && service.config.vm_behaviour.duplicate_replies {
                let uuids = [Uuid::new_v4(), Uuid::new_v4()];
                let mut replies = None;
                reply_to_session(service, session, |local| {
                    let [first, second] =
                        forked_failure_replies(request, local, uuids, code, details, ids);
                    replies = Some(second);
                    first
                })
                .await;
                if let Some(second) = replies {
                    reply_to_session(service, session, |_| second).await;
                }
            } else {
                reply_to_session(service, session, |local| {
                    error_with_details(request, local, Uuid::new_v4(), code, details, ids)
                })
                .await
            }
        }
    }
}

/// The VM is now in `state`: recorded (what `getVmState` reports from now on) and notified to
/// every session that may read it (`CDspVmStateSender::slotSendVmStateChanged`).
pub(super) async fn set_state(service: &SimService, uuid: &str, state: VmState) {
    let recipients = {
        let mut registry = service.registry();
        let Some(vm) = registry.vm_mut(uuid) else {
            return;
        };
        vm.state = state;
        let spec = vm.spec.clone();
        readers(&registry.distinct_sessions(), &spec)
    };
    for session in recipients {
        send_to_session(service, &session, |local| {
            vm_state_event(uuid, state, local, Uuid::new_v4(), &mut Uuid::new_v4)
        })
        .await;
    }
}

/// The sessions that may read a VM (`getSessionListByVm(.., arCanRead)`).
fn readers(sessions: &[Arc<UserSession>], spec: &VmSpec) -> Vec<Arc<UserSession>> {
    sessions
        .iter()
        .filter(|s| spec.readable_by(&s.user))
        .cloned()
        .collect()
}

/// Sends a VM event without parameters to `sessions`.
async fn notify(service: &SimService, sessions: &[Arc<UserSession>], event_type: u32, uuid: &str) {
    for session in sessions {
        send_to_session(service, session, |local| {
            vm_event_package(
                event_type,
                uuid,
                &[],
                local,
                Uuid::new_v4(),
                &mut Uuid::new_v4,
            )
        })
        .await;
    }
}

impl SimService {
    /// The state the service reports for a VM, if it has the VM.
    pub(crate) fn vm_state(&self, uuid: &Uuid) -> Option<VmState> {
        let text = prl_protocol::uuid_string(uuid);
        self.registry().vm(&text).map(|v| v.state)
    }

    /// Adds a VM (`PET_DSP_EVT_VM_ADDED` to the sessions that may read it); `false` when its
    /// name or uuid is taken.
    pub(crate) async fn add_vm(&self, spec: VmSpec) -> bool {
        let (uuid, recipients) = {
            let mut registry = self.registry();
            if registry
                .vms
                .iter()
                .any(|v| v.spec.uuid == spec.uuid || v.spec.name == spec.name)
            {
                return false;
            }
            let recipients = readers(&registry.distinct_sessions(), &spec);
            let vm = SimVm::new(spec);
            let uuid = vm.uuid_text.clone();
            registry.vms.push(vm);
            (uuid, recipients)
        };
        notify(
            self,
            &recipients,
            prl_protocol::codes::event_type::VM_ADDED,
            &uuid,
        )
        .await;
        true
    }

    /// Deletes a VM (`PET_DSP_EVT_VM_DELETED` to every session: `sendVmRemovedEvent` does not
    /// filter by access); `false` when there is none.
    pub(crate) async fn delete_vm(&self, uuid: &Uuid) -> bool {
        let text = prl_protocol::uuid_string(uuid);
        let recipients = {
            let mut registry = self.registry();
            let before = registry.vms.len();
            registry.vms.retain(|v| v.uuid_text != text);
            if registry.vms.len() == before {
                return false;
            }
            registry.distinct_sessions()
        };
        notify(
            self,
            &recipients,
            prl_protocol::codes::event_type::VM_DELETED,
            &text,
        )
        .await;
        true
    }

    /// Changes a VM's configuration (not its uuid) and sends `PET_DSP_EVT_VM_CONFIG_CHANGED`
    /// to the sessions that may read it (before or after the change); `false` when there is
    /// no such VM.
    pub(crate) async fn update_vm(&self, uuid: &Uuid, edit: impl FnOnce(&mut VmSpec)) -> bool {
        let text = prl_protocol::uuid_string(uuid);
        let recipients = {
            let mut registry = self.registry();
            let sessions = registry.distinct_sessions();
            let Some(vm) = registry.vm_mut(&text) else {
                return false;
            };
            let before = readers(&sessions, &vm.spec);
            let keep = vm.spec.uuid;
            edit(&mut vm.spec);
            vm.spec.uuid = keep;
            let mut all = readers(&sessions, &vm.spec);
            for s in before {
                if !all.iter().any(|a| Arc::ptr_eq(a, &s)) {
                    all.push(s);
                }
            }
            all
        };
        notify(
            self,
            &recipients,
            prl_protocol::codes::event_type::VM_CONFIG_CHANGED,
            &text,
        )
        .await;
        true
    }

    /// Sets a VM's state from outside (the guest shut itself down, the host restarted it) with
    /// its state event; `false` when there is no such VM.
    pub(crate) async fn set_vm_state(&self, uuid: &Uuid, state: VmState) -> bool {
        let text = prl_protocol::uuid_string(uuid);
        if self.registry().vm(&text).is_none() {
            return false;
        }
        set_state(self, &text, state).await;
        true
    }
}

/// The `Security` a session sees (`FillVmSecurity`).
fn security_for(spec: &VmSpec, user: &str) -> VmSecurity {
    VmSecurity {
        owner: spec.owner.clone(),
        is_owner: spec.owner == user,
        access_for_others: spec.others.pao(),
        locked: false,
        parental_control: true,
    }
}

/// A VM's configuration as listed for `user` with the list's flags
/// (`appendAdvancedParamsToVmConfig`, or the inaccessible entry).
fn vm_config(
    service: &SimService,
    spec: &VmSpec,
    state: VmState,
    user: &str,
    list_flags: u32,
) -> VmConfig {
    let bytes = spec.uuid.as_bytes();
    let plain = spec.uuid.hyphenated().to_string();
    let server_uuid = service.info.server_uuid.clone();
    if !spec.readable_by(user) {
        // `Inaccessible::Default`: an otherwise empty configuration with the error, the name,
        // the uuid and the type; no state.
        return VmConfig {
            uuid: spec.uuid_text(),
            name: spec.name.clone(),
            server_uuid,
            home: String::new(),
            description: String::new(),
            os_type: 0,
            os_version: 0,
            is_template: false,
            cpu_count: 1,
            ram_mb: 256,
            disk_mb: 0,
            mac: String::new(),
            host_name: String::new(),
            created: CREATED.to_owned(),
            changed: CHANGED.to_owned(),
            started: CHANGED.to_owned(),
            valid_rc: ErrorCode::ACCESS_TO_VM_DENIED,
            vm_type: PVT_VM,
            security: VmSecurity::default(),
            info: Event::default(),
        };
    }
    let security = security_for(spec, user);
    let info = if list_flags & flags::PGVLF_GET_ONLY_IDENTITY_INFO != 0 {
        Event::default()
    } else if list_flags & flags::PGVLF_GET_STATE_INFO != 0 {
        VmInfo::state_only_event(state)
    } else {
        VmInfo::new(state, &security).to_event()
    };
    VmConfig {
        uuid: spec.uuid_text(),
        name: spec.name.clone(),
        server_uuid,
        home: format!("/vz/vmprivate/{plain}/config.pvs"),
        description: spec.description.clone(),
        os_type: spec.os_type,
        os_version: spec.os_version,
        is_template: spec.template,
        cpu_count: spec.cpus,
        ram_mb: spec.ram_mb,
        disk_mb: spec.disk_mb,
        mac: format!("001C42{:02X}{:02X}{:02X}", bytes[0], bytes[1], bytes[2]),
        host_name: spec.hostname.clone(),
        created: CREATED.to_owned(),
        changed: CHANGED.to_owned(),
        started: CHANGED.to_owned(),
        valid_rc: ErrorCode::SUCCESS,
        vm_type: PVT_VM,
        security,
        info,
    }
}
