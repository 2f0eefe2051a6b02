/**
 * `@prl-web/client`: the Parallels SDK for the browser: log in, read the host and its VMs, run
 * power operations and follow VM state events.
 *
 * A {@link Server} reaches Parallels Service (`prl_disp_service`) through `prl-proxy` over one
 * WebSocket. The Parallels session itself (login packages, requests, reply matching, cancel,
 * restore) runs in WebAssembly, compiled from the Rust crate `prl-client-wasm`.
 *
 * @example
 * ```ts
 * import init, { Server, SecurityLevel, ParallelsError } from '@prl-web/client';
 *
 * await init();
 * const server = new Server({ proxyUrl: 'wss://proxy.example/ws' });
 * try {
 *   const r = await server.login({ host: '10.0.0.5', user: 'alice', password: 'secret',
 *                                  securityLevel: SecurityLevel.High, timeoutMs: 10_000 });
 *   console.log('session', r.sessionUuid, 'on', r.productVersion);
 *   server.addEventListener('vmstatechange', (e) => console.log(e.detail.uuid, e.detail.state));
 *   for (const vm of await server.getVmList()) console.log(vm.name, vm.state);
 *   await server.logoff();
 * } catch (e) {
 *   if (e instanceof ParallelsError) console.error(e.kind, e.codeName, e.message);
 * } finally {
 *   server.free();
 * }
 * ```
 *
 * @packageDocumentation
 */

/**
 * Loads and instantiates the WebAssembly module. Call (and await) it once before anything else.
 *
 * @param module - Where the `.wasm` is: a URL or path (default: `prl_client_wasm_bg.wasm` next to
 *   this module, resolved with `import.meta.url`; under Vite's dev server, which pre-bundles
 *   this module into `node_modules/.vite/deps/`, the package's own copy), a `Response`, bytes,
 *   or a compiled `WebAssembly.Module`. Also accepts `{ module_or_path }`.
 * @throws `Error` naming the URL when the default location answers something other than the
 *   module (a 404, or a dev server's `index.html`); pass the URL explicitly then.
 */
export default function init(
  module?:
    | { module_or_path: InitInput | Promise<InitInput> }
    | InitInput
    | Promise<InitInput>,
): Promise<InitOutput>;

/**
 * Synchronous instantiation from bytes or a compiled module (for workers and Node.js).
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/** What {@link init} accepts. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;
/** What {@link initSync} accepts. */
export type SyncInitInput = BufferSource | WebAssembly.Module;
/** The raw WebAssembly exports (not needed by applications). */
export interface InitOutput {
  readonly memory: WebAssembly.Memory;
}

/**
 * Connection security level (`PRL_SECURITY_LEVEL`), negotiated in the IOService handshake.
 * TLS is always set up; the level decides which packages travel inside it.
 */
export enum SecurityLevel {
  /** `PSL_LOW_SECURITY`: all packages plain after the TLS handshake. */
  Low = 0,
  /** `PSL_NORMAL_SECURITY` (default): commands, replies and events encrypted. */
  Normal = 1,
  /** `PSL_HIGH_SECURITY`: everything encrypted. */
  High = 2,
}

/** Options of `new Server(...)`. */
export interface ServerOptions {
  /** The proxy's relay endpoint, `wss://host/ws` (`ws://` only on loopback). */
  proxyUrl: string;
  /**
   * Signed ticket for the proxy, if it requires one. Tickets are single use: pass a function
   * to get a fresh one for every new upstream connection (automatic restore opens new ones;
   * with a fixed string, a restore that needs a new connection fails with `ticket_invalid`).
   * Tickets travel in the first WebSocket message, never in the URL.
   */
  ticket?: string | (() => string | Promise<string>);
  /**
   * Restore automatically after an unexpected connection loss (default `true`): first resume
   * through the proxy (same session, nothing lost), otherwise log in again with the previous
   * session UUID. While on, the user name and password are kept in WebAssembly memory (never
   * in JavaScript objects) and zeroized on {@link Server.logoff} and {@link Server.free}.
   * Behind a cluster of proxies (the proxy's `docs/scaling.md`) the resume goes through
   * `proxyUrl` first; an instance that does not hold the connection names the one that does
   * (`resume_elsewhere`), and the client resumes there, once, and only at the instance URL the
   * proxy gave for this connection when it was opened or last resumed. When `proxyUrl` does
   * not answer, that instance is asked directly; when the instance is gone, the client logs in
   * again through `proxyUrl` with its restore proof. The page's Content-Security-Policy
   * `connect-src` must allow the instances' URLs (the scaling guide puts them all on the
   * balancer's origin). Restore gives up after 8 attempts (jittered backoff, about 15 to 30 s), or at once when
   * another attempt cannot help (e.g. `authentication` after a password change): the state
   * becomes `'disconnected'` with the error in {@link StateChangeDetail.error}, and the
   * credentials are zeroized.
   */
  autoRestore?: boolean;
}

/** Options of {@link Server.login} (the arguments of the SDK's `PrlSrv_LoginEx`). */
export interface LoginOptions {
  /** Service host name or IP address, as the proxy's policy allows it (or a configured target name). */
  host: string;
  /** User name. */
  user: string;
  /** Password. */
  password: string;
  /** Service TCP port; 0 or absent = 64000. */
  port?: number;
  /** Security level; default {@link SecurityLevel.Normal}. */
  securityLevel?: SecurityLevel;
  /**
   * A previous session UUID to restore: the service lists that session's still-running tasks
   * in {@link LoginResponse.runningTasks} (and takes over the session if it is still live).
   * prl-proxy accepts only a session this same `Server` object had (it sends the proxy the
   * proof it holds for its last session until {@link Server.logoff} or {@link Server.free});
   * any other (or one whose proof the proxy no longer holds, e.g. after a proxy restart) is
   * refused with kind `restore_refused`.
   */
  prevSessionId?: string;
  /**
   * Connect budget in ms: bounds establishing the connection (TCP connect + IOService
   * handshake + TLS), not the wait for the login reply, as in the SDK. 0 or absent = no
   * deadline of yours (the proxy's ceiling, 60 s by default, still applies). The client gives
   * up on its own 1.5 s after your budget (the proxy's `timeout` normally comes first), and
   * with no budget after 75 s, so a proxy that never answers cannot hold a login.
   */
  timeoutMs?: number;
  /**
   * Cancels the login: before the request is sent the connection closes; after, the SDK's
   * cancel (command 2053) is sent. The promise rejects with kind `'canceled'`.
   */
  signal?: AbortSignal;
}

/** Options of {@link Server.loginLocal} (`PrlSrv_LoginLocal`). */
export interface LoginLocalOptions {
  /** Service TCP port; 0 or absent = 64000. */
  port?: number;
  /** Security level; default {@link SecurityLevel.Normal}. */
  securityLevel?: SecurityLevel;
  /** A previous session UUID to restore, as in {@link LoginOptions.prevSessionId}. */
  prevSessionId?: string;
  /** Connect budget in ms, as in {@link LoginOptions.timeoutMs}. */
  timeoutMs?: number;
  /** Cancels the login, as in {@link LoginOptions.signal}. */
  signal?: AbortSignal;
}

/** A task a lost session left running (`response_login_cmd_task_info`). */
export interface LostTask {
  /** The task's job UUID, `{...}`: pass it to {@link Server.attachToLostTask}. */
  taskId: string;
  /** The command (package type) that started the task. */
  taskType: number;
  /** The task's parameters as the service reports them (CVmEvent XML, may be empty). */
  taskParams: string;
}

/** The result of a successful login. */
export interface LoginResponse {
  /** The session UUID, `{...}` (a secret: do not log it). */
  sessionUuid: string;
  /** The service's server UUID. */
  serverUuid: string;
  /** The service's product version. */
  productVersion: string;
  /** The host OS version. */
  hostOsVersion: string;
  /** Tasks of the previous session (`prevSessionId`) that are still running. */
  runningTasks: LostTask[];
  /** True when `prevSessionId` restored something: the same live session, or lost tasks. */
  restored: boolean;
}

/** Options of {@link Server.attachToLostTask}. */
export interface AttachOptions {
  /** Called with every progress event of the task. */
  onProgress?: (progress: ProgressEventDetail) => void;
  /**
   * Cancels the task: the SDK's cancel (command 2053) goes to the service, which cancels the
   * task itself (not just this wait); the promise rejects with kind `canceled` once the
   * service answered the cancel ({@link ParallelsError.cancelConfirmed}).
   */
  signal?: AbortSignal;
}

/** The final result of a task re-attached with {@link Server.attachToLostTask}. */
export interface TaskResult {
  /** The task. */
  taskId: string;
  /** The command the final reply answers. */
  opcode: number;
  /** Its `PRL_RESULT` (0: success; failures reject with a {@link ParallelsError}). */
  code: number;
  /** The reply's standard string parameters. */
  params: string[];
}

/** Options every operation after login takes. */
export interface OperationOptions {
  /**
   * Cancels the operation: the SDK's cancel (`PrlJob_Cancel`, command 2053) goes to the
   * service, and the promise rejects with kind `'canceled'` once the service answered the
   * cancel (at most 10 s later), with {@link ParallelsError.cancelConfirmed} saying whether the
   * service canceled it. **A VM power operation cannot be canceled**: the service answers
   * `PRL_ERR_TASK_NOT_FOUND` (`cancelConfirmed: false`) and the operation runs to its end; its
   * `vmstatechange` event tells what happened. The operation's late reply is dropped.
   */
  signal?: AbortSignal;
  /**
   * Called with the job's progress events (`PET_DSP_EVT_JOB_PROGRESS_CHANGED`), if the service
   * sends any. A real service sends none for VM power operations.
   */
  onProgress?: (progress: ProgressEventDetail) => void;
}

/** Host information: what the SDK's `PrlSrvCfg_*` getters read of `PrlSrv_GetSrvConfig`. */
export interface HostInfo {
  /** Logical CPUs (`Cpu/Number`). */
  cpuCount: number;
  /** CPU model (`Cpu/Model`). */
  cpuModel: string;
  /** CPU speed in MHz. */
  cpuSpeedMhz: number;
  /** Host RAM in MiB (`MemorySettings/HostRamSize`). */
  ramMb: number;
  /** Host OS type (`PRL_HOST_OS_TYPE`: 0 macOS, 1 Linux, 2 Windows). */
  osType: number;
  /** Host OS version numbers (on Linux from `uname -r`). */
  osVersion: { major: number; minor: number; subMinor: number };
  /** The host OS as text, e.g. `Virtuozzo Linux release 9.0 (5.14.0-...)`. */
  osName: string;
  /**
   * The host name the service reports (`NetworkSettings/GlobalNetwork/HostName`). **The real
   * Linux service never fills it: expect `''`** and show {@link HostInfo.host} instead.
   */
  hostName: string;
  /** The host this session logged in to, as given to {@link Server.login} (`''` for a local login). */
  host: string;
  /** The service's product version (from the login reply). */
  productVersion: string;
  /** The host hardware info document as the service sent it (`<VirtuozzoHostInfo>` XML). */
  xml: string;
}

/**
 * A VM state (`VIRTUAL_MACHINE_STATE`). A libvirt-based service (Virtuozzo 7+, OpenVZ) only
 * reports `stopped`, `running`, `paused` and `suspended` (and `mounted` / `migrating` in their
 * flows); the transient ones come from older dispatchers. A value this package does not know is
 * `'unknown'` (with its number in `stateCode`).
 */
export type VmStateName =
  | 'unknown'
  | 'stopped'
  | 'starting'
  | 'restoring'
  | 'running'
  | 'paused'
  | 'suspending'
  | 'stopping'
  | 'compacting'
  | 'suspended'
  | 'snapshoting'
  | 'resetting'
  | 'pausing'
  | 'continuing'
  | 'migrating'
  | 'deleting_state'
  | 'resuming'
  | 'suspending_sync'
  | 'reconnecting'
  | 'mounted';

/** A VM of {@link Server.getVmList}: what the SDK's `PrlVmCfg_*` getters read of its configuration. */
export interface VmSummary {
  /** The VM uuid, `{...}`, exactly as the service sent it: pass it back unchanged. */
  uuid: string;
  /** The VM name. */
  name: string;
  /** Its state; `'unknown'` for an entry without one (a VM this user may not read). */
  state: VmStateName;
  /** The raw `VIRTUAL_MACHINE_STATE` (e.g. 0x30000004 running; 0 when unknown). */
  stateCode: number;
  /** Guest OS type (`PVS_GUEST_TYPE_*`: 8 Windows, 9 Linux, 10 FreeBSD, 255 other). */
  osType: number;
  /** Guest OS version (`PVS_GUEST_VER_*`, type << 8 | n, e.g. 0x090A Ubuntu). */
  osVersion: number;
  /** Virtual CPUs. */
  cpuCount: number;
  /** RAM in MiB. */
  ramMb: number;
  /** The VM's description. */
  description: string;
  /** The VM's configuration file on the host (may be `''`). */
  home: string;
  /** A template (listed, not startable). */
  isTemplate: boolean;
  /**
   * 0, or why the entry is incomplete: e.g. 0x80000239 `PRL_ERR_ACCESS_TO_VM_DENIED` for a VM
   * this user may not read (the service still lists it, with name and uuid only).
   */
  validRc: number;
  /** 0 a virtual machine, 1 a container. */
  vmType: number;
  /** The guest's host name, as configured. */
  hostName: string;
  /** The configuration document (`<VirtuozzoVirtualMachine>` XML), with `getVmList({ xml: true })`. */
  xml?: string;
  /**
   * Set on an entry that does not read (the SDK's `PrlResult_GetParamByIndex` fails for it
   * too): the stable kind of the parse error; the other fields are empty and `xml` holds
   * the document.
   */
  error?: string;
}

/** Options of {@link Server.getVmList}. */
export interface VmListOptions extends OperationOptions {
  /** `PRL_GET_VM_LIST_FLAGS` as `PrlSrv_GetVmListEx` takes them (default 0, as `PrlSrv_GetVmList`). */
  flags?: number;
  /** Include each VM's configuration document in {@link VmSummary.xml} (default false: they are large). */
  xml?: boolean;
}

/** The state of one VM ({@link Server.getVmState}, `PrlVm_GetState`). */
export interface VmStateInfo {
  /** The VM asked about. */
  uuid: string;
  /** Its state. */
  state: VmStateName;
  /** The raw `VIRTUAL_MACHINE_STATE`. */
  stateCode: number;
  /** The service's access check failed (`vminfo_vm_is_invalid`). */
  isInvalid: boolean;
  /** That check's result code. */
  validRc: number;
  /** The guest tools' state (`VIRTUAL_MACHINE_ADDITION_STATE`). */
  additionState: number;
  /** The VM info event as XML. */
  xml: string;
}

/** Options of {@link Server.startVm}. */
export interface StartVmOptions extends OperationOptions {
  /**
   * `PrlVm_StartEx` start mode (`PSM_VM_START` 2048, `PSM_VM_SAFE_START` 4096,
   * `PSM_VM_START_FOR_COMPACT` 8192, `PSM_VM_START_FOR_REPAIR` 16384). With `mode` or
   * `reserved` the start is command 1036 (`DspCmdVmStartEx`), otherwise 1001.
   */
  mode?: number;
  /** `PrlVm_StartEx`'s second argument (`PNSF_*`). */
  reserved?: number;
}

/** Options of {@link Server.stopVm}. */
export interface StopVmOptions extends OperationOptions {
  /**
   * `PrlVm_Stop(graceful)`: `true` (the default, as `prlctl stop`) asks the guest to shut down
   * (`PSM_SHUTDOWN`; the service kills it after 120 s), `false` kills it (`PSM_KILL`).
   */
  graceful?: boolean;
  /** `PrlVm_StopEx` mode instead (`PSM_KILL` 0, `PSM_SHUTDOWN` 1, `PSM_ACPI` 2); not with `graceful`. */
  mode?: number;
  /** `PrlVm_StopEx` flags (`PSF_FORCE` 2048, `PSF_NOFORCE` 4096); needs `mode`. */
  flags?: number;
}

/** Options of {@link Server.pauseVm}. */
export interface PauseVmOptions extends OperationOptions {
  /** `PrlVm_Pause`'s ACPI flag (the service ignores it). */
  acpi?: boolean;
}

/**
 * A parameter of {@link Server.request}: written as the SDK's `CVmEventParameter` of that type
 * writes it (`PVE::ParamFieldDataType`).
 */
export type RequestParam =
  | { name: string; type: 'string'; value: string }
  | { name: string; type: 'unsignedInt'; value: number }
  | { name: string; type: 'integer'; value: number }
  | { name: string; type: 'boolean'; value: boolean }
  | { name: string; type: 'int64'; value: number | bigint }
  | { name: string; type: 'uInt64'; value: number | bigint }
  | { name: string; type: 'stringList'; value: string[] };

/** Options of {@link Server.request}. */
export interface RequestOptions extends OperationOptions {
  /** `proto_command_flags` (default 0; the SDK passes the caller's flags through unchanged). */
  flags?: number;
}

/** One parameter of a reply. */
export interface ReplyParam {
  /** Its name. */
  name: string;
  /** Its `PVE::ParamFieldDataType` (0 UnsignedInt, 1 String, 2 Integer, 6 Boolean, 16 Int64, 17 UInt64, ...). */
  type: number;
  /** Its text (`''` for a list). */
  value: string;
  /** A list parameter's items. */
  items?: string[];
}

/** The reply {@link Server.request} resolves with (`CProtoCommandDspWsResponse`, a 5001 package). */
export interface RequestReply {
  /** The `PRL_RESULT` (not an error: failures reject). */
  code: number;
  /** Its `PRL_ERR_*` name (`'PRL_ERR_SUCCESS'`). */
  codeName: string;
  /** The request type it answers (`proto_request_op_code`). */
  opcode: number;
  /** Every `ws_response_cmd_standard_param`, in order (what `PrlResult_GetParamByIndex` reads). */
  standardParams: string[];
  /** Every parameter of the reply event, in order. */
  params: ReplyParam[];
  /** The error event the reply carried (`ws_response_cmd_error`), if any. */
  error?: { code: number; codeName: string; details?: string; xml: string };
  /** The reply event as XML. */
  xml: string;
}

/** `detail` of a `vmstatechange` event (`PET_DSP_EVT_VM_STATE_CHANGED`). */
export interface VmStateChangeDetail {
  /** The VM. */
  uuid: string;
  /** Its new state. */
  state: VmStateName;
  /** The raw `VIRTUAL_MACHINE_STATE`. */
  stateCode: number;
}

/** `detail` of a `vmadded` (`PET_DSP_EVT_VM_ADDED`) or `vmconfigchange` (`PET_DSP_EVT_VM_CONFIG_CHANGED`) event. */
export interface VmEventDetail {
  /** The VM. */
  uuid: string;
}

/** `detail` of a `vmremoved` event. */
export interface VmRemovedDetail {
  /** The VM. */
  uuid: string;
  /** `'deleted'` (`PET_DSP_EVT_VM_DELETED`) or `'unregistered'` (`PET_DSP_EVT_VM_UNREGISTERED`). */
  reason: 'deleted' | 'unregistered';
}

/** Connection state of a {@link Server}. */
export type ConnectionState =
  /** No session. */
  | 'disconnected'
  /** A login is in progress. */
  | 'connecting'
  /** Logged in. */
  | 'connected'
  /** The connection was lost; a restore attempt is scheduled. */
  | 'unstable'
  /** A restore attempt is running. */
  | 'restoring'
  /** `free()` was called. */
  | 'closed';

/** `detail` of a `statechange` event. */
export interface StateChangeDetail {
  /** The new state. */
  state: ConnectionState;
  /** The state before. */
  previous: ConnectionState;
  /** Why automatic restore gave up (only on its final change to `'disconnected'`). */
  error?: ParallelsError;
}

/**
 * `detail` of an `event` event for the progress (`PET_DSP_EVT_JOB_PROGRESS_CHANGED`) of a job
 * this client waits for (a login, an attached task, an operation). Progress of a task nobody here waits for
 * (e.g. one the service runs for this session) arrives as a {@link ServiceEventDetail} with
 * `eventType` 100051 and `params.progress_changed`, without `jobId` and `percent`.
 */
export interface ProgressEventDetail {
  /** 3003 (`DspVmEvent`). */
  packageType: number;
  /** 100051. */
  eventType: number;
  /** The job (request package UUID, `{...}`) the progress belongs to. */
  jobId: string;
  /** Percent done. */
  percent: number;
}

/** `detail` of an `event` event for any other package from the service. */
export interface ServiceEventDetail {
  /** The package type (3003 for XML events). */
  packageType: number;
  /** `PET_DSP_EVT_*` event type, when the package carries an event. */
  eventType?: number;
  /** The event's code. */
  code?: number;
  /** The event's parameters by name (lists as arrays). */
  params?: Record<string, string | string[]>;
}

/** `detail` of a `restored` event. */
export interface RestoredDetail {
  /**
   * `'resumed'`: the proxy kept the service connection, the session continues unchanged.
   * `'relogin'`: a new login with the previous session UUID; a new session UUID, and the
   * previous session's tasks still running in `lostTasks`.
   * `'new_session'`: the proxy no longer held the proof for the previous session (it
   * restarted, or the proof expired), so a plain login made a new session; the previous
   * session's tasks are out of reach (`lostTasks` is empty).
   */
  mode: 'resumed' | 'relogin' | 'new_session';
  /** The session UUID now in force. */
  sessionId: string;
  /** The session UUID before the loss. */
  previousSessionId: string;
  /** Tasks of the previous session still running (re-attach with {@link Server.attachToLostTask}). */
  lostTasks: LostTask[];
}

/**
 * Event types of a {@link Server} and their `detail`. A VM event is dispatched twice: as its
 * own type (`vmstatechange`, ...) and as a plain `event` with the raw parameters.
 */
export interface ServerEventMap {
  statechange: CustomEvent<StateChangeDetail>;
  event: CustomEvent<ProgressEventDetail | ServiceEventDetail>;
  restored: CustomEvent<RestoredDetail>;
  /** A VM's state changed (from any session or the host itself); every session that may read the VM gets it. */
  vmstatechange: CustomEvent<VmStateChangeDetail>;
  /** A VM was registered or created. */
  vmadded: CustomEvent<VmEventDetail>;
  /** A VM was deleted or unregistered. */
  vmremoved: CustomEvent<VmRemovedDetail>;
  /** A VM's configuration changed (re-read it with {@link Server.getVmList}). */
  vmconfigchange: CustomEvent<VmEventDetail>;
}

/**
 * A connection to one Parallels Service through prl-proxy: the SDK's server handle.
 * Call {@link Server.free} when done with it.
 */
export class Server {
  /**
   * @throws {@link ParallelsError} (`invalid_argument`) for bad options, including a `proxyUrl`
   * that is not a well-formed `ws://` or `wss://` URL.
   */
  constructor(opts: ServerOptions);
  /**
   * Log in with user name and password (`PrlSrv_LoginEx`).
   * @throws {@link ParallelsError}: `authentication` (wrong user or password:
   *   `PRL_ERR_AUTHENTICATION_FAILED` 0x80000330), `handshake_failed` (a security level the
   *   service does not accept: below its minimum, and for a Normal or High minimum any other
   *   level, as `IORoutingTable::accept` decides), `timeout`, `canceled`, relay kinds, ...
   *   Only `opts.signal` stops a login underway: {@link Server.logoff} while `connecting`
   *   rejects (`invalid_state`) and the login goes on.
   */
  login(opts: LoginOptions): Promise<LoginResponse>;
  /**
   * Log in to the service next to the proxy as the proxy's OS user (`PrlSrv_LoginLocal`).
   * Refused (`policy_denied`) unless the proxy's operator enables it.
   */
  loginLocal(opts?: LoginLocalOptions): Promise<LoginResponse>;
  /**
   * Log off (`PrlSrv_Logoff`) and close the connection; zeroizes held credentials and the
   * restore proof. While `unstable` or `restoring` it stops restoring at once without a
   * logoff to the service (the proxy keeps the upstream session until its resume window
   * ends, then the service ends it). Rejected (`invalid_state`) when not logged in or while
   * a logoff is under way, with no other effect.
   */
  logoff(): Promise<void>;
  /**
   * Attach to a task a lost session left running (`PrlSrv_AttachToLostTask`, command 2090) and
   * wait for its final result. Progress arrives through `opts.onProgress` and `event` events.
   */
  attachToLostTask(taskId: string, opts?: AttachOptions): Promise<TaskResult>;
  /**
   * The host's hardware and OS (`PrlSrv_GetSrvConfig`, command 2051).
   * @throws {@link ParallelsError}: `invalid_state` when not logged in, `service`, ...
   */
  getHostInfo(opts?: OperationOptions): Promise<HostInfo>;
  /**
   * The VMs of the host this user may see (`PrlSrv_GetVmList`, command 2029), in the
   * service's order (templates first). VMs this user may not read are listed with
   * `validRc` set and no state.
   */
  getVmList(opts?: VmListOptions): Promise<VmSummary[]>;
  /**
   * A VM's state (`PrlVm_GetState`, command 2062).
   * @throws {@link ParallelsError}: `service` with 0x80000105 `PRL_ERR_VM_UUID_NOT_FOUND`,
   *   0x80000239 `PRL_ERR_ACCESS_TO_VM_DENIED`, ...
   */
  getVmState(uuid: string, opts?: OperationOptions): Promise<VmStateInfo>;
  /**
   * Start a VM (`PrlVm_Start`, command 1001; `PrlVm_StartEx`, 1036, with a mode). Resolves when
   * the service's job ends, i.e. once the VM runs (its `vmstatechange` comes around the same
   * time, in either order). A paused VM is resumed, a suspended one restored.
   * @throws {@link ParallelsError} of kind `service` with the service's code and
   *   {@link ParallelsError.details}: e.g. 0x80000009 `PRL_ERR_FAILURE` "VM is already running",
   *   0x80000105 `PRL_ERR_VM_UUID_NOT_FOUND`, 0x80000239 `PRL_ERR_ACCESS_TO_VM_DENIED`; kind
   *   `command_refused` when the proxy's scope does not allow power operations; `canceled`.
   */
  startVm(uuid: string, opts?: StartVmOptions): Promise<void>;
  /**
   * Stop a VM (`PrlVm_Stop` / `PrlVm_StopEx`, command 1002); resolves once it is stopped.
   * @throws {@link ParallelsError}: e.g. 0x80000516 `PRL_ERR_INVALID_ACTION_REQUESTED` (kill a
   *   stopped VM), 0x80000595 `PRL_ERR_DISP_VM_IS_NOT_RUNNING` (graceful stop of a VM that is
   *   not running).
   */
  stopVm(uuid: string, opts?: StopVmOptions): Promise<void>;
  /**
   * Pause a running VM (`PrlVm_Pause`, command 1007); resolves once it is paused.
   * @throws {@link ParallelsError}: 0x80000009 `PRL_ERR_FAILURE` "VM pause from a non-running
   *   state is impossible".
   */
  pauseVm(uuid: string, opts?: PauseVmOptions): Promise<void>;
  /**
   * Resume a paused or suspended VM (`PrlVm_Resume`): the SDK sends a start (1001), and so does
   * this; the errors are the start's.
   */
  resumeVm(uuid: string, opts?: OperationOptions): Promise<void>;
  /** Suspend a VM to disk (`PrlVm_Suspend`, command 1008); resolves once it is suspended. */
  suspendVm(uuid: string, opts?: OperationOptions): Promise<void>;
  /** Reset a VM (`PrlVm_Reset`, command 1006); the service answers as soon as the reset is done. */
  resetVm(uuid: string, opts?: OperationOptions): Promise<void>;
  /**
   * Restart the guest OS (`PrlVm_Restart`, command 1039 `DspCmdVmRestartGuest`); the service
   * answers as soon as the reboot is requested.
   */
  restartVm(uuid: string, opts?: OperationOptions): Promise<void>;
  /**
   * Send any dispatcher or VM command the SDK has and this package does not wrap: the package
   * type (1000-2999, except the session's own login and logoff commands), the command's
   * parameters after the two every command carries (`proto_force_questions_sign`,
   * `proto_command_flags` = `opts.flags`), in wire order. Resolves with the reply; a failure
   * code rejects like the other operations (kind `service`, with `details`).
   * @throws {@link ParallelsError} `invalid_argument` for a description the core refuses
   *   (nothing is sent).
   */
  request(packageType: number, params?: RequestParam[], opts?: RequestOptions): Promise<RequestReply>;
  /** The current state; changes are announced by `statechange` events (no polling needed). */
  readonly state: ConnectionState;
  /** The session UUID of the current login, or `undefined`. */
  readonly sessionId: string | undefined;
  /** Listen for `statechange`, `event`, `restored` or the VM events (`vmstatechange`, `vmadded`, `vmremoved`, `vmconfigchange`). */
  addEventListener<K extends keyof ServerEventMap>(
    type: K,
    listener: (event: ServerEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Remove a listener (pass the same `capture` flag it was added with, as in the DOM). */
  removeEventListener<K extends keyof ServerEventMap>(
    type: K,
    listener: (event: ServerEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Close everything now: the connection, pending calls (they reject with kind `closed`),
   * held credentials; a last `statechange` announces `closed`. It releases the WebAssembly
   * object too. Afterwards `state` is `'closed'`, `sessionId` is `undefined`, calls reject with
   * kind `invalid_state` (`PRL_ERR_NOT_CONNECTED_TO_DISPATCHER`), listener calls do nothing and
   * `free()` again is a no-op.
   */
  free(): void;
}

/**
 * Stable names of failures. Service replies: `authentication` (wrong credentials),
 * `service` (any other `PRL_ERR_*` from the service). Proxy (relay) failures: `policy_denied`,
 * `origin_denied`, `ticket_invalid`, `dns_failed`, `connection_refused`, `timeout`,
 * `handshake_failed`, `wrong_protocol_version`, `tls_failed`, `protocol_violation`,
 * `limit_reached`, `resume_failed`, `internal`, `command_refused` (the proxy's command
 * scope does not allow this request: it was not sent to the service, the session stays up;
 * code 0x80000005 `PRL_ERR_ACCESS_DENIED`), `state_unavailable` (a proxy of a cluster
 * cannot reach the state the cluster shares, and what was asked needs it: try again later),
 * `resume_elsewhere` (handled inside the client: a resume reached an instance that does not
 * hold the connection). Client side: `closed`, `canceled`,
 * `proxy_unreachable` (the WebSocket could not be opened: also a proxy that refused the
 * page's Origin, a `proxyUrl` the page's Content-Security-Policy `connect-src` does not
 * allow, or a proxy on a private or loopback address that Chromium's Local Network Access
 * check kept a public page from reaching: see the README), `invalid_argument`, `invalid_state`.
 */
export type ErrorKind =
  | 'authentication'
  | 'service'
  | 'policy_denied'
  | 'origin_denied'
  | 'ticket_invalid'
  | 'dns_failed'
  | 'connection_refused'
  | 'timeout'
  | 'handshake_failed'
  | 'wrong_protocol_version'
  | 'tls_failed'
  | 'protocol_violation'
  | 'limit_reached'
  | 'restore_refused'
  | 'resume_failed'
  | 'internal'
  | 'state_unavailable'
  | 'resume_elsewhere'
  | 'closed'
  | 'canceled'
  | 'command_refused'
  | 'proxy_unreachable'
  | 'invalid_argument'
  | 'invalid_state';

/** The error every call of this package rejects or throws with. */
export class ParallelsError extends Error {
  /** @internal */
  constructor(message: string, code: number, codeName: string, kind: ErrorKind, extra?: object);
  /**
   * The SDK's `PRL_RESULT` (e.g. 0x80000330 `PRL_ERR_AUTHENTICATION_FAILED`), or 0 when the
   * failure has none (e.g. `policy_denied`).
   */
  readonly code: number;
  /** The `PRL_ERR_*` name of {@link ParallelsError.code}, or `''` when unknown. */
  readonly codeName: string;
  /** What failed, stable across versions. */
  readonly kind: ErrorKind;
  /**
   * Kind `service`: the service's own message (the `Details` of the error event its reply
   * carried, e.g. "VM is already running"), when it sent one that is not empty. Its wording
   * depends on the service (and libvirt): show it, do not match on it.
   */
  readonly details?: string;
  /**
   * Kind `canceled`: whether the service confirmed the cancel (it answered the SDK's cancel
   * with success, or ended the operation with `PRL_ERR_OPERATION_WAS_CANCELED` itself). `false`
   * means the operation may still run to its end on the service: VM power operations always
   * do (the service answers their cancel with `PRL_ERR_TASK_NOT_FOUND`); watch `vmstatechange`
   * or ask {@link Server.getVmState}.
   */
  readonly cancelConfirmed?: boolean;
  /** Kind `canceled`: the code the service answered the cancel (2053) with, when it answered. */
  readonly cancelCode?: number;
  /** The `PRL_ERR_*` name of {@link ParallelsError.cancelCode}. */
  readonly cancelCodeName?: string;
}

/** Every {@link ErrorKind}, as the WebAssembly module knows them. */
export function errorKinds(): string[];
