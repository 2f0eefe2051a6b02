// The session bar (connection state, session age, lost tasks, log off) and the lost tasks'
// panel: attach to a task the previous session left running, follow it, cancel it.
import { byId, el, button } from './dom.js';
import { age, errorName } from './format.js';
import { announce, endKey, log } from './log.js';

const STATE_TEXT = { connected: 'connected', unstable: 'unstable', restoring: 'restoring', connecting: 'connecting' };

let since = 0;
let ticker;

function tick() {
  byId('session-age').textContent = age(Date.now() - since);
}

/** Shows the bar for a session of `user` on `host`, its age counted from now. */
export function startSession(user, host) {
  byId('session-who').textContent = `${user} @ ${host}`;
  since = Date.now();
  tick();
  clearInterval(ticker);
  ticker = setInterval(tick, 1000);
  byId('session').hidden = false;
}

/** A new session replaced the lost one (a restore by a new login): its age starts again. */
export function restartAge() {
  since = Date.now();
  tick();
}

/** Hides the bar. */
export function endSession() {
  clearInterval(ticker);
  byId('session').hidden = true;
  showTasks(undefined, []);
}

/** The connection state in the bar. */
export function setConnState(state) {
  const badge = byId('conn-state');
  badge.textContent = STATE_TEXT[state] ?? state;
  badge.className = `badge conn-${state}`;
  byId('main').classList.toggle('degraded', state === 'unstable' || state === 'restoring');
}

const tasksButton = byId('tasks-button');
tasksButton.addEventListener('click', () => {
  const open = byId('tasks').hidden;
  byId('tasks').hidden = !open;
  tasksButton.setAttribute('aria-expanded', String(open));
  if (open) byId('tasks-title').focus();
});
byId('tasks-title').tabIndex = -1;

/** Lists the lost tasks of a restored session, each with Attach (and Cancel while attached). */
export function showTasks(server, tasks) {
  const list = byId('task-list');
  list.replaceChildren(...tasks.map((t) => taskItem(server, t)));
  byId('tasks-count').textContent = String(tasks.length);
  tasksButton.hidden = tasks.length === 0;
  byId('tasks').hidden = tasks.length === 0;
  tasksButton.setAttribute('aria-expanded', String(tasks.length > 0));
  if (tasks.length) announce(`${tasks.length} lost task${tasks.length > 1 ? 's' : ''} to attach`);
}

function taskItem(server, t) {
  const name = `task ${t.taskId}`;
  const attach = button('Attach', name, { class: 'task-attach' });
  const cancel = button('Cancel', name, { class: 'task-cancel', hidden: true });
  const progress = el('progress', { max: 100, value: 0, 'aria-label': `Progress of ${name}` });
  const result = el('span', { class: 'task-result', text: 'not attached' });
  let abort;
  attach.addEventListener('click', async () => {
    attach.disabled = true;
    cancel.disabled = false;
    cancel.hidden = false;
    cancel.focus();
    result.textContent = 'attached…';
    result.classList.remove('failed');
    abort = new AbortController();
    const key = `task-${t.taskId}`;
    log(`lost task ${t.taskId}: attached`, key);
    try {
      const r = await server.attachToLostTask(t.taskId, {
        signal: abort.signal,
        onProgress: (d) => {
          progress.value = d.percent;
          log(`lost task ${t.taskId}: ${d.percent}%`, key);
        },
      });
      progress.value = 100;
      result.textContent = `done (code ${r.code})`;
      log(`lost task ${t.taskId}: done`, key);
      announce(`Lost task done`);
      attach.textContent = 'Done';
    } catch (e) {
      if (!e?.kind) throw e;
      const canceled = e.kind === 'canceled';
      result.textContent = canceled
        ? (e.cancelConfirmed ? 'canceled by the service' : `cancel not confirmed (${e.cancelCodeName || 'no answer'})`)
        : `failed: ${errorName(e)}`;
      result.classList.add('failed');
      log(`lost task ${t.taskId}: ${result.textContent}`, key);
      announce(`Lost task ${canceled ? 'canceled' : 'failed'}`);
      attach.disabled = canceled && e.cancelConfirmed;
    } finally {
      endKey(key);
      abort = undefined;
      cancel.hidden = true;
      if (document.activeElement === document.body || document.activeElement === cancel) attach.focus();
    }
  });
  cancel.addEventListener('click', () => {
    cancel.disabled = true;
    abort?.abort();
  });
  return el('li', { 'data-task': t.taskId },
    el('span', { class: 'task-id', text: `${t.taskId} (command ${t.taskType})` }),
    el('span', { class: 'task-buttons' }, attach, cancel), progress, result);
}
