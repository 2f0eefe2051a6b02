//! `@prl-web/client`: the Parallels SDK login API for the browser.
//!
//! A [`Server`] reaches Parallels Service through prl-proxy over one WebSocket
//! (`docs/relay-protocol.md`): JSON control messages, then whole IO packages. The Parallels
//! session itself (login packages, reply matching, restore) runs here, in WASM, on the
//! sans-I/O core `prl-protocol`.
//!
//! Module map: `client` drives the session and restore (its own map: state, connection,
//! jobs, restore); `ws` is the WebSocket adapter; `relay_json` moves the core's relay messages
//! as JSON text (`json_text` writes it; the browser's `JSON.parse` reads it, `js_de` the
//! parsed values); `abort` waits on `AbortSignal`s; `js` converts values; `error` maps
//! failures to stable kinds and `PRL_ERR_*` codes; `backoff` computes restore delays.
#![forbid(unsafe_code)]

mod abort;
pub mod backoff;
mod client;
pub mod error;
mod js;
mod js_de;
mod js_ops;
mod json_text;
pub mod relay_json;
mod ws;

use js_sys::{Function, Promise};
use prl_protocol::commands::{Password, VmRequest};
use prl_protocol::handshake::SecurityLevel as CoreLevel;
use prl_protocol::relay::ConnectMode;
use prl_protocol::{parse_uuid, uuid_string};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;
use web_sys::EventTarget;
use zeroize::Zeroizing;

use crate::abort::AbortWatch;
use crate::client::{
    Answer, Call, Client, ClientState, ConnectParams, Credentials, Options, TicketSource, Watch,
};
use crate::error::{ClientError, Op};

/// Connection security level (`PRL_SECURITY_LEVEL`): which packages travel encrypted.
#[wasm_bindgen]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityLevel {
    /// `PSL_LOW_SECURITY`: everything plain after the TLS handshake.
    Low = 0,
    /// `PSL_NORMAL_SECURITY`: commands, replies and events encrypted (the default).
    Normal = 1,
    /// `PSL_HIGH_SECURITY`: everything encrypted.
    High = 2,
}

impl From<SecurityLevel> for CoreLevel {
    fn from(level: SecurityLevel) -> Self {
        match level {
            SecurityLevel::Low => CoreLevel::Low,
            SecurityLevel::Normal => CoreLevel::Normal,
            SecurityLevel::High => CoreLevel::High,
        }
    }
}

/// Talc instead of the standard library's dlmalloc: a third of its size in the bundle (-3 KB
/// gzipped). Its safe constructor is for single-threaded WebAssembly, which this is.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

const EVENT_TYPES: [&str; 7] = [
    "statechange",
    "event",
    "restored",
    "vmstatechange",
    "vmadded",
    "vmremoved",
    "vmconfigchange",
];

fn js_err(e: ClientError) -> JsValue {
    js::to_js_error(&e)
}

fn security_level(opts: &JsValue) -> Result<CoreLevel, ClientError> {
    let v = js::field(opts, "securityLevel");
    if v.is_null_or_undefined() {
        return Ok(CoreLevel::Normal);
    }
    let level = match (v.as_f64(), v.as_string().as_deref()) {
        (Some(0.0), _) => SecurityLevel::Low,
        (Some(1.0), _) => SecurityLevel::Normal,
        (Some(2.0), _) => SecurityLevel::High,
        (_, Some("low")) => SecurityLevel::Low,
        (_, Some("normal")) => SecurityLevel::Normal,
        (_, Some("high")) => SecurityLevel::High,
        _ => {
            return Err(ClientError::InvalidArgument(
                "`securityLevel` must be SecurityLevel.Low, Normal or High".into(),
            ))
        }
    };
    Ok(level.into())
}

fn prev_session(opts: &JsValue) -> Result<String, ClientError> {
    match js::opt_string(opts, "prevSessionId")? {
        None => Ok(String::new()),
        Some(s) if s.is_empty() => Ok(String::new()),
        Some(s) => parse_uuid(&s).map(|u| uuid_string(&u)).ok_or_else(|| {
            ClientError::InvalidArgument("`prevSessionId` must be a session uuid".into())
        }),
    }
}

fn abort_watch(opts: &JsValue) -> Result<Option<AbortWatch>, ClientError> {
    Ok(js::opt_signal(opts, "signal")?.map(AbortWatch::new))
}

/// What `login` / `loginLocal` need: where to connect, who logs in, the previous session, the
/// signal.
type LoginCall = (ConnectParams, Credentials, String, Option<AbortWatch>);

/// The options `login` and `loginLocal` share.
fn connect_options(
    opts: &JsValue,
    mode: ConnectMode,
    host: String,
    credentials: Credentials,
) -> Result<LoginCall, ClientError> {
    let params = ConnectParams {
        mode,
        host,
        port: js::opt_uint(opts, "port", u32::from(u16::MAX))?.unwrap_or(0) as u16,
        level: security_level(opts)?,
        timeout_ms: js::opt_uint(opts, "timeoutMs", u32::MAX)?.unwrap_or(0),
    };
    Ok((params, credentials, prev_session(opts)?, abort_watch(opts)?))
}

fn rejected(e: ClientError) -> Promise {
    Promise::reject(&js_err(e))
}

/// `onProgress` and `signal` of an operation's options.
fn watch(opts: &JsValue, what: &str) -> Result<Watch, ClientError> {
    let (on_progress, abort) = js_ops::watch(opts, what)?;
    Ok(Watch { on_progress, abort })
}

/// The JavaScript value an operation resolves with; `xml`: VM list entries carry their
/// documents.
fn answer(answer: &Answer, xml: bool) -> JsValue {
    match answer {
        Answer::Task { task_id, reply } => js::task_result(task_id, reply),
        Answer::HostInfo {
            info,
            product_version,
            host,
        } => js_ops::host_info(info, host, product_version),
        Answer::VmList(list) => js_ops::vm_list(list, xml),
        Answer::VmState { uuid, info, xml } => js_ops::vm_state(uuid, info, xml),
        Answer::Done => JsValue::UNDEFINED,
        Answer::Reply(view) => js_ops::reply_view(view),
    }
}

/// What a VM operation builds from its uuid and options.
type BuildVm = fn(&str, &JsValue) -> Result<VmRequest, ClientError>;

/// A connection to one Parallels Service through prl-proxy (the SDK's server handle).
#[wasm_bindgen]
pub struct Server {
    client: Client,
}

#[wasm_bindgen]
impl Server {
    /// `new Server({ proxyUrl, ticket?, autoRestore? })`.
    #[wasm_bindgen(constructor)]
    pub fn new(opts: JsValue) -> Result<Server, JsValue> {
        Self::from_options(&opts).map_err(js_err)
    }

    fn from_options(opts: &JsValue) -> Result<Server, ClientError> {
        js::expect_object(opts, "options", false)?;
        let proxy_url = js::req_string(opts, "proxyUrl")?;
        // The URL parser the WebSocket will use: a malformed URL fails here, not at login.
        let parsed = web_sys::Url::new(&proxy_url).ok();
        let well_formed = parsed.as_ref().is_some_and(|u| {
            matches!(u.protocol().as_str(), "ws:" | "wss:") && !u.hostname().is_empty()
        }) && !proxy_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
        if !well_formed || !(proxy_url.starts_with("ws://") || proxy_url.starts_with("wss://")) {
            return Err(ClientError::InvalidArgument(
                "`proxyUrl` must be a well-formed ws:// or wss:// url".into(),
            ));
        }
        let ticket_value = js::field(opts, "ticket");
        let ticket = if ticket_value.is_null_or_undefined() {
            TicketSource::None
        } else if let Some(t) = ticket_value.as_string() {
            TicketSource::Fixed(Zeroizing::new(t))
        } else if let Some(f) = ticket_value.dyn_ref::<Function>() {
            TicketSource::Provider(f.clone())
        } else {
            return Err(ClientError::InvalidArgument(
                "`ticket` must be a string or a function returning one".into(),
            ));
        };
        let auto_restore = js::opt_bool(opts, "autoRestore")?.unwrap_or(true);
        let target = EventTarget::new()
            .map_err(|_| ClientError::InvalidArgument("EventTarget is unavailable".into()))?;
        let state = ClientState::new(
            Options {
                proxy_url,
                ticket,
                auto_restore,
            },
            target,
        );
        Ok(Server {
            client: Client::new(state),
        })
    }

    /// Log in to `host` with user name and password (`PrlSrv_LoginEx`).
    pub fn login(&self, opts: JsValue) -> Promise {
        let parsed = (|| -> Result<_, ClientError> {
            js::expect_object(&opts, "login options", false)?;
            let host = js::req_string(&opts, "host")?;
            if host.is_empty() {
                return Err(ClientError::InvalidArgument(
                    "`host` must not be empty".into(),
                ));
            }
            let user = Zeroizing::new(js::req_string(&opts, "user")?);
            let password = Password::new(js::req_string(&opts, "password")?);
            let credentials = Credentials::Remote { user, password };
            connect_options(&opts, ConnectMode::Remote, host, credentials)
        })();
        self.log_in(parsed)
    }

    /// Log in to the service co-located with the proxy as the proxy's OS user
    /// (`PrlSrv_LoginLocal`); refused unless the proxy enables it.
    #[wasm_bindgen(js_name = loginLocal)]
    pub fn login_local(&self, opts: JsValue) -> Promise {
        let parsed = js::expect_object(&opts, "loginLocal options", true).and_then(|()| {
            connect_options(&opts, ConnectMode::Local, String::new(), Credentials::Local)
        });
        self.log_in(parsed)
    }

    /// The promise of `login` / `loginLocal`.
    fn log_in(&self, parsed: Result<LoginCall, ClientError>) -> Promise {
        let (params, credentials, prev, abort) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        let client = self.client.clone();
        future_to_promise(async move {
            client::login(client, params, credentials, prev, abort)
                .await
                .map(|(r, restored)| js::login_response(&r, restored))
                .map_err(js_err)
        })
    }

    /// Log off (`PrlSrv_Logoff`); zeroizes the held credentials.
    pub fn logoff(&self) -> Promise {
        let client = self.client.clone();
        future_to_promise(async move {
            client::logoff(client)
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(js_err)
        })
    }

    /// Attach to a task of a lost session (`PrlSrv_AttachToLostTask`); resolves with the
    /// task's final result. `opts.onProgress(detail)` receives its progress events.
    #[wasm_bindgen(js_name = attachToLostTask)]
    pub fn attach_to_lost_task(&self, task_id: JsValue, opts: JsValue) -> Promise {
        let parsed = (|| -> Result<_, ClientError> {
            let task_id = task_id
                .as_string()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ClientError::InvalidArgument("`taskId` must be a string".into()))?;
            Ok((
                Call::Attach { task_id },
                watch(&opts, "attachToLostTask options")?,
            ))
        })();
        self.operation(parsed, false)
    }

    /// The promise of an operation after login whose arguments were read into `parsed`.
    fn operation(&self, parsed: Result<(Call, Watch), ClientError>, xml: bool) -> Promise {
        let (call, watch) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        let client = self.client.clone();
        future_to_promise(async move {
            client::call(client, call, watch)
                .await
                .map(|a| answer(&a, xml))
                .map_err(js_err)
        })
    }

    /// The host's hardware and OS (`PrlSrv_GetSrvConfig`, command 2051), with the product
    /// version and host the login gave. `opts`: `{ signal?, onProgress? }`.
    #[wasm_bindgen(js_name = getHostInfo)]
    pub fn get_host_info(&self, opts: JsValue) -> Promise {
        let parsed = watch(&opts, "getHostInfo options").map(|w| (Call::HostInfo, w));
        self.operation(parsed, false)
    }

    /// The VMs (`PrlSrv_GetVmListEx`, command 2029). `opts`: `{ flags?, xml?, signal?,
    /// onProgress? }`.
    #[wasm_bindgen(js_name = getVmList)]
    pub fn get_vm_list(&self, opts: JsValue) -> Promise {
        let parsed = watch(&opts, "getVmList options").and_then(|w| {
            let flags = js::opt_uint(&opts, "flags", u32::MAX)?.unwrap_or(0);
            let xml = js::opt_bool(&opts, "xml")?.unwrap_or(false);
            Ok(((Call::VmList { flags }, w), xml))
        });
        match parsed {
            Ok((p, xml)) => self.operation(Ok(p), xml),
            Err(e) => rejected(e),
        }
    }

    /// A VM's state (`PrlVm_GetState`, command 2062). `opts`: `{ signal?, onProgress? }`.
    #[wasm_bindgen(js_name = getVmState)]
    pub fn get_vm_state(&self, uuid: JsValue, opts: JsValue) -> Promise {
        let parsed = js_ops::vm_uuid(&uuid)
            .and_then(|uuid| Ok((Call::VmState { uuid }, watch(&opts, "getVmState options")?)));
        self.operation(parsed, false)
    }

    /// A power operation: reads the uuid and the options, sends the request `build` makes.
    fn power(&self, op: Op, uuid: &JsValue, opts: &JsValue, build: BuildVm) -> Promise {
        let parsed = js_ops::vm_uuid(uuid).and_then(|u| {
            let w = watch(opts, "options")?;
            let request = build(&u, opts)?;
            Ok((Call::Power { op, request }, w))
        });
        self.operation(parsed, false)
    }

    /// `PrlVm_Start` (1001), or `PrlVm_StartEx` (1036) with `opts.mode` / `opts.reserved`.
    #[wasm_bindgen(js_name = startVm)]
    pub fn start_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::StartVm, &uuid, &opts, js_ops::start_request)
    }

    /// `PrlVm_Stop(graceful)` (1002; default graceful), or `PrlVm_StopEx(mode, flags)`.
    #[wasm_bindgen(js_name = stopVm)]
    pub fn stop_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::StopVm, &uuid, &opts, js_ops::stop_request)
    }

    /// `PrlVm_Pause` (1007).
    #[wasm_bindgen(js_name = pauseVm)]
    pub fn pause_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::PauseVm, &uuid, &opts, js_ops::pause_request)
    }

    /// `PrlVm_Resume`: a start (1001), as the SDK sends it.
    #[wasm_bindgen(js_name = resumeVm)]
    pub fn resume_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::ResumeVm, &uuid, &opts, |u, _| Ok(VmRequest::resume(u)))
    }

    /// `PrlVm_Suspend` (1008).
    #[wasm_bindgen(js_name = suspendVm)]
    pub fn suspend_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::SuspendVm, &uuid, &opts, |u, _| {
            Ok(VmRequest::suspend(u))
        })
    }

    /// `PrlVm_Reset` (1006).
    #[wasm_bindgen(js_name = resetVm)]
    pub fn reset_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::ResetVm, &uuid, &opts, |u, _| Ok(VmRequest::reset(u)))
    }

    /// `PrlVm_Restart`: restart the guest (1039).
    #[wasm_bindgen(js_name = restartVm)]
    pub fn restart_vm(&self, uuid: JsValue, opts: JsValue) -> Promise {
        self.power(Op::RestartVm, &uuid, &opts, |u, _| {
            Ok(VmRequest::restart(u))
        })
    }

    /// Any client → service command the core can describe: `packageType`, `params` (`[{ name,
    /// type, value }]` after the two common ones) and `opts.flags`; resolves with the reply.
    /// `opts`: `{ flags?, signal?, onProgress? }`.
    pub fn request(&self, package_type: JsValue, params: JsValue, opts: JsValue) -> Promise {
        let parsed = watch(&opts, "request options").and_then(|w| {
            let spec = js_ops::request_spec(&package_type, &params, &opts)?;
            Ok((Call::Request(spec), w))
        });
        self.operation(parsed, false)
    }

    /// `'disconnected' | 'connecting' | 'connected' | 'unstable' | 'restoring' | 'closed'`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.client.borrow().phase().as_str().to_owned()
    }

    /// The session UUID of the current login (`{...}`), if logged in.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> Option<String> {
        self.client.borrow().session_id()
    }

    /// Listen for `statechange`, `event` or `restored` (`CustomEvent`s; data in `detail`).
    #[wasm_bindgen(js_name = addEventListener)]
    pub fn add_event_listener(
        &self,
        kind: &str,
        listener: &Function,
        options: JsValue,
    ) -> Result<(), JsValue> {
        check_event_type(kind)?;
        let target = self.client.borrow().target().clone();
        // The DOM takes `undefined`, a boolean (capture) or an options object here; web-sys
        // types only the object form, and the value is handed to the DOM unchanged.
        target.add_event_listener_with_callback_and_add_event_listener_options(
            kind,
            listener,
            options.unchecked_ref(),
        )
    }

    /// Remove a listener added with `addEventListener` (the same `capture` flag, as a boolean
    /// or in an options object, as the DOM's `removeEventListener`).
    #[wasm_bindgen(js_name = removeEventListener)]
    pub fn remove_event_listener(
        &self,
        kind: &str,
        listener: &Function,
        options: JsValue,
    ) -> Result<(), JsValue> {
        check_event_type(kind)?;
        let target = self.client.borrow().target().clone();
        // As in `addEventListener`: the value goes to the DOM unchanged.
        target.remove_event_listener_with_callback_and_event_listener_options(
            kind,
            listener,
            options.unchecked_ref(),
        )
    }
}

fn check_event_type(kind: &str) -> Result<(), JsValue> {
    if EVENT_TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(js_err(ClientError::InvalidArgument(format!(
            "unknown event type \"{kind}\"; expected statechange, event, restored, \
             vmstatechange, vmadded, vmremoved or vmconfigchange"
        ))))
    }
}

impl Drop for Server {
    /// `free()`: closes the connection, fails pending calls, zeroizes credentials.
    fn drop(&mut self) {
        client::shutdown(&self.client);
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("state", &self.client.borrow().phase())
            .finish()
    }
}

/// Every `kind` a `ParallelsError` can carry (for the curated `ErrorKind` type and tests).
///
/// An array built in place: a `Vec<String>` return costs a kilobyte of WASM glue.
#[wasm_bindgen(js_name = errorKinds)]
pub fn error_kinds() -> js_sys::Array {
    error::ERROR_KINDS
        .iter()
        .map(|k| JsValue::from_str(k))
        .collect()
}
