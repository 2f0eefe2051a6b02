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
#include <string.h>

int main(void)
{
	test_config cfg = test_config_from_env();
	char prev[64], task[128];
	lose_session_with_task(&cfg, prev, sizeof(prev));
	test_ok("the first session is lost while its task runs");

	sdk_init();
	event_log *log = event_log_new();
	test_login t = relogin_listing_one_task(&cfg, prev, log, task, sizeof(task));

	PRL_HANDLE attach = PrlSrv_AttachToLostTask(t.server, task);
	CHECK_RC("PrlSrv_AttachToLostTask", job_wait(attach, cfg.timeout_ms, "attach"),
			PRL_ERR_SUCCESS);
	job_events_arg running = { attach, 1 };
	CHECK(event_log_wait(log, have_progress_of, &running, cfg.timeout_ms),
			"the attached task reported no progress");
	test_ok("the attached task reports progress");

	CHECK_RC("PrlJob_Cancel", job_run(PrlJob_Cancel(attach), cfg.timeout_ms, "cancel"),
			PRL_ERR_SUCCESS);
	job_events_arg final = { attach, 2 };
	CHECK(event_log_wait(log, have_job_notifications, &final, cfg.timeout_ms),
			"the cancelled task's final result did not arrive");
	PRL_RESULT rc = 0;
	CHECK(PRL_SUCCEEDED(PrlJob_GetRetCode(attach, &rc)), "PrlJob_GetRetCode failed");
	CHECK_RC("the cancelled task's final result", rc, PRL_ERR_OPERATION_WAS_CANCELED);

	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED);
	unsigned notified = 0, last = 0;
	for (unsigned i = 0; i < n; i++) {
		if (ev[i].kind == PHT_JOB && ev[i].job == attach)
			notified++;
		if (ev[i].kind == PHT_EVENT && ev[i].type == PET_DSP_EVT_JOB_PROGRESS_CHANGED
				&& ev[i].job == attach) {
			CHECK(notified < 2, "a progress event of the attach job after its final result");
			last = ev[i].progress;
		}
	}
	CHECK(last < 100, "the task reached %u%% before the cancel took effect: make it longer",
			last);
	test_ok("cancelled at %u%%", last);

	CHECK_RC("cancel the finished task again",
			job_run(PrlJob_Cancel(attach), cfg.timeout_ms, "cancel again"),
			PRL_ERR_TASK_NOT_FOUND);
	PrlHandle_Free(attach);
	logoff_and_free(&t);
	sdk_deinit();
	printf("PASS\n");
	return 0;
}
