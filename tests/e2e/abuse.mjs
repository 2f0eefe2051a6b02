// The browser part of `cargo xtask abuse` (not a `node --test` file): the npm package in headless
// Chromium against the release prl-proxy and prl-sim, inside the network namespace the xtask
// made. Faults with counting: the network cut while a task streams numbered progress events
// (one per step; step i of 100 reports i %), the proxy restarted under a session, the service
// killed mid-login, and every prl-sim fault mode seen by the real client.
//
//   node abuse.mjs SPEC.json   (SPEC written by xtask/src/abuse/mod.rs; results to spec.out)
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, startForwarder, startProcess, stopProcess } from './harness.mjs';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const rows = [];
const failures = [];
const figures = [];
const seenUuids = [];
const row = (fault, outcome, notes = '') => {
  rows.push({ fault, outcome, notes });
  console.log(`abuse browser: ${fault}: ${outcome} ${notes}`);
};
const fail = (why) => {
  failures.push(why);
  console.log(`abuse browser: FAIL ${why}`);
};
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
const portOf = (addr) => Number(addr.split(':').pop());
let nextUser = 0;
const user = () => spec.users[nextUser++ % spec.users.length];

const READY_SIM = /prl-sim listening on tcp:\/\/\S+/;
const READY_PROXY = /prl-proxy listening on ws:\/\/\S+/;
const sim = (listen, extra, name) => startProcess(spec.simBin, ['--listen', listen,
  ...spec.users.flatMap((u) => ['--user', `${u.name}:${u.password}`]), ...extra],
READY_SIM, { env: { RUST_LOG: 'trace' }, logFile: join(spec.work, `browser-${name}.log`) });
const startProxy = () => startProcess(spec.proxyBin, ['--config', spec.proxyConfig], READY_PROXY,
  { logFile: join(spec.work, 'browser-proxy.log') });

const STEPS = 100;
const procs = {};
let browser;
let page;
let forwarder;

/** Runs `fn(prl, args)` in the page; errors come back as plain objects (like login.test.mjs). */
function inPage(fn, args, limitMs = 30000) {
  const source = `async (a) => {
    const f = ${fn.toString()};
    try {
      return { ok: await f(window.prl, a) };
    } catch (e) {
      return { err: { isParallels: e instanceof window.prl.ParallelsError, kind: e.kind, code: e.code,
        codeName: e.codeName, message: e.message } };
    }
  }`;
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`page call did not finish in ${limitMs} ms`)), limitMs);
  });
  return Promise.race([page.evaluate(`(${source})(${JSON.stringify(args ?? null)})`), limit])
    .finally(() => clearTimeout(timer));
}

const url = () => `ws://127.0.0.1:${forwarder.port}/ws`;

/** A watched login on the task simulator: window.t keeps states, restores and progress. */
async function watchedLogin(port, u) {
  const r = await inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    const t = { s, states: [], restored: [], progress: [] };
    window.t = t;
    s.addEventListener('statechange', (e) => t.states.push(e.detail.state));
    s.addEventListener('restored', (e) => t.restored.push(e.detail));
    s.addEventListener('event', (e) => {
      const d = e.detail;
      if (d.eventType === 100051 && d.params && d.jobId === undefined) t.progress.push(Number(d.params.progress_changed));
    });
    const resp = await s.login({ host: '127.0.0.2', port: a.port, user: a.user, password: a.password });
    return { sessionUuid: resp.sessionUuid };
  }, { url: url(), port, user: u.name, password: u.password });
  if (r.ok) seenUuids.push(r.ok.sessionUuid);
  return r;
}

const tState = () => page.evaluate(() => ({ state: window.t.s.state, states: [...window.t.states],
  restored: window.t.restored, progress: [...window.t.progress] }));

async function waitFor(what, fn, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(100);
  }
}

function count(progress) {
  const seen = new Map();
  for (const p of progress) seen.set(p, (seen.get(p) ?? 0) + 1);
  const last = Math.max(0, ...progress);
  let lost = 0;
  for (let i = 1; i <= last; i++) if (!seen.has(i)) lost++;
  const dup = progress.length - seen.size;
  const ordered = progress.every((p, i) => i === 0 || p > progress[i - 1]);
  return { lost, dup, ordered, last, n: progress.length };
}

/** A drop within the resume window: everything must arrive exactly once, through resume. */
async function dropResumed(seconds) {
  const u = user();
  const r = await watchedLogin(portOf(spec.taskSim), u);
  if (r.err) return fail(`drop ${seconds} s: login failed: ${JSON.stringify(r.err)}`);
  await waitFor('5 progress events', async () => (await tState()).progress.length >= 5, 20000);
  const before = (await tState()).progress.length;
  forwarder.refusing = true;
  forwarder.drop();
  await pause(seconds * 1000); // the outage itself
  forwarder.refusing = false;
  try {
    await waitFor('the restored event', async () => (await tState()).restored.length > 0, 60000);
    await waitFor('the last step', async () => (await tState()).progress.includes(STEPS), 60000);
  } catch (e) {
    const st = await tState();
    return fail(`drop ${seconds} s: ${e.message}; states ${st.states.join(',')}`);
  }
  const st = await tState();
  const c = count(st.progress);
  const mode = st.restored.map((x) => x.mode).join(',');
  row(`browser network dropped for ${seconds} s while a task streams 100 numbered events`,
    `events lost ${c.lost}, duplicated ${c.dup} (${c.n} received, ${before} before the drop, in order: ${c.ordered}); restored by ${mode}`,
    `states ${st.states.join(' → ')}`);
  figures.push([`events lost / duplicated, network dropped ${seconds} s`, `${c.lost} / ${c.dup} (of ${STEPS})`]);
  if (c.lost || c.dup || !c.ordered || c.last !== STEPS) fail(`drop ${seconds} s: lost ${c.lost} dup ${c.dup} ordered ${c.ordered}`);
  if (mode !== 'resumed') fail(`drop ${seconds} s: restored by ${mode}, not resumed`);
  await inPage(async () => { await window.t.s.logoff(); window.t.s.free(); });
}

/** A drop longer than the proxy's resume window: the restore path, reported as it went. */
async function dropBeyondWindow(seconds) {
  const u = user();
  const r = await watchedLogin(portOf(spec.longTaskSim), u);
  if (r.err) return fail(`drop ${seconds} s: login failed: ${JSON.stringify(r.err)}`);
  const session = r.ok.sessionUuid;
  await waitFor('3 progress events', async () => (await tState()).progress.length >= 3, 30000);
  const dropAt = Date.now();
  forwarder.refusing = true;
  forwarder.drop();
  await pause(seconds * 1000);
  forwarder.refusing = false;
  // The client retried while the network was away (jittered backoff, 8 attempts) and gave up,
  // or is still trying: wait until it settles.
  let st = await waitFor('the client to settle', async () => {
    const s = await tState();
    return ['connected', 'disconnected'].includes(s.state) ? s : null;
  }, 60000).catch(() => null);
  st = st ?? (await tState());
  let path;
  let after = [];
  let attach = null;
  if (st.state === 'connected' && st.restored.length) {
    path = `the client restored by itself (${st.restored.map((x) => x.mode).join(',')})`;
  } else {
    // The application logs in again naming the lost session (the client kept its proof).
    const again = await inPage(async (_prl, a) => {
      const { s } = window.t;
      const resp = await s.login({ host: '127.0.0.2', port: a.port, user: a.user, password: a.password,
        prevSessionId: a.prev });
      const tasks = resp.runningTasks;
      const seen = [];
      let result = null;
      if (tasks.length === 1) {
        result = await s.attachToLostTask(tasks[0].taskId, { onProgress: (d) => seen.push(d.percent) });
      }
      return { sessionUuid: resp.sessionUuid, restored: resp.restored, tasks: tasks.length, seen, result };
    }, { port: portOf(spec.longTaskSim), user: u.name, password: u.password, prev: session }, 200000);
    if (again.err) {
      path = `the client gave up (state ${st.state}); the application's login naming the old session failed: ${again.err.kind}`;
      fail(`drop ${seconds} s: ${path}`);
    } else {
      seenUuids.push(again.ok.sessionUuid);
      after = again.ok.seen;
      attach = again.ok.result;
      path = `the client gave up after ${st.states.filter((s) => s === 'restoring').length} restore attempts (state ${st.state}); `
        + `the application logged in again naming the old session: restored ${again.ok.restored}, `
        + `${again.ok.tasks} lost task listed, re-attached, result code ${attach?.code}`;
      if (!again.ok.restored || again.ok.tasks !== 1 || attach?.code !== 0) fail(`drop ${seconds} s: ${path}`);
    }
  }
  // Progress of the first session (up to the re-login: a new session starts a task of its own,
  // numbered from 1 again), then what the re-attached task reported.
  const st2 = await tState();
  const all = [...st.progress, ...after];
  const c = count(all);
  row(`browser network dropped for ${seconds} s (longer than the proxy's resume window) while a task streams 100 numbered events`,
    `${path}; duplicated ${c.dup}, in order ${c.ordered}; ${st.progress.length} events before the drop, ${after.length} after re-attaching, `
      + `${c.lost} emitted while no session of the client existed (the service keeps no events for a dead session)`,
    `states ${st2.states.join(' → ')}; ${Math.round((Date.now() - dropAt) / 1000)} s from the drop to the task's end`);
  figures.push([`restore path, network dropped ${seconds} s`, path]);
  figures.push([`events duplicated, network dropped ${seconds} s`, String(c.dup)]);
  if (c.dup || !c.ordered) fail(`drop ${seconds} s: duplicated ${c.dup}, ordered ${c.ordered}`);
  await inPage(async () => { await window.t.s.logoff().catch(() => {}); window.t.s.free(); });
}

async function proxyRestart() {
  const u = user();
  const r = await watchedLogin(portOf(spec.sim), u);
  if (r.err) return fail(`proxy restart: login failed: ${JSON.stringify(r.err)}`);
  await stopProcess(procs.proxy);
  procs.proxy = await startProxy();
  try {
    await waitFor('the restored event', async () => (await tState()).restored.length > 0, 60000);
  } catch (e) {
    return fail(`proxy restart: ${e.message}; states ${(await tState()).states.join(',')}`);
  }
  const st = await tState();
  seenUuids.push(...st.restored.map((x) => x.sessionId));
  row('proxy restarted (SIGTERM, started again) under a logged-in browser',
    `restored by ${st.restored.map((x) => x.mode).join(',')}, state ${st.state}`,
    `states ${st.states.join(' → ')}`);
  if (st.state !== 'connected' || st.restored[0]?.mode !== 'new_session') fail(`proxy restart: ${JSON.stringify(st.restored)} ${st.state}`);
  await inPage(async () => { await window.t.s.logoff(); window.t.s.free(); });
}

async function serviceKilled() {
  const u = user();
  const t0 = Date.now();
  const call = inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url });
    try {
      await s.login({ host: '127.0.0.2', port: a.port, user: a.user, password: a.password, timeoutMs: 10000 });
      return 'logged in';
    } finally {
      s.free();
    }
  }, { url: url(), port: portOf(spec.slowSim), user: u.name, password: u.password });
  await pause(1500); // the login is with the service (its password check takes 4 s)
  procs.slow.proc.kill('SIGKILL');
  const r = await call;
  const ms = Date.now() - t0;
  row('service killed (SIGKILL) during a browser login', r.err
    ? `typed error ${r.err.kind} (${r.err.codeName ?? 'no code'}) after ${ms} ms` : `resolved: ${r.ok}`, '');
  if (!r.err?.isParallels || ms > 12000) fail(`service killed mid-login: ${JSON.stringify(r)} after ${ms} ms`);
}

async function hostileService() {
  const out = [];
  for (const [i, fault] of spec.faults.entries()) {
    const u = user();
    const t0 = Date.now();
    const r = await inPage(async (prl, a) => {
      const s = new prl.Server({ proxyUrl: a.url });
      try {
        const resp = await s.login({ host: a.host, port: a.port, user: a.user, password: a.password, timeoutMs: 1500 });
        await s.logoff().catch(() => {});
        return { session: resp.sessionUuid };
      } finally {
        s.free();
      }
    }, { url: url(), host: spec.faultHost, port: spec.faultBasePort + i, user: u.name, password: u.password });
    const ms = Date.now() - t0;
    if (r.ok) seenUuids.push(r.ok.session);
    out.push(`\`${fault}\`: ${r.err ? `${r.err.kind}${r.err.codeName ? ` ${r.err.codeName}` : ''}` : 'logged in'} (${ms} ms)`);
    if ((r.err && !r.err.isParallels) || ms > 15000) fail(`hostile service ${fault}: ${JSON.stringify(r)} after ${ms} ms`);
  }
  row('every prl-sim fault mode, seen by the browser client (login, 1.5 s connect budget)', out.join('; '),
    'each a typed ParallelsError or a login; none hung');
}

async function main() {
  procs.task = await sim(spec.taskSim, ['--task-on-login', `${STEPS}:${spec.taskIntervalMs}`], 'sim-task');
  procs.slow = await sim(spec.slowSim, ['--auth-delay-ms', '4000'], 'sim-slow');
  if (spec.drops.some((d) => d > 30)) {
    procs.longTask = await sim(spec.longTaskSim, ['--task-on-login', `${STEPS}:1500`], 'sim-long-task');
  }
  procs.proxy = await startProxy();
  forwarder = await startForwarder(portOf(spec.proxyAddr), spec.forwarderPort);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${forwarder.port}/`);
  await page.waitForFunction(() => window.prlReady === true, null, { timeout: 20000 });
  for (const d of spec.drops) {
    if (d > 30) await dropBeyondWindow(d);
    else await dropResumed(d);
  }
  await proxyRestart();
  await serviceKilled();
  await hostileService();
}

try {
  await main();
} catch (e) {
  fail(`browser part stopped: ${e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => {});
  await forwarder?.close().catch(() => {});
  for (const p of Object.values(procs)) await stopProcess(p);
  writeFileSync(spec.out, JSON.stringify({ rows, failures, figures }));
  writeFileSync(join(spec.work, 'browser-secrets.json'), JSON.stringify({
    passwords: spec.users.map((u) => u.password), uuids: seenUuids,
  }));
}
process.exit(failures.length ? 1 : 0);
