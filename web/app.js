// The demo console: log in with @prl-web/client, show the LoginResponse or the typed error,
// the connection state and events, re-attach to the lost tasks of a restored session, and the
// host's VMs with their live state and start / stop buttons.
// The proxy serves this page at / and the npm package at /pkg/.
import init, { Server, ParallelsError } from '/pkg/index.js';

const $ = (id) => document.getElementById(id);
const form = $('login');
const proxyUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

// Demo defaults may come in the query string (never a password).
const query = new URLSearchParams(location.search);
for (const name of ['host', 'port', 'user', 'securityLevel', 'timeoutMs']) {
  if (query.has(name)) form.elements[name].value = query.get(name);
}

let server;
let serverAutoRestore;
let lastSession;
let loggingOff = false;
let abort;

function show(id, fields) {
  const dl = $(`${id}-fields`);
  dl.replaceChildren();
  for (const [k, v] of fields) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  }
  $(id).hidden = false;
}

// A line in the event log. A line with a `key` (the progress of one task) is updated in place,
// so a long task is one line that counts up, not hundreds.
const keyed = new Map();
function log(text, key) {
  const list = $('log');
  let li = key ? keyed.get(key) : undefined;
  if (!li?.isConnected) {
    li = document.createElement('li');
    list.append(li);
    if (key) keyed.set(key, li);
  }
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  list.scrollTop = list.scrollHeight;
}

// The lost tasks of a restored session, each with an "Attach" button that re-attaches to it
// (command 2090) and follows its progress to the final result.
function showTasks(tasks) {
  const list = $('task-list');
  list.replaceChildren();
  for (const t of tasks) {
    const li = document.createElement('li');
    const id = document.createElement('span');
    id.className = 'task-id';
    id.textContent = `${t.taskId} (command ${t.taskType})`;
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Attach';
    const progress = document.createElement('progress');
    progress.max = 100;
    progress.value = 0;
    const result = document.createElement('span');
    result.className = 'task-result';
    result.textContent = 'not attached';
    button.addEventListener('click', async () => {
      button.disabled = true;
      result.textContent = 'attached…';
      try {
        const r = await server.attachToLostTask(t.taskId, {
          onProgress: (d) => { progress.value = d.percent; },
        });
        progress.value = 100;
        result.textContent = `done (code ${r.code})`;
        log(`task ${t.taskId} done`);
      } catch (e) {
        result.textContent = `failed: ${e.kind ?? e}${e.codeName ? ` (${e.codeName})` : ''}`;
        result.classList.add('failed');
        button.disabled = false;
      }
    });
    li.append(id, button, progress, result);
    list.append(li);
  }
  $('tasks').hidden = tasks.length === 0;
}

// ---- the VM list -------------------------------------------------------------------------
// One row per VM of getVmList; its state follows the service's vmstatechange events (every
// session that may read a VM gets them, whoever started it), not the end of a button's call.

const OS_TYPES = { 8: 'Windows', 9: 'Linux', 10: 'FreeBSD', 255: 'Other' };
// PET_DSP_EVT_VM_STATE_CHANGED, _CONFIG_CHANGED, _ADDED, _DELETED, _UNREGISTERED.
const VM_EVENTS = new Set([100001, 100002, 100005, 100006, 100026]);
const vmRows = new Map(); // uuid -> row

const gib = (mb) => (mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 ? 1 : 0)} GiB` : `${mb} MiB`);
const canStart = (vm) => !vm.isTemplate && vm.validRc === 0 && ['stopped', 'paused', 'suspended'].includes(vm.state);
const canStop = (vm) => vm.validRc === 0 && ['running', 'paused'].includes(vm.state);

function renderVm(row) {
  const { vm } = row;
  row.state.textContent = vm.validRc ? 'no access' : vm.state;
  row.state.className = `vm-state vm-state-${vm.validRc ? 'unknown' : vm.state}`;
  row.start.disabled = row.busy || !canStart(vm);
  row.stop.disabled = row.busy || !canStop(vm);
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

// Runs a power operation for a row: the row is busy until the service's job ends; a refusal
// shows the service's code and message in the row.
async function vmAction(row, verb, run) {
  row.busy = true;
  row.error.textContent = '';
  renderVm(row);
  try {
    await run();
    log(`${verb} ${row.vm.name}: done`);
  } catch (e) {
    if (!(e instanceof ParallelsError)) throw e;
    row.error.textContent = `${e.codeName || e.kind}${e.details ? `: ${e.details}` : ''}`;
    log(`${verb} ${row.vm.name} failed: ${e.kind} ${e.codeName}${e.details ? ` (${e.details})` : ''}`);
  } finally {
    row.busy = false;
    renderVm(row);
  }
}

function vmRow(s, vm) {
  const tr = document.createElement('tr');
  tr.dataset.name = vm.name;
  const stateCell = document.createElement('td');
  const state = document.createElement('span');
  stateCell.append(state);
  const actions = document.createElement('td');
  actions.className = 'actions';
  const start = document.createElement('button');
  start.type = 'button';
  start.className = 'vm-start';
  start.textContent = 'Start';
  const stop = document.createElement('button');
  stop.type = 'button';
  stop.className = 'vm-stop';
  stop.textContent = 'Stop';
  const error = document.createElement('span');
  error.className = 'vm-error';
  actions.append(start, stop, error);
  const os = vm.validRc ? '—' : `${OS_TYPES[vm.osType] ?? vm.osType} (0x${vm.osVersion.toString(16)})`;
  tr.append(cell(vm.isTemplate ? `${vm.name} (template)` : vm.name), stateCell, cell(os),
    cell(vm.validRc ? '—' : String(vm.cpuCount)), cell(vm.validRc ? '—' : gib(vm.ramMb)), actions);
  const row = { vm, state, start, stop, error, busy: false };
  // Start also resumes a paused VM and restores a suspended one (what PrlVm_Start does);
  // Stop asks a running guest to shut down and kills a paused VM (it cannot shut down).
  start.addEventListener('click', () => vmAction(row, 'start', () => s.startVm(vm.uuid)));
  stop.addEventListener('click', () => vmAction(row, 'stop',
    () => s.stopVm(vm.uuid, { graceful: row.vm.state === 'running' })));
  renderVm(row);
  return [tr, row];
}

// Reads the host and the VM list (after a login, a restore, a VM added or removed, Refresh).
async function loadVms(s) {
  try {
    const [host, vms] = await Promise.all([s.getHostInfo(), s.getVmList()]);
    if (s !== server) return;
    // A real Linux service leaves the host name empty: the host logged in to stands in.
    $('host-line').textContent = `${host.hostName || host.host} · ${host.osName} · `
      + `${host.cpuCount} × ${host.cpuModel} · ${gib(host.ramMb)} RAM · ${host.productVersion}`;
    const rows = vms.map((vm) => vmRow(s, vm));
    vmRows.clear();
    for (const [, row] of rows) vmRows.set(row.vm.uuid, row);
    $('vm-list').replaceChildren(...rows.map(([tr]) => tr));
    $('vms').hidden = false;
  } catch (e) {
    if (!(e instanceof ParallelsError)) throw e;
    log(`reading the VMs failed: ${e.kind} ${e.codeName}`);
  }
}

function hideVms() {
  $('vms').hidden = true;
  $('vm-list').replaceChildren();
  vmRows.clear();
}

function setState(state) {
  const el = $('state');
  el.textContent = state;
  el.className = `state state-${state}`;
  const busy = state === 'connecting';
  const loggedIn = ['connected', 'unstable', 'restoring'].includes(state);
  $('login-button').disabled = busy || loggedIn;
  $('cancel-button').disabled = !busy;
  $('logoff-button').disabled = !loggedIn;
}

// One Server for the page: it holds the proof that lets a later login name its lost session as
// "Previous session" (the proxy refuses a previous session this browser did not own).
// A new one only when the restore setting changes.
function serverFor(autoRestore) {
  if (server && serverAutoRestore === autoRestore) return server;
  if (server) {
    const old = server;
    server = undefined; // its last events ('closed') are not this page's state any more
    old.free();
  }
  const s = new Server({ proxyUrl, autoRestore });
  server = s;
  serverAutoRestore = autoRestore;
  s.addEventListener('statechange', (e) => {
    if (s !== server) return;
    setState(e.detail.state);
    const d = e.detail;
    log(`state ${d.previous} → ${d.state}${d.error ? ` (${d.error.kind}: ${d.error.message})` : ''}`);
    if (['disconnected', 'closed'].includes(d.state)) hideVms();
    const lost = !loggingOff && ['connected', 'unstable', 'restoring'].includes(d.previous);
    if (d.state === 'disconnected' && lost && lastSession) {
      // The connection is gone for good: offer to restore the session in a new login.
      form.elements.prevSessionId.value = lastSession;
      $('result').hidden = true;
      $('tasks').hidden = true;
      log(`session ${lastSession} lost; "Log in" with it as previous session restores it`);
    }
  });
  s.addEventListener('restored', (e) => {
    if (s !== server) return;
    const d = e.detail;
    lastSession = d.sessionId;
    log(`restored by ${d.mode}; ${d.lostTasks.length} lost task(s)`);
    if (d.mode !== 'resumed') showTasks(d.lostTasks);
    if (!$('result').hidden) {
      show('result', [...resultFields.filter(([k]) => k !== 'session'), ['session', d.sessionId], ['restored by', d.mode]]);
    }
    // States may have changed while the connection was away.
    loadVms(s);
  });
  s.addEventListener('vmstatechange', (e) => {
    if (s !== server) return;
    const { uuid, state } = e.detail;
    const row = vmRows.get(uuid);
    if (row) {
      row.vm.state = state;
      renderVm(row);
    }
    log(`VM ${row?.vm.name ?? uuid} is ${state}`);
  });
  for (const type of ['vmadded', 'vmremoved', 'vmconfigchange']) {
    s.addEventListener(type, (e) => {
      if (s !== server) return;
      log(`${type} ${e.detail.uuid}`);
      loadVms(s);
    });
  }
  s.addEventListener('event', (e) => {
    if (s !== server) return;
    const d = e.detail;
    if (d.eventType === 100051 && d.jobId === undefined) {
      // Progress of a task of this session that no call of this page waits for.
      log(`a task of this session: ${d.params?.progress_changed ?? '?'}%`, 'session-task');
    } else if (d.percent !== undefined) {
      log(`progress ${d.percent}% of ${d.jobId}`, d.jobId);
    } else if (!VM_EVENTS.has(d.eventType)) {
      // (VM events are logged by their own listeners.)
      log(`event type ${d.eventType ?? '-'} (package ${d.packageType})`);
    }
  });
  return s;
}

let resultFields = [];

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  $('result').hidden = true;
  $('error').hidden = true;
  $('tasks').hidden = true;
  const s = serverFor(f.autoRestore.checked);
  abort = new AbortController();
  const opts = {
    host: f.host.value.trim(),
    user: f.user.value,
    password: f.password.value,
    port: Number(f.port.value || 0),
    securityLevel: Number(f.securityLevel.value),
    timeoutMs: Number(f.timeoutMs.value || 0),
    signal: abort.signal,
  };
  if (f.prevSessionId.value.trim()) opts.prevSessionId = f.prevSessionId.value.trim();
  f.password.value = '';
  const started = performance.now();
  try {
    const r = await s.login(opts);
    lastSession = r.sessionUuid;
    f.prevSessionId.value = '';
    resultFields = [
      ['session', r.sessionUuid],
      ['server', r.serverUuid],
      ['product', r.productVersion],
      ['host OS', r.hostOsVersion],
      ['restored', String(r.restored)],
      ['lost tasks', r.runningTasks.map((t) => t.taskId).join(', ') || 'none'],
      ['took', `${Math.round(performance.now() - started)} ms`],
    ];
    show('result', resultFields);
    showTasks(r.runningTasks);
    log('login ok');
    await loadVms(s);
  } catch (e) {
    if (!(e instanceof ParallelsError)) throw e;
    show('error', [
      ['kind', e.kind],
      ['code', e.code ? `0x${e.code.toString(16)}` : '—'],
      ['name', e.codeName || '—'],
      ['message', e.message],
    ]);
    log(`login failed: ${e.kind}`);
  }
});

$('cancel-button').addEventListener('click', () => abort?.abort());
$('vms-refresh').addEventListener('click', () => server && loadVms(server));

$('logoff-button').addEventListener('click', async () => {
  loggingOff = true;
  try {
    await server.logoff();
    lastSession = undefined;
    $('result').hidden = true;
    $('tasks').hidden = true;
    hideVms();
    log('logged off');
  } catch (e) {
    log(`logoff failed: ${e.kind ?? e}`);
  } finally {
    loggingOff = false;
  }
});

await init();
setState('disconnected');
window.prlDemoReady = true;
