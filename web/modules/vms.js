// The host panel and the VM table: live states, a filter, per-VM actions enabled only where
// the VM's state allows them, a confirmation for destructive ones, a job's progress with
// Cancel, and refusals shown on the VM's row with the service's code.
import { byId, el, button } from './dom.js';
import { errorName, guestOs, mib, vmHint } from './format.js';
import { announce, endKey, log } from './log.js';
import { confirmStop, confirmReset } from './dialog.js';

/**
 * The actions, in the order of their buttons: the states a libvirt-based service accepts each
 * from (anything else it refuses; see sim/src/service/power.rs for the table).
 */
const ACTIONS = [
  { id: 'start', label: 'Start', doing: 'Starting', from: ['stopped', 'suspended'],
    run: (s, uuid, o) => s.startVm(uuid, o) },
  { id: 'stop', label: 'Stop…', doing: 'Stopping', from: ['running', 'paused'],
    ask: (vm) => confirmStop(vm), run: (s, uuid, o) => s.stopVm(uuid, o) },
  { id: 'pause', label: 'Pause', doing: 'Pausing', from: ['running'],
    run: (s, uuid, o) => s.pauseVm(uuid, o) },
  { id: 'resume', label: 'Resume', doing: 'Resuming', from: ['paused'],
    run: (s, uuid, o) => s.resumeVm(uuid, o) },
  { id: 'suspend', label: 'Suspend', doing: 'Suspending', from: ['running', 'paused'],
    run: (s, uuid, o) => s.suspendVm(uuid, o) },
  { id: 'reset', label: 'Reset…', doing: 'Resetting', from: ['running', 'paused'],
    ask: (vm) => confirmReset(vm), run: (s, uuid, o) => s.resetVm(uuid, o) },
];

/** How long a row waits for the state event of an operation whose cancel the service refused. */
const SETTLE_MS = 30000;

const rows = new Map(); // uuid -> row
let server;
let online = false;
let jobs = 0;

/** The VM table and host panel now belong to `s` (a new login); the old rows are dropped. */
export function setServer(s) {
  server = s;
  clearVms();
}

/** Whether operations can be sent (connected): while restoring, every action is disabled. */
export function setOnline(value) {
  online = value;
  for (const row of rows.values()) render(row);
}

/** Empties the host panel and the table. */
export function clearVms() {
  for (const row of rows.values()) clearTimeout(row.settleTimer);
  rows.clear();
  byId('vm-list').replaceChildren();
  byId('host-fields').replaceChildren();
  byId('host-name').textContent = '';
  byId('vms-error').hidden = true;
  updateCount();
}

/** A VM's name, for the log (its uuid when not listed). */
export const vmName = (uuid) => rows.get(uuid)?.vm.name ?? uuid;

/** A `vmstatechange`: the row's badge and buttons follow it, and the change is announced. */
export function vmStateChanged(uuid, state) {
  const row = rows.get(uuid);
  log(`VM ${vmName(uuid)} is ${state}`);
  if (!row) return;
  row.vm.state = state;
  clearTimeout(row.settleTimer);
  row.settling = false;
  render(row);
  announce(`${row.vm.name} is ${state}`);
}

/** Reads the host and the VM list into the panel and the table; rows keep their jobs. */
export async function loadAll(s = server) {
  if (!s || s !== server) return;
  try {
    const [host, vms] = await Promise.all([s.getHostInfo(), s.getVmList()]);
    if (s !== server) return;
    showHost(host);
    showVms(vms);
    byId('vms-error').hidden = true;
  } catch (e) {
    if (!e?.kind) throw e;
    if (s !== server) return;
    const box = byId('vms-error');
    box.textContent = `Reading the host and its VMs failed: ${errorName(e)}. ${vmHint(e)}`;
    box.hidden = false;
    log(`reading the VMs failed: ${e.kind} ${e.codeName}`);
  }
}

function showHost(h) {
  // A real Linux service leaves the host name empty: the host logged in to stands in.
  byId('host-name').textContent = h.hostName || h.host;
  const facts = [
    ['Product', h.productVersion],
    ['OS', h.osName],
    ['CPUs', `${h.cpuCount} × ${h.cpuModel}${h.cpuSpeedMhz ? ` (${(h.cpuSpeedMhz / 1000).toFixed(1)} GHz)` : ''}`],
    ['RAM', mib(h.ramMb)],
  ];
  byId('host-fields').replaceChildren(...facts.flatMap(([k, v]) => [
    el('div', { class: 'fact' }, el('dt', { text: k }), el('dd', { text: v || '—' }))]));
}

function showVms(vms) {
  const seen = new Set();
  for (const vm of vms) {
    seen.add(vm.uuid);
    const row = rows.get(vm.uuid);
    if (row) {
      row.vm = vm;
      fillCells(row);
      render(row);
    } else {
      rows.set(vm.uuid, makeRow(vm));
    }
  }
  for (const [uuid, row] of rows) {
    if (!seen.has(uuid)) {
      clearTimeout(row.settleTimer);
      row.tr.remove();
      rows.delete(uuid);
    }
  }
  const body = byId('vm-list');
  const order = vms.map((vm) => rows.get(vm.uuid).tr);
  if (order.some((tr, i) => body.children[i] !== tr)) body.append(...order);
  applyFilter();
}

function makeRow(vm) {
  const row = { vm, job: null, settling: false, settleTimer: undefined, buttons: {} };
  row.name = el('th', { scope: 'row', class: 'vm-name', tabindex: -1 });
  row.stateBadge = el('span', { class: 'badge vm-state' });
  row.os = el('td', { 'data-label': 'Guest OS' });
  row.cpus = el('td', { class: 'num', 'data-label': 'CPUs' });
  row.ram = el('td', { class: 'num', 'data-label': 'RAM' });
  const buttons = el('div', { class: 'action-buttons', role: 'group', 'aria-label': `Actions on ${vm.name}` });
  for (const action of ACTIONS) {
    const b = button(action.label, vm.name, { class: `vm-${action.id}` });
    b.addEventListener('click', () => act(row, action));
    row.buttons[action.id] = b;
    buttons.append(b);
  }
  row.progress = el('progress', { 'aria-label': `Operation on ${vm.name}` });
  row.jobText = el('span', { class: 'job-text' });
  row.cancel = button('Cancel', `the operation on ${vm.name}`, { class: 'vm-cancel' });
  row.cancel.addEventListener('click', () => {
    row.cancel.disabled = true;
    row.job?.abort.abort();
  });
  row.jobBox = el('div', { class: 'job', hidden: true }, row.progress, row.jobText, row.cancel);
  row.error = el('span', { class: 'vm-error' });
  row.hint = el('span', { class: 'vm-hint' });
  row.msg = el('p', { class: 'vm-msg', hidden: true }, row.error, ' ', row.hint);
  row.tr = el('tr', { 'data-name': vm.name, 'data-uuid': vm.uuid },
    row.name, el('td', { 'data-label': 'State' }, row.stateBadge), row.os, row.cpus, row.ram,
    el('td', { class: 'actions', 'data-label': 'Actions' }, buttons, row.jobBox, row.msg));
  fillCells(row);
  render(row);
  return row;
}

function fillCells(row) {
  const { vm } = row;
  const hidden = vm.validRc !== 0;
  row.name.replaceChildren(...[vm.name,
    vm.isTemplate && el('span', { class: 'tag', text: 'template' }),
    vm.description && el('span', { class: 'desc', text: vm.description })].filter(Boolean));
  row.os.textContent = hidden ? '—' : guestOs(vm.osType, vm.osVersion);
  row.cpus.textContent = hidden ? '—' : String(vm.cpuCount);
  row.ram.textContent = hidden ? '—' : mib(vm.ramMb);
}

const allowed = (row, action) => online && !row.job && !row.settling && row.vm.validRc === 0
  && !row.vm.isTemplate && action.from.includes(row.vm.state);

function render(row) {
  const { vm } = row;
  const noAccess = vm.validRc !== 0;
  row.stateBadge.textContent = noAccess ? 'no access' : vm.state;
  row.stateBadge.className = `badge vm-state vm-state-${noAccess ? 'unknown' : vm.state}`;
  for (const action of ACTIONS) row.buttons[action.id].disabled = !allowed(row, action);
  row.jobBox.hidden = !row.job && !row.settling;
  row.cancel.hidden = !row.job;
  row.tr.classList.toggle('busy', Boolean(row.job || row.settling));
}

function setMessage(row, text, hint, kind) {
  row.error.textContent = text;
  row.hint.textContent = hint;
  row.msg.className = `vm-msg ${kind}`;
  row.msg.hidden = !text;
}

/** Runs `action` on the row's VM (after its confirmation, if it has one). */
async function act(row, action) {
  const s = server;
  const { vm } = row;
  let opts = {};
  if (action.ask) {
    const answer = await action.ask(vm);
    // The dialog gives focus back to the button it came from.
    if (!answer || s !== server || !allowed(row, action)) return;
    opts = answer;
  }
  const abort = new AbortController();
  const focusInRow = row.tr.contains(document.activeElement);
  row.job = { abort };
  jobs += 1;
  const key = `vm-job-${jobs}`;
  const what = `${action.id}${action.id === 'stop' ? (opts.graceful ? ' (shut down)' : ' (kill)') : ''} ${vm.name}`;
  setMessage(row, '', '', '');
  row.progress.removeAttribute('value');
  row.jobText.textContent = `${action.doing}…`;
  row.cancel.disabled = false;
  render(row);
  if (focusInRow) row.cancel.focus();
  log(`${what}: under way`, key);
  try {
    await action.run(s, vm.uuid, {
      ...opts,
      signal: abort.signal,
      onProgress: (d) => {
        row.progress.value = d.percent / 100;
        log(`${what}: ${d.percent}%`, key);
      },
    });
    log(`${what}: done`, key);
  } catch (e) {
    if (!e?.kind) throw e;
    if (e.kind === 'canceled' && !e.cancelConfirmed) {
      // A power operation is not cancellable on the service: it runs to its end, and its state
      // event tells how it ended. The row waits for that event.
      const why = e.cancelCodeName || 'no answer';
      setMessage(row, `Not canceled (${why})`,
        'The service runs a power operation to its end; the state follows it.', 'info');
      log(`${what}: cancel refused by the service (${why}); it runs to its end`, key);
      announce(`${vm.name}: the service did not cancel the operation`);
      row.settling = true;
      row.settleTimer = setTimeout(() => {
        row.settling = false;
        render(row);
      }, SETTLE_MS);
    } else if (e.kind === 'canceled') {
      setMessage(row, 'Canceled', '', 'info');
      log(`${what}: canceled`, key);
    } else {
      setMessage(row, `${errorName(e)}${e.details ? `: ${e.details}` : ''}`, vmHint(e), 'failed');
      log(`${what} failed: ${e.kind} ${e.codeName}${e.details ? ` (${e.details})` : ''}`, key);
      announce(`${action.label.replace('…', '')} ${vm.name} failed: ${errorName(e)}`);
    }
  } finally {
    endKey(key);
    row.job = null;
    if (row.settling) row.jobText.textContent = `${action.doing} (the service finishes it)…`;
    const hadFocus = row.tr.contains(document.activeElement) || document.activeElement === document.body;
    render(row);
    if (hadFocus && focusInRow) {
      const next = ACTIONS.map((a) => row.buttons[a.id]).find((b) => !b.disabled);
      (next ?? row.name).focus();
    }
  }
}

/** Shows only the rows whose name contains the filter (case-insensitive). */
function applyFilter() {
  const q = byId('vm-filter').value.trim().toLowerCase();
  let shown = 0;
  for (const row of rows.values()) {
    const match = !q || row.vm.name.toLowerCase().includes(q);
    row.tr.hidden = !match;
    if (match) shown += 1;
  }
  byId('vm-empty').hidden = shown > 0 || rows.size === 0;
  updateCount(shown);
}

function updateCount(shown = rows.size) {
  byId('vm-count').textContent = rows.size === 0 ? '' : shown === rows.size ? `${rows.size}` : `${shown} of ${rows.size}`;
}

byId('vm-filter').addEventListener('input', applyFilter);
byId('vms-refresh').addEventListener('click', () => loadAll());
