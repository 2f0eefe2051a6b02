// The first demo: log in with @prl-web/client and show the LoginResponse or the typed error.
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

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const list = $('log');
  list.append(li);
  list.scrollTop = list.scrollHeight;
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
    const lost = !loggingOff && ['connected', 'unstable', 'restoring'].includes(d.previous);
    if (d.state === 'disconnected' && lost && lastSession) {
      // The connection is gone for good: offer to restore the session in a new login.
      form.elements.prevSessionId.value = lastSession;
      $('result').hidden = true;
      log(`session ${lastSession} lost; "Log in" with it as previous session restores it`);
    }
  });
  s.addEventListener('restored', (e) => {
    if (s !== server) return;
    const d = e.detail;
    lastSession = d.sessionId;
    log(`restored by ${d.mode}; ${d.lostTasks.length} lost task(s)`);
    if (!$('result').hidden) {
      show('result', [...resultFields.filter(([k]) => k !== 'session'), ['session', d.sessionId], ['restored by', d.mode]]);
    }
  });
  s.addEventListener('event', (e) => {
    if (s !== server) return;
    const d = e.detail;
    log(d.percent !== undefined ? `progress ${d.percent}% of ${d.jobId}` : `event type ${d.eventType ?? '-'} (package ${d.packageType})`);
  });
  return s;
}

let resultFields = [];

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  $('result').hidden = true;
  $('error').hidden = true;
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
    log('login ok');
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

$('logoff-button').addEventListener('click', async () => {
  loggingOff = true;
  try {
    await server.logoff();
    lastSession = undefined;
    $('result').hidden = true;
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
