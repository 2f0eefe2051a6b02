//! Tasks: the lost tasks a login reply lists (re-attached with 2090) and job progress events.

use uuid::Uuid;

use super::request::{fresh_event, optional_uint};
use super::{param, CommandError, ISSUER_UNKNOWN};
use crate::codes::{cmd, event_type};
use crate::event::Event;
use crate::package::{text_buffer, Package};

/// A task left running by a lost session, as listed in a login reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LostTask {
    /// The task's job uuid, `{...}` (what 2090 takes).
    pub task_id: String,
    /// The package type of the request that started it.
    pub task_type: u32,
    /// The task's parameters (CVmEvent XML, may be empty).
    pub task_params: String,
}

impl LostTask {
    pub(super) fn to_cdata(&self) -> String {
        let mut info = Event::default();
        info.add_string(param::TASK_ID, &self.task_id);
        info.add_uint(param::TASK_TYPE, self.task_type);
        info.add_string(param::TASK_PARAMS, &self.task_params);
        info.to_xml()
    }

    pub(super) fn from_cdata(xml: &str) -> Result<LostTask, CommandError> {
        let t = cmd::WS_BINARY_RESPONSE;
        let info = Event::from_xml(xml).map_err(|source| CommandError::Event {
            package_type: t,
            source,
        })?;
        Ok(LostTask {
            task_id: info.string(param::TASK_ID).unwrap_or_default().to_owned(),
            task_type: optional_uint(&info, t, param::TASK_TYPE)?.unwrap_or(0),
            task_params: info
                .string(param::TASK_PARAMS)
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// A job progress event (3003, `PET_DSP_EVT_JOB_PROGRESS_CHANGED`) for the task started by
/// the request `task_request_uuid` (its parentUuid; the SDK takes the event's request id
/// from it).
pub fn progress_event(
    task_request_uuid: Uuid,
    receiver: Uuid,
    sender: Uuid,
    event_uuid: Uuid,
    issuer_id: &str,
    percent: u32,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = fresh_event(ids);
    event.event_type = event_type::JOB_PROGRESS_CHANGED;
    event.issuer_type = ISSUER_UNKNOWN;
    event.issuer_id = issuer_id.to_owned();
    event.add_uint(param::PROGRESS_CHANGED, percent);
    let mut package = Package::request(
        cmd::VM_EVENT,
        event_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    );
    package.header.parent_uuid = task_request_uuid;
    package.header.receiver_uuid = receiver;
    package
}
