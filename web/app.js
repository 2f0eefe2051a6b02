// The prl-web console: log in with @prl-web/client through the prl-proxy that serves this page,
// then the host, its VMs with live states and power operations, the session's connection
// state and lost tasks, and an event log. The proxy serves this page at / and the package at
// /pkg/. The parts live in modules/: connect (the form), session (the bar and lost tasks), vms
// (host panel and VM table), dialog (confirmations), log (event log and live region).
import init, { Server } from '/pkg/index.js';
import { byId } from './modules/dom.js';
import { initConnect, showLost, hideLost, focusForm } from './modules/connect.js';
import { announce, log } from './modules/log.js';
import { startSession, endSession, restartAge, setConnState, showTasks } from './modules/session.js';
import { clearVms, loadAll, setOnline, setServer, vmName, vmStateChanged } from './modules/vms.js';

const proxyUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const LOGGED_IN = ['connected', 'unstable', 'restoring'];

let server;
let serverAutoRestore;
let loggingOff = false;
let lostServer; // the Server whose session was lost for good: its next login may restore it
let who = { user: '', host: '' };
// The last session's UUID, kept in memory only (never shown, stored or logged): a login after
// the session was lost names it to restore it.
let lastSessionId;

/** Shows the connect screen or the console. */
function showView(loggedIn) {
  byId('connect').hidden = loggedIn;
  byId('console').hidden = !loggedIn;
  document.title = loggedIn ? `${who.host} · prl-web console` : 'prl-web console · connect';
}

// One Server for the page: it keeps the proof that lets a later login restore its lost session
// (the proxy refuses a previous session this browser did not own). A new one only when the
// automatic-restore setting changes.
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
  const mine = (handler) => (e) => {
    if (s === server) handler(e.detail);
  };
  s.addEventListener('statechange', mine((d) => {
    setConnState(d.state);
    setOnline(d.state === 'connected');
    log(`connection ${d.previous} → ${d.state}${d.error ? ` (${d.error.kind}: ${d.error.codeName || d.error.message})` : ''}`);
    if (d.state === 'unstable') announce('Connection unstable: restoring the session');
    if (d.state === 'restoring') announce('Restoring the session');
    const lost = !loggingOff && LOGGED_IN.includes(d.previous) && ['disconnected', 'closed'].includes(d.state);
    if (lost) {
      // The connection is gone for good: back to the connect screen, offering to restore.
      lostServer = s;
      endSession();
      clearVms();
      showView(false);
      showLost(`The session on ${who.host} was lost. Connect again to restore it: its running tasks are listed to attach.`, d.error);
      announce('Session lost');
      if (!d.error) focusForm();
    }
  }));
  s.addEventListener('restored', mine((d) => {
    lastSessionId = d.sessionId;
    log(`session restored (${d.mode}); ${d.lostTasks.length} lost task(s)`);
    announce(d.mode === 'resumed' ? 'Connection resumed' : 'Session restored by a new login');
    if (d.mode !== 'resumed') {
      restartAge();
      showTasks(s, d.lostTasks);
    }
    // States may have changed while the connection was away.
    loadAll(s);
  }));
  s.addEventListener('vmstatechange', mine((d) => vmStateChanged(d.uuid, d.state)));
  const changes = { vmadded: 'added', vmremoved: 'removed', vmconfigchange: 'reconfigured' };
  for (const [type, what] of Object.entries(changes)) {
    s.addEventListener(type, mine((d) => {
      log(`VM ${vmName(d.uuid)} ${what}`);
      loadAll(s);
    }));
  }
  s.addEventListener('event', mine((d) => {
    if (d.eventType === 100051 && d.jobId === undefined) {
      // Progress of a task of this session that no call of this page waits for.
      log(`a task of this session: ${d.params?.progress_changed ?? '?'}%`, 'session-task');
    }
  }));
  return s;
}

async function login(values, signal) {
  const s = serverFor(values.autoRestore);
  const opts = {
    host: values.host,
    user: values.user,
    password: values.password,
    port: values.port,
    securityLevel: values.securityLevel,
    timeoutMs: values.timeoutMs,
    signal,
  };
  if (values.restoreSession && s === lostServer && lastSessionId) {
    // The Server still holds the lost session's proof: name it, and the service lists its tasks.
    opts.prevSessionId = lastSessionId;
  }
  setServer(s);
  const started = performance.now();
  try {
    const r = await s.login(opts);
    // Synchronously after the login: the session may be lost again at any later event.
    hideLost();
    lostServer = undefined;
    lastSessionId = r.sessionUuid;
    who = { user: values.user, host: values.host };
    log(`logged in to ${values.host} as ${values.user} (${r.productVersion}) in ${Math.round(performance.now() - started)} ms${r.restored ? '; the lost session restored' : ''}`);
    startSession(values.user, values.host);
    setConnState(s.state);
    setOnline(s.state === 'connected');
    showView(true);
    showTasks(s, r.runningTasks);
    announce(`Connected to ${values.host}`);
    byId('vms-title').focus();
    // Not awaited: the login is done; a failure to read shows in the VM panel.
    loadAll(s);
  } catch (e) {
    if (e?.kind) log(`login failed: ${e.kind} ${e.codeName}`);
    throw e;
  }
}

byId('logoff-button').addEventListener('click', async () => {
  if (!server || loggingOff) return;
  loggingOff = true;
  byId('logoff-button').disabled = true;
  try {
    await server.logoff();
    log('logged off');
    announce('Logged off');
  } catch (e) {
    if (!e?.kind) throw e;
    log(`log off failed: ${e.kind}`);
  } finally {
    loggingOff = false;
    lostServer = undefined;
    lastSessionId = undefined;
    byId('logoff-button').disabled = false;
    endSession();
    clearVms();
    hideLost();
    showView(false);
    focusForm();
  }
});

byId('vms-title').tabIndex = -1;
initConnect({ login });
await init();
showView(false);
window.prlDemoReady = true;
