// Three prl-proxy instances of one cluster behind HAProxy, their shared state in a
// redis-server, in front of one prl-sim; @prl-web/client in headless Chromium. HAProxy and
// redis-server are Debian's (`cargo xtask setup` installs them), started here as the current
// user on loopback ports; a missing one fails the run. The HAProxy configuration is the one in
// docs/scaling.md, read from that file, with this run's addresses and a shorter check
// interval.
//
// The browser reaches the balancer through a TCP forwarder (its network: `drop()` cuts it),
// and every public URL is a path of that one origin, as the document describes. HAProxy
// balances round robin, so consecutive WebSockets through `/ws` land on consecutive
// instances: a resume or a restore after a login lands on another instance than the login's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  E2E_DIR, PKG_DIR, PKG_ENTRY, PROXY, ROOT, SIM, callInPage, freePort, launchChromium, openTestPage, proxyConfig,
  requireBuilt, startForwarder, startProcess, startServer, stopProcess, until, waitForDetachedExpiry,
} from './harness.mjs';

const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';
const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const DOC = join(ROOT, 'docs', 'scaling.md');
const USER = 'alice';
const PASSWORD = 'wonderland';
const NAMES = ['a', 'b', 'c'];
// The documented addresses of the instances, in the order of NAMES.
const DOC_ADDRS = ['10.0.0.11:8080', '10.0.0.12:8080', '10.0.0.13:8080'];
const RESUME_WINDOW_MS = 3000;
const HEARTBEAT_MS = 300;
// Every session gets a task of 120 steps of 100 ms from the simulator (running while a restore happens).
const TASK_STEPS = 120;
const TASK_INTERVAL_MS = 100;
// One bucket per user for the whole cluster: this many attempts, then none (1 a minute).
const USER_BURST = 30;

let work;
let sim;
let redis;
let haproxy;
let forwarder; // the browser's network: page and WebSockets go through it to the balancer
let browser;
let page;
const port = {};
const instances = {}; // name -> { proc, port, file }

/** `text` with `from` (exactly `count` times: the document and this test agree) replaced. */
function replaceExactly(text, from, to, count = 1) {
  const parts = text.split(from);
  assert.equal(parts.length, count + 1, `expected ${JSON.stringify(from)} ${count}x in the documented config`);
  return parts.join(to);
}

/** The one ```haproxy block of docs/scaling.md. */
function docHaproxy() {
  const blocks = [...readFileSync(DOC, 'utf8').matchAll(/```haproxy\n([\s\S]*?)```/g)];
  assert.equal(blocks.length, 1, `one \`\`\`haproxy block in ${DOC}`);
  return blocks[0][1];
}

/** An HTTP GET to 127.0.0.1:`p`, from `localAddress` (127.0.0.3: loopback, not a trusted proxy). */
async function get(p, path, localAddress = '127.0.0.3') {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: p, path, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
  });
}

/** The sum of the samples of metric `name` (every label set) on instance `n`. */
async function metric(n, name) {
  const { status, body } = await get(instances[n].port, '/metrics');
  assert.equal(status, 200, body);
  return body.split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** `metric` on every live instance: name -> value. */
async function metricEach(name, names = NAMES.filter((n) => instances[n].proc)) {
  const out = {};
  for (const n of names) out[n] = await metric(n, name);
  return out;
}

const readyz = async (n) => (await get(instances[n].port, '/readyz')).body;

async function startRedis() {
  const net = await import('node:net');
  const probe = () => new Promise((resolve) => {
    const s = net.connect(port.redis, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  return startServer(REDIS_SERVER, ['--port', String(port.redis), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--dir', work], probe);
}

function instanceConfig(n) {
  const url = (m) => `ws://127.0.0.1:${forwarder.port}/ws/${m}`;
  const peers = NAMES.filter((m) => m !== n).map((m) => `${m} = "${url(m)}"`).join(', ');
  return proxyConfig({
    listen: `127.0.0.1:${instances[n].port}`,
    staticRoot: join(E2E_DIR, 'www'),
    pkgDir: PKG_DIR,
    ports: [port.sim],
    resumeWindowMs: RESUME_WINDOW_MS,
    origins: [`http://127.0.0.1:${forwarder.port}`],
    trustedProxies: ['127.0.0.1/32'],
    limits: { login_burst_per_user: USER_BURST, login_per_minute_per_user: 1 },
    logLevel: process.env.PRL_E2E_PROXY_LOG ?? 'info',
    extra: [
      '[tickets]',
      `key_file = ${JSON.stringify(join(work, 'ticket.key'))}`,
      'required = false',
      '',
      '[cluster]',
      `redis_url = "redis://127.0.0.1:${port.redis}"`,
      `instance_id = "${n}"`,
      `public_url = "${url(n)}"`,
      `peers = { ${peers} }`,
      `secret_file = ${JSON.stringify(join(work, 'cluster.key'))}`,
      `heartbeat_ms = ${HEARTBEAT_MS}`,
      '',
    ].join('\n'),
  });
}

async function startInstance(n) {
  const inst = instances[n];
  inst.proc = await startProcess(PROXY, ['--config', inst.file], /prl-proxy listening on ws:\/\/\S+/);
  await until(async () => (await readyz(n)) === 'ready\n', { what: `instance ${n} ready (reaches redis)` });
}

async function startHaproxy() {
  let cfg = docHaproxy();
  cfg = replaceExactly(cfg, 'bind :443 ssl crt /etc/haproxy/certs/relay.example.com.pem',
    `bind 127.0.0.1:${port.lb}`);
  DOC_ADDRS.forEach((addr, i) => {
    cfg = replaceExactly(cfg, addr, `127.0.0.1:${instances[NAMES[i]].port}`, 2);
  });
  cfg = replaceExactly(cfg, 'inter 1s', 'inter 200ms');
  // The hard limit of open files here is below what `maxconn 20000` needs (HAProxy as root
  // raises it); a test run needs few.
  cfg = replaceExactly(cfg, 'maxconn 20000', 'maxconn 1000');
  // Test only: HAProxy's view of the servers, for waits on its health checks.
  cfg += ['', 'frontend stats', `    bind 127.0.0.1:${port.stats}`, '    stats enable', '    stats uri /stats', ''].join('\n');
  const file = join(work, 'haproxy.cfg');
  writeFileSync(file, cfg);
  // -db: foreground, no daemon; -W not needed (no reloads).
  const started = await startServer(HAPROXY, ['-db', '-f', file], async () => (await get(port.lb, '/readyz')).status === 200);
  await balancerSees('UP');
  return started;
}

/** HAProxy's check status of each server of the main backend: name -> `UP`, `DOWN`, ... */
async function balancerView() {
  const { status, body } = await get(port.stats, '/stats;csv');
  assert.equal(status, 200, body);
  const [header, ...rows] = body.trim().split('\n').map((l) => l.split(','));
  const col = header.indexOf('status');
  return Object.fromEntries(rows.filter((r) => r[0] === 'prl' && NAMES.includes(r[1])).map((r) => [r[1], r[col]]));
}

/** Waits until the balancer's main backend sees `names` (default: all) as `status`. */
async function balancerSees(status, names = NAMES) {
  await until(async () => {
    const view = await balancerView();
    return names.every((n) => view[n] === status);
  }, { what: `the balancer sees ${names} ${status}` });
}

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY, HAPROXY, REDIS_SERVER]);
  work = mkdtempSync(join(tmpdir(), 'prl-cluster-'));
  writeFileSync(join(work, 'ticket.key'), randomBytes(32));
  writeFileSync(join(work, 'cluster.key'), randomBytes(32).toString('hex'));
  port.sim = await freePort();
  port.redis = await freePort();
  port.lb = await freePort();
  port.stats = await freePort();
  for (const n of NAMES) instances[n] = { port: await freePort(), file: join(work, `${n}.toml`), proc: null };
  sim = await startProcess(SIM, ['--listen', `127.0.0.1:${port.sim}`, '--user', `${USER}:${PASSWORD}`,
    '--task-on-login', `${TASK_STEPS}:${TASK_INTERVAL_MS}`], /prl-sim listening on tcp:\/\/\S+/);
  redis = await startRedis();
  forwarder = await startForwarder(port.lb);
  for (const n of NAMES) writeFileSync(instances[n].file, instanceConfig(n));
  await Promise.all(NAMES.map(startInstance));
  haproxy = await startHaproxy();
  browser = await launchChromium();
  page = await openTestPage(browser, `http://127.0.0.1:${forwarder.port}/`);
});

after(async () => {
  await browser?.close();
  await stopProcess(haproxy);
  await forwarder?.close();
  for (const n of NAMES) await stopProcess(instances[n]?.proc);
  await stopProcess(redis);
  await stopProcess(sim);
  if (work) rmSync(work, { recursive: true, force: true });
});

const inPage = (fn, args) => callInPage(page, fn, args);
/** The balancer's `/ws`, and instance `n`'s public URL, as the browser reaches them. */
const balanced = () => `ws://127.0.0.1:${forwarder.port}/ws`;
const publicUrl = (n) => `ws://127.0.0.1:${forwarder.port}/ws/${n}`;
/** What `proc` (started by startProcess) logged since `mark` (of the log it still keeps). */
function logSince(proc, mark) {
  const kept = proc.stderr();
  return kept.slice(Math.max(0, mark - (proc.logMark() - kept.length)));
}
/** Every instance's log, for assertion messages. */
const logs = () => NAMES.map((n) => `--- ${n}:\n${instances[n].proc?.stderr() ?? '(stopped)'}`).join('\n');

/**
 * Logs `count` Servers in through `url` as `window.servers[i]`, each with a log of its
 * states, restored events and task progress; resolves their session UUIDs.
 */
async function loginWatched(count, url) {
  const r = await inPage(async (prl, a) => {
    window.servers = [];
    const sessions = [];
    for (let i = 0; i < a.count; i += 1) {
      const s = new prl.Server({ proxyUrl: a.url });
      const t = { s, states: [], restored: [], progress: 0 };
      s.addEventListener('statechange', (e) => t.states.push(e.detail.state));
      s.addEventListener('restored', (e) => t.restored.push(e.detail));
      s.addEventListener('event', (e) => {
        if (e.detail.eventType === 100051 && e.detail.jobId === undefined) t.progress += 1;
      });
      window.servers.push(t);
      const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password });
      sessions.push(resp.sessionUuid);
    }
    return sessions;
  }, { count, url, port: port.sim, user: USER, password: PASSWORD });
  assert.equal(r.err, undefined, `${JSON.stringify(r.err)}\n${logs()}`);
  return r.ok;
}

/** Logs every watched Server off and frees it. */
async function logoffAll() {
  const r = await inPage(async () => {
    for (const { s } of window.servers) {
      if (s.state === 'connected') await s.logoff();
      s.free();
    }
    window.servers = [];
  });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
}

/** One login and logoff at `url` (with `ticket`, if given): `{ ok: session }` or `{ err }`. */
function loginOnce(url, { ticket, user = USER, password = PASSWORD } = {}) {
  return inPage(async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url, ticket: a.ticket ?? undefined });
    try {
      const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
        timeoutMs: 10000 });
      await s.logoff();
      return resp.sessionUuid;
    } finally {
      s.free();
    }
  }, { url, port: port.sim, user, password, ticket: ticket ?? null });
}

/** The instance whose `prl_proxy_sessions_active` grew from `before` (exactly one must). */
async function holderSince(before) {
  const now = await metricEach('prl_proxy_sessions_active');
  const grown = Object.keys(now).filter((n) => now[n] > before[n]);
  assert.equal(grown.length, 1, `sessions per instance: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
  return grown[0];
}

test('a ticket used on one instance is refused when replayed on another', async () => {
  const ticket = execFileSync(PROXY, ['--config', instances.a.file, 'ticket', '--target', `127.0.0.1:${port.sim}`,
    '--origin', `http://127.0.0.1:${forwarder.port}`, '--ttl', '60'], { encoding: 'utf8' }).trim();
  const first = await loginOnce(publicUrl('a'), { ticket });
  assert.equal(first.err, undefined, `${JSON.stringify(first.err)}\n${logs()}`);
  for (const n of ['b', 'c']) {
    const again = await loginOnce(publicUrl(n), { ticket });
    assert.equal(again.err?.kind, 'ticket_invalid', JSON.stringify(again));
    assert.match(again.err.message, /replayed: ticket already used/);
  }
});

test('a restore through another instance lists the lost task and re-attaches it', async () => {
  const before = await metricEach('prl_proxy_sessions_active');
  const [session] = await loginWatched(1, balanced());
  const holder = await holderSince(before);
  await page.waitForFunction(() => window.servers[0].progress >= 2, null, { timeout: 10000 });
  // The browser is away longer than the resume window: the holder closes the upstream
  // connection, the service ends the session (its task keeps running).
  const mark = instances[holder].proc.logMark();
  const marks = Object.fromEntries(NAMES.map((n) => [n, instances[n].proc.logMark()]));
  forwarder.refusing = true;
  forwarder.drop();
  await waitForDetachedExpiry(instances[holder].proc, mark);
  forwarder.refusing = false;
  await page.waitForFunction(() => window.servers[0].restored.length > 0, null, { timeout: 30000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\n${logs()}`));
  const restored = await page.evaluate(() => window.servers[0].restored[0]);
  assert.equal(restored.mode, 'relogin', JSON.stringify(restored));
  assert.equal(restored.previousSessionId, session);
  assert.notEqual(restored.sessionId, session);
  assert.equal(restored.lostTasks.length, 1, JSON.stringify(restored.lostTasks));
  // Another instance took the proof the holder kept.
  const took = NAMES.filter((n) => /restore proof accepted/.test(logSince(instances[n].proc, marks[n])));
  assert.equal(took.length, 1, `instances that accepted the proof: ${took}\n${logs()}`);
  assert.notEqual(took[0], holder, 'the restore went through the holder itself: nothing shared was needed');
  const r = await inPage(async (_prl, a) => {
    const { s } = window.servers[0];
    const seen = [];
    const result = await s.attachToLostTask(a.taskId, { onProgress: (d) => seen.push(d.percent) });
    return { code: result.code, seen, state: s.state };
  }, { taskId: restored.lostTasks[0].taskId });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.equal(r.ok.code, 0);
  assert.equal(r.ok.state, 'connected');
  assert.ok(r.ok.seen.length > 0, 'no progress after attaching');
  assert.equal(r.ok.seen.at(-1), 100);
  await logoffAll();
});

test('a browser drop resumes on the holding instance through the balancer', async () => {
  const before = await metricEach('prl_proxy_sessions_active');
  const [session] = await loginWatched(1, balanced());
  const holder = await holderSince(before);
  const redirects = await metricEach('prl_proxy_resume_redirects_total');
  await page.waitForFunction(() => window.servers[0].progress >= 3, null, { timeout: 10000 });
  forwarder.drop();
  await page.waitForFunction(() => window.servers[0].restored.length > 0, null, { timeout: 15000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\n${logs()}`));
  const t = await page.evaluate(() => {
    const { s, restored, states, progress } = window.servers[0];
    return { state: s.state, sessionId: s.sessionId, restored, states, progress };
  });
  assert.deepEqual(t.restored, [{ mode: 'resumed', sessionId: session, previousSessionId: session, lostTasks: [] }]);
  assert.equal(t.state, 'connected');
  assert.deepEqual(t.states, ['connecting', 'connected', 'unstable', 'restoring', 'connected']);
  // The balancer sent the resume to the next instance, which sent the browser to the holder.
  const after = await metricEach('prl_proxy_resume_redirects_total');
  const redirected = NAMES.filter((n) => after[n] > redirects[n]);
  assert.equal(redirected.length, 1, `redirects ${JSON.stringify(redirects)} -> ${JSON.stringify(after)}`);
  assert.notEqual(redirected[0], holder);
  assert.equal(after[redirected[0]], redirects[redirected[0]] + 1);
  // Still on the holder, and the task goes on.
  assert.equal(await holderSince(before), holder);
  await page.waitForFunction((n) => window.servers[0].progress >= n, t.progress + 3, { timeout: 10000 });
  await logoffAll();
});

test('a per-user login throttle holds across instances', async () => {
  // Wrong passwords for one user, spread over the three instances (each reached directly).
  const r = await inPage(async (prl, a) => {
    const kinds = [];
    for (let i = 0; i < a.burst; i += 1) {
      const s = new prl.Server({ proxyUrl: a.urls[i % a.urls.length] });
      try {
        await s.login({ host: '127.0.0.1', port: a.port, user: 'mallory', password: `guess-${i}` });
        kinds.push('ok');
      } catch (e) {
        kinds.push(e.kind);
      } finally {
        s.free();
      }
    }
    return kinds;
  }, { burst: USER_BURST, urls: NAMES.map(publicUrl), port: port.sim });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.deepEqual(new Set(r.ok), new Set(['authentication']), r.ok.join());
  // Each instance alone saw a third of the burst; the shared bucket is empty everywhere.
  for (const n of NAMES) {
    const e = await loginOnce(publicUrl(n), { user: 'mallory', password: 'one-more' });
    assert.equal(e.err?.kind, 'limit_reached', `${n}: ${JSON.stringify(e)}`);
    assert.match(e.err.message, /this user/);
  }
  // Another user is not affected.
  const ok = await loginOnce(balanced());
  assert.equal(ok.err, undefined, JSON.stringify(ok.err));
});

test('Redis stopped mid-run: sessions go on, new logins fail closed; restarted: all recovers', async () => {
  const before = await metricEach('prl_proxy_sessions_active');
  const [session] = await loginWatched(1, balanced());
  const holder = await holderSince(before);
  await stopProcess(redis);
  redis = null;
  for (const n of NAMES) {
    await until(async () => (await readyz(n)) === 'degraded: shared state unavailable\n', { what: `${n} degraded` });
    assert.equal(await metric(n, 'prl_proxy_shared_state_up'), 0);
  }
  // The balancer has no ready instance left: HAProxy answers new connections itself.
  await balancerSees('DOWN');
  // The attached session goes on.
  const progress = await page.evaluate(() => window.servers[0].progress);
  await page.waitForFunction((n) => window.servers[0].progress >= n, progress + 3, { timeout: 10000 });
  // A new login: refused by the balancer; at an instance directly, typed.
  const viaBalancer = await loginOnce(balanced());
  assert.equal(viaBalancer.err?.kind, 'proxy_unreachable', JSON.stringify(viaBalancer));
  const direct = await loginOnce(publicUrl(holder));
  assert.equal(direct.err?.kind, 'state_unavailable', JSON.stringify(direct));
  // A drop now: the balancer refuses the resume, the client asks its holder directly, which
  // needs nothing shared to resume what it holds.
  forwarder.drop();
  await page.waitForFunction(() => window.servers[0].restored.length > 0, null, { timeout: 20000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\n${logs()}`));
  const restored = await page.evaluate(() => window.servers[0].restored);
  assert.deepEqual(restored, [{ mode: 'resumed', sessionId: session, previousSessionId: session, lostTasks: [] }]);

  // Redis returns, empty: every instance recovers by itself, the balancer takes them back.
  redis = await startRedis();
  for (const n of NAMES) await until(async () => (await readyz(n)) === 'ready\n', { what: `${n} ready again` });
  await balancerSees('UP');
  const fresh = await loginOnce(balanced());
  assert.equal(fresh.err, undefined, JSON.stringify(fresh.err));
  const still = await page.evaluate(() => ({ state: window.servers[0].s.state, id: window.servers[0].s.sessionId }));
  assert.deepEqual(still, { state: 'connected', id: session });
  await logoffAll();
});

test('killing an instance moves its browsers to restore on the others', async () => {
  const before = await metricEach('prl_proxy_sessions_active');
  const sessions = await loginWatched(3, balanced());
  const now = await metricEach('prl_proxy_sessions_active');
  // Round robin: one new session on each instance.
  assert.deepEqual(NAMES.map((n) => now[n] - before[n]), [1, 1, 1], JSON.stringify({ before, now }));
  await page.waitForFunction(() => window.servers.every((t) => t.progress >= 2), null, { timeout: 10000 });
  const victim = 'b';
  instances[victim].proc.proc.kill('SIGKILL');
  await stopProcess(instances[victim].proc);
  instances[victim].proc = null;
  // Exactly one browser loses its connection; it restores through the others once the dead
  // instance's registration has expired (its restore proof was held there).
  await page.waitForFunction(() => window.servers.some((t) => t.restored.length > 0), null, { timeout: 30000 })
    .catch((e) => assert.fail(`no restored event: ${e.message}\n${logs()}`));
  const r = await page.evaluate(() => window.servers.map((t) => ({
    state: t.s.state, sessionId: t.s.sessionId, restored: t.restored, states: t.states })));
  const moved = r.filter((t) => t.restored.length > 0);
  assert.equal(moved.length, 1, JSON.stringify(r));
  const [m] = moved;
  const i = r.indexOf(m);
  assert.equal(m.restored.length, 1, JSON.stringify(m));
  assert.equal(m.restored[0].mode, 'relogin', JSON.stringify(m.restored));
  assert.equal(m.restored[0].previousSessionId, sessions[i]);
  assert.equal(m.restored[0].lostTasks.length, 1, JSON.stringify(m.restored[0]));
  assert.equal(m.state, 'connected');
  // The others never noticed.
  for (const t of r.filter((x) => x !== m)) {
    assert.deepEqual(t.states, ['connecting', 'connected'], JSON.stringify(t));
  }
  // Its lost task re-attaches on the instance it moved to.
  const attach = await inPage(async (_prl, a) => {
    const result = await window.servers[a.i].s.attachToLostTask(a.taskId);
    return result.code;
  }, { i, taskId: m.restored[0].lostTasks[0].taskId });
  assert.deepEqual(attach, { ok: 0 });
  const live = NAMES.filter((n) => n !== victim);
  const after = await metricEach('prl_proxy_sessions_active', live);
  assert.equal(live.reduce((sum, n) => sum + after[n] - before[n], 0), 3, JSON.stringify(after));
  await logoffAll();
});
