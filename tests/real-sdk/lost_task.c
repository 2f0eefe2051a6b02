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

int main(void)
{
	test_config cfg = test_config_from_env();
	char task[128];
	event_log *log = event_log_new();
	test_login t = lost_session_relogin(&cfg, log, task, sizeof(task));

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

	PRL_HANDLE attach = attach_checked(&t, task, cfg.timeout_ms);

	/* The task runs to its end (about 3 s). */
	job_progress p = attached_task_result(log, attach, PRL_ERR_SUCCESS, cfg.timeout_ms * 3);
	CHECK(p.progress >= 1, "the attach job received no progress event");
	CHECK(p.last == 100, "the last progress before the result is %u%%, want 100%%", p.last);
	test_ok("the attach job received %u progress events up to 100%%, then the result",
			p.progress);

	CHECK_RC("attach to the finished task",
			job_run(PrlSrv_AttachToLostTask(t.server, task), cfg.timeout_ms,
				"attach (finished)"),
			PRL_ERR_TASK_NOT_FOUND);
	PrlHandle_Free(attach);
	return test_pass(&t);
}
