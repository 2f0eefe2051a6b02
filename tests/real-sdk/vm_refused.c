/* vm_refused.c - the refused VM operations and their codes through the real SDK. Needs the
 * simulator to serve tests/real-sdk/vms.toml (`--vms`); the user may not read `private`.
 *
 * Checks (each job's result and, where the service sends one, the error event's Details):
 *  - PrlVm_Pause of the paused win-build: the result PRL_TEST_EXPECT names (PRL_ERR_FAILURE),
 *    "VM pause from a non-running state is impossible";
 *  - PrlVm_Start of the running web-01: PRL_ERR_FAILURE, "VM is already running";
 *  - on the stopped db-01: PrlVm_StopEx(PSM_KILL) and PrlVm_Suspend
 *    PRL_ERR_INVALID_ACTION_REQUESTED, PrlVm_Stop(graceful) PRL_ERR_DISP_VM_IS_NOT_RUNNING,
 *    PrlVm_Reset PRL_ERR_INVALID_ACTION_REQUESTED (the forked ones are answered twice; the SDK
 *    keeps the first);
 *  - PrlVm_Start of the template golden: PRL_ERR_CANT_TO_START_VM_TEMPLATE;
 *  - private, another user's: PrlVm_GetState and PrlVm_Start PRL_ERR_ACCESS_TO_VM_DENIED;
 *  - a VM handle with a uuid the service does not know: PrlVm_Start and PrlVm_GetState
 *    PRL_ERR_VM_UUID_NOT_FOUND;
 *  - afterwards every VM is in its first state and no state event arrived; logoff 0. */
#include "common.h"

#include <stdio.h>
#include <string.h>

static void refused(PRL_HANDLE job, const char *what, PRL_RESULT want, const char *details,
		unsigned timeout_ms)
{
	char got[512];
	CHECK_RC(what, vm_job(job, timeout_ms, what, got, sizeof(got)), want);
	if (details)
		CHECK(!strcmp(got, details), "%s: Details \"%s\", want \"%s\"", what, got, details);
}

static void state_is(PRL_HANDLE vm, const char *name, VIRTUAL_MACHINE_STATE want, unsigned w)
{
	VIRTUAL_MACHINE_STATE state = VMS_UNKNOWN;
	CHECK_RC("PrlVm_GetState", vm_get_state(vm, w, &state), PRL_ERR_SUCCESS);
	CHECK(state == want, "%s is %s, want %s", name, vm_state_name(state), vm_state_name(want));
}

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
	PRL_HANDLE web = vm_by_name(list, count, "web-01");
	PRL_HANDLE db = vm_by_name(list, count, "db-01");
	PRL_HANDLE win = vm_by_name(list, count, "win-build");
	PRL_HANDLE golden = vm_by_name(list, count, "golden");
	PRL_HANDLE private_ = vm_by_name(list, count, "private");
	CHECK(web != PRL_INVALID_HANDLE && db != PRL_INVALID_HANDLE && win != PRL_INVALID_HANDLE
			&& golden != PRL_INVALID_HANDLE && private_ != PRL_INVALID_HANDLE,
			"the VMs of vms.toml are not all listed");
	PrlHandle_Free(list);
	const char *not_running = "Requested operation is not valid: domain is not running";

	refused(PrlVm_Pause(win, PRL_FALSE), "PrlVm_Pause(paused)", cfg.expect,
			"VM pause from a non-running state is impossible", w);
	refused(PrlVm_Start(web), "PrlVm_Start(running)", PRL_ERR_FAILURE, "VM is already running", w);
	refused(PrlVm_StopEx(db, PSM_KILL, 0), "PrlVm_StopEx(stopped, PSM_KILL)",
			PRL_ERR_INVALID_ACTION_REQUESTED, not_running, w);
	refused(PrlVm_Stop(db, PRL_TRUE), "PrlVm_Stop(stopped, graceful)",
			PRL_ERR_DISP_VM_IS_NOT_RUNNING, "", w);
	refused(PrlVm_Suspend(db), "PrlVm_Suspend(stopped)", PRL_ERR_INVALID_ACTION_REQUESTED,
			not_running, w);
	refused(PrlVm_Reset(db), "PrlVm_Reset(stopped)", PRL_ERR_INVALID_ACTION_REQUESTED,
			not_running, w);
	refused(PrlVm_Start(golden), "PrlVm_Start(template)", PRL_ERR_CANT_TO_START_VM_TEMPLATE,
			NULL, w);

	VIRTUAL_MACHINE_STATE state = VMS_UNKNOWN;
	CHECK_RC("PrlVm_GetState(another user's VM)", vm_get_state(private_, w, &state),
			PRL_ERR_ACCESS_TO_VM_DENIED);
	refused(PrlVm_Start(private_), "PrlVm_Start(another user's VM)",
			PRL_ERR_ACCESS_TO_VM_DENIED, "", w);

	PRL_HANDLE unknown = PRL_INVALID_HANDLE;
	CHECK(PRL_SUCCEEDED(PrlSrv_CreateVm(t.server, &unknown)), "PrlSrv_CreateVm");
	CHECK(PRL_SUCCEEDED(PrlVmCfg_SetUuid(unknown, "{00000000-0000-4000-8000-0000000000ff}")),
			"PrlVmCfg_SetUuid");
	refused(PrlVm_Start(unknown), "PrlVm_Start(unknown uuid)", PRL_ERR_VM_UUID_NOT_FOUND, "", w);
	CHECK_RC("PrlVm_GetState(unknown uuid)", vm_get_state(unknown, w, &state),
			PRL_ERR_VM_UUID_NOT_FOUND);

	state_is(web, "web-01", VMS_RUNNING, w);
	state_is(db, "db-01", VMS_STOPPED, w);
	state_is(win, "win-build", VMS_PAUSED, w);
	state_is(golden, "golden", VMS_STOPPED, w);
	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED);
	for (unsigned i = 0; i < n; i++)
		CHECK(!(ev[i].kind == PHT_EVENT && ev[i].type == PET_DSP_EVT_VM_STATE_CHANGED),
				"a state event of %s arrived, but nothing changed", ev[i].issuer);
	test_ok("no state changed, no state event");
	PrlHandle_Free(unknown);
	PrlHandle_Free(private_);
	PrlHandle_Free(golden);
	PrlHandle_Free(win);
	PrlHandle_Free(db);
	PrlHandle_Free(web);
	return test_pass(&t);
}
