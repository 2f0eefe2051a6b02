/* cancel.c - PrlJob_Cancel on a running task. Needs a simulator with `--task-on-login` and a
 * long task (e.g. 600:100).
 *
 * The SDK can only cancel a task it holds a job for; a task the simulator starts for a session
 * (`--task-on-login`) gets one through PrlSrv_AttachToLostTask, after which the service knows
 * the task by the attach request (`CDspTaskHelper::reassignTask`), the request PrlJob_Cancel
 * names. So: lose a session, log in naming it, attach, and once the task reports progress to
 * the attach job, cancel it.
 *
 * Checks: the cancel job returns 0; the attach job's final result is
 * PRL_ERR_OPERATION_WAS_CANCELED, before the task reached 100%; no progress of the attach job
 * follows the result; cancelling the finished task again gives PRL_ERR_TASK_NOT_FOUND;
 * logoff 0. */
#include "common.h"

#include <stdio.h>

int main(void)
{
	test_config cfg = test_config_from_env();
	char task[128];
	event_log *log = event_log_new();
	test_login t = lost_session_relogin(&cfg, log, task, sizeof(task));
	PRL_HANDLE attach = attach_checked(&t, task, cfg.timeout_ms);
	job_events_arg running = { attach, 1 };
	CHECK(event_log_wait(log, have_progress_of, &running, cfg.timeout_ms),
			"the attached task reported no progress");
	test_ok("the attached task reports progress");

	CHECK_RC("PrlJob_Cancel", job_run(PrlJob_Cancel(attach), cfg.timeout_ms, "cancel"),
			PRL_ERR_SUCCESS);
	job_progress p = attached_task_result(log, attach, PRL_ERR_OPERATION_WAS_CANCELED,
			cfg.timeout_ms);
	CHECK(p.last < 100, "the task reached %u%% before the cancel took effect: make it longer",
			p.last);
	test_ok("cancelled at %u%%", p.last);

	CHECK_RC("cancel the finished task again",
			job_run(PrlJob_Cancel(attach), cfg.timeout_ms, "cancel again"),
			PRL_ERR_TASK_NOT_FOUND);
	PrlHandle_Free(attach);
	return test_pass(&t);
}
