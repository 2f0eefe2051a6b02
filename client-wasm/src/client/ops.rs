//! The operations after login: attach to a lost task (2090), host info (2051), the VM list
//! (2029), a VM's state (2062), the power operations and any other described command. Each is
//! one [`jobs::request`] with the core's builder of its command (a `RequestSpec`, built as the
//! SDK builds it, for all but the attach); the reply is read with the core's parsers. One
//! async function serves them all ([`call`]), so the bundle carries one future for the lot.

use js_sys::Function;
use prl_protocol::commands::{
    host_info_request, param, vm_info_request, vm_list_from_reply, vm_list_request, HostInfo,
    Reply, ReplyView, RequestSpec, VmInfo, VmRequest, VmSummary,
};

use super::jobs;
use super::state::{new_id, Client};
use crate::abort::AbortWatch;
use crate::error::{ClientError, Op};

/// The progress callback and abort signal every operation takes.
#[derive(Debug, Default)]
pub struct Watch {
    /// `onProgress`.
    pub on_progress: Option<Function>,
    /// `signal`.
    pub abort: Option<AbortWatch>,
}

/// One host or VM operation, its arguments read.
#[derive(Debug)]
pub enum Call {
    /// `attachToLostTask` (`PrlSrv_AttachToLostTask`).
    Attach {
        /// The lost task's job uuid.
        task_id: String,
    },
    /// `getHostInfo` (`PrlSrv_GetSrvConfig`).
    HostInfo,
    /// `getVmList` (`PrlSrv_GetVmListEx(flags)`).
    VmList {
        /// `PGVLF_*` flags (0 as `PrlSrv_GetVmList`).
        flags: u32,
    },
    /// `getVmState` (`PrlVm_GetState`).
    VmState {
        /// The VM.
        uuid: String,
    },
    /// A power operation (`PrlVm_Start`, `Stop`, ...).
    Power {
        /// Which (for errors).
        op: Op,
        /// The request as the SDK sends it.
        request: VmRequest,
    },
    /// `request(packageType, params, opts)`: any described command.
    Request(RequestSpec),
}

impl Call {
    fn op(&self) -> Op {
        match self {
            Call::Attach { .. } => Op::AttachToLostTask,
            Call::HostInfo => Op::GetHostInfo,
            Call::VmList { .. } => Op::GetVmList,
            Call::VmState { .. } => Op::GetVmState,
            Call::Power { op, .. } => *op,
            Call::Request(_) => Op::Request,
        }
    }
}

/// A VM list entry that does not read (`PrlResult_GetParamByIndex` fails for it): the error's
/// kind and the document.
pub type Unreadable = (&'static str, String);

/// What an operation resolves with.
#[derive(Debug)]
pub enum Answer {
    /// An attached task's final reply (success).
    Task {
        /// The task.
        task_id: String,
        /// Its final reply.
        reply: Reply,
    },
    /// The host document read, with what the login told: the product version and the host
    /// the session logged in to ("" for a local login).
    HostInfo {
        /// `CHostHardwareInfo`, read.
        info: HostInfo,
        /// The login reply's product version.
        product_version: String,
        /// The host given to `login`.
        host: String,
    },
    /// The VMs in the service's order; an entry that does not read is an error of its own.
    VmList(Vec<Result<VmSummary, Unreadable>>),
    /// The VM info event read, and its XML.
    VmState {
        /// The VM asked for.
        uuid: String,
        /// The event, read.
        info: VmInfo,
        /// Its XML.
        xml: String,
    },
    /// A power operation's job ended with success.
    Done,
    /// The generic view of the reply to a described command.
    Reply(ReplyView),
}

/// A reply that does not read as the operation's: its error's stable kind (the core's
/// messages are not linked into the bundle).
fn unreadable(op: Op, kind: &str) -> ClientError {
    ClientError::protocol(op, format!("unreadable reply: {kind}"))
}

/// Runs one operation: its request through the one request path, then its reply read.
pub async fn call(client: Client, call: Call, watch: Watch) -> Result<Answer, ClientError> {
    let op = call.op();
    // The description of the command; the attach has a builder of its own (2090).
    let (spec, task) = match &call {
        Call::Attach { task_id } => (None, task_id.as_str()),
        Call::HostInfo => (Some(host_info_request()), ""),
        Call::VmList { flags } => (Some(vm_list_request(*flags)), ""),
        Call::VmState { uuid } => (Some(vm_info_request(uuid)), ""),
        Call::Power { request, .. } => (Some(request.to_spec()), ""),
        Call::Request(spec) => (Some(spec.clone()), ""),
    };
    let reply = jobs::request(
        &client,
        op,
        watch.on_progress,
        watch.abort,
        |session, job| match &spec {
            Some(spec) => session.request(job, spec, &mut new_id),
            None => session.attach_to_lost_task(job, task, &mut new_id),
        },
    )
    .await?;
    Ok(match call {
        Call::Attach { task_id } => Answer::Task { task_id, reply },
        Call::HostInfo => {
            let info = HostInfo::from_reply(&reply).map_err(|e| unreadable(op, e.kind()))?;
            let state = client.borrow();
            let login = state
                .login
                .as_ref()
                .ok_or_else(|| jobs::not_logged_in(op))?;
            Answer::HostInfo {
                info,
                product_version: login.product_version.clone(),
                host: login.params.host.clone(),
            }
        }
        Call::VmList { .. } => Answer::VmList(
            vm_list_from_reply(&reply)
                .into_iter()
                .zip(reply.standard_params())
                .map(|(entry, xml)| entry.map_err(|e| (e.kind(), xml.to_owned())))
                .collect(),
        ),
        Call::VmState { uuid } => {
            let info = VmInfo::from_reply(&reply).map_err(|e| unreadable(op, e.kind()))?;
            let xml = reply
                .string_param(param::WS_RESPONSE_VM_EVENT)
                .unwrap_or_default()
                .to_owned();
            Answer::VmState { uuid, info, xml }
        }
        Call::Power { .. } => Answer::Done,
        Call::Request(_) => Answer::Reply(ReplyView::from_reply(&reply)),
    })
}
