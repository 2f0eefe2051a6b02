/**
 * `@prl-web/client`: the Parallels SDK login API for the browser.
 *
 * A {@link Server} reaches Parallels Service (`prl_disp_service`) through `prl-proxy` over one
 * WebSocket. The Parallels session itself (login packages, reply matching, cancel, restore)
 * runs in WebAssembly, compiled from the Rust crate `prl-client-wasm`.
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
   * task itself (not just this wait); the promise rejects with kind `canceled`.
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
 * this client waits for (a login, an attached task). Progress of a task nobody here waits for
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

/** Event types of a {@link Server} and their `detail`. */
export interface ServerEventMap {
  statechange: CustomEvent<StateChangeDetail>;
  event: CustomEvent<ProgressEventDetail | ServiceEventDetail>;
  restored: CustomEvent<RestoredDetail>;
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
  /** The current state; changes are announced by `statechange` events (no polling needed). */
  readonly state: ConnectionState;
  /** The session UUID of the current login, or `undefined`. */
  readonly sessionId: string | undefined;
  /** Listen for `statechange`, `event` or `restored`. */
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
 * `limit_reached`, `resume_failed`, `internal`, `state_unavailable` (a proxy of a cluster
 * cannot reach the state the cluster shares, and what was asked needs it: try again later),
 * `resume_elsewhere` (handled inside the client: a resume reached an instance that does not
 * hold the connection). Client side: `closed`, `canceled`,
 * `proxy_unreachable` (the WebSocket could not be opened: also a proxy that refused the
 * page's Origin, or a `proxyUrl` the page's Content-Security-Policy `connect-src` does not
 * allow), `invalid_argument`, `invalid_state`.
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
  | 'proxy_unreachable'
  | 'invalid_argument'
  | 'invalid_state';

/** The error every call of this package rejects or throws with. */
export class ParallelsError extends Error {
  /** @internal */
  constructor(message: string, code: number, codeName: string, kind: ErrorKind);
  /**
   * The SDK's `PRL_RESULT` (e.g. 0x80000330 `PRL_ERR_AUTHENTICATION_FAILED`), or 0 when the
   * failure has none (e.g. `policy_denied`).
   */
  readonly code: number;
  /** The `PRL_ERR_*` name of {@link ParallelsError.code}, or `''` when unknown. */
  readonly codeName: string;
  /** What failed, stable across versions. */
  readonly kind: ErrorKind;
}

/** Every {@link ErrorKind}, as the WebAssembly module knows them. */
export function errorKinds(): string[];
