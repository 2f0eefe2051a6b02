/* lost_task.c - a lost connection, a login naming the lost session, and
 * PrlSrv_AttachToLostTask. Needs a simulator with `--task-on-login` (a task long enough to
 * outlive the first connection, e.g. 40:100).
 *
 * Checks: the first session's task reports progress with no job of the client's; after the
 * connection drops (no logoff), a login naming that session gets a new session uuid and lists
 * exactly that one task; attaching to an unknown task id gives PRL_ERR_TASK_NOT_FOUND;
 * attaching from a session that did not lose the task gives PRL_ERR_ATTACH_TO_TASK_BAD_SESSION;
 * attaching from the right session gives 0, then the attach job receives the task's progress
 * events (non-decreasing percentages up to 100) and, after them, the task's final result
 * (0); attaching again to the finished task gives PRL_ERR_TASK_NOT_FOUND; logoff 0. */
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

	CHECK_RC("attach to an unknown task id",
			job_run(PrlSrv_AttachToLostTask(t.server, "{00000000-0000-4000-8000-000000000001}"),
				cfg.timeout_ms, "attach (unknown task)"),
			PRL_ERR_TASK_NOT_FOUND);

	/* A session that did not lose the task may not take it. */
	test_login other = login_as_configured(&cfg, "", NULL, NULL);
	CHECK_RC("login of another session", other.rc, PRL_ERR_SUCCESS);
	CHECK_RC("attach from a session that did not lose the task",
			job_run(PrlSrv_AttachToLostTask(other.server, task), cfg.timeout_ms,
				"attach (other session)"),
			PRL_ERR_ATTACH_TO_TASK_BAD_SESSION);
	logoff_and_free(&other);

	PRL_HANDLE attach = PrlSrv_AttachToLostTask(t.server, task);
	CHECK_RC("PrlSrv_AttachToLostTask", job_wait(attach, cfg.timeout_ms, "attach"),
			PRL_ERR_SUCCESS);

	/* The task's result reaches the attach job as a second notification of that job. */
	job_events_arg final = { attach, 2 };
	CHECK(event_log_wait(log, have_job_notifications, &final, cfg.timeout_ms * 3),
			"the attached task's final result did not arrive");
	PRL_RESULT rc = 0;
	CHECK(PRL_SUCCEEDED(PrlJob_GetRetCode(attach, &rc)), "PrlJob_GetRetCode failed");
	CHECK_RC("the attached task's final result", rc, PRL_ERR_SUCCESS);

	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED);
	unsigned progress = 0, last = 0, final_at = 0, notified = 0;
	for (unsigned i = 0; i < n; i++) {
		if (ev[i].kind == PHT_JOB && ev[i].job == attach && ++notified == 2)
			final_at = i;
		if (ev[i].kind != PHT_EVENT || ev[i].type != PET_DSP_EVT_JOB_PROGRESS_CHANGED
				|| ev[i].job != attach)
			continue;
		CHECK(notified < 2, "a progress event of the attach job after its final result");
		CHECK(ev[i].progress <= 100 && ev[i].progress >= last,
				"progress %u after %u", ev[i].progress, last);
		last = ev[i].progress;
		progress++;
	}
	CHECK(progress >= 1, "the attach job received no progress event");
	CHECK(last == 100, "the last progress before the result is %u%%, want 100%%", last);
	CHECK(final_at > 0, "no final notification recorded");
	test_ok("the attach job received %u progress events up to 100%%, then the result", progress);

	CHECK_RC("attach to the finished task",
			job_run(PrlSrv_AttachToLostTask(t.server, task), cfg.timeout_ms,
				"attach (finished)"),
			PRL_ERR_TASK_NOT_FOUND);
	PrlHandle_Free(attach);
	logoff_and_free(&t);
	sdk_deinit();
	printf("PASS\n");
	return 0;
}
