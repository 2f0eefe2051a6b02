//! JavaScript values of the host and VM operations: their options (read into the core's
//! requests, checked as the SDK checks them before sending) and their results and events
//! (plain objects built from the core's parsed replies).

use js_sys::{Array, Object};
use prl_protocol::codes::{flags, VmState};
use prl_protocol::commands::{
    HostInfo, ReplyView, RequestSpec, SpecParam, SpecValue, VmEvent, VmEventKind, VmInfo,
    VmRequest, VmSummary, MAX_SPEC_PARAMS,
};
use prl_protocol::event::Event;
use prl_protocol::ErrorCode;
use wasm_bindgen::{JsCast, JsValue};

use crate::abort::AbortWatch;
use crate::error::ClientError;
use crate::js::{self, set, set_num, set_str};

fn invalid(msg: impl Into<String>) -> ClientError {
    ClientError::InvalidArgument(msg.into())
}

// ---- options -----------------------------------------------------------------------------

/// `onProgress` and `signal` of an options object (`undefined` / `null` for no options).
pub fn watch(
    opts: &JsValue,
    what: &str,
) -> Result<(Option<js_sys::Function>, Option<AbortWatch>), ClientError> {
    js::expect_object(opts, what, true)?;
    Ok((
        js::opt_function(opts, "onProgress")?,
        js::opt_signal(opts, "signal")?.map(AbortWatch::new),
    ))
}

/// A VM uuid argument: a non-empty string, sent exactly as given (the service looks it up as
/// the VM list wrote it, `{lower-case}`).
pub fn vm_uuid(value: &JsValue) -> Result<String, ClientError> {
    value
        .as_string()
        .filter(|u| !u.is_empty() && u.len() <= 256 && !u.chars().any(char::is_control))
        .ok_or_else(|| invalid("`uuid` must be a VM uuid string, as getVmList gives it"))
}

/// `startVm(uuid, { mode?, reserved? })`: `PrlVm_Start`, or `PrlVm_StartEx(mode, reserved)`
/// when either is given (the SDK refuses a mode above `PSM_VM_START_FOR_REPAIR`).
pub fn start_request(uuid: &str, opts: &JsValue) -> Result<VmRequest, ClientError> {
    let mode = js::opt_uint(opts, "mode", flags::PSM_VM_START_FOR_REPAIR)?;
    let reserved = js::opt_uint(opts, "reserved", u32::MAX)?;
    Ok(match (mode, reserved) {
        (None, None) => VmRequest::start(uuid),
        (mode, reserved) => VmRequest::start_ex(
            uuid,
            mode.unwrap_or(flags::PSM_VM_START),
            reserved.unwrap_or(0),
        ),
    })
}

/// `stopVm(uuid, { graceful?, mode?, flags? })`: `PrlVm_Stop(h, graceful)` (default graceful,
/// as `prlctl stop`), or `PrlVm_StopEx(mode, flags)` when `mode` is given (the SDK refuses a
/// mode above `PSM_ACPI`).
pub fn stop_request(uuid: &str, opts: &JsValue) -> Result<VmRequest, ClientError> {
    let graceful = js::opt_bool(opts, "graceful")?;
    let mode = js::opt_uint(opts, "mode", flags::PSM_ACPI)?;
    let stop_flags = js::opt_uint(opts, "flags", u32::MAX)?;
    match (graceful, mode, stop_flags) {
        (Some(_), Some(_), _) => Err(invalid("give `graceful` or `mode`, not both")),
        (_, None, Some(_)) => Err(invalid("`flags` needs `mode`")),
        (graceful, None, None) => Ok(VmRequest::stop(uuid, graceful.unwrap_or(true))),
        (None, Some(mode), stop_flags) => {
            Ok(VmRequest::stop_ex(uuid, mode, stop_flags.unwrap_or(0)))
        }
    }
}

/// `pauseVm(uuid, { acpi? })`: `PrlVm_Pause(h, acpi)` (the service ignores `acpi`).
pub fn pause_request(uuid: &str, opts: &JsValue) -> Result<VmRequest, ClientError> {
    Ok(VmRequest::pause(
        uuid,
        js::opt_bool(opts, "acpi")?.unwrap_or(false),
    ))
}

/// A JavaScript integer in `min..=max`: a number (a safe integer: beyond 2^53 a number is no
/// longer exact), or a bigint for the 64-bit types.
fn integer(value: &JsValue, min: f64, max: f64) -> Option<f64> {
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 && f >= min && f <= max).then_some(f)
}

/// An `int64` / `uInt64` value: a bigint or a safe integer, in the type's range.
fn int64(value: &JsValue, signed: bool) -> Option<SpecValue> {
    if value.is_bigint() {
        return if signed {
            i64::try_from(value.clone()).ok().map(SpecValue::Int64)
        } else {
            u64::try_from(value.clone()).ok().map(SpecValue::UInt64)
        };
    }
    let min = if signed {
        -9_007_199_254_740_991.0
    } else {
        0.0
    };
    let f = integer(value, min, 9_007_199_254_740_991.0)?;
    Some(if signed {
        SpecValue::Int64(f as i64)
    } else {
        SpecValue::UInt64(f as u64)
    })
}

/// One `{ name, type, value }` of `request`'s parameters.
fn spec_param(i: usize, p: &JsValue) -> Result<SpecParam, ClientError> {
    let bad = |what: &str| invalid(format!("`params[{i}]` {what}"));
    if !p.is_object() {
        return Err(bad("must be { name, type, value }"));
    }
    let name = js::field(p, "name")
        .as_string()
        .ok_or_else(|| bad("needs a string `name`"))?;
    let kind = js::field(p, "type")
        .as_string()
        .ok_or_else(|| bad("needs a string `type`"))?;
    let v = js::field(p, "value");
    let range = || bad(&format!("`value` must be an integer in {kind}'s range"));
    let value =
        match kind.as_str() {
            "string" => SpecValue::String(
                v.as_string()
                    .ok_or_else(|| bad("`value` must be a string"))?,
            ),
            "unsignedInt" => SpecValue::UnsignedInt(
                integer(&v, 0.0, f64::from(u32::MAX)).ok_or_else(range)? as u32,
            ),
            "integer" => SpecValue::Integer(
                integer(&v, f64::from(i32::MIN), f64::from(i32::MAX)).ok_or_else(range)? as i32,
            ),
            "boolean" => SpecValue::Boolean(
                v.as_bool()
                    .ok_or_else(|| bad("`value` must be a boolean"))?,
            ),
            "int64" => int64(&v, true).ok_or_else(range)?,
            "uInt64" => int64(&v, false).ok_or_else(range)?,
            "stringList" => {
                let not_strings = || bad("`value` must be an array of strings");
                let list = v.dyn_into::<Array>().map_err(|_| not_strings())?;
                let mut items = Vec::with_capacity(list.length() as usize);
                for item in list.iter() {
                    items.push(item.as_string().ok_or_else(not_strings)?);
                }
                SpecValue::StringList(items)
            }
            _ => return Err(bad(
                "`type` must be string, unsignedInt, integer, boolean, int64, uInt64 or stringList",
            )),
        };
    Ok(SpecParam::new(name, value))
}

/// `request(packageType, params, { flags? })` as the core's description, checked.
pub fn request_spec(
    package_type: &JsValue,
    params: &JsValue,
    opts: &JsValue,
) -> Result<RequestSpec, ClientError> {
    let package_type = integer(package_type, 0.0, f64::from(u32::MAX))
        .ok_or_else(|| invalid("`packageType` must be a command number"))?
        as u32;
    let mut list = Vec::new();
    if !params.is_null_or_undefined() {
        let given = params
            .dyn_ref::<Array>()
            .ok_or_else(|| invalid("`params` must be an array of { name, type, value }"))?;
        if given.length() as usize > MAX_SPEC_PARAMS {
            return Err(invalid(format!(
                "`params` holds {} parameters, the limit is {MAX_SPEC_PARAMS}",
                given.length()
            )));
        }
        for (i, p) in given.iter().enumerate() {
            list.push(spec_param(i, &p)?);
        }
    }
    let spec = RequestSpec {
        package_type,
        flags: js::opt_uint(opts, "flags", u32::MAX)?.unwrap_or(0),
        params: list,
    };
    spec.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(spec)
}

// ---- results -----------------------------------------------------------------------------

fn state_fields(o: &Object, state: VmState) {
    set_str(o, "state", state.name());
    set_num(o, "stateCode", f64::from(state.0));
}

/// The `HostInfo` object; `host` and `product_version` come from the login.
pub fn host_info(info: &HostInfo, host: &str, product_version: &str) -> JsValue {
    let o = Object::new();
    set_num(&o, "cpuCount", f64::from(info.cpu_count));
    set_str(&o, "cpuModel", &info.cpu_model);
    set_num(&o, "cpuSpeedMhz", f64::from(info.cpu_speed_mhz));
    set_num(&o, "ramMb", f64::from(info.ram_mb));
    set_num(&o, "osType", f64::from(info.os_type));
    let version = Object::new();
    set_num(&version, "major", f64::from(info.os_major));
    set_num(&version, "minor", f64::from(info.os_minor));
    set_num(&version, "subMinor", f64::from(info.os_sub_minor));
    set(&o, "osVersion", &version);
    set_str(&o, "osName", &info.os_name);
    set_str(&o, "hostName", &info.host_name);
    set_str(&o, "host", host);
    set_str(&o, "productVersion", product_version);
    set_str(&o, "xml", &info.raw);
    o.into()
}

fn vm_summary(vm: &VmSummary, xml: bool) -> Object {
    let o = Object::new();
    set_str(&o, "uuid", &vm.uuid);
    set_str(&o, "name", &vm.name);
    state_fields(&o, vm.state().unwrap_or(VmState::UNKNOWN));
    set_num(&o, "osType", f64::from(vm.os_type));
    set_num(&o, "osVersion", f64::from(vm.os_version));
    set_num(&o, "cpuCount", f64::from(vm.cpu_count));
    set_num(&o, "ramMb", f64::from(vm.ram_mb));
    set_str(&o, "description", &vm.description);
    set_str(&o, "home", &vm.home);
    set(&o, "isTemplate", &JsValue::from_bool(vm.is_template));
    set_num(&o, "validRc", f64::from(vm.valid_rc.0));
    set_num(&o, "vmType", f64::from(vm.vm_type));
    set_str(&o, "hostName", &vm.host_name);
    if xml {
        set_str(&o, "xml", &vm.raw);
    }
    o
}

/// The `VmSummary` array; `xml`: each entry carries its document (an unreadable entry always
/// does, with `error`).
pub fn vm_list(entries: &[Result<VmSummary, (&'static str, String)>], xml: bool) -> JsValue {
    entries
        .iter()
        .map(|entry| match entry {
            Ok(vm) => vm_summary(vm, xml),
            Err((kind, raw)) => {
                let o = vm_summary(&VmSummary::default(), false);
                set_str(&o, "error", kind);
                set_str(&o, "xml", raw);
                o
            }
        })
        .collect::<Array>()
        .into()
}

/// The `VmStateInfo` object of `getVmState`.
pub fn vm_state(uuid: &str, info: &VmInfo, xml: &str) -> JsValue {
    let o = Object::new();
    set_str(&o, "uuid", uuid);
    state_fields(&o, info.state_or_unknown());
    set(&o, "isInvalid", &JsValue::from_bool(info.is_invalid));
    set_num(&o, "validRc", f64::from(info.valid_rc.0));
    set_num(&o, "additionState", f64::from(info.addition_state));
    set_str(&o, "xml", xml);
    o.into()
}

fn code_fields(o: &Object, code: u32) {
    set_num(o, "code", f64::from(code));
    set_str(o, "codeName", ErrorCode(code).name().unwrap_or(""));
}

/// The `RequestReply` object of `request`.
pub fn reply_view(view: &ReplyView) -> JsValue {
    let o = Object::new();
    code_fields(&o, view.code);
    set_num(&o, "opcode", f64::from(view.opcode));
    let standard: Array = view
        .standard_params
        .iter()
        .map(|p| JsValue::from_str(p))
        .collect();
    set(&o, "standardParams", &standard);
    let params: Array = view
        .params
        .iter()
        .map(|p| {
            let param = Object::new();
            set_str(&param, "name", &p.name);
            set_num(&param, "type", f64::from(p.param_type));
            set_str(&param, "value", &p.value);
            if let Some(items) = &p.items {
                let items: Array = items.iter().map(|i| JsValue::from_str(i)).collect();
                set(&param, "items", &items);
            }
            JsValue::from(param)
        })
        .collect();
    set(&o, "params", &params);
    if let Some(error) = &view.error {
        let e = Object::new();
        code_fields(&e, error.code);
        if let Some(details) = &error.details {
            set_str(&e, "details", details);
        }
        set_str(&e, "xml", &error.xml);
        set(&o, "error", &e);
    }
    set_str(&o, "xml", &view.xml);
    o.into()
}

/// The `Server` event a VM event becomes (`vmstatechange`, `vmconfigchange`, `vmadded`,
/// `vmremoved`) and its detail; `None` for other events (they stay plain `event`s).
pub fn vm_event(event: &Event) -> Option<(&'static str, JsValue)> {
    let VmEvent { vm_uuid, kind } = VmEvent::from_event(event).ok()??;
    let o = Object::new();
    set_str(&o, "uuid", &vm_uuid);
    let name = match kind {
        VmEventKind::StateChanged(state) => {
            state_fields(&o, state);
            "vmstatechange"
        }
        VmEventKind::ConfigChanged => "vmconfigchange",
        VmEventKind::Added => "vmadded",
        VmEventKind::Deleted | VmEventKind::Unregistered => {
            set_str(&o, "reason", kind.name());
            "vmremoved"
        }
        VmEventKind::AdditionStateChanged(_) => return None,
    };
    Some((name, o.into()))
}
