//! Conversions between JavaScript values and the client's Rust types.
//!
//! Objects are built with `Reflect::set` (no serde layer needed for these few flat shapes).

use js_sys::{Array, Function, Object, Reflect};
use prl_protocol::commands::{LoginResponse, LostTask, Reply};
use prl_protocol::event::{Event, ParamValue};
use prl_protocol::{codes, uuid_string, Uuid};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortSignal, CustomEvent, CustomEventInit, EventTarget};

use crate::error::ClientError;

#[wasm_bindgen(module = "/npm/parallels-error.js")]
extern "C" {
    /// The JavaScript `ParallelsError` class (extends `Error`), defined in
    /// `npm/parallels-error.js` so `instanceof` works for every error the package throws.
    #[wasm_bindgen(js_name = ParallelsError)]
    pub type JsParallelsError;

    #[wasm_bindgen(constructor, js_class = "ParallelsError")]
    fn new(
        message: &str,
        code: u32,
        code_name: &str,
        kind: &str,
        extra: &JsValue,
    ) -> JsParallelsError;
}

/// The `ParallelsError` for `e`.
pub fn to_js_error(e: &ClientError) -> JsValue {
    JsParallelsError::new(
        &e.to_string(),
        e.code_value(),
        e.code_name(),
        e.kind(),
        &error_extra(e),
    )
    .into()
}

/// The fields some kinds add: `details` (the service's text), `cancelConfirmed`, `cancelCode`,
/// `cancelCodeName` (what the service made of a cancel).
fn error_extra(e: &ClientError) -> JsValue {
    let o = Object::new();
    match e {
        ClientError::Service {
            details: Some(d), ..
        } => set_str(&o, "details", d),
        ClientError::Canceled {
            confirmed,
            cancel_code,
            ..
        } => {
            set(&o, "cancelConfirmed", &JsValue::from_bool(*confirmed));
            if let Some(code) = cancel_code {
                set_num(&o, "cancelCode", f64::from(code.0));
                set_str(&o, "cancelCodeName", code.name().unwrap_or(""));
            }
        }
        _ => return JsValue::UNDEFINED,
    }
    o.into()
}

pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    // Defining a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

pub(crate) fn set_str(obj: &Object, key: &str, value: &str) {
    set(obj, key, &JsValue::from_str(value));
}

pub(crate) fn set_num(obj: &Object, key: &str, value: f64) {
    set(obj, key, &JsValue::from_f64(value));
}

/// `{ state, previous }`, with `error` when one caused the change (restore gave up).
pub fn state_detail(state: &str, previous: &str, error: Option<&ClientError>) -> JsValue {
    let o = Object::new();
    set_str(&o, "state", state);
    set_str(&o, "previous", previous);
    if let Some(error) = error {
        set(&o, "error", &to_js_error(error));
    }
    o.into()
}

fn lost_task(task: &LostTask) -> JsValue {
    let o = Object::new();
    set_str(&o, "taskId", &task.task_id);
    set_num(&o, "taskType", f64::from(task.task_type));
    set_str(&o, "taskParams", &task.task_params);
    o.into()
}

fn lost_tasks(tasks: &[LostTask]) -> Array {
    tasks.iter().map(lost_task).collect()
}

/// The `LoginResponse` object.
pub fn login_response(r: &LoginResponse, restored: bool) -> JsValue {
    let o = Object::new();
    set_str(&o, "sessionUuid", &r.session_uuid);
    set_str(&o, "serverUuid", &r.server_uuid);
    set_str(&o, "productVersion", &r.product_version);
    set_str(&o, "hostOsVersion", &r.host_os_version);
    set(&o, "runningTasks", &lost_tasks(&r.running_tasks));
    set(&o, "restored", &JsValue::from_bool(restored));
    o.into()
}

/// `{ mode, sessionId, previousSessionId, lostTasks }` of a `restored` event.
pub fn restored_detail(mode: &str, session: &str, previous: &str, tasks: &[LostTask]) -> JsValue {
    let o = Object::new();
    set_str(&o, "mode", mode);
    set_str(&o, "sessionId", session);
    set_str(&o, "previousSessionId", previous);
    set(&o, "lostTasks", &lost_tasks(tasks));
    o.into()
}

/// An `event` detail for job progress.
pub fn progress_detail(job: &Uuid, percent: u32) -> JsValue {
    let o = Object::new();
    set_num(&o, "packageType", f64::from(codes::cmd::VM_EVENT));
    set_num(
        &o,
        "eventType",
        f64::from(codes::event_type::JOB_PROGRESS_CHANGED),
    );
    set_str(&o, "jobId", &uuid_string(job));
    set_num(&o, "percent", f64::from(percent));
    o.into()
}

/// An `event` detail for any other service package.
pub fn service_event_detail(package_type: u32, event: Option<&Event>) -> JsValue {
    let o = Object::new();
    set_num(&o, "packageType", f64::from(package_type));
    if let Some(e) = event {
        set_num(&o, "eventType", f64::from(e.event_type));
        set_num(&o, "code", f64::from(e.code));
        let params = Object::new();
        for p in &e.params {
            match &p.value {
                ParamValue::List(items) => {
                    let list: Array = items.iter().map(|i| JsValue::from_str(i)).collect();
                    set(&params, &p.name, &list);
                }
                _ => {
                    if let Some(text) = p.as_str() {
                        set_str(&params, &p.name, text);
                    }
                }
            }
        }
        set(&o, "params", &params);
    }
    o.into()
}

/// The `TaskResult` object of an attached task's final reply.
pub fn task_result(task_id: &str, reply: &Reply) -> JsValue {
    let o = Object::new();
    set_str(&o, "taskId", task_id);
    set_num(&o, "opcode", f64::from(reply.opcode));
    set_num(&o, "code", f64::from(reply.code.0));
    let params: Array = reply
        .standard_params()
        .into_iter()
        .map(JsValue::from_str)
        .collect();
    set(&o, "params", &params);
    o.into()
}

/// Dispatches `CustomEvent(kind, { detail })` on `target`.
pub fn dispatch(target: &EventTarget, kind: &str, detail: &JsValue) {
    let init = CustomEventInit::new();
    init.set_detail(detail);
    if let Ok(event) = CustomEvent::new_with_event_init_dict(kind, &init) {
        // Exceptions thrown by listeners are reported by the browser, not returned here.
        let _ = target.dispatch_event(&event);
    }
}

// ---- reading options -------------------------------------------------------------------

fn invalid(msg: String) -> ClientError {
    ClientError::InvalidArgument(msg)
}

/// `obj[key]`, `undefined` when `obj` is not an object.
pub fn field(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// Checks that `opts` is an object (or, when `optional`, undefined / null).
pub fn expect_object(opts: &JsValue, what: &str, optional: bool) -> Result<(), ClientError> {
    if opts.is_object() || (optional && opts.is_null_or_undefined()) {
        Ok(())
    } else {
        Err(invalid(format!("{what} must be an object")))
    }
}

/// An optional string option.
pub fn opt_string(obj: &JsValue, key: &str) -> Result<Option<String>, ClientError> {
    let v = field(obj, key);
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid(format!("`{key}` must be a string")))
}

/// A required string option.
pub fn req_string(obj: &JsValue, key: &str) -> Result<String, ClientError> {
    opt_string(obj, key)?.ok_or_else(|| invalid(format!("`{key}` is required")))
}

/// An optional integer option in `0..=max`.
pub fn opt_uint(obj: &JsValue, key: &str, max: u32) -> Result<Option<u32>, ClientError> {
    let v = field(obj, key);
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= 0.0 && n <= f64::from(max) => Ok(Some(n as u32)),
        _ => Err(invalid(format!(
            "`{key}` must be an integer from 0 to {max}"
        ))),
    }
}

/// An optional boolean option.
pub fn opt_bool(obj: &JsValue, key: &str) -> Result<Option<bool>, ClientError> {
    let v = field(obj, key);
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    v.as_bool()
        .map(Some)
        .ok_or_else(|| invalid(format!("`{key}` must be a boolean")))
}

/// An optional `AbortSignal`.
pub fn opt_signal(obj: &JsValue, key: &str) -> Result<Option<AbortSignal>, ClientError> {
    let v = field(obj, key);
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    v.dyn_into::<AbortSignal>()
        .map(Some)
        .map_err(|_| invalid(format!("`{key}` must be an AbortSignal")))
}

/// An optional function.
pub fn opt_function(obj: &JsValue, key: &str) -> Result<Option<Function>, ClientError> {
    let v = field(obj, key);
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    v.dyn_into::<Function>()
        .map(Some)
        .map_err(|_| invalid(format!("`{key}` must be a function")))
}
