// @prl-web/client in headless Chromium against a real prl-proxy and prl-sim (both started here).
// Needs dist/npm (`cargo xtask build-wasm`) and release builds of prl-sim and prl-proxy
// (`cargo build --release -p prl-sim -p prl-proxy`); PRL_SIM / PRL_PROXY override their paths.
// PRL_E2E_PROXY_LOG=debug raises the proxies' log level (their logs are shown when a resume or
// restore test fails).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  E2E_DIR, PKG_DIR, PKG_ENTRY, PROXY, SIM, callInPage, freePort, launchChromium, openTestPage,
  packageUuid, proxyConfig, requireBuilt, startForwarder, startProcess, startSilentServer, stopProcess, until,
  waitForDetachedExpiry,
} from './harness.mjs';

const USER = 'alice';
const PASSWORD = 'wonderland';
const AUTH_FAILED = 0x80000330;

let work;
let simLow;     // accepts every level
let simHigh;    // --min-security high
let simTask;    // every new session gets a long task (--task-on-login)
let simSlow;    // holds every password check (--auth-delay-ms)
let simChange;  // restarted with another password by a restore test (user CAROL)
let silent;     // accepts TCP, never answers: a stalled service
let proxy;      // resume window 60 s
let proxyShort; // resume window 1.5 s
let proxyPort;
let shortPort;
let forwarder;  // fwdPage -> forwarder -> proxy, to cut WebSockets abruptly
let fwdShort;   // shortPage -> fwdShort -> proxyShort
let fwdGone;    // pages -> fwdGone -> proxy, then refusing: the proxy is out of reach for good
let browser;
let page;       // served by the proxy itself
let fwdPage;    // served through `forwarder` (its WebSockets go through it too)
let shortPage;  // served through `fwdShort`
const ports = {};
const TASK_STEPS = 100;
const TASK_INTERVAL_MS = 100;
const AUTH_DELAY_MS = 4000;
const SHORT_WINDOW_MS = 1500;
const CAROL = 'carol';
const CAROL_PASSWORD = 'c4r0l-before-the-change';
// Restore's attempts (client-wasm/src/backoff.rs MAX_ATTEMPTS) and the longest delay (MAX_MS).
const RESTORE_ATTEMPTS = 8;
const RESTORE_MAX_DELAY_MS = 8000;

async function startSim(extra, { port, user = `${USER}:${PASSWORD}` } = {}) {
  port ??= await freePort();
  const s = await startProcess(SIM, ['--listen', `127.0.0.1:${port}`, '--user', user,
    '--product-version', 'e2e', ...extra], /prl-sim listening on tcp:\/\/\S+/);
  return { ...s, port };
}

async function startProxy(name, listenPort, { resumeWindowMs, origins }) {
  const file = join(work, `${name}.toml`);
  writeFileSync(file, proxyConfig({
    listen: `127.0.0.1:${listenPort}`,
    staticRoot: join(E2E_DIR, 'www'),
    pkgDir: PKG_DIR,
    ports: [ports.low, ports.high, ports.task, ports.slow, ports.silent, ports.change],
    resumeWindowMs,
    origins,
    logLevel: process.env.PRL_E2E_PROXY_LOG ?? 'info',
  }));
  return startProcess(PROXY, ['--config', file], /prl-proxy listening on ws:\/\/\S+/);
}

const openPage = (url) => openTestPage(browser, url);

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY]);
  work = mkdtempSync(join(tmpdir(), 'prl-e2e-'));
  [simLow, simHigh, simTask, simSlow, simChange] = await Promise.all([
    startSim([]),
    startSim(['--min-security', 'high']),
    startSim(['--task-on-login', `${TASK_STEPS}:${TASK_INTERVAL_MS}`]),
    startSim(['--auth-delay-ms', String(AUTH_DELAY_MS)]),
    startSim([], { user: `${CAROL}:${CAROL_PASSWORD}` }),
  ]);
  silent = await startSilentServer();
  ports.low = simLow.port;
  ports.high = simHigh.port;
  ports.task = simTask.port;
  ports.slow = simSlow.port;
  ports.silent = silent.port;
  ports.change = simChange.port;
  proxyPort = await freePort();
  shortPort = await freePort();
  forwarder = await startForwarder(proxyPort);
  fwdShort = await startForwarder(shortPort);
  fwdGone = await startForwarder(proxyPort);
  [proxy, proxyShort] = await Promise.all([
    startProxy('proxy', proxyPort, { resumeWindowMs: 60000,
      origins: [`http://127.0.0.1:${forwarder.port}`, `http://127.0.0.1:${fwdGone.port}`] }),
    startProxy('short', shortPort, { resumeWindowMs: SHORT_WINDOW_MS, origins: [`http://127.0.0.1:${fwdShort.port}`] }),
  ]);
  browser = await launchChromium();
  page = await openPage(`http://127.0.0.1:${proxyPort}/`);
  fwdPage = await openPage(`http://127.0.0.1:${forwarder.port}/`);
  shortPage = await openPage(`http://127.0.0.1:${fwdShort.port}/`);
});

after(async () => {
  await browser?.close();
  await forwarder?.close();
  await fwdShort?.close();
  await fwdGone?.close();
  await silent?.close();
  for (const p of [proxy, proxyShort, simLow, simHigh, simTask, simSlow, simChange]) await stopProcess(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs `fn(prl, args)` in a page (default: the proxy's own); see `callInPage`. */
const inPage = (fn, args, on = page) => callInPage(on, fn, args);

/** The proxy's stderr (its log) for assertion messages. */
const proxyLog = (p = proxy) => p?.stderr?.() ?? '';

const proxyUrl = () => `ws://127.0.0.1:${proxyPort}/ws`;

for (const [name, level] of [['Low', 0], ['Normal', 1], ['High', 2]]) {
  test(`login and logoff at security level ${name}`, async () => {
    const r = await inPage(async (prl, a) => {
      const s = new prl.Server({ proxyUrl: a.url });
      const states = [];
      s.addEventListener('statechange', (e) => states.push(e.detail.state));
      const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
        securityLevel: a.level, timeoutMs: 5000 });
      const during = { state: s.state, sessionId: s.sessionId };
      await s.logoff();
      const out = { resp, during, after: { state: s.state, sessionId: s.sessionId ?? null }, states };
      s.free();
      return out;
    }, { url: proxyUrl(), port: ports.low, user: USER, password: PASSWORD, level });
    assert.equal(r.err, undefined, JSON.stringify(r.err));
    const { resp, during, after: afterLogoff, states } = r.ok;
    assert.match(resp.sessionUuid, /^\{[0-9a-f-]{36}\}$/);
    assert.match(resp.serverUuid, /^\{[0-9a-f-]{36}\}$/);
    assert.equal(resp.productVersion, 'e2e');
    assert.ok(resp.hostOsVersion.length > 0);
    assert.deepEqual(resp.runningTasks, []);
    assert.equal(resp.restored, false);
    assert.deepEqual(during, { state: 'connected', sessionId: resp.sessionUuid });
    assert.deepEqual(afterLogoff, { state: 'disconnected', sessionId: null });
    assert.deepEqual(states, ['connecting', 'connected', 'disconnected', 'closed']);
  });
}

test('wrong password: PRL_ERR_AUTHENTICATION_FAILED', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    try {
      return await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: 'nope' });
    } finally {
      s.free();
    }
  }, { url: proxyUrl(), port: ports.low, user: USER });
  assert.deepEqual(
    { ...r.err, message: undefined },
    { isParallels: true, isError: true, kind: 'authentication', code: AUTH_FAILED,
      codeName: 'PRL_ERR_AUTHENTICATION_FAILED', message: undefined },
  );
});

test('security level below the service minimum: handshake_failed', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    try {
      return await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
        securityLevel: prl.SecurityLevel.Low, timeoutMs: 5000 });
    } finally {
      s.free();
    }
  }, { url: proxyUrl(), port: ports.high, user: USER, password: PASSWORD });
  assert.equal(r.err?.kind, 'handshake_failed', JSON.stringify(r));
  assert.equal(r.err.code, 0x80000412);
  assert.equal(r.err.codeName, 'PRL_ERR_HANDSHAKE_FAILED');
  // The same service accepts High.
  const ok = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
      securityLevel: prl.SecurityLevel.High, timeoutMs: 5000 });
    await s.logoff();
    s.free();
    return resp.sessionUuid.length;
  }, { url: proxyUrl(), port: ports.high, user: USER, password: PASSWORD });
  assert.equal(ok.ok, 38, JSON.stringify(ok));
});

test('timeout against a stalled service: the connect budget holds', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const t0 = performance.now();
    try {
      await s.login({ host: '127.0.0.1', port: a.port, user: 'u', password: 'p', timeoutMs: 700 });
      return 'logged in?';
    } catch (e) {
      e.elapsed = performance.now() - t0;
      throw Object.assign(e, { message: `${e.message} after ${Math.round(e.elapsed)} ms` });
    } finally {
      s.free();
    }
  }, { url: proxyUrl(), port: ports.silent });
  assert.equal(r.err?.kind, 'timeout', JSON.stringify(r));
  assert.equal(r.err.code, 0x80000249);
  const ms = Number(r.err.message.match(/after (\d+) ms/)[1]);
  assert.ok(ms >= 650 && ms < 2500, `${ms} ms`);
});

test('abort while connecting rejects with canceled at once', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = performance.now();
    try {
      await s.login({ host: '127.0.0.1', port: a.port, user: 'u', password: 'p', timeoutMs: 10000,
        signal: ac.signal });
    } catch (e) {
      throw Object.assign(e, { message: `${e.message} after ${Math.round(performance.now() - t0)} ms; state ${s.state}` });
    } finally {
      s.free();
    }
  }, { url: proxyUrl(), port: ports.silent });
  assert.equal(r.err?.kind, 'canceled', JSON.stringify(r));
  assert.equal(r.err.code, 0x80000275);
  assert.equal(r.err.codeName, 'PRL_ERR_OPERATION_WAS_CANCELED');
  const ms = Number(r.err.message.match(/after (\d+) ms/)[1]);
  assert.ok(ms < 1500, `${ms} ms`);
  assert.match(r.err.message, /state disconnected$/);
});

test('abort after the login request was sent: the SDK cancel (2053) goes out, canceled', async () => {
  const r = await inPage(async (prl, a) => {
    // Watch what the client really sends (the frames still go out unchanged).
    const sent = window.recordSent();
    const s = new prl.Server({ proxyUrl: a.url });
    const states = [];
    s.addEventListener('statechange', (e) => states.push(e.detail.state));
    const ac = new AbortController();
    let abortedAt;
    const t0 = performance.now();
    const watcher = setInterval(() => {
      if (sent.some((p) => p.type === a.loginType)) {
        clearInterval(watcher);
        abortedAt = performance.now() - t0;
        ac.abort();
      }
    }, 5);
    try {
      await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password, signal: ac.signal });
      return { loggedIn: true };
    } catch (e) {
      const rejectedAt = performance.now() - t0;
      // Nothing more can go out once the connection is closing.
      for (let i = 0; [...sent.sockets].some((ws) => ws.readyState < WebSocket.CLOSING); i++) {
        if (i > 200) throw new Error('the connection was not closed after the abort');
        await new Promise((res) => setTimeout(res, 10));
      }
      return { isParallels: e instanceof prl.ParallelsError, kind: e.kind, code: e.code, codeName: e.codeName,
        abortedAt, rejectedAt, state: s.state, states: [...states], sent: [...sent] };
    } finally {
      clearInterval(watcher);
      sent.stop();
      s.free();
    }
  }, { url: proxyUrl(), port: ports.slow, user: USER, password: PASSWORD, loginType: 2039 });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const out = r.ok;
  assert.equal(out.loggedIn, undefined, 'the login must not complete');
  assert.deepEqual(
    { isParallels: out.isParallels, kind: out.kind, code: out.code, codeName: out.codeName },
    { isParallels: true, kind: 'canceled', code: 0x80000275, codeName: 'PRL_ERR_OPERATION_WAS_CANCELED' },
  );
  // Rejected right after the abort, long before the service would have answered.
  assert.ok(out.rejectedAt - out.abortedAt < 1000 && out.rejectedAt < AUTH_DELAY_MS / 2,
    `aborted at ${out.abortedAt} ms, rejected at ${out.rejectedAt} ms`);
  assert.equal(out.state, 'disconnected');
  assert.deepEqual(out.states, ['connecting', 'disconnected']);
  // The cancel follows the login and names the login request (its job uuid) in its payload.
  const types = out.sent.map((p) => p.type);
  assert.deepEqual(types, [2039, 2053], `sent package types ${types}`);
  const [login, cancel] = out.sent;
  const jobUuid = packageUuid(login.bytes);
  assert.ok(Buffer.from(cancel.bytes).toString('latin1').includes(jobUuid),
    `the cancel does not name the login request ${jobUuid}`);
  // The cancel is a request of its own from the same connection.
  assert.notDeepEqual(cancel.bytes.slice(0, 16), login.bytes.slice(0, 16));
  assert.deepEqual(cancel.bytes.slice(32, 48), login.bytes.slice(32, 48));
});

test('a proxyUrl the page Content-Security-Policy blocks fails at once as proxy_unreachable', async () => {
  // The proxy serves its pages with connect-src 'self'; the forwarder's port is another origin.
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const t0 = performance.now();
    try {
      await s.login({ host: '127.0.0.1', port: a.port, user: 'u', password: 'p' });
    } catch (e) {
      throw Object.assign(e, { message: `${e.message} after ${Math.round(performance.now() - t0)} ms` });
    } finally {
      s.free();
    }
  }, { url: `ws://127.0.0.1:${forwarder.port}/ws`, port: ports.low });
  assert.equal(r.err?.kind, 'proxy_unreachable', JSON.stringify(r));
  assert.equal(r.err.code, 0x80000249);
  const ms = Number(r.err.message.match(/after (\d+) ms/)[1]);
  assert.ok(ms < 2000, `${ms} ms`);
});

/** Installs a Server on the page as `window.t` with logs of its events; resolves the login. */
function loginWatched(on, url, port) {
  return inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const t = { s, states: [], restored: [], progress: [], finals: 0 };
    window.t = t;
    s.addEventListener('statechange', (e) => t.states.push(e.detail.state));
    s.addEventListener('restored', (e) => t.restored.push(e.detail));
    s.addEventListener('event', (e) => {
      const d = e.detail;
      if (d.eventType === 100051 && d.params && d.jobId === undefined) {
        // Progress of the task the simulator started for this session (no job of ours).
        t.progress.push(Number(d.params.progress_changed));
      } else if (d.packageType === 5001) {
        t.finals += 1;
      }
    });
    const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    return resp;
  }, { url, port, user: USER, password: PASSWORD }, on);
}

test('a forced WebSocket drop resumes through the proxy: same session, nothing lost', async () => {
  const started = await loginWatched(fwdPage, `ws://127.0.0.1:${forwarder.port}/ws`, ports.task);
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  const session = started.ok.sessionUuid;
  await fwdPage.waitForFunction(() => window.t.progress.length >= 3, null, { timeout: 10000 });
  const before = await fwdPage.evaluate(() => window.t.progress.length);
  forwarder.drop(); // TCP resets: the browser sees an abnormal close (1006), the proxy a vanished peer
  await fwdPage.waitForFunction(() => window.t.restored.length > 0, null, { timeout: 15000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\nproxy log:\n${proxyLog()}`));
  // The task went on while the browser was away: what the proxy buffered is replayed.
  await fwdPage.waitForFunction((n) => window.t.progress.length >= n, before + 8, { timeout: 10000 });
  const r = await inPage(async () => {
    const { s, states, restored, progress } = window.t;
    const out = { state: s.state, sessionId: s.sessionId, states: [...states], restored, progress: [...progress] };
    await s.logoff();
    s.free();
    return out;
  }, null, fwdPage);
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { state, sessionId, states, restored, progress } = r.ok;
  assert.deepEqual(restored, [{ mode: 'resumed', sessionId: session, previousSessionId: session, lostTasks: [] }]);
  assert.equal(sessionId, session);
  assert.equal(state, 'connected');
  assert.deepEqual(states.slice(0, 2), ['connecting', 'connected']);
  assert.deepEqual(states.slice(2), ['unstable', 'restoring', 'connected'], states.join());
  // Every step exactly once, in order (step i of 100 reports i %).
  assert.deepEqual(progress, progress.map((_, i) => Math.floor(((i + 1) * 100) / TASK_STEPS)));
  assert.ok(progress.length >= before + 8, `${progress.length} steps`);
});

test('after the proxy lost the upstream: re-login with the previous session, lost task re-attached', async () => {
  const started = await loginWatched(shortPage, `ws://127.0.0.1:${fwdShort.port}/ws`, ports.task);
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  const session = started.ok.sessionUuid;
  assert.deepEqual(started.ok.runningTasks, []);
  await shortPage.waitForFunction(() => window.t.progress.length >= 2, null, { timeout: 10000 });
  // The browser is away longer than the proxy's resume window: the proxy closes the upstream
  // connection, so the service ends the session (its task keeps running).
  const mark = proxyShort.logMark();
  fwdShort.refusing = true;
  fwdShort.drop();
  await waitForDetachedExpiry(proxyShort, mark);
  fwdShort.refusing = false;
  await shortPage.waitForFunction(() => window.t.restored.length > 0, null, { timeout: 20000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\nproxy log:\n${proxyLog(proxyShort)}`));
  const restored = await shortPage.evaluate(() => window.t.restored[0]);
  assert.equal(restored.mode, 'relogin', JSON.stringify(restored));
  assert.equal(restored.previousSessionId, session);
  assert.notEqual(restored.sessionId, session);
  assert.equal(restored.lostTasks.length, 1, JSON.stringify(restored.lostTasks));
  const [lost] = restored.lostTasks;
  assert.equal(lost.taskType, 9001);
  assert.match(lost.taskId, /^\{[0-9a-f-]{36}\}$/);

  const r = await inPage(async (_prl, a) => {
    const { s, states } = window.t;
    const seen = [];
    const result = await s.attachToLostTask(a.taskId, { onProgress: (d) => seen.push(d.percent) });
    const out = { result, seen, state: s.state, sessionId: s.sessionId, states: [...states] };
    await s.logoff();
    s.free();
    return out;
  }, { taskId: lost.taskId }, shortPage);
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { result, seen, state, sessionId, states } = r.ok;
  assert.equal(state, 'connected');
  assert.equal(sessionId, restored.sessionId);
  assert.deepEqual(states.slice(0, 3), ['connecting', 'connected', 'unstable']);
  assert.equal(states.at(-1), 'connected');
  assert.deepEqual({ ...result, params: undefined }, { taskId: lost.taskId, opcode: 9001, code: 0, params: undefined });
  assert.ok(seen.length > 0, 'no progress after attaching');
  assert.ok(seen.every((p, i) => i === 0 || p > seen[i - 1]), seen.join());
  assert.equal(seen.at(-1), 100);
});

test('after a proxy restart (its restore proofs lost): a new session, the app stays connected', async () => {
  const started = await loginWatched(shortPage, `ws://127.0.0.1:${fwdShort.port}/ws`, ports.low);
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  const session = started.ok.sessionUuid;
  // The proxy restarts: every upstream connection, resume token and restore proof is gone.
  await stopProcess(proxyShort);
  proxyShort = await startProxy('short', shortPort, {
    resumeWindowMs: SHORT_WINDOW_MS, origins: [`http://127.0.0.1:${fwdShort.port}`],
  });
  await shortPage.waitForFunction(() => window.t.restored.length > 0, null, { timeout: 20000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\nproxy log:\n${proxyLog(proxyShort)}`));
  const r = await inPage(async () => {
    const { s, states, restored } = window.t;
    const out = { restored: [...restored], states: [...states], sessionId: s.sessionId, state: s.state };
    await s.logoff();
    out.after = s.state;
    s.free();
    return out;
  }, null, shortPage);
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { restored, states, sessionId, state, after } = r.ok;
  assert.equal(restored.length, 1, JSON.stringify(restored));
  assert.equal(restored[0].mode, 'new_session', JSON.stringify(restored));
  assert.equal(restored[0].previousSessionId, session);
  assert.notEqual(restored[0].sessionId, session);
  assert.deepEqual(restored[0].lostTasks, []);
  assert.equal(sessionId, restored[0].sessionId);
  assert.equal(state, 'connected');
  assert.equal(after, 'disconnected');
  assert.deepEqual(states.slice(0, 3), ['connecting', 'connected', 'unstable'], states.join());
  assert.ok(states.includes('restoring'), states.join());
  assert.equal(states.at(-1), 'connected', states.join());
});

/**
 * Installs `window.t` on `on`: a Server with logs of its state changes (with the error of a
 * final one), restored events, and `window.copies(text)`, how many times `text` (plain or
 * base64) is in the page's WebAssembly memory. Resolves the login.
 */
function loginRestoring(on, { url, port, user, password }) {
  return inPage(async (prl, a) => {
    const { memory } = await prl.default(); // init() again returns the instance's exports
    window.copies = (text) => {
      const m = new Uint8Array(memory.buffer);
      let n = 0;
      for (const b of [new TextEncoder().encode(text), new TextEncoder().encode(btoa(text))]) {
        outer: for (let i = 0; i + b.length <= m.length; i++) {
          for (let j = 0; j < b.length; j++) if (m[i + j] !== b[j]) continue outer;
          n++;
        }
      }
      return n;
    };
    const s = new prl.Server({ proxyUrl: a.url });
    const t = { s, states: [], errors: [], restored: [] };
    window.t = t;
    s.addEventListener('statechange', (e) => {
      t.states.push(e.detail.state);
      const err = e.detail.error;
      if (err) t.errors.push({ isParallels: err instanceof prl.ParallelsError, kind: err.kind, code: err.code });
    });
    s.addEventListener('restored', (e) => t.restored.push(e.detail));
    await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    return { held: window.copies(a.password) };
  }, { url, port, user, password }, on);
}

/** What `loginRestoring`'s client ended with; frees it. */
function restoreOutcome(on, password) {
  return inPage(async (_prl, a) => {
    const { s, states, errors, restored } = window.t;
    const out = { state: s.state, sessionId: s.sessionId ?? null, states: [...states], errors,
      restored, copies: window.copies(a.password) };
    s.free();
    return out;
  }, { password }, on);
}

/**
 * A page (of its own: its WebAssembly memory holds one test's client only) whose timers run on
 * a virtual clock. `pause()` stops that clock: from then on a timer fires only when the test
 * advances time.
 */
async function clockPage(url) {
  const p = await browser.newPage();
  p.on('pageerror', (e) => console.log('pageerror:', e.message));
  await p.clock.install();
  await p.goto(url);
  await p.waitForFunction(() => window.prlReady === true, null, { timeout: 10000 });
  p.pause = async () => p.clock.pauseAt((await p.evaluate(() => Date.now())) + 1000);
  return p;
}

/**
 * Drives automatic restore on `p`'s paused clock until it ends: whenever the client waits for
 * its next attempt (`unstable`), the longest backoff delay passes. Resolves the final state.
 */
async function driveRestore(p) {
  for (let waits = 0; ; waits++) {
    const state = await until(() => p.evaluate(() => (window.t.s.state === 'restoring' ? null : window.t.s.state)),
      { what: 'a restore attempt to end' });
    if (state !== 'unstable') return state;
    assert.ok(waits < RESTORE_ATTEMPTS, `restore never gives up (${waits} attempts)`);
    await p.clock.runFor(RESTORE_MAX_DELAY_MS);
  }
}

test('restore gives up on a permanent failure (the password changed): disconnected, the error reported, the credentials forgotten', async () => {
  const p = await clockPage(`http://127.0.0.1:${proxyPort}/`);
  try {
    const started = await loginRestoring(p, { url: proxyUrl(), port: ports.change, user: CAROL, password: CAROL_PASSWORD });
    assert.equal(started.err, undefined, JSON.stringify(started.err));
    assert.ok(started.ok.held > 0, 'the credentials are not held for restore: the check below proves nothing');
    await p.pause();
    // The service restarts with another password for the user: the session and its upstream
    // connection are gone, and logging in again is refused. Restore's first attempt waits on
    // the paused clock until the service is back.
    await stopProcess(simChange);
    simChange = await startSim([], { port: ports.change, user: `${CAROL}:another-password` });
    await until(() => p.evaluate(() => window.t.s.state === 'unstable'), { what: 'the connection loss' });
    const end = await driveRestore(p).catch((e) => assert.fail(`${e.message}\nproxy log:\n${proxyLog()}`));
    assert.equal(end, 'disconnected');
    const r = await restoreOutcome(p, CAROL_PASSWORD);
    assert.equal(r.err, undefined, JSON.stringify(r.err));
    const { state, sessionId, states, errors, restored, copies } = r.ok;
    assert.deepEqual({ state, sessionId, restored }, { state: 'disconnected', sessionId: null, restored: [] });
    assert.deepEqual(errors, [{ isParallels: true, kind: 'authentication', code: AUTH_FAILED }]);
    // One attempt: a refused password is not tried again.
    assert.deepEqual(states, ['connecting', 'connected', 'unstable', 'restoring', 'disconnected']);
    assert.equal(copies, 0, 'the password stays in WebAssembly memory after restore gave up');
  } finally {
    await p.close();
  }
});

test('restore gives up when its attempts run out (the proxy is gone): disconnected, the error reported, the credentials forgotten', async () => {
  // Served through `fwdGone`, whose WebSockets go through it too.
  const p = await clockPage(`http://127.0.0.1:${fwdGone.port}/`);
  try {
    const started = await loginRestoring(p, { url: `ws://127.0.0.1:${fwdGone.port}/ws`, port: ports.low, user: USER, password: PASSWORD });
    assert.equal(started.err, undefined, JSON.stringify(started.err));
    assert.ok(started.ok.held > 0, 'the credentials are not held for restore: the check below proves nothing');
    await p.pause();
    fwdGone.refusing = true;
    fwdGone.drop();
    await until(() => p.evaluate(() => window.t.s.state === 'unstable'), { what: 'the connection loss' });
    assert.equal(await driveRestore(p), 'disconnected');
    const r = await restoreOutcome(p, PASSWORD);
    assert.equal(r.err, undefined, JSON.stringify(r.err));
    const { state, sessionId, states, errors, restored, copies } = r.ok;
    assert.deepEqual({ state, sessionId, restored }, { state: 'disconnected', sessionId: null, restored: [] });
    assert.deepEqual(errors, [{ isParallels: true, kind: 'proxy_unreachable', code: 0x80000249 }]);
    assert.deepEqual(states, ['connecting', 'connected',
      ...Array(RESTORE_ATTEMPTS).fill(['unstable', 'restoring']).flat(), 'unstable', 'disconnected']);
    assert.equal(copies, 0, 'the password stays in WebAssembly memory after restore gave up');
  } finally {
    fwdGone.refusing = false;
    await p.close();
  }
});

test('autoRestore off: the app logs in again naming the lost session and sees its task', async () => {
  const started = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url, autoRestore: false });
    const t = { s, states: [] };
    window.t = t;
    s.addEventListener('statechange', (e) => t.states.push(e.detail.state));
    return s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
  }, { url: `ws://127.0.0.1:${fwdShort.port}/ws`, port: ports.task, user: USER, password: PASSWORD }, shortPage);
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  const session = started.ok.sessionUuid;
  const mark = proxyShort.logMark();
  fwdShort.drop();
  await shortPage.waitForFunction(() => window.t.s.state === 'disconnected', null, { timeout: 5000 });
  // Past the proxy's resume window the old session is gone; the Server still holds its proof.
  await waitForDetachedExpiry(proxyShort, mark);
  const r = await inPage(async (_prl, a) => {
    const { s, states } = window.t;
    // A refused logoff (not logged in) changes nothing: the proof for the lost session stays.
    const refused = await s.logoff().then(() => 'resolved', (e) => e.kind);
    const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
      prevSessionId: a.prev });
    const out = { resp, states: [...states], sessionId: s.sessionId, refused };
    await s.logoff();
    s.free();
    return out;
  }, { port: ports.task, user: USER, password: PASSWORD, prev: session }, shortPage);
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { resp, states, sessionId, refused } = r.ok;
  assert.equal(refused, 'invalid_state');
  assert.deepEqual(states, ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
  assert.notEqual(resp.sessionUuid, session);
  assert.equal(sessionId, resp.sessionUuid);
  assert.equal(resp.restored, true);
  assert.equal(resp.runningTasks.length, 1, JSON.stringify(resp.runningTasks));
  assert.equal(resp.runningTasks[0].taskType, 9001);
});

test('malformed proxy urls are refused at once; listeners added with capture can be removed', async () => {
  const r = await inPage(async (prl, a) => {
    const kinds = [];
    for (const proxyUrl of ['ws://exa mple/ws', 'ws://', 'http://127.0.0.1/ws', 'wss://[::1/ws']) {
      try {
        new prl.Server({ proxyUrl }).free();
        kinds.push('accepted');
      } catch (e) {
        kinds.push(e instanceof prl.ParallelsError ? e.kind : String(e));
      }
    }
    const s = new prl.Server({ proxyUrl: a.url });
    let calls = 0;
    const l = () => { calls += 1; };
    s.addEventListener('statechange', l, true);
    s.removeEventListener('statechange', l, true);
    s.addEventListener('statechange', l, { capture: true });
    s.removeEventListener('statechange', l, { capture: true });
    s.free(); // announces 'closed' to any listener left
    return { kinds, calls };
  }, { url: proxyUrl() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.deepEqual(r.ok, { kinds: Array(4).fill('invalid_argument'), calls: 0 });
});

test('after free() the object stays safe to touch: closed, calls reject typed, free again is a no-op', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    const seen = [];
    s.addEventListener('statechange', (e) => seen.push([e.detail.state, s.state]));
    s.free();
    s.free();
    const rejected = async (p) => p.then(() => 'resolved', (e) => [e instanceof prl.ParallelsError, e.kind, e.codeName]);
    return {
      seen,
      state: s.state,
      sessionId: s.sessionId ?? null,
      login: await rejected(s.login({ host: '127.0.0.1', user: a.user, password: a.password })),
      logoff: await rejected(s.logoff()),
      attach: await rejected(s.attachToLostTask('{00000000-0000-0000-0000-000000000001}')),
      listeners: (() => { s.addEventListener('statechange', () => {}); s.removeEventListener('statechange', () => {}); return 'ok'; })(),
      isServer: s instanceof prl.Server,
    };
  }, { url: proxyUrl(), port: ports.low, user: USER, password: PASSWORD });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const typed = [true, 'invalid_state', 'PRL_ERR_NOT_CONNECTED_TO_DISPATCHER'];
  assert.deepEqual(r.ok, {
    seen: [['closed', 'closed']], state: 'closed', sessionId: null,
    login: typed, logoff: typed, attach: typed, listeners: 'ok', isServer: true,
  });
});

test('no copy of the password (plain or base64) stays in WebAssembly memory', async () => {
  const r = await inPage(async (prl, a) => {
    const { memory } = await prl.default(); // init() again returns the instance's exports
    const count = (text) => {
      const m = new Uint8Array(memory.buffer);
      const b = new TextEncoder().encode(text);
      let n = 0;
      outer: for (let i = 0; i + b.length <= m.length; i++) {
        for (let j = 0; j < b.length; j++) if (m[i + j] !== b[j]) continue outer;
        n++;
      }
      return n;
    };
    const scan = () => count(a.password) + count(btoa(a.password));
    const out = {};
    // autoRestore off: nothing is kept once the login is sent.
    const s = new prl.Server({ proxyUrl: a.url, autoRestore: false });
    await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    out.loggedIn = scan();
    await s.logoff();
    s.free();
    out.afterFree = scan();
    // autoRestore on: the credentials are held (for a relogin) until logoff.
    const t = new prl.Server({ proxyUrl: a.url });
    await t.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    await t.logoff();
    out.afterLogoff = scan();
    t.free();
    return out;
  }, { url: proxyUrl(), port: ports.low, user: USER, password: PASSWORD });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.deepEqual(r.ok, { loggedIn: 0, afterFree: 0, afterLogoff: 0 });
});

test('logoff twice: the second is refused as not connected', async () => {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    await s.logoff();
    try {
      await s.logoff();
    } finally {
      s.free();
    }
  }, { url: proxyUrl(), port: ports.low, user: USER, password: PASSWORD });
  assert.equal(r.err?.kind, 'invalid_state', JSON.stringify(r));
  assert.equal(r.err.codeName, 'PRL_ERR_NOT_CONNECTED_TO_DISPATCHER');
});
