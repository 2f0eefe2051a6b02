//! The successful login reply (`makeLoginResponsePacket`): built by the service side, read by
//! the client as a [`LoginResponse`].

use std::fmt;

use uuid::Uuid;

use super::reply::{response_package, ws_response_event};
use super::request::fresh_event;
use super::{param, CommandError, LostTask};
use crate::codes::{cmd, ErrorCode};
use crate::event::{Event, ParamValue};
use crate::matrices::{FeaturesMatrix, MatrixError, OsesMatrix, ServerMatrices};
use crate::package::{Buffer, Package};

/// What the service reports about itself in a login reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// Host OS version ("Unknown" when empty, like the service).
    pub os_version: String,
    /// Server uuid, `{...}`.
    pub server_uuid: String,
    /// Product version (`VER_FULL_BUILD_NUMBER_STR`).
    pub product_version: String,
    /// Confirmation mode.
    pub confirmation_mode: bool,
    /// `PRL_APPLICATION_MODE` of the service.
    pub app_execute_mode: u32,
    /// Service start time, ms since the epoch.
    pub start_time_ms: u64,
    /// Monotonic start time.
    pub start_time_monotonic: u64,
    /// launchd mode.
    pub launchd_mode: bool,
}

/// The login event of a successful login (`makeLoginResponsePacket`), without the binary OS
/// and features matrices: the service adds those only to a binary reply
/// ([`login_reply_with_matrices`]). Like every `CVmEvent` it has a random issuer id and initial
/// request id (`ids`, called before the reply event's own).
pub fn login_event(
    session_uuid: &str,
    info: &ServerInfo,
    tasks: &[LostTask],
    ids: &mut dyn FnMut() -> Uuid,
) -> Event {
    let mut event = fresh_event(ids);
    let os = if info.os_version.is_empty() {
        "Unknown"
    } else {
        &info.os_version
    };
    event.add_string(param::SESSION_UUID, session_uuid);
    event.add_string(param::OS_VERSION, os);
    event.add_string(param::SERVER_UUID, &info.server_uuid);
    event.add_string(param::PRODUCT_VERSION, &info.product_version);
    event.add_string(
        param::CONFIRMATION_MODE,
        u8::from(info.confirmation_mode).to_string(),
    );
    event.add_string(param::APP_EXECUTE_MODE, info.app_execute_mode.to_string());
    event.add_string(param::START_TIME, info.start_time_ms.to_string());
    event.add_string(
        param::START_TIME_MONOTONIC,
        info.start_time_monotonic.to_string(),
    );
    event.add_string(
        param::IS_LAUNCHD_MODE,
        u8::from(info.launchd_mode).to_string(),
    );
    for task in tasks {
        event.add_cdata(param::TASK_INFO, task.to_cdata());
    }
    event
}

/// The successful login reply: 5003 with two binary events for clients with protocol >= 6.2
/// (`binary_response`), a broadcast response (no receiver uuid, as the service builds it), else
/// a direct 5001 with the login event's XML as a string parameter.
pub fn login_reply(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    login: &Event,
    binary_response: bool,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut response = ws_response_event(request.header.package_type, ErrorCode::SUCCESS, ids);
    if !binary_response {
        response.add_string(param::WS_RESPONSE_LOGIN_EVENT, login.to_xml());
        return response_package(request, sender, reply_uuid, &response);
    }
    let mut body = response.to_binary();
    body.extend_from_slice(&login.to_binary());
    // Built from a QDataStream: a broadcast response, receiverUuid zero (the XML replies are
    // direct responses).
    Package::broadcast_response(
        request,
        cmd::WS_BINARY_RESPONSE,
        reply_uuid,
        sender,
        vec![Buffer::raw(body)],
    )
}

/// The successful login reply exactly as the service sends it (`makeLoginResponsePacket`):
/// for a binary reply (client protocol >= 6.2) the two binary parameters
/// `prl_supported_oses_list` and `prl_features_matrix` are appended to the login event, after
/// everything else (the server info strings and the lost tasks), then the 5003 is built as
/// [`login_reply`] does; an old client's 5001 carries the login event without them. Nothing
/// follows the matrices (the `session_rectrict_event` the SDK looks for is never sent).
pub fn login_reply_with_matrices(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    login: &Event,
    matrices: &ServerMatrices,
    binary_response: bool,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    if !binary_response {
        return login_reply(request, sender, reply_uuid, login, false, ids);
    }
    let mut login = login.clone();
    login.add_binary(param::SUPPORTED_OSES_LIST, matrices.oses.encode());
    login.add_binary(param::FEATURES_MATRIX, matrices.features.encode());
    login_reply(request, sender, reply_uuid, &login, true, ids)
}

/// What a successful login tells the client (`PrlHandleServer::ProcessLoginResponse`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LoginResponse {
    /// The session uuid (= the client's IO connection uuid), `{...}`. A secret.
    pub session_uuid: String,
    /// Server uuid.
    pub server_uuid: String,
    /// Product version.
    pub product_version: String,
    /// Host OS version.
    pub host_os_version: String,
    /// Service start time (ms since the epoch), when reported.
    pub start_time_ms: Option<u64>,
    /// Tasks of the previous session still running.
    pub running_tasks: Vec<LostTask>,
    /// The raw guest OS matrix (`prl_supported_oses_list`), when the reply carries a binary
    /// parameter of that name (a 5001 reply never does); decoded on demand by
    /// [`LoginResponse::supported_oses`], so a client that never asks (the browser package)
    /// carries no decoder. Like the SDK, a login never fails over it.
    pub supported_oses_bytes: Option<Vec<u8>>,
    /// The raw features matrix (`prl_features_matrix`), under the same rule
    /// ([`LoginResponse::features`]).
    pub features_bytes: Option<Vec<u8>>,
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("session_uuid", &"<redacted>")
            .field("server_uuid", &self.server_uuid)
            .field("product_version", &self.product_version)
            .field("host_os_version", &self.host_os_version)
            .field("start_time_ms", &self.start_time_ms)
            .field("running_tasks", &self.running_tasks)
            .field(
                "supported_oses_bytes",
                &self.supported_oses_bytes.as_ref().map(Vec::len),
            )
            .field(
                "features_bytes",
                &self.features_bytes.as_ref().map(Vec::len),
            )
            .finish()
    }
}

impl LoginResponse {
    /// Read the login event.
    pub fn from_event(event: &Event) -> Result<LoginResponse, CommandError> {
        let session_uuid = event
            .string(param::SESSION_UUID)
            .filter(|s| !s.is_empty())
            .ok_or(CommandError::NoSessionUuid)?;
        let get = |name| event.string(name).unwrap_or_default().to_owned();
        let running_tasks = event
            .strings(param::TASK_INFO)
            .into_iter()
            .map(LostTask::from_cdata)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoginResponse {
            session_uuid: session_uuid.to_owned(),
            server_uuid: get(param::SERVER_UUID),
            product_version: get(param::PRODUCT_VERSION),
            host_os_version: get(param::OS_VERSION),
            start_time_ms: event
                .string(param::START_TIME)
                .and_then(|s| s.trim().parse().ok()),
            running_tasks,
            supported_oses_bytes: binary_param(event, param::SUPPORTED_OSES_LIST)
                .map(<[u8]>::to_vec),
            features_bytes: binary_param(event, param::FEATURES_MATRIX).map(<[u8]>::to_vec),
        })
    }

    /// The guest OS matrix, decoded: `None` when the reply had none.
    pub fn supported_oses(&self) -> Option<Result<OsesMatrix, MatrixError>> {
        self.supported_oses_bytes.as_deref().map(OsesMatrix::decode)
    }

    /// The features matrix, decoded: `None` when the reply had none.
    pub fn features(&self) -> Option<Result<FeaturesMatrix, MatrixError>> {
        self.features_bytes.as_deref().map(FeaturesMatrix::decode)
    }
}

/// The bytes of the first parameter named `name` if it is a binary one
/// (`PrlHandleServer::ProcessLoginResponse` looks up the first and skips any other class).
fn binary_param<'a>(event: &'a Event, name: &str) -> Option<&'a [u8]> {
    match &event.param(name)?.value {
        ParamValue::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::commands::{LoginRequest, Password, Reply, PCF_ORIGINAL_CLIENT};
    use crate::event::ParamType;

    fn counter() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn login_request(ids: &mut dyn FnMut() -> Uuid) -> Package {
        LoginRequest {
            user: "u".into(),
            password: Password::new("p"),
            prev_session_uuid: String::new(),
            flags: PCF_ORIGINAL_CLIENT,
        }
        .to_package(Uuid::from_u128(0xa), Uuid::from_u128(0xb), true, ids)
    }

    #[test]
    fn binary_login_reply_ends_with_the_two_matrices() {
        let mut ids = counter();
        let request = login_request(&mut ids);
        let task = LostTask {
            task_id: "{t}".into(),
            task_type: 9001,
            task_params: String::new(),
        };
        let login = login_event("{s}", &ServerInfo::default(), &[task], &mut ids);
        let matrices = ServerMatrices::linux_service(0);
        let package = login_reply_with_matrices(
            &request,
            Uuid::from_u128(0xc),
            Uuid::from_u128(0xd),
            &login,
            &matrices,
            true,
            &mut ids,
        );
        assert_eq!(package.header.package_type, cmd::WS_BINARY_RESPONSE);
        let reply = Reply::parse(&package).unwrap();
        let event = reply.login.as_ref().unwrap();
        // makeLoginResponsePacket's order: the login event's params, then the OS matrix, then
        // the features matrix, and nothing after them.
        let names: Vec<&str> = event.params.iter().map(|p| p.name.as_str()).collect();
        let n = login.params.len();
        assert_eq!(names.len(), n + 2);
        assert_eq!(
            &names[n..],
            [param::SUPPORTED_OSES_LIST, param::FEATURES_MATRIX]
        );
        assert_eq!(event.params[..n], login.params[..]);
        assert_eq!(
            event.params[n].value,
            ParamValue::Binary(matrices.oses.encode())
        );
        assert_eq!(
            event.params[n + 1].value,
            ParamValue::Binary(matrices.features.encode())
        );
        // `CVmBinaryEventParameter(name)` is of type UnsignedInt.
        assert_eq!(event.params[n].param_type, ParamType::UNSIGNED_INT);
        let response = reply.login_response().unwrap();
        assert_eq!(response.supported_oses(), Some(Ok(matrices.oses.clone())));
        assert_eq!(response.features(), Some(Ok(matrices.features.clone())));
        assert_eq!(response.running_tasks.len(), 1);
    }

    #[test]
    fn old_clients_get_no_matrices() {
        let mut ids = counter();
        let request = login_request(&mut ids);
        let login = login_event("{s}", &ServerInfo::default(), &[], &mut ids);
        let package = login_reply_with_matrices(
            &request,
            Uuid::from_u128(0xc),
            Uuid::from_u128(0xd),
            &login,
            &ServerMatrices::linux_service(0),
            false,
            &mut ids,
        );
        assert_eq!(package.header.package_type, cmd::WS_RESPONSE);
        let reply = Reply::parse(&package).unwrap();
        assert_eq!(reply.login.as_ref(), Some(&login));
        let response = reply.login_response().unwrap();
        assert_eq!(response.supported_oses(), None);
        assert_eq!(response.features(), None);
    }

    #[test]
    fn unreadable_matrices_do_not_fail_the_login() {
        let mut login = login_event("{s}", &ServerInfo::default(), &[], &mut counter());
        // Truncated OS matrix; a features matrix that is a string, not a binary parameter.
        login.add_binary(param::SUPPORTED_OSES_LIST, vec![0, 0, 0, 1, 9]);
        login.add_string(param::FEATURES_MATRIX, "1 2 3");
        let (back, _) = Event::decode_binary(&login.to_binary()).unwrap();
        let response = LoginResponse::from_event(&back).unwrap();
        assert_eq!(response.session_uuid, "{s}");
        assert_eq!(
            response.supported_oses().unwrap().unwrap_err().kind(),
            "truncated"
        );
        assert_eq!(response.features(), None);
        // Only the first parameter of a name counts, as in CVmEvent::getEventParameter.
        let mut login = login_event("{s}", &ServerInfo::default(), &[], &mut counter());
        login.add_string(param::FEATURES_MATRIX, "");
        login.add_binary(param::FEATURES_MATRIX, vec![0, 0, 0, 0]);
        assert_eq!(LoginResponse::from_event(&login).unwrap().features(), None);
        // The Debug form shows the matrices but not the session.
        let mut login = login_event("{secret}", &ServerInfo::default(), &[], &mut counter());
        login.add_binary(param::FEATURES_MATRIX, vec![0, 0, 0, 1, 0, 0, 0, 12]);
        let d = format!("{:?}", LoginResponse::from_event(&login).unwrap());
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("features_bytes: Some(8)"), "{d}");
    }
}
