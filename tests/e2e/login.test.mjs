// @prl-web/client in headless Chromium against a real prl-proxy and prl-sim (both started here).
// Needs dist/npm (`cargo xtask build-wasm`) and release builds of prl-sim and prl-proxy
// (`cargo build --release -p prl-sim -p prl-proxy`); PRL_SIM / PRL_PROXY override their paths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  CHROMIUM, E2E_DIR, PKG_DIR, TARGET_DIR, freePort, proxyConfig, startForwarder,
  startProcess, startSilentServer, stopProcess,
} from './harness.mjs';

const SIM = process.env.PRL_SIM ?? join(TARGET_DIR, 'release', 'prl-sim');
const PROXY = process.env.PRL_PROXY ?? join(TARGET_DIR, 'release', 'prl-proxy');
const USER = 'alice';
const PASSWORD = 'wonderland';
const AUTH_FAILED = 0x80000330;

const have = existsSync(SIM) && existsSync(PROXY) && existsSync(join(PKG_DIR, 'index.js'));
const skip = have ? false : `needs ${SIM}, ${PROXY} and ${PKG_DIR} (build them first)`;

let work;
let simLow;     // accepts every level
let simHigh;    // --min-security high
let silent;     // accepts TCP, never answers: a stalled service
let proxy;
let proxyPort;
let forwarder;  // page -> forwarder -> proxy, to cut WebSockets abruptly
let browser;
let page;
const ports = {};

async function startSim(extra) {
  const port = await freePort();
  const s = await startProcess(SIM, ['--listen', `127.0.0.1:${port}`, '--user', `${USER}:${PASSWORD}`,
    '--product-version', 'e2e', ...extra], /prl-sim listening on tcp:\/\/\S+/);
  return { ...s, port };
}

async function startProxy() {
  writeFileSync(join(work, 'proxy.toml'), proxyConfig({
    listen: `127.0.0.1:${proxyPort}`,
    staticRoot: join(E2E_DIR, 'www'),
    pkgDir: PKG_DIR,
    ports: [ports.low, ports.high, ports.silent],
  }));
  proxy = await startProcess(PROXY, ['--config', join(work, 'proxy.toml')], /prl-proxy listening on ws:\/\/\S+/);
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'prl-e2e-'));
  simLow = await startSim([]);
  simHigh = await startSim(['--min-security', 'high']);
  silent = await startSilentServer();
  ports.low = simLow.port;
  ports.high = simHigh.port;
  ports.silent = silent.port;
  proxyPort = await freePort();
  await startProxy();
  forwarder = await startForwarder(proxyPort);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  page = await browser.newPage();
  page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await page.goto(`http://127.0.0.1:${proxyPort}/`);
  await page.waitForFunction(() => window.prlReady === true, null, { timeout: 10000 });
});

after(async () => {
  await browser?.close();
  await forwarder?.close();
  await silent?.close();
  await stopProcess(proxy);
  await stopProcess(simLow);
  await stopProcess(simHigh);
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Runs `fn(prl, args)` in the page; errors come back as plain objects. The wrapper is composed
 * as source text that Playwright calls through the DevTools protocol (no eval in the page, so
 * the proxy's Content-Security-Policy stays in force).
 */
function inPage(fn, args) {
  const source = `async (a) => {
    const f = ${fn.toString()};
    try {
      return { ok: await f(window.prl, a) };
    } catch (e) {
      return { err: { isParallels: e instanceof window.prl.ParallelsError, isError: e instanceof Error,
        kind: e.kind, code: e.code, codeName: e.codeName, message: e.message } };
    }
  }`;
  const call = page.evaluate(`(${source})(${JSON.stringify(args ?? null)})`);
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('page call did not finish in 20 s')), 20000);
  });
  return Promise.race([call, limit]).finally(() => clearTimeout(timer));
}

const proxyUrl = () => `ws://127.0.0.1:${proxyPort}/ws`;

for (const [name, level] of [['Low', 0], ['Normal', 1], ['High', 2]]) {
  test(`login and logoff at security level ${name}`, { skip }, async () => {
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

test('wrong password: PRL_ERR_AUTHENTICATION_FAILED', { skip }, async () => {
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

test('security level below the service minimum: handshake_failed', { skip }, async () => {
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

test('timeout against a stalled service: the connect budget holds', { skip }, async () => {
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

test('abort while connecting rejects with canceled at once', { skip }, async () => {
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

// TODO(e2e): against the proxy branch of 2026-11-26 the login through the TCP forwarder never
// completes, so the drop is never reached; debug with the proxy's logs once it is on main.
const todoResume = skip || 'login through the drop forwarder hangs (to debug with prl-proxy)';
test('a forced WebSocket drop resumes through the proxy with the same session', { skip, todo: todoResume }, async () => {
  const fwdUrl = `ws://127.0.0.1:${forwarder.port}/ws`;
  const started = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    window.resumeServer = s;
    window.resumeLog = [];
    s.addEventListener('statechange', (e) => window.resumeLog.push(e.detail.state));
    s.addEventListener('restored', (e) => window.resumeLog.push(e.detail));
    const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    return resp.sessionUuid;
  }, { url: fwdUrl, port: ports.low, user: USER, password: PASSWORD });
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  forwarder.drop();
  await page.waitForFunction(() => window.resumeLog.some((x) => x.mode), null, { timeout: 15000 });
  const r = await inPage(async () => {
    const s = window.resumeServer;
    const out = { state: s.state, sessionId: s.sessionId, log: window.resumeLog };
    await s.logoff();
    s.free();
    return out;
  });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const restored = r.ok.log.find((x) => x.mode);
  assert.equal(restored.mode, 'resumed');
  assert.equal(restored.sessionId, started.ok);
  assert.equal(r.ok.sessionId, started.ok);
  assert.equal(r.ok.state, 'connected');
  const states = r.ok.log.filter((x) => typeof x === 'string');
  assert.deepEqual(states.slice(0, 2), ['connecting', 'connected']);
  assert.ok(states.includes('unstable') && states.includes('restoring'), states.join());
});

// TODO(e2e): restore did not report within 20 s after the proxy restart; to debug.
const todoRelogin = skip || 'no restored event within 20 s after a proxy restart (to debug)';
test('after the proxy lost the upstream: a new login with the previous session UUID', { skip, todo: todoRelogin }, async () => {
  const started = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    window.reloginServer = s;
    window.reloginLog = [];
    s.addEventListener('restored', (e) => window.reloginLog.push(e.detail));
    const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
    return resp.sessionUuid;
  }, { url: proxyUrl(), port: ports.low, user: USER, password: PASSWORD });
  assert.equal(started.err, undefined, JSON.stringify(started.err));
  // The proxy dies with everything it kept (upstream connection, resume tokens) and comes back.
  await stopProcess(proxy);
  await startProxy();
  await page.waitForFunction(() => window.reloginLog.length > 0, null, { timeout: 20000 });
  const r = await inPage(async () => {
    const s = window.reloginServer;
    const out = { state: s.state, sessionId: s.sessionId, restored: window.reloginLog[0] };
    await s.logoff();
    s.free();
    return out;
  });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.equal(r.ok.restored.mode, 'relogin');
  assert.equal(r.ok.restored.previousSessionId, started.ok);
  assert.notEqual(r.ok.restored.sessionId, started.ok);
  assert.equal(r.ok.sessionId, r.ok.restored.sessionId);
  assert.equal(r.ok.state, 'connected');
  assert.ok(Array.isArray(r.ok.restored.lostTasks));
});

test('logoff twice: the second is refused as not connected', { skip }, async () => {
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
