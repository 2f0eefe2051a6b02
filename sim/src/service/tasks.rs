//! The simulator's tasks (`CDspTaskHelper`): the sim-only long task (command 9001, or one per
//! new session with `--task-on-login`), its progress events and final reply, cancel 2053
//! (`CDspShellHelper::cancelOperation`), attach to a lost task 2090 (`attachToLostTask`,
//! `reassignTask`), the lost tasks a login reply lists, and what a session's end does to its
//! tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prl_protocol::commands::{
    self, package_event, param, progress_event, simple_response, Command, LostTask,
};
use prl_protocol::event::Event;
use prl_protocol::package::Package;
use prl_protocol::{parse_uuid, uuid_string, ErrorCode, Uuid};
use tokio::sync::Notify;

use super::delivery::send_to_session;
use super::state::{
    ConnectionHandler, ServiceRegistry, SimService, SimTask, TaskAssignment, UserSession,
};
use crate::config::{TaskSpec, MAX_TASK_INTERVAL_MS, MAX_TASK_STEPS};

/// The sim-only command that starts a long-running task (outside every real command range:
/// the service's package types stop at 7000 for commands, events and replies).
///
/// Payload: the usual command event, with optional UnsignedInt params
/// [`SIM_TASK_STEPS`] (default 10) and [`SIM_TASK_INTERVAL_MS`] (default 100). Flag
/// `PACF_CANCEL_TASK_ON_END_SESSION` (1 << 3) in `proto_command_flags` makes the task end with
/// its session, as in the service. The task sends one `JOB_PROGRESS_CHANGED` event (3003, parent =
/// the request) per step and a final 5001 reply (opcode 9001) when done.
pub const SIM_CMD_START_LONG_TASK: u32 = 9001;
/// Number of progress steps of a sim task.
pub const SIM_TASK_STEPS: &str = "sim_task_steps";
/// Milliseconds between two progress steps.
pub const SIM_TASK_INTERVAL_MS: &str = "sim_task_interval_ms";
/// `PACF_CANCEL_TASK_ON_END_SESSION`.
pub const PACF_CANCEL_TASK_ON_END_SESSION: u32 = 1 << 3;

/// Builds the sim-only "start long task" command.
pub fn start_long_task_command(
    steps: u32,
    interval_ms: u32,
    flags: u32,
    job_uuid: Uuid,
    sender: Uuid,
) -> Package {
    let mut event = commands::command_event(flags, &mut Uuid::new_v4);
    event.add_uint(SIM_TASK_STEPS, steps);
    event.add_uint(SIM_TASK_INTERVAL_MS, interval_ms);
    commands::request_package(SIM_CMD_START_LONG_TASK, &event, job_uuid, sender)
}

/// The tasks a login naming `prev_session` lists (`getTaskListBySession`): those its previous
/// session owns now.
pub(super) fn lost_tasks(registry: &ServiceRegistry, prev_session: &str) -> Vec<LostTask> {
    if prev_session.is_empty() {
        return Vec::new();
    }
    registry
        .tasks
        .values()
        .filter(|t| t.assignment().session.handle == prev_session)
        .map(|t| LostTask {
            task_id: uuid_string(&t.id),
            task_type: t.task_type,
            task_params: t.params_xml.clone(),
        })
        .collect()
}

/// A session ended with its connection (`handleClientDisconnected`): its tasks flagged
/// `PACF_CANCEL_TASK_ON_END_SESSION` are cancelled, the others keep running.
pub(super) fn end_session_tasks(registry: &ServiceRegistry, session_handle: &str) {
    for task in registry.tasks.values() {
        if task.cancel_on_end_session && task.assignment().session.handle == session_handle {
            task.cancelled.store(true, Ordering::SeqCst);
            task.wake.notify_one();
        }
    }
}

/// The request a task answers, without its payload: replies and events need only its header,
/// and a task must not pin up to a package's worth of memory.
fn header_only(p: &Package) -> Package {
    Package {
        header: p.header,
        buffers: Vec::new(),
    }
}

impl ConnectionHandler {
    /// `CDspShellHelper::cancelOperation`.
    pub(super) async fn cancel(&self, p: &Package, session: &Arc<UserSession>) {
        let job = match Command::parse(p, self.base64_password()) {
            Ok(Command::Cancel { job_uuid }) => job_uuid,
            _ => {
                return self
                    .simple_via_session(p, session, ErrorCode::UNRECOGNIZED_REQUEST)
                    .await
            }
        };
        let matching: Vec<Arc<SimTask>> = self
            .service
            .registry()
            .tasks
            .values()
            .filter(|t| uuid_string(&t.assignment().request.header.uuid) == job)
            .cloned()
            .collect();
        if matching.is_empty() {
            return self
                .simple_via_session(p, session, ErrorCode::TASK_NOT_FOUND)
                .await;
        }
        let mut count = 0;
        for task in matching {
            if Arc::ptr_eq(&task.assignment().session, session) {
                count += 1;
                let code = if task.completed.load(Ordering::SeqCst) {
                    ErrorCode::TASK_NOT_FOUND
                } else {
                    ErrorCode::SUCCESS
                };
                task.cancelled.store(true, Ordering::SeqCst);
                task.wake.notify_one();
                self.simple_via_session(p, session, code).await;
            }
        }
        if count == 0 {
            self.simple_via_session(p, session, ErrorCode::ACCESS_DENIED)
                .await;
        }
    }

    /// `CDspShellHelper::attachToLostTask`.
    pub(super) async fn attach(&self, p: &Package, session: &Arc<UserSession>) {
        let task_id = match Command::parse(p, self.base64_password()) {
            Ok(Command::AttachToLostTask { task_id }) => task_id,
            _ => {
                return self
                    .simple_via_session(p, session, ErrorCode::FAILURE)
                    .await
            }
        };
        let task =
            parse_uuid(&task_id).and_then(|id| self.service.registry().tasks.get(&id).cloned());
        let Some(task) = task else {
            return self
                .simple_via_session(p, session, ErrorCode::TASK_NOT_FOUND)
                .await;
        };
        let reassigned = {
            let mut a = task.assignment();
            if a.session.handle == session.prev_session {
                // `reassignTask`: the new session, and the 2090 request posing as the original.
                let old_type = a.request.header.package_type;
                let mut request = header_only(p);
                request.header.package_type = old_type;
                a.session = session.clone();
                a.request = request;
                true
            } else {
                false
            }
        };
        if !reassigned {
            return self
                .simple_via_session(p, session, ErrorCode::ATTACH_TO_TASK_BAD_SESSION)
                .await;
        }
        tracing::info!(conn = self.id, task = %task.id, "task re-attached");
        self.simple_via_session(p, session, ErrorCode::SUCCESS)
            .await;
    }

    pub(super) async fn start_task(&self, p: &Package, session: &Arc<UserSession>) {
        let Ok(event) = package_event(p) else {
            return self
                .simple_via_session(p, session, ErrorCode::FAILURE)
                .await;
        };
        let steps = event
            .uint(SIM_TASK_STEPS)
            .unwrap_or(10)
            .clamp(1, MAX_TASK_STEPS);
        let interval = event
            .uint(SIM_TASK_INTERVAL_MS)
            .unwrap_or(100)
            .min(MAX_TASK_INTERVAL_MS);
        let flags = event.uint(param::COMMAND_FLAGS).unwrap_or(0);
        let spec = TaskSpec {
            steps,
            interval_ms: interval,
        };
        if !self.spawn_task(p, spec, flags, session) {
            self.simple_via_session(p, session, ErrorCode::TRY_AGAIN)
                .await;
        }
    }

    /// Registers and runs a sim task for `request` (a 9001 command) owned by `session`;
    /// `false` when the session or the simulator already runs the most tasks allowed.
    pub(super) fn spawn_task(
        &self,
        p: &Package,
        spec: TaskSpec,
        flags: u32,
        session: &Arc<UserSession>,
    ) -> bool {
        let TaskSpec {
            steps,
            interval_ms: interval,
        } = spec;
        let task = Arc::new(SimTask {
            id: Uuid::new_v4(),
            task_type: p.header.package_type,
            assignment: Mutex::new(TaskAssignment {
                session: session.clone(),
                request: header_only(p),
            }),
            cancelled: AtomicBool::new(false),
            completed: AtomicBool::new(false),
            cancel_on_end_session: flags & PACF_CANCEL_TASK_ON_END_SESSION != 0,
            wake: Notify::new(),
            params_xml: Event::default().to_xml(),
        });
        let admitted = {
            let mut st = self.service.registry();
            let mine = st
                .tasks
                .values()
                .filter(|t| Arc::ptr_eq(&t.assignment().session, session))
                .count();
            let admitted = mine < self.service.config.max_tasks_per_session
                && st.tasks.len() < self.service.config.max_tasks;
            if admitted {
                st.tasks.insert(task.id, task.clone());
            }
            admitted
        };
        if !admitted {
            return false;
        }
        tracing::info!(conn = self.id, task = %task.id, steps, interval, "sim task started");
        tokio::spawn(run_task(
            self.service.clone(),
            task,
            steps,
            Duration::from_millis(u64::from(interval)),
        ));
        true
    }
}

/// Runs a task: `steps` progress events `interval` apart, then its result, each to the
/// connection of the session it belongs to at that moment (a re-attach moves it).
async fn run_task(service: Arc<SimService>, task: Arc<SimTask>, steps: u32, interval: Duration) {
    let issuer = uuid_string(&service.config.server_uuid);
    for step in 1..=steps {
        if interval.is_zero() {
            // No pacing: events go out as fast as the connection takes them (backpressure is
            // the session's bounded queue), yielding so other connections keep being served.
            tokio::task::yield_now().await;
        } else if !task.cancelled.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = task.wake.notified() => {}
            }
        }
        if task.cancelled.load(Ordering::SeqCst) {
            break;
        }
        let percent = step.saturating_mul(100) / steps;
        let (session, request) = {
            let a = task.assignment();
            (a.session.clone(), a.request.clone())
        };
        send_to_session(&service, &session, |local| {
            progress_event(
                request.header.uuid,
                request.header.sender_uuid,
                local,
                Uuid::new_v4(),
                &issuer,
                percent,
                &mut Uuid::new_v4,
            )
        })
        .await;
    }
    // `finalizeTask`.
    task.completed.store(true, Ordering::SeqCst);
    let code = if task.cancelled.load(Ordering::SeqCst) {
        ErrorCode::OPERATION_WAS_CANCELED
    } else {
        ErrorCode::SUCCESS
    };
    let (session, request) = {
        let a = task.assignment();
        (a.session.clone(), a.request.clone())
    };
    tracing::info!(task = %task.id, result = %code, "sim task finished");
    send_to_session(&service, &session, |local| {
        simple_response(
            &request,
            local,
            Uuid::new_v4(),
            code,
            &[],
            &mut Uuid::new_v4,
        )
    })
    .await;
    service.registry().tasks.remove(&task.id);
}
