// Formatting of values for people: sizes, durations, guest OSes, and what an error means.

/** MiB as `512 MiB` / `2 GiB` / `1.5 GiB`. */
export const mib = (mb) => (mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 ? 1 : 0)} GiB` : `${mb} MiB`);

/** A duration in ms as `42 s`, `3 min`, `1 h 05 min`. */
export function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`;
}

/** Guest OS families (`PVS_GUEST_TYPE_*`). */
const OS_TYPES = { 0: 'macOS', 8: 'Windows', 9: 'Linux', 10: 'FreeBSD', 11: 'OS/2', 12: 'MS-DOS',
  13: 'NetWare', 14: 'Solaris', 15: 'Chrome OS', 255: 'Other' };
/** Guest OS versions (`PVS_GUEST_VER_*` of libprlsdk's PrlOses.h) the consoles meet most. */
const OS_VERSIONS = {
  0x080f: 'Windows 10', 0x0813: 'Windows 11', 0x0810: 'Windows Server 2016', 0x0811: 'Windows Server 2019',
  0x0812: 'Windows Server 2022', 0x0906: 'Debian', 0x0907: 'Fedora', 0x090a: 'Ubuntu', 0x090f: 'openSUSE',
  0x0913: 'RHEL 7', 0x0914: 'CentOS 7', 0x091a: 'RHEL 8', 0x091b: 'CentOS 8', 0x091c: 'Virtuozzo Linux 8',
  0x091f: 'RHEL 9', 0x0920: 'AlmaLinux 9',
};

/** A guest OS as text: the version's name when known, else the family. */
export function guestOs(osType, osVersion) {
  return OS_VERSIONS[osVersion] ?? OS_TYPES[osType] ?? `type ${osType}`;
}

/** `PRL_ERR_FOO` or, for a failure without a code, its kind. */
export const errorName = (e) => e.codeName || e.kind || 'error';

/** One line on what to do about a failed login (by the error's kind, then its code). */
const LOGIN_HINTS = {
  authentication: 'Check the user name and password (both are case-sensitive).',
  timeout: 'The service did not answer in time: check the host and port, or raise the timeout.',
  connection_refused: 'Nothing accepts connections there: check the port (0 means 64000) and that the service runs.',
  dns_failed: 'The proxy cannot resolve this host name: use its IP address or a target name the proxy knows.',
  policy_denied: 'The proxy does not allow this host and port: use one its operator allows.',
  handshake_failed: 'The service refused this security level: try another one (its minimum, often Normal).',
  wrong_protocol_version: 'The service speaks another protocol version than this client.',
  tls_failed: 'The secure channel to the service failed: check that the port is Parallels Service\'s.',
  protocol_violation: 'The service answered something unexpected: check that the port is Parallels Service\'s.',
  origin_denied: 'The proxy does not accept this page\'s origin: open the console from the proxy\'s own address.',
  ticket_invalid: 'The proxy needs a valid ticket: open the console from your portal again.',
  limit_reached: 'Too many logins or connections right now: wait a minute, then try again.',
  restore_refused: 'The proxy no longer holds the lost session: connect without restoring it.',
  resume_failed: 'The lost connection could not be resumed: connect again.',
  proxy_unreachable: 'The proxy cannot be reached: check that it runs, that this page comes from it, and that the browser allows it local network access.',
  closed: 'The connection closed before the login finished: try again.',
  canceled: 'You canceled the login.',
  internal: 'The proxy failed: its log says why.',
  invalid_argument: 'Check the fields: host and user are required, the port is 0 to 65535.',
  invalid_state: 'A login or log off is already under way: wait for it.',
  service: 'The service refused the login: its message is below.',
};

/** What to do about a failed login, in one line. */
export const loginHint = (e) => LOGIN_HINTS[e.kind] ?? 'Try again; the event log has the details.';

/** One line on what to do about a refused VM operation (by code name, then kind). */
const VM_HINTS = {
  PRL_ERR_FAILURE: 'Refused in the VM\'s current state: another console may have changed it.',
  PRL_ERR_INVALID_ACTION_REQUESTED: 'The VM does not run (any more): its state is shown on the left.',
  PRL_ERR_DISP_VM_IS_NOT_RUNNING: 'Only a running VM can shut down; kill a paused one instead.',
  PRL_ERR_ACCESS_TO_VM_DENIED: 'This user may not operate this VM: ask its owner for access.',
  PRL_ERR_VM_UUID_NOT_FOUND: 'The VM is gone from the host: refresh the list.',
  PRL_ERR_CANT_TO_START_VM_TEMPLATE: 'A template cannot run: create a VM from it.',
  PRL_ERR_VM_IS_EXCLUSIVELY_LOCKED: 'Another operation on this VM is under way: try again when it ends.',
  PRL_ERR_TRY_AGAIN: 'The service is busy: try again in a moment.',
  command_refused: 'The proxy gives this console read-only access: ask its operator.',
  invalid_state: 'Not connected right now: wait for the connection to come back.',
  closed: 'The connection closed: the state is re-read once it is back.',
};

/** What to do about a refused VM operation, in one line. */
export const vmHint = (e) => VM_HINTS[e.codeName] ?? VM_HINTS[e.kind] ?? 'The event log has the details.';
