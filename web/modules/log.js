// The event log (one line per event; a task's progress is one line updated in place) and the
// live region, which announces state changes only: the log itself is not read out.
import { byId, el } from './dom.js';

/** Most lines kept: older ones are dropped, so a long session does not grow the page. */
const MAX_LINES = 500;

const list = byId('log');
const count = byId('log-count');
const announcer = byId('announcer');
const keyed = new Map(); // key -> <li>

/**
 * Adds a line, or with `key` (a task's job id) updates that task's line in place: a long task
 * is one line that changes, not hundreds.
 */
export function log(text, key) {
  let li = key ? keyed.get(key) : undefined;
  if (!li?.isConnected) {
    li = el('li');
    list.append(li);
    if (key) keyed.set(key, li);
    while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
    count.textContent = String(list.childElementCount);
  }
  const time = new Date().toLocaleTimeString([], { hour12: false });
  li.replaceChildren(el('time', { text: time }), ` ${text}`);
  if (key) li.dataset.key = key;
  list.scrollTop = list.scrollHeight;
}

/** Ends a keyed line: a later line with the same key starts a new one. */
export function endKey(key) {
  keyed.delete(key);
}

/**
 * Announces a state change through the live region (connection state, a VM's state, an
 * operation's outcome). Text that repeats is re-announced.
 */
export function announce(text) {
  announcer.textContent = announcer.textContent === text ? `${text}\u00a0` : text;
}
