/* common.h - shared helpers of the real-SDK test programs (tests/real-sdk/README.md).
 *
 * Every program is linked with common.c against the real libprl_sdk.so.9. It reads its target
 * from the environment the harness (`cargo xtask real-sdk`) sets, checks real outcomes with
 * CHECK / CHECK_RC (a failed check prints `FAIL file:line: ...` and exits with status 1), and
 * exits 0 only when every check passed. Exit status 2 is a usage error (missing variable).
 *
 * Environment:
 *   PRL_TEST_HOST, PRL_TEST_PORT        the simulator's TCP address (loopback)
 *   PRL_TEST_USER, PRL_TEST_PASSWORD    credentials for PrlSrv_LoginEx
 *   PRL_TEST_SECURITY                   0 (LOW), 1 (NORMAL) or 2 (HIGH)
 *   PRL_TEST_LOCAL                      1: log in with PrlSrv_LoginLocalEx instead
 *   PRL_TEST_EXPECT                     the PRL_RESULT the program's main operation must give:
 *                                       a PRL_ERR_* name of the SDK's headers (see
 *                                       result_names in common.c) or a number; default 0
 *   PRL_TEST_SERVER_UUID                the simulator's --server-uuid
 *   PRL_TEST_PRODUCT_VERSION            the simulator's --product-version
 *   PRL_TEST_TIMEOUT_MS                 the login timeout and the bound of every wait (10000)
 *   PRL_LOG_DIR                         where the SDK writes its log (a temporary directory)
 */
#ifndef PRL_REAL_SDK_TEST_COMMON_H
#define PRL_REAL_SDK_TEST_COMMON_H

#include "Virtuozzo.h"

/* ---- checks ---------------------------------------------------------------------------- */

void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void test_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond, ...) do { if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* `what` gave `got`; it must be `want` (both PRL_RESULT). */
#define CHECK_RC(what, got, want) \
	check_rc_at(__FILE__, __LINE__, (what), (PRL_RESULT)(got), (PRL_RESULT)(want))
void check_rc_at(const char *file, int line, const char *what, PRL_RESULT got, PRL_RESULT want);

/* The PRL_ERR_* name of `rc` when result_names in common.c has it, else NULL. */
const char *result_name(PRL_RESULT rc);

/* ---- configuration --------------------------------------------------------------------- */

typedef struct {
	const char *host;
	unsigned port;
	const char *user;
	const char *password;
	PRL_SECURITY_LEVEL security;
	int local;
	PRL_RESULT expect;
	const char *server_uuid;      /* NULL when not given */
	const char *product_version;  /* NULL when not given */
	unsigned timeout_ms;
} test_config;

/* Reads the environment above; exits 2 naming a missing or malformed variable. */
test_config test_config_from_env(void);

/* ---- the SDK --------------------------------------------------------------------------- */

/* PrlApi_SetLogPath(PRL_LOG_DIR) and PrlApi_InitEx for a server client; checked. */
void sdk_init(void);
/* PrlApi_Deinit; checked. */
void sdk_deinit(void);

/* Waits for `job` (at most `timeout_ms`) and returns its PrlJob_GetRetCode; a wait that
 * times out fails the test. Does not free the job. */
PRL_RESULT job_wait(PRL_HANDLE job, unsigned timeout_ms, const char *what);
/* job_wait, then PrlHandle_Free. */
PRL_RESULT job_run(PRL_HANDLE job, unsigned timeout_ms, const char *what);

/* A logged-in (or refused) server connection. */
typedef struct {
	PRL_HANDLE server;
	PRL_RESULT rc;            /* the login job's return code */
	PRL_HANDLE response;      /* PHT_LOGIN_RESPONSE on success, else PRL_INVALID_HANDLE */
	char session_uuid[64];    /* from the login response */
} test_login;

/* Creates a server handle, optionally registers `handler`/`data` on it, and logs in as the
 * config says (PrlSrv_LoginEx or PrlSrv_LoginLocalEx) naming `prev_session` (may be ""). */
test_login login_as_configured(const test_config *cfg, const char *prev_session,
		PRL_EVENT_HANDLER_PTR handler, void *data);
/* PrlSrv_Logoff must give 0 and leave PrlSrv_IsConnected false; frees the handles. */
void logoff_and_free(test_login *login);

/* The end of every program: logoff_and_free(t) when `t` is logged in, sdk_deinit, `PASS`;
 * returns main's 0. */
int test_pass(test_login *t);

/* Reads a string property into `buf` (checked to succeed). */
typedef PRL_RESULT (*string_getter)(PRL_HANDLE, PRL_STR, PRL_UINT32_PTR);
void get_string(string_getter fn, PRL_HANDLE h, char *buf, unsigned len, const char *what);

/* A service-format UUID: `{8-4-4-4-12}` of lower-case hex digits (Uuid::toString). */
int is_braced_uuid(const char *s);

/* ---- events (PrlSrv_RegEventHandler) --------------------------------------------------- */

#define MAX_RECORDED 256

typedef struct {
	PRL_HANDLE_TYPE kind;     /* PHT_EVENT or PHT_JOB */
	PRL_EVENT_TYPE type;      /* PHT_EVENT: PrlEvent_GetType */
	PRL_HANDLE job;           /* PHT_EVENT: PrlEvent_GetJob (PRL_INVALID_HANDLE if none);
	                             PHT_JOB: the job itself */
	unsigned progress;        /* PET_DSP_EVT_JOB_PROGRESS_CHANGED: `progress_changed` */
	PRL_RESULT job_rc;        /* PHT_JOB: PrlJob_GetRetCode when it was notified */
	char issuer[64];          /* PHT_EVENT: PrlEvent_GetIssuerId */
	PRL_EVENT_ISSUER_TYPE issuer_type; /* PHT_EVENT: PrlEvent_GetIssuerType */
	PRL_RESULT code;          /* PHT_EVENT: PrlEvent_GetErrCode */
	int has_vm_state;         /* PHT_EVENT: a `vminfo_vm_state` parameter is there */
	PRL_PARAM_FIELD_DATA_TYPE vm_state_type; /* its PrlEvtPrm_GetType */
	VIRTUAL_MACHINE_STATE vm_state; /* its PrlEvtPrm_ToInt32 */
} recorded_event;

/* What an event handler saw, in order, guarded by a mutex and a condition variable. */
typedef struct event_log event_log;

event_log *event_log_new(void);
/* The PRL_EVENT_HANDLER_PTR to register with an event_log as its data. */
PRL_RESULT event_log_handler(PRL_HANDLE event, PRL_VOID_PTR data);
/* Waits (at most timeout_ms) until `pred` holds for the log; returns its last result
 * (non-zero when it held). `pred` runs with the log locked. */
typedef int (*event_pred)(const recorded_event *events, unsigned count, const void *arg);
int event_log_wait(event_log *log, event_pred pred, const void *arg, unsigned timeout_ms);
/* A copy of what was recorded so far; returns the count. */
unsigned event_log_snapshot(event_log *log, recorded_event *out, unsigned max);

/* Predicate arguments and predicates used by several programs. */
typedef struct {
	PRL_HANDLE job;           /* PRL_INVALID_HANDLE: events of no job of ours */
	unsigned count;           /* how many */
} job_events_arg;
/* At least `count` progress events of `job`. */
int have_progress_of(const recorded_event *ev, unsigned n, const void *arg);
/* At least `count` PHT_JOB notifications of `job`. */
int have_job_notifications(const recorded_event *ev, unsigned n, const void *arg);

/* What the log holds about `job`'s progress and results, in order. */
typedef struct {
	unsigned progress;        /* progress events of the job */
	unsigned last;            /* the last one's percentage */
	int non_decreasing;       /* every percentage <= 100 and >= the one before */
	unsigned results;         /* PHT_JOB notifications of the job */
	int progress_after_final; /* a progress event after the second notification */
} job_progress;
job_progress job_progress_of(event_log *log, PRL_HANDLE job);

/* Waits (at most timeout_ms) for the attached task's result, which reaches the attach job
 * `attach` as its second notification, and checks: its return code is `want`, the job was
 * notified exactly twice, its progress never went back or beyond 100 % and none came after
 * the result. Returns the progress seen, for the caller's own checks. */
job_progress attached_task_result(event_log *log, PRL_HANDLE attach, PRL_RESULT want,
		unsigned timeout_ms);

/* ---- VMs ------------------------------------------------------------------------------- */

/* The state events (PET_DSP_EVT_VM_STATE_CHANGED) of `issuer` (a VM uuid). */
typedef struct {
	const char *issuer;
	unsigned count;
} vm_state_arg;
/* The log holds at least arg->count state events of arg->issuer. */
int have_vm_state_events(const recorded_event *ev, unsigned n, const void *arg);
/* The state events of `uuid` in the log, in order, into `states` (at most max); their count. */
unsigned vm_states_of(event_log *log, const char *uuid, VIRTUAL_MACHINE_STATE *states,
		unsigned max);
/* Waits (at most timeout_ms) for the state event number `nth` (from 0) of `uuid` and checks it
 * reports `state`, with what the SDK hands the callback: issuer type PIE_DISPATCHER, the event
 * code 100000 (PET_VM_INF_UNINITIALIZED_EVENT_CODE), the state as an Integer (PFD_INT32)
 * parameter. Counting matters: an operation's reply may come before its event, so waiting
 * for "an event with this state" could match an older one. */
void wait_vm_state_event(event_log *log, const char *uuid, unsigned nth,
		VIRTUAL_MACHINE_STATE state, unsigned timeout_ms);

/* PrlSrv_GetVmList, checked to succeed; the result handle (free it) and its entry count. */
PRL_HANDLE vm_list(const test_login *t, unsigned timeout_ms, PRL_UINT32 *count);
/* The VM handle of the entry named `name` in a VM list result (PRL_INVALID_HANDLE if none). */
PRL_HANDLE vm_by_name(PRL_HANDLE list, PRL_UINT32 count, const char *name);
/* PrlVm_GetState: the job's result (0 or an error) and, on success, the state. */
PRL_RESULT vm_get_state(PRL_HANDLE vm, unsigned timeout_ms, VIRTUAL_MACHINE_STATE *state);
/* Runs a VM job to its end; on failure reads the error event's `Details` into `details`
 * (empty when there is none). Returns the job's result. */
PRL_RESULT vm_job(PRL_HANDLE job, unsigned timeout_ms, const char *what, char *details,
		unsigned len);
/* VMS_* name of a state. */
const char *vm_state_name(VIRTUAL_MACHINE_STATE s);

/* ---- a lost session with a running task ------------------------------------------------ */

/* In a child process: logs in as configured (the simulator runs `--task-on-login`, so the
 * session gets a task), waits for the task's first progress event (parented to a request the
 * client never sent: no job of the SDK's), then drops the connection without a logoff
 * (_exit). Returns that session's UUID in `session` (checked to be a braced UUID). Must be
 * called before sdk_init in this process. */
void lose_session_with_task(const test_config *cfg, char *session, unsigned len);

/* Logs in naming `prev_session`; checks that exactly one task is listed and returns its id
 * (PrlRunningTask_GetTaskUuid) in `task`. */
test_login relogin_listing_one_task(const test_config *cfg, const char *prev_session,
		event_log *log, char *task, unsigned len);

/* lose_session_with_task, sdk_init, then relogin_listing_one_task with `log` registered. */
test_login lost_session_relogin(const test_config *cfg, event_log *log, char *task,
		unsigned len);

/* PrlSrv_AttachToLostTask(task) from `t`, checked to return 0; the job stays registered for
 * the task's progress and result. */
PRL_HANDLE attach_checked(const test_login *t, const char *task, unsigned timeout_ms);

#endif
