/* common.c - shared helpers of the real-SDK test programs; see common.h. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- checks ---------------------------------------------------------------------------- */

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	/* No PrlApi_Deinit: a failed check may leave jobs running; the process just ends. */
	_exit(1);
}

void test_ok(const char *fmt, ...)
{
	va_list ap;
	printf("ok: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Results the harness may name in PRL_TEST_EXPECT, with their values from the SDK's own
 * headers (PrlErrorsValues.h): an expectation is the real client's constant, not ours. Add a
 * line when a new program expects another result. */
#define RESULT(name) { #name, name }
static const struct {
	const char *name;
	PRL_RESULT value;
} result_names[] = {
	RESULT(PRL_ERR_SUCCESS),
	RESULT(PRL_ERR_FAILURE),
	RESULT(PRL_ERR_NO_DATA),
	RESULT(PRL_ERR_ACCESS_DENIED),
	RESULT(PRL_ERR_VM_UUID_NOT_FOUND),
	RESULT(PRL_ERR_ACCESS_TO_VM_DENIED),
	RESULT(PRL_ERR_INVALID_ACTION_REQUESTED),
	RESULT(PRL_ERR_DISP_VM_IS_NOT_RUNNING),
	RESULT(PRL_ERR_CANT_TO_START_VM_TEMPLATE),
	RESULT(PRL_ERR_UNIMPLEMENTED),
	RESULT(PRL_ERR_TASK_NOT_FOUND),
	RESULT(PRL_ERR_CANT_CONNECT_TO_DISPATCHER),
	RESULT(PRL_ERR_OPERATION_WAS_CANCELED),
	RESULT(PRL_ERR_AUTHENTICATION_FAILED),
	RESULT(PRL_ERR_LOCAL_AUTHENTICATION_FAILED),
	RESULT(PRL_ERR_ATTACH_TO_TASK_BAD_SESSION),
	RESULT(PRL_ERR_HANDSHAKE_FAILED),
	RESULT(PRL_ERR_SSL_HANDSHAKE_FAILED),
};
#undef RESULT

const char *result_name(PRL_RESULT rc)
{
	for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++)
		if (result_names[i].value == rc)
			return result_names[i].name;
	return NULL;
}

/* The result's name, else the SDK's description of it. */
static const char *describe_rc(PRL_RESULT rc, char *buf, PRL_UINT32 len)
{
	const char *name = result_name(rc);
	if (name)
		return name;
	buf[0] = 0;
	if (PRL_FAILED(PrlApi_GetResultDescription(rc, PRL_FALSE, PRL_FALSE, buf, &len)))
		buf[0] = 0;
	return buf;
}

void check_rc_at(const char *file, int line, const char *what, PRL_RESULT got, PRL_RESULT want)
{
	char g[512], w[512];
	if (got != want)
		test_fail(file, line, "%s: got 0x%08x (%s), want 0x%08x (%s)", what, (unsigned)got,
				describe_rc(got, g, sizeof(g)), (unsigned)want, describe_rc(want, w, sizeof(w)));
	const char *name = result_name(got);
	test_ok("%s: 0x%08x %s", what, (unsigned)got, name ? name : "");
}

/* ---- configuration --------------------------------------------------------------------- */

static void usage_error(const char *name, const char *why)
{
	fprintf(stderr, "%s %s (set by `cargo xtask real-sdk`; see tests/real-sdk/common.h)\n",
			name, why);
	exit(2);
}

static const char *env_required(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		usage_error(name, "is not set");
	return v;
}

static unsigned long env_number(const char *name, int required, unsigned long dflt)
{
	const char *v = required ? env_required(name) : getenv(name);
	if (!v || !*v)
		return dflt;
	char *end = NULL;
	errno = 0;
	unsigned long n = strtoul(v, &end, 0);
	if (errno || !end || *end)
		usage_error(name, "is not a number");
	return n;
}

test_config test_config_from_env(void)
{
	test_config c;
	memset(&c, 0, sizeof(c));
	c.local = env_number("PRL_TEST_LOCAL", 0, 0) != 0;
	c.host = c.local ? "" : env_required("PRL_TEST_HOST");
	c.port = c.local ? 0 : (unsigned)env_number("PRL_TEST_PORT", 1, 0);
	c.user = c.local ? "" : env_required("PRL_TEST_USER");
	c.password = c.local ? "" : env_required("PRL_TEST_PASSWORD");
	unsigned long sec = env_number("PRL_TEST_SECURITY", 1, 0);
	if (sec > 2)
		usage_error("PRL_TEST_SECURITY", "must be 0, 1 or 2");
	c.security = (PRL_SECURITY_LEVEL)sec;
	c.expect = PRL_ERR_SUCCESS;
	const char *expect = getenv("PRL_TEST_EXPECT");
	if (expect && !strncmp(expect, "PRL_ERR_", 8)) {
		size_t i, n = sizeof(result_names) / sizeof(result_names[0]);
		for (i = 0; i < n && strcmp(result_names[i].name, expect); i++)
			;
		if (i == n)
			usage_error("PRL_TEST_EXPECT", "names a result missing from result_names");
		c.expect = result_names[i].value;
	} else {
		c.expect = (PRL_RESULT)env_number("PRL_TEST_EXPECT", 0, 0);
	}
	c.server_uuid = getenv("PRL_TEST_SERVER_UUID");
	c.product_version = getenv("PRL_TEST_PRODUCT_VERSION");
	c.timeout_ms = (unsigned)env_number("PRL_TEST_TIMEOUT_MS", 0, 10000);
	return c;
}

/* ---- the SDK --------------------------------------------------------------------------- */

void sdk_init(void)
{
	const char *dir = env_required("PRL_LOG_DIR");
	mkdir(dir, 0700);
	PRL_RESULT rc = PrlApi_SetLogPath(dir);
	CHECK(PRL_SUCCEEDED(rc), "PrlApi_SetLogPath: 0x%08x", (unsigned)rc);
	rc = PrlApi_InitEx(VIRTUOZZO_API_VER, PAM_SERVER, 0, 0);
	CHECK(PRL_SUCCEEDED(rc), "PrlApi_InitEx: 0x%08x", (unsigned)rc);
}

void sdk_deinit(void)
{
	PRL_RESULT rc = PrlApi_Deinit();
	CHECK(PRL_SUCCEEDED(rc), "PrlApi_Deinit: 0x%08x", (unsigned)rc);
}

PRL_RESULT job_wait(PRL_HANDLE job, unsigned timeout_ms, const char *what)
{
	CHECK(job != PRL_INVALID_HANDLE, "%s: no job handle", what);
	PRL_RESULT rc = PrlJob_Wait(job, timeout_ms);
	CHECK(PRL_SUCCEEDED(rc), "%s: PrlJob_Wait(%u ms): 0x%08x", what, timeout_ms, (unsigned)rc);
	PRL_RESULT ret = 0;
	rc = PrlJob_GetRetCode(job, &ret);
	CHECK(PRL_SUCCEEDED(rc), "%s: PrlJob_GetRetCode: 0x%08x", what, (unsigned)rc);
	if (PRL_FAILED(ret)) {
		PRL_HANDLE err = PRL_INVALID_HANDLE;
		if (PRL_SUCCEEDED(PrlJob_GetError(job, &err))) {
			char b[1024];
			PRL_UINT32 l = sizeof(b);
			b[0] = 0;
			PrlEvent_GetErrString(err, PRL_FALSE, PRL_FALSE, b, &l);
			printf("  %s: job error: %s\n", what, b);
			PrlHandle_Free(err);
		}
	}
	return ret;
}

PRL_RESULT job_run(PRL_HANDLE job, unsigned timeout_ms, const char *what)
{
	PRL_RESULT ret = job_wait(job, timeout_ms, what);
	PrlHandle_Free(job);
	return ret;
}

void get_string(string_getter fn, PRL_HANDLE h, char *buf, unsigned len, const char *what)
{
	PRL_UINT32 l = len;
	buf[0] = 0;
	PRL_RESULT rc = fn(h, buf, &l);
	CHECK(PRL_SUCCEEDED(rc), "%s: 0x%08x", what, (unsigned)rc);
}

int is_braced_uuid(const char *s)
{
	static const char shape[] = "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}";
	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'x') {
			if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
				return 0;
		} else if (s[i] != shape[i]) {
			return 0;
		}
	}
	return 1;
}

test_login login_as_configured(const test_config *cfg, const char *prev_session,
		PRL_EVENT_HANDLER_PTR handler, void *data)
{
	test_login t;
	memset(&t, 0, sizeof(t));
	t.response = PRL_INVALID_HANDLE;
	PRL_RESULT rc = PrlSrv_Create(&t.server);
	CHECK(PRL_SUCCEEDED(rc), "PrlSrv_Create: 0x%08x", (unsigned)rc);
	if (handler) {
		rc = PrlSrv_RegEventHandler(t.server, handler, data);
		CHECK(PRL_SUCCEEDED(rc), "PrlSrv_RegEventHandler: 0x%08x", (unsigned)rc);
	}
	PRL_HANDLE job;
	if (cfg->local) {
		printf("PrlSrv_LoginLocalEx(security %d%s)\n", (int)cfg->security,
				*prev_session ? ", previous session" : "");
		job = PrlSrv_LoginLocalEx(t.server, prev_session, 0, cfg->security, 0);
	} else {
		printf("PrlSrv_LoginEx(%s:%u, user %s, security %d, timeout %u ms%s)\n", cfg->host,
				cfg->port, cfg->user, (int)cfg->security, cfg->timeout_ms,
				*prev_session ? ", previous session" : "");
		job = PrlSrv_LoginEx(t.server, cfg->host, cfg->user, cfg->password, prev_session,
				cfg->port, cfg->timeout_ms, cfg->security, 0);
	}
	fflush(stdout);
	t.rc = job_wait(job, cfg->timeout_ms + 5000, "login");
	if (PRL_SUCCEEDED(t.rc)) {
		PRL_HANDLE result = PRL_INVALID_HANDLE;
		rc = PrlJob_GetResult(job, &result);
		CHECK(PRL_SUCCEEDED(rc), "login: PrlJob_GetResult: 0x%08x", (unsigned)rc);
		rc = PrlResult_GetParam(result, &t.response);
		CHECK(PRL_SUCCEEDED(rc), "login: PrlResult_GetParam: 0x%08x", (unsigned)rc);
		PRL_HANDLE_TYPE type;
		rc = PrlHandle_GetType(t.response, &type);
		CHECK(PRL_SUCCEEDED(rc) && type == PHT_LOGIN_RESPONSE,
				"login: the result is not a PHT_LOGIN_RESPONSE (type %d)", (int)type);
		get_string(PrlLoginResponse_GetSessionUuid, t.response, t.session_uuid,
				sizeof(t.session_uuid), "PrlLoginResponse_GetSessionUuid");
		CHECK(is_braced_uuid(t.session_uuid), "session uuid %s is no braced uuid",
				t.session_uuid);
		PrlHandle_Free(result);
	}
	PrlHandle_Free(job);
	return t;
}

void logoff_and_free(test_login *t)
{
	CHECK_RC("PrlSrv_Logoff", job_run(PrlSrv_Logoff(t->server), 10000, "logoff"), PRL_ERR_SUCCESS);
	if (t->response != PRL_INVALID_HANDLE)
		PrlHandle_Free(t->response);
	PrlHandle_Free(t->server);
	t->response = t->server = PRL_INVALID_HANDLE;
}

int test_pass(test_login *t)
{
	if (t)
		logoff_and_free(t);
	sdk_deinit();
	printf("PASS\n");
	fflush(stdout);
	return 0;
}

/* ---- events ---------------------------------------------------------------------------- */

struct event_log {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	unsigned count;
	unsigned dropped;
	recorded_event events[MAX_RECORDED];
};

event_log *event_log_new(void)
{
	event_log *log = calloc(1, sizeof(*log));
	CHECK(log != NULL, "out of memory");
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&log->cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&log->mutex, NULL);
	return log;
}

/* Runs on the SDK's notification thread; gets a reference to `event` that it must free. */
PRL_RESULT event_log_handler(PRL_HANDLE event, PRL_VOID_PTR data)
{
	event_log *log = data;
	recorded_event r;
	memset(&r, 0, sizeof(r));
	r.job = PRL_INVALID_HANDLE;
	PrlHandle_GetType(event, &r.kind);
	if (r.kind == PHT_EVENT) {
		PrlEvent_GetType(event, &r.type);
		PRL_UINT32 len = sizeof(r.issuer);
		if (PRL_FAILED(PrlEvent_GetIssuerId(event, r.issuer, &len)))
			r.issuer[0] = 0;
		PrlEvent_GetIssuerType(event, &r.issuer_type);
		PrlEvent_GetErrCode(event, &r.code);
		PRL_HANDLE state = PRL_INVALID_HANDLE;
		if (PRL_SUCCEEDED(PrlEvent_GetParamByName(event, "vminfo_vm_state", &state))) {
			PRL_INT32 v = 0;
			r.has_vm_state = PRL_SUCCEEDED(PrlEvtPrm_ToInt32(state, &v));
			r.vm_state = (VIRTUAL_MACHINE_STATE)v;
			PrlEvtPrm_GetType(state, &r.vm_state_type);
			PrlHandle_Free(state);
		}
		PRL_HANDLE job = PRL_INVALID_HANDLE;
		if (PRL_SUCCEEDED(PrlEvent_GetJob(event, &job)) && job != PRL_INVALID_HANDLE) {
			r.job = job;   /* the handle value identifies the job; the program holds it */
			PrlHandle_Free(job);
		}
		if (r.type == PET_DSP_EVT_JOB_PROGRESS_CHANGED) {
			PRL_HANDLE param = PRL_INVALID_HANDLE;
			if (PRL_SUCCEEDED(PrlEvent_GetParamByName(event, "progress_changed", &param))) {
				PrlEvtPrm_ToUint32(param, &r.progress);
				PrlHandle_Free(param);
			} else {
				r.progress = 1000; /* no `progress_changed`: an impossible percentage */
			}
		}
	} else if (r.kind == PHT_JOB) {
		r.job = event;
		PrlJob_GetRetCode(event, &r.job_rc);
	}
	pthread_mutex_lock(&log->mutex);
	if (log->count < MAX_RECORDED)
		log->events[log->count++] = r;
	else
		log->dropped++;
	pthread_cond_broadcast(&log->cond);
	pthread_mutex_unlock(&log->mutex);
	PrlHandle_Free(event);
	return PRL_ERR_SUCCESS;
}

int event_log_wait(event_log *log, event_pred pred, const void *arg, unsigned timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&log->mutex);
	int held;
	while (!(held = pred(log->events, log->count, arg)) && log->dropped == 0) {
		if (pthread_cond_timedwait(&log->cond, &log->mutex, &until) == ETIMEDOUT) {
			held = pred(log->events, log->count, arg);
			break;
		}
	}
	unsigned dropped = log->dropped;
	pthread_mutex_unlock(&log->mutex);
	CHECK(dropped == 0, "more than %d events: the event log overflowed", MAX_RECORDED);
	return held;
}

unsigned event_log_snapshot(event_log *log, recorded_event *out, unsigned max)
{
	pthread_mutex_lock(&log->mutex);
	unsigned n = log->count < max ? log->count : max;
	memcpy(out, log->events, n * sizeof(*out));
	pthread_mutex_unlock(&log->mutex);
	return n;
}

int have_progress_of(const recorded_event *ev, unsigned n, const void *arg)
{
	const job_events_arg *a = arg;
	unsigned seen = 0;
	for (unsigned i = 0; i < n; i++)
		if (ev[i].kind == PHT_EVENT && ev[i].type == PET_DSP_EVT_JOB_PROGRESS_CHANGED
				&& ev[i].job == a->job)
			seen++;
	return seen >= a->count;
}

int have_job_notifications(const recorded_event *ev, unsigned n, const void *arg)
{
	const job_events_arg *a = arg;
	unsigned seen = 0;
	for (unsigned i = 0; i < n; i++)
		if (ev[i].kind == PHT_JOB && ev[i].job == a->job)
			seen++;
	return seen >= a->count;
}

job_progress job_progress_of(event_log *log, PRL_HANDLE job)
{
	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED);
	job_progress p;
	memset(&p, 0, sizeof(p));
	p.non_decreasing = 1;
	for (unsigned i = 0; i < n; i++) {
		if (ev[i].job != job)
			continue;
		if (ev[i].kind == PHT_JOB)
			p.results++;
		if (ev[i].kind != PHT_EVENT || ev[i].type != PET_DSP_EVT_JOB_PROGRESS_CHANGED)
			continue;
		if (ev[i].progress > 100 || ev[i].progress < p.last)
			p.non_decreasing = 0;
		if (p.results >= 2)
			p.progress_after_final = 1;
		p.last = ev[i].progress;
		p.progress++;
	}
	return p;
}

job_progress attached_task_result(event_log *log, PRL_HANDLE attach, PRL_RESULT want,
		unsigned timeout_ms)
{
	job_events_arg final = { attach, 2 };
	CHECK(event_log_wait(log, have_job_notifications, &final, timeout_ms),
			"the attached task's result did not arrive within %u ms", timeout_ms);
	PRL_RESULT rc = 0;
	CHECK(PRL_SUCCEEDED(PrlJob_GetRetCode(attach, &rc)), "PrlJob_GetRetCode failed");
	CHECK_RC("the attached task's result", rc, want);
	job_progress p = job_progress_of(log, attach);
	CHECK(p.results == 2, "%u notifications of the attach job, want 2", p.results);
	CHECK(p.non_decreasing, "the attach job's progress goes back or beyond 100%%");
	CHECK(!p.progress_after_final, "a progress event of the attach job after its result");
	return p;
}

/* ---- VMs ------------------------------------------------------------------------------- */

static int is_vm_state_event(const recorded_event *e, const char *uuid)
{
	return e->kind == PHT_EVENT && e->type == PET_DSP_EVT_VM_STATE_CHANGED
			&& !strcmp(e->issuer, uuid);
}

int have_vm_state_events(const recorded_event *ev, unsigned n, const void *arg)
{
	const vm_state_arg *a = arg;
	unsigned seen = 0;
	for (unsigned i = 0; i < n; i++)
		if (is_vm_state_event(&ev[i], a->issuer))
			seen++;
	return seen >= a->count;
}

unsigned vm_states_of(event_log *log, const char *uuid, VIRTUAL_MACHINE_STATE *states,
		unsigned max)
{
	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED), count = 0;
	for (unsigned i = 0; i < n; i++)
		if (is_vm_state_event(&ev[i], uuid) && count < max)
			states[count++] = ev[i].vm_state;
	return count;
}

void wait_vm_state_event(event_log *log, const char *uuid, unsigned nth,
		VIRTUAL_MACHINE_STATE state, unsigned timeout_ms)
{
	vm_state_arg a = { uuid, nth + 1 };
	CHECK(event_log_wait(log, have_vm_state_events, &a, timeout_ms),
			"no state event #%u of %s (%s) within %u ms", nth, uuid, vm_state_name(state),
			timeout_ms);
	static recorded_event ev[MAX_RECORDED];
	unsigned n = event_log_snapshot(log, ev, MAX_RECORDED), seen = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!is_vm_state_event(&ev[i], uuid) || seen++ != nth)
			continue;
		CHECK(ev[i].vm_state == state, "state event #%u of %s reports %s, want %s", nth, uuid,
				vm_state_name(ev[i].vm_state), vm_state_name(state));
		CHECK(ev[i].issuer_type == PIE_DISPATCHER, "the state event's issuer type is %d",
				(int)ev[i].issuer_type);
		CHECK(ev[i].code == 100000, "the state event's code is 0x%x, want 0x186a0",
				(unsigned)ev[i].code);
		CHECK(ev[i].has_vm_state && ev[i].vm_state_type == PFD_INT32,
				"the state event's vminfo_vm_state is no Integer");
		break;
	}
	test_ok("state event #%u: %s is %s", nth, uuid, vm_state_name(state));
}

PRL_HANDLE vm_list(const test_login *t, unsigned timeout_ms, PRL_UINT32 *count)
{
	PRL_HANDLE job = PrlSrv_GetVmList(t->server);
	CHECK_RC("PrlSrv_GetVmList", job_wait(job, timeout_ms, "vm list"), PRL_ERR_SUCCESS);
	PRL_HANDLE result = PRL_INVALID_HANDLE;
	PRL_RESULT rc = PrlJob_GetResult(job, &result);
	CHECK(PRL_SUCCEEDED(rc), "vm list: PrlJob_GetResult: 0x%08x", (unsigned)rc);
	rc = PrlResult_GetParamsCount(result, count);
	CHECK(PRL_SUCCEEDED(rc), "vm list: PrlResult_GetParamsCount: 0x%08x", (unsigned)rc);
	PrlHandle_Free(job);
	return result;
}

PRL_HANDLE vm_by_name(PRL_HANDLE list, PRL_UINT32 count, const char *name)
{
	for (PRL_UINT32 i = 0; i < count; i++) {
		PRL_HANDLE vm = PRL_INVALID_HANDLE;
		PRL_RESULT rc = PrlResult_GetParamByIndex(list, i, &vm);
		CHECK(PRL_SUCCEEDED(rc), "PrlResult_GetParamByIndex(%u): 0x%08x (the real parser "
				"refused the VM configuration)", (unsigned)i, (unsigned)rc);
		char got[256];
		get_string(PrlVmCfg_GetName, vm, got, sizeof(got), "PrlVmCfg_GetName");
		if (!strcmp(got, name))
			return vm;
		PrlHandle_Free(vm);
	}
	return PRL_INVALID_HANDLE;
}

PRL_RESULT vm_get_state(PRL_HANDLE vm, unsigned timeout_ms, VIRTUAL_MACHINE_STATE *state)
{
	PRL_HANDLE job = PrlVm_GetState(vm);
	PRL_RESULT ret = job_wait(job, timeout_ms, "PrlVm_GetState");
	if (PRL_SUCCEEDED(ret)) {
		PRL_HANDLE result = PRL_INVALID_HANDLE, info = PRL_INVALID_HANDLE;
		PRL_RESULT rc = PrlJob_GetResult(job, &result);
		CHECK(PRL_SUCCEEDED(rc), "PrlVm_GetState: PrlJob_GetResult: 0x%08x", (unsigned)rc);
		rc = PrlResult_GetParam(result, &info);
		CHECK(PRL_SUCCEEDED(rc), "PrlVm_GetState: PrlResult_GetParam: 0x%08x", (unsigned)rc);
		rc = PrlVmInfo_GetState(info, state);
		CHECK(PRL_SUCCEEDED(rc), "PrlVmInfo_GetState: 0x%08x", (unsigned)rc);
		PrlHandle_Free(info);
		PrlHandle_Free(result);
	}
	PrlHandle_Free(job);
	return ret;
}

PRL_RESULT vm_job(PRL_HANDLE job, unsigned timeout_ms, const char *what, char *details,
		unsigned len)
{
	PRL_RESULT ret = job_wait(job, timeout_ms, what);
	details[0] = 0;
	PRL_HANDLE err = PRL_INVALID_HANDLE;
	if (PRL_FAILED(ret) && PRL_SUCCEEDED(PrlJob_GetError(job, &err))) {
		PRL_HANDLE param = PRL_INVALID_HANDLE;
		if (PRL_SUCCEEDED(PrlEvent_GetParamByName(err, "Details", &param))) {
			PRL_UINT32 l = len;
			if (PRL_FAILED(PrlEvtPrm_ToString(param, details, &l)))
				details[0] = 0;
			PrlHandle_Free(param);
		}
		PrlHandle_Free(err);
	}
	PrlHandle_Free(job);
	return ret;
}

const char *vm_state_name(VIRTUAL_MACHINE_STATE s)
{
	switch (s) {
	case VMS_UNKNOWN: return "VMS_UNKNOWN";
	case VMS_STOPPED: return "VMS_STOPPED";
	case VMS_STARTING: return "VMS_STARTING";
	case VMS_RUNNING: return "VMS_RUNNING";
	case VMS_PAUSED: return "VMS_PAUSED";
	case VMS_SUSPENDED: return "VMS_SUSPENDED";
	case VMS_STOPPING: return "VMS_STOPPING";
	default: return "another state";
	}
}

/* ---- a lost session with a running task ------------------------------------------------ */

void lose_session_with_task(const test_config *cfg, char *session, unsigned len)
{
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		sdk_init();
		event_log *log = event_log_new();
		test_login t = login_as_configured(cfg, "", event_log_handler, log);
		CHECK_RC("first login", t.rc, PRL_ERR_SUCCESS);
		/* The simulator started a task for this session (--task-on-login) as if the client had
		 * sent the request; its progress reaches the client, parented to that request, which
		 * is no job of the SDK's. */
		job_events_arg unowned = { PRL_INVALID_HANDLE, 1 };
		CHECK(event_log_wait(log, have_progress_of, &unowned, cfg->timeout_ms),
				"no progress event of the session's task within %u ms "
				"(does the simulator run --task-on-login?)", cfg->timeout_ms);
		test_ok("the first session's task reports progress");
		size_t n = strlen(t.session_uuid);
		CHECK(write(fds[1], t.session_uuid, n) == (ssize_t)n, "pipe write failed");
		printf("dropping the connection without a logoff\n");
		fflush(stdout);
		_exit(0); /* the kernel closes the socket: the connection is lost */
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t r;
	while (got + 1 < len && (r = read(fds[0], session + got, len - 1 - got)) > 0)
		got += (size_t)r;
	session[got] = 0;
	close(fds[0]);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"the first session's process failed (status 0x%x)", (unsigned)status);
	CHECK(is_braced_uuid(session), "the first session's uuid %s is no braced uuid", session);
}

test_login relogin_listing_one_task(const test_config *cfg, const char *prev_session,
		event_log *log, char *task, unsigned len)
{
	test_login t = login_as_configured(cfg, prev_session, event_log_handler, log);
	CHECK_RC("login naming the previous session", t.rc, PRL_ERR_SUCCESS);
	CHECK(strcmp(t.session_uuid, prev_session) != 0,
			"the new session has the lost session's uuid %s", prev_session);
	PRL_UINT32 count = 0;
	PRL_RESULT rc = PrlLoginResponse_GetRunningTaskCount(t.response, &count);
	CHECK(PRL_SUCCEEDED(rc), "PrlLoginResponse_GetRunningTaskCount: 0x%08x", (unsigned)rc);
	CHECK(count == 1, "the login response lists %u running tasks of the lost session, want 1",
			(unsigned)count);
	PRL_HANDLE running = PRL_INVALID_HANDLE;
	rc = PrlLoginResponse_GetRunningTaskByIndex(t.response, 0, &running);
	CHECK(PRL_SUCCEEDED(rc), "PrlLoginResponse_GetRunningTaskByIndex: 0x%08x", (unsigned)rc);
	get_string(PrlRunningTask_GetTaskUuid, running, task, len, "PrlRunningTask_GetTaskUuid");
	CHECK(is_braced_uuid(task), "task id %s is no braced uuid", task);
	PRL_RUNNING_TASK_TYPE_ENUM type = RTT_RUNNING_TASK_COPY_IMAGE;
	rc = PrlRunningTask_GetTaskType(running, &type);
	CHECK(PRL_SUCCEEDED(rc), "PrlRunningTask_GetTaskType: 0x%08x", (unsigned)rc);
	/* The simulator's task command (9001) is none of the SDK's task types. */
	CHECK(type == RTT_RUNNING_TASK_UNKNOWN, "task type %d, want RTT_RUNNING_TASK_UNKNOWN",
			(int)type);
	char params[4096];
	get_string(PrlRunningTask_GetTaskParametersAsString, running, params, sizeof(params),
			"PrlRunningTask_GetTaskParametersAsString");
	PrlHandle_Free(running);
	test_ok("the login response lists the lost session's task");
	return t;
}

test_login lost_session_relogin(const test_config *cfg, event_log *log, char *task,
		unsigned len)
{
	char prev[64];
	lose_session_with_task(cfg, prev, sizeof(prev));
	test_ok("the first session is lost while its task runs");
	sdk_init();
	return relogin_listing_one_task(cfg, prev, log, task, len);
}

PRL_HANDLE attach_checked(const test_login *t, const char *task, unsigned timeout_ms)
{
	PRL_HANDLE attach = PrlSrv_AttachToLostTask(t->server, task);
	CHECK_RC("PrlSrv_AttachToLostTask", job_wait(attach, timeout_ms, "attach"),
			PRL_ERR_SUCCESS);
	return attach;
}
