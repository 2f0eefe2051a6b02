/* vm_ops.c - the host configuration, the VM list and a VM's power cycle through the real SDK,
 * with the state events. Needs the simulator to serve tests/real-sdk/vms.toml (`--vms`).
 *
 * Checks:
 *  - PrlSrv_GetSrvConfig: one result; the PrlSrvCfg_* getters read 16 CPUs, the model, 2100 MHz,
 *    64216 MiB, OS type PHO_LIN, the OS string and the host name of vms.toml;
 *  - PrlSrv_GetVmList: five entries, each parsed by the real CVmConfiguration
 *    (PrlResult_GetParamByIndex); name, uuid, OS type and version, CPUs, RAM and the state
 *    (PrlVmCfg_GetVmInfo + PrlVmInfo_GetState) of each as vms.toml says; the template is one
 *    (PrlVmCfg_IsTemplate); the VM owned by another user is listed without a state
 *    (PrlVmCfg_GetVmInfo: PRL_ERR_NO_DATA);
 *  - PrlVm_GetState of db-01: stopped;
 *  - db-01's power cycle, each job 0 and each transition one state event reaching
 *    PrlSrv_RegEventHandler (type PET_DSP_EVT_VM_STATE_CHANGED, issuer the VM uuid of type
 *    PIE_DISPATCHER, code 100000, an Integer vminfo_vm_state): PrlVm_Start (the result
 *    PRL_TEST_EXPECT names) → running, PrlVm_Pause → paused (PrlVm_GetState agrees),
 *    PrlVm_Resume (sent as a start) → running, PrlVm_Suspend → suspended, PrlVm_StartEx →
 *    running, PrlVm_Reset and PrlVm_Restart → 0 without an event, PrlVm_Stop(graceful) →
 *    stopped, PrlVm_Start → running, PrlVm_StopEx(PSM_KILL) → stopped; then the state events of
 *    db-01 are exactly that sequence; logoff 0. */
#include "common.h"

#include <stdio.h>
#include <string.h>

#define DB01 "{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}"

typedef struct {
	const char *name, *uuid;
	PRL_UINT32 os_type, os_version, cpus, ram;
	VIRTUAL_MACHINE_STATE state;    /* VMS_UNKNOWN: listed without a state */
	PRL_BOOL template_;
} expected_vm;

static const expected_vm VMS[] = {
	{ "golden", "{7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9}", 9, 0x090A, 1, 1024, VMS_STOPPED, PRL_TRUE },
	{ "web-01", "{5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60}", 9, 0x090A, 2, 2048, VMS_RUNNING, PRL_FALSE },
	{ "db-01", DB01, 9, 0x091F, 4, 8192, VMS_STOPPED, PRL_FALSE },
	{ "win-build", "{3f7a9c10-2b4d-4e6f-8a1b-9c0d1e2f3a4b}", 8, 0x0812, 4, 8192, VMS_PAUSED, PRL_FALSE },
	{ "private", "{9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a}", 0, 0, 0, 0, VMS_UNKNOWN, PRL_FALSE },
};
#define VM_COUNT (sizeof(VMS) / sizeof(VMS[0]))

static void check_host(const test_login *t, unsigned timeout_ms)
{
	PRL_HANDLE job = PrlSrv_GetSrvConfig(t->server);
	CHECK_RC("PrlSrv_GetSrvConfig", job_wait(job, timeout_ms, "host config"), PRL_ERR_SUCCESS);
	PRL_HANDLE result = PRL_INVALID_HANDLE, cfg = PRL_INVALID_HANDLE;
	CHECK(PRL_SUCCEEDED(PrlJob_GetResult(job, &result)), "host config: PrlJob_GetResult");
	PRL_UINT32 n = 0;
	CHECK(PRL_SUCCEEDED(PrlResult_GetParamsCount(result, &n)) && n == 1,
			"host config: %u results, want 1", (unsigned)n);
	CHECK(PRL_SUCCEEDED(PrlResult_GetParam(result, &cfg)), "host config: PrlResult_GetParam");
	PRL_UINT32 cpus = 0, speed = 0, ram = 0;
	PRL_HOST_OS_TYPE os_type = PHO_UNKNOWN;
	char model[256], os[256], host[256];
	CHECK(PRL_SUCCEEDED(PrlSrvCfg_GetCpuCount(cfg, &cpus)), "PrlSrvCfg_GetCpuCount");
	CHECK(PRL_SUCCEEDED(PrlSrvCfg_GetCpuSpeed(cfg, &speed)), "PrlSrvCfg_GetCpuSpeed");
	CHECK(PRL_SUCCEEDED(PrlSrvCfg_GetHostRamSize(cfg, &ram)), "PrlSrvCfg_GetHostRamSize");
	CHECK(PRL_SUCCEEDED(PrlSrvCfg_GetHostOsType(cfg, &os_type)), "PrlSrvCfg_GetHostOsType");
	get_string(PrlSrvCfg_GetCpuModel, cfg, model, sizeof(model), "PrlSrvCfg_GetCpuModel");
	get_string(PrlSrvCfg_GetHostOsStrPresentation, cfg, os, sizeof(os),
			"PrlSrvCfg_GetHostOsStrPresentation");
	get_string(PrlSrvCfg_GetHostname, cfg, host, sizeof(host), "PrlSrvCfg_GetHostname");
	CHECK(cpus == 16 && speed == 2100 && ram == 64216,
			"host: %u CPUs at %u MHz, %u MiB; want 16 at 2100, 64216", (unsigned)cpus,
			(unsigned)speed, (unsigned)ram);
	CHECK(os_type == PHO_LIN, "host OS type %d, want PHO_LIN", (int)os_type);
	CHECK(!strcmp(model, "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz"), "CPU model %s", model);
	CHECK(!strcmp(os, "Virtuozzo Linux release 9.0 (5.14.0-362.vz9.26.1.x86_64)"), "OS %s", os);
	CHECK(!strcmp(host, "node1.example.test"), "host name %s", host);
	test_ok("host: %u CPUs (%s), %u MiB, %s, %s", (unsigned)cpus, model, (unsigned)ram, os, host);
	PrlHandle_Free(cfg);
	PrlHandle_Free(result);
	PrlHandle_Free(job);
}

static void check_list(const test_login *t, unsigned timeout_ms)
{
	PRL_UINT32 count = 0;
	PRL_HANDLE list = vm_list(t, timeout_ms, &count);
	CHECK(count == VM_COUNT, "%u VMs listed, want %u", (unsigned)count, (unsigned)VM_COUNT);
	for (PRL_UINT32 i = 0; i < VM_COUNT; i++) {
		const expected_vm *e = &VMS[i];
		PRL_HANDLE vm = PRL_INVALID_HANDLE;
		PRL_RESULT rc = PrlResult_GetParamByIndex(list, i, &vm);
		CHECK(PRL_SUCCEEDED(rc), "entry %u: PrlResult_GetParamByIndex 0x%08x: the real parser "
				"refused it", (unsigned)i, (unsigned)rc);
		char name[256], uuid[64];
		get_string(PrlVmCfg_GetName, vm, name, sizeof(name), "PrlVmCfg_GetName");
		get_string(PrlVmCfg_GetUuid, vm, uuid, sizeof(uuid), "PrlVmCfg_GetUuid");
		CHECK(!strcmp(name, e->name) && !strcmp(uuid, e->uuid),
				"entry %u is %s %s, want %s %s", (unsigned)i, name, uuid, e->name, e->uuid);
		PRL_HANDLE info = PRL_INVALID_HANDLE;
		rc = PrlVmCfg_GetVmInfo(vm, &info);
		if (e->state == VMS_UNKNOWN) {
			CHECK_RC("the state of a VM this user may not read", rc, PRL_ERR_NO_DATA);
		} else {
			CHECK(PRL_SUCCEEDED(rc), "%s: PrlVmCfg_GetVmInfo 0x%08x", name, (unsigned)rc);
			VIRTUAL_MACHINE_STATE state = VMS_UNKNOWN;
			CHECK(PRL_SUCCEEDED(PrlVmInfo_GetState(info, &state)), "%s: PrlVmInfo_GetState",
					name);
			CHECK(state == e->state, "%s is listed %s, want %s", name, vm_state_name(state),
					vm_state_name(e->state));
			PrlHandle_Free(info);
			PRL_UINT32 os_type = 0, os_version = 0, cpus = 0, ram = 0;
			PRL_BOOL is_template = PRL_FALSE;
			PrlVmCfg_GetOsType(vm, &os_type);
			PrlVmCfg_GetOsVersion(vm, &os_version);
			PrlVmCfg_GetCpuCount(vm, &cpus);
			PrlVmCfg_GetRamSize(vm, &ram);
			PrlVmCfg_IsTemplate(vm, &is_template);
			CHECK(os_type == e->os_type && os_version == e->os_version && cpus == e->cpus
					&& ram == e->ram && is_template == e->template_,
					"%s: OS %u/0x%x, %u CPUs, %u MiB, template %d", name, (unsigned)os_type,
					(unsigned)os_version, (unsigned)cpus, (unsigned)ram, (int)is_template);
		}
		test_ok("listed %s %s", name, e->state == VMS_UNKNOWN ? "(no state)" : vm_state_name(e->state));
		PrlHandle_Free(vm);
	}
	PrlHandle_Free(list);
}

/* The state events of db-01 the program has waited for so far. */
static unsigned events_seen;

/* Runs a power operation on db-01, which must end with `want`, and waits for its state event
 * (the next one of db-01) reporting `then` (VMS_UNKNOWN: the operation sends none). */
static void power(PRL_HANDLE job, const char *what, PRL_RESULT want, event_log *log,
		VIRTUAL_MACHINE_STATE then, unsigned timeout_ms)
{
	char details[512];
	CHECK_RC(what, vm_job(job, timeout_ms, what, details, sizeof(details)), want);
	if (then != VMS_UNKNOWN)
		wait_vm_state_event(log, DB01, events_seen++, then, timeout_ms);
}

int main(void)
{
	test_config cfg = test_config_from_env();
	sdk_init();
	event_log *log = event_log_new();
	test_login t = login_as_configured(&cfg, "", event_log_handler, log);
	CHECK_RC("login", t.rc, PRL_ERR_SUCCESS);
	check_host(&t, cfg.timeout_ms);
	check_list(&t, cfg.timeout_ms);

	PRL_UINT32 count = 0;
	PRL_HANDLE list = vm_list(&t, cfg.timeout_ms, &count);
	PRL_HANDLE db = vm_by_name(list, count, "db-01");
	CHECK(db != PRL_INVALID_HANDLE, "db-01 is not listed");
	PrlHandle_Free(list);
	VIRTUAL_MACHINE_STATE state = VMS_UNKNOWN;
	CHECK_RC("PrlVm_GetState", vm_get_state(db, cfg.timeout_ms, &state), PRL_ERR_SUCCESS);
	CHECK(state == VMS_STOPPED, "db-01 is %s, want VMS_STOPPED", vm_state_name(state));

	unsigned w = cfg.timeout_ms;
	power(PrlVm_Start(db), "PrlVm_Start", cfg.expect, log, VMS_RUNNING, w);
	power(PrlVm_Pause(db, PRL_FALSE), "PrlVm_Pause", PRL_ERR_SUCCESS, log, VMS_PAUSED, w);
	CHECK_RC("PrlVm_GetState", vm_get_state(db, w, &state), PRL_ERR_SUCCESS);
	CHECK(state == VMS_PAUSED, "db-01 is %s, want VMS_PAUSED", vm_state_name(state));
	power(PrlVm_Resume(db), "PrlVm_Resume", PRL_ERR_SUCCESS, log, VMS_RUNNING, w);
	power(PrlVm_Suspend(db), "PrlVm_Suspend", PRL_ERR_SUCCESS, log, VMS_SUSPENDED, w);
	power(PrlVm_StartEx(db, PSM_VM_START, 0), "PrlVm_StartEx", PRL_ERR_SUCCESS, log,
			VMS_RUNNING, w);
	power(PrlVm_Reset(db), "PrlVm_Reset", PRL_ERR_SUCCESS, log, VMS_UNKNOWN, w);
	power(PrlVm_Restart(db), "PrlVm_Restart", PRL_ERR_SUCCESS, log, VMS_UNKNOWN, w);
	power(PrlVm_Stop(db, PRL_TRUE), "PrlVm_Stop(graceful)", PRL_ERR_SUCCESS, log, VMS_STOPPED, w);
	power(PrlVm_Start(db), "PrlVm_Start", PRL_ERR_SUCCESS, log, VMS_RUNNING, w);
	power(PrlVm_StopEx(db, PSM_KILL, 0), "PrlVm_StopEx(PSM_KILL)", PRL_ERR_SUCCESS, log,
			VMS_STOPPED, w);
	CHECK_RC("PrlVm_GetState", vm_get_state(db, w, &state), PRL_ERR_SUCCESS);
	CHECK(state == VMS_STOPPED, "db-01 is %s, want VMS_STOPPED", vm_state_name(state));

	static const VIRTUAL_MACHINE_STATE want[] = { VMS_RUNNING, VMS_PAUSED, VMS_RUNNING,
		VMS_SUSPENDED, VMS_RUNNING, VMS_STOPPED, VMS_RUNNING, VMS_STOPPED };
	VIRTUAL_MACHINE_STATE got[32];
	unsigned n = vm_states_of(log, DB01, got, 32);
	CHECK(n == sizeof(want) / sizeof(want[0]), "%u state events of db-01, want %u", n,
			(unsigned)(sizeof(want) / sizeof(want[0])));
	for (unsigned i = 0; i < n; i++)
		CHECK(got[i] == want[i], "state event %u of db-01 is %s, want %s", i,
				vm_state_name(got[i]), vm_state_name(want[i]));
	test_ok("db-01 went through %u states, one event each", n);
	PrlHandle_Free(db);
	return test_pass(&t);
}
