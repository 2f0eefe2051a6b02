// The connect screen: the form, the settings remembered in this browser (never the password),
// and a failed login's PRL_ERR_* name with a one-line hint.
import { byId } from './dom.js';
import { errorName, loginHint } from './format.js';

/** localStorage key of the remembered settings. */
export const STORAGE_KEY = 'prl-web.console.last';
/** What is remembered (never the password). */
const REMEMBERED = ['host', 'port', 'securityLevel', 'timeoutMs', 'user'];

const form = byId('login');
const f = form.elements;

/** Fills the form: remembered settings, then the query string (the demo's link; never a password). */
function prefill() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '{}') ?? {};
  } catch {
    // A broken entry is ignored (and replaced on the next login).
  }
  const query = new URLSearchParams(location.search);
  for (const name of REMEMBERED) {
    const value = query.get(name) ?? saved[name];
    if (typeof value === 'string' || typeof value === 'number') f[name].value = String(value);
  }
}

/** Remembers the settings of a successful login (the password is not among them). */
function remember(values) {
  const kept = Object.fromEntries(REMEMBERED.map((k) => [k, values[k]]));
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(kept));
  } catch {
    // Storage may be off (private mode, quota): remembering is a convenience.
  }
}

/**
 * Wires the form. `login(values, signal)` runs the login (resolves or throws a
 * ParallelsError); the password is cleared from the form as soon as it is read.
 */
export function initConnect({ login }) {
  prefill();
  let abort;
  byId('cancel-button').addEventListener('click', () => abort?.abort());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (abort) return;
    const values = {
      host: f.host.value.trim(),
      user: f.user.value.trim(),
      password: f.password.value,
      port: Number(f.port.value || 0),
      securityLevel: Number(f.securityLevel.value),
      timeoutMs: Number(f.timeoutMs.value || 0),
      autoRestore: f.autoRestore.checked,
      restoreSession: !byId('lost-notice').hidden && f.restoreSession.checked,
    };
    f.password.value = '';
    clearError();
    abort = new AbortController();
    setBusy(true);
    try {
      await login(values, abort.signal);
      remember(values);
    } catch (e) {
      if (!e?.kind) throw e;
      showError(e);
    } finally {
      values.password = '';
      abort = undefined;
      setBusy(false);
    }
  });
}

function setBusy(busy) {
  byId('login-button').disabled = busy;
  byId('cancel-button').hidden = !busy;
  byId('login-progress').hidden = !busy;
  for (const el of form.querySelectorAll('fieldset')) el.disabled = busy;
}

/** Shows a failed login: the PRL_ERR_* name, a hint of what to do, the message; focus on it. */
export function showError(e) {
  byId('login-error-name').textContent = errorName(e);
  byId('login-error-kind').textContent = e.codeName && e.kind ? `(${e.kind}${e.code ? `, 0x${(e.code >>> 0).toString(16)}` : ''})` : '';
  byId('login-error-hint').textContent = loginHint(e);
  byId('login-error-message').textContent = e.details ? `${e.message}: ${e.details}` : e.message;
  const box = byId('login-error');
  box.hidden = false;
  box.focus();
}

function clearError() {
  byId('login-error').hidden = true;
}

/** After a session was lost for good: says so, and offers to restore it in the next login. */
export function showLost(text, error) {
  byId('lost-notice-text').textContent = text;
  f.restoreSession.checked = true;
  byId('lost-notice').hidden = false;
  if (error) showError(error);
}

/** Forgets a lost session (after a log off). */
export function hideLost() {
  byId('lost-notice').hidden = true;
}

/** Moves focus to the first empty field (or the password). */
export function focusForm() {
  const empty = [f.host, f.user].find((i) => !i.value);
  (empty ?? f.password).focus();
}
