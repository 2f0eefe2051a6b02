//! The guest OS matrix and the features matrix in the simulator's login replies, as
//! `CDspUserHelper::makeLoginResponsePacket` sends them: two binary params at the end of the
//! login event of a 5003, none in an old client's 5001.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{param, LoginRequest, Password, Reply, PCF_ORIGINAL_CLIENT};
use prl_protocol::event::{Event, ParamType, ParamValue};
use prl_protocol::handshake::{ProtocolVersion, SecurityLevel};
use prl_protocol::matrices::{feature, guest_type, FeaturesMatrix, OsesMatrix};
use prl_protocol::{ErrorCode, Uuid};
use prl_sim::{Mode, UserDb};

/// The bytes of the binary param `name`, checking it is one (`CVmBinaryEventParameter`:
/// class 2, type UnsignedInt).
fn binary<'a>(event: &'a Event, name: &str) -> &'a [u8] {
    let p = event.param(name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(p.param_type, ParamType::UNSIGNED_INT, "{name}");
    match &p.value {
        ParamValue::Binary(bytes) => bytes,
        other => panic!("{name} is not binary: {other:?}"),
    }
}

/// The last two params of the login event are the matrices, in the service's order.
fn matrices_of(reply: &Reply) -> (OsesMatrix, FeaturesMatrix) {
    let event = reply.login.as_ref().unwrap();
    let names: Vec<&str> = event.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names[names.len() - 2..],
        [param::SUPPORTED_OSES_LIST, param::FEATURES_MATRIX],
        "{names:?}"
    );
    // Everything else comes first: the session, then the server info strings.
    assert_eq!(names[0], param::SESSION_UUID);
    let oses = OsesMatrix::decode(binary(event, param::SUPPORTED_OSES_LIST)).unwrap();
    let features = FeaturesMatrix::decode(binary(event, param::FEATURES_MATRIX)).unwrap();
    // The client-side parse exposes the same.
    let login = reply.login_response().unwrap();
    assert_eq!(login.supported_oses(), Some(Ok(oses.clone())));
    assert_eq!(login.features(), Some(Ok(features.clone())));
    (oses, features)
}

#[tokio::test]
async fn binary_login_reply_ends_with_the_os_and_features_matrices() {
    let sim = start(config()).await;
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let p = c.login_package(USER, PASSWORD, "");
    let job = p.header.uuid;
    c.conn.send(p).await.unwrap();
    let raw = c.next().await.unwrap().unwrap();
    assert_eq!(raw.header.package_type, cmd::WS_BINARY_RESPONSE);
    assert!(is_reply_to(&raw, job));
    let reply = Reply::parse(&raw).unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    let (oses, features) = matrices_of(&reply);

    // A Linux PAM_SERVER service: CGuestOsesHelper's nine types in its order, server defaults.
    let types: Vec<u8> = oses.types.iter().map(|t| t.os_type).collect();
    assert_eq!(
        types,
        [
            guest_type::WINDOWS,
            guest_type::LINUX,
            guest_type::FREEBSD,
            guest_type::CHROMEOS,
            guest_type::OS2,
            guest_type::MSDOS,
            guest_type::NETWARE,
            guest_type::SOLARIS,
            guest_type::OTHER,
        ]
    );
    let linux = oses.guest(guest_type::LINUX).unwrap();
    assert_eq!(linux.versions.len(), 30);
    assert_eq!(linux.default_version, 0x0901, "PVS_GUEST_VER_LIN_REDHAT");
    assert_eq!(
        oses.guest(guest_type::WINDOWS).unwrap().default_version,
        0x080D,
        "PVS_GUEST_VER_WIN_2012"
    );
    assert!(oses.guest(guest_type::OS2).unwrap().versions.is_empty());
    // CDspService::initFeaturesList with DefaultPlainDiskAllowed false.
    let mut set = features.features.clone();
    set.sort_unstable();
    assert_eq!(set, [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14]);
    assert!(!features.is_supported(feature::DEFAULT_PLAINDISK_ALLOWED));

    // Every login reply carries them, the same each time.
    c.logoff().await;
    let mut d = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let again = d.login_ok().await;
    assert_eq!(matrices_of(&again), (oses, features));
}

#[tokio::test]
async fn old_clients_xml_login_reply_has_no_matrices() {
    let sim = start(config()).await;
    let mut old = client_config(SecurityLevel::Low);
    old.version = ProtocolVersion::new(6, 1, "old");
    let mut c = Client::connect_with(&sim, old).await.unwrap();
    let p = LoginRequest {
        user: USER.into(),
        password: Password::new(PASSWORD),
        prev_session_uuid: String::new(),
        flags: PCF_ORIGINAL_CLIENT,
    }
    .to_package(Uuid::new_v4(), c.me(), false, &mut Uuid::new_v4);
    let id = p.header.uuid;
    c.conn.send(p).await.unwrap();
    let raw = c.next().await.unwrap().unwrap();
    assert!(is_reply_to(&raw, id));
    assert_eq!(raw.header.package_type, cmd::WS_RESPONSE);
    let reply = Reply::parse(&raw).unwrap();
    let event = reply.login.as_ref().unwrap();
    assert!(event.param(param::SESSION_UUID).is_some());
    assert!(event.param(param::SUPPORTED_OSES_LIST).is_none());
    assert!(event.param(param::FEATURES_MATRIX).is_none());
    let login = reply.login_response().unwrap();
    assert_eq!((login.supported_oses(), login.features()), (None, None));
}

#[tokio::test]
async fn local_login_in_desktop_mode_has_the_desktop_default_versions() {
    let dir = temp_dir();
    let mut cfg = prl_sim::SimConfig::new();
    cfg.mode = Mode::Desktop;
    cfg.tcp = None;
    cfg.unix = Some(dir.join("prl.sock"));
    cfg.users
        .add(UserDb::parse_local_spec(&format!("owner:{}", own_uid())).unwrap())
        .unwrap();
    let sim = start(cfg).await;
    let mut c = Client::connect_unix(&sim).await.unwrap();
    let r = c.login_local("").await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(r.opcode, cmd::USER_EASY_LOGIN_LOCAL);
    let (oses, features) = matrices_of(&r);
    // GetDefaultOsVersion outside PAM_SERVER: Windows 7 and Ubuntu; the rest as on a server.
    assert_eq!(
        oses.guest(guest_type::WINDOWS).unwrap().default_version,
        0x080B
    );
    assert_eq!(
        oses.guest(guest_type::LINUX).unwrap().default_version,
        0x090A
    );
    assert_eq!(
        oses.guest(guest_type::OTHER).unwrap().default_version,
        0xFF02
    );
    assert_eq!(features.features.len(), 12);
    std::fs::remove_dir_all(&dir).unwrap();
}
