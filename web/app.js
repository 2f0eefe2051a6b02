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
  $('log').prepend(li);
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

function newServer(autoRestore) {
  if (server) server.free();
  server = new Server({ proxyUrl, autoRestore });
  server.addEventListener('statechange', (e) => {
    setState(e.detail.state);
    log(`state ${e.detail.previous} → ${e.detail.state}${e.detail.error ? ` (${e.detail.error.kind})` : ''}`);
  });
  server.addEventListener('restored', (e) => {
    const d = e.detail;
    log(`restored by ${d.mode}; ${d.lostTasks.length} lost task(s)`);
    $('result').hidden || show('result', [...resultFields, ['restored by', d.mode]]);
  });
  server.addEventListener('event', (e) => {
    const d = e.detail;
    log(d.percent !== undefined ? `progress ${d.percent}% of ${d.jobId}` : `event type ${d.eventType ?? '-'} (package ${d.packageType})`);
  });
}

let resultFields = [];

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  $('result').hidden = true;
  $('error').hidden = true;
  newServer(f.autoRestore.checked);
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
    const r = await server.login(opts);
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
  try {
    await server.logoff();
    $('result').hidden = true;
    log('logged off');
  } catch (e) {
    log(`logoff failed: ${e.kind ?? e}`);
  }
});

await init();
setState('disconnected');
window.prlDemoReady = true;
