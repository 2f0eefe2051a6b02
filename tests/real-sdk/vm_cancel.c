/* vm_cancel.c - PrlJob_Cancel on a VM start through the real SDK. Needs the simulator to serve
 * tests/real-sdk/vms.toml (`--vms`) with a start that takes long enough to be cancelled
 * (`--transition-ms start=3000`).
 *
 * A VM start is no task of the service (a fork of the VM manager, not a CDspTaskHelper), so the
 * service answers the cancel (2053) PRL_ERR_TASK_NOT_FOUND and the start carries on.
 *
 * Checks: PrlVm_Start of the stopped db-01, then PrlJob_Cancel of its job: the cancel job
 * gives the result PRL_TEST_EXPECT names (PRL_ERR_TASK_NOT_FOUND) while the start job still
 * runs (PrlJob_GetStatus PJS_RUNNING); the start job then ends with 0; the running state event
 * arrives; PrlVm_GetState says running; PrlVm_StopEx(PSM_KILL) 0; logoff 0. */
#include "common.h"

#include <stdio.h>

#define DB01 "{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}"

int main(void)
{
	test_config cfg = test_config_from_env();
	sdk_init();
	event_log *log = event_log_new();
	test_login t = login_as_configured(&cfg, "", event_log_handler, log);
	CHECK_RC("login", t.rc, PRL_ERR_SUCCESS);
	unsigned w = cfg.timeout_ms;
	PRL_UINT32 count = 0;
	PRL_HANDLE list = vm_list(&t, w, &count);
	PRL_HANDLE db = vm_by_name(list, count, "db-01");
	CHECK(db != PRL_INVALID_HANDLE, "db-01 is not listed");
	PrlHandle_Free(list);

	PRL_HANDLE start = PrlVm_Start(db);
	CHECK(start != PRL_INVALID_HANDLE, "PrlVm_Start gave no job");
	CHECK_RC("PrlJob_Cancel(start)", job_run(PrlJob_Cancel(start), w, "cancel"), cfg.expect);
	PRL_JOB_STATUS status = PJS_UNKNOWN;
	CHECK(PRL_SUCCEEDED(PrlJob_GetStatus(start, &status)), "PrlJob_GetStatus");
	CHECK(status == PJS_RUNNING, "the start job is no longer running (status 0x%x) when the "
			"cancel is answered", (unsigned)status);
	test_ok("the start runs on after the cancel");
	CHECK_RC("PrlVm_Start after the cancel", job_run(start, w, "start"), PRL_ERR_SUCCESS);
	wait_vm_state_event(log, DB01, 0, VMS_RUNNING, w);
	VIRTUAL_MACHINE_STATE state = VMS_UNKNOWN;
	CHECK_RC("PrlVm_GetState", vm_get_state(db, w, &state), PRL_ERR_SUCCESS);
	CHECK(state == VMS_RUNNING, "db-01 is %s, want VMS_RUNNING", vm_state_name(state));
	char details[256];
	CHECK_RC("PrlVm_StopEx(PSM_KILL)",
			vm_job(PrlVm_StopEx(db, PSM_KILL, 0), w, "stop", details, sizeof(details)),
			PRL_ERR_SUCCESS);
	PrlHandle_Free(db);
	return test_pass(&t);
}
