// The web console (web/, issue 9) in headless Chromium, as its users drive it: served by a real
// prl-proxy (its CSP in force), logged in to a real prl-sim, through a TCP forwarder that can cut
// the connection. Every flow: a failed connect with its PRL_ERR_* name and hint, login, the host
// panel, the VM table with states live from another console, filter, start / stop (shut down
// and kill) with confirmation, a job's Cancel, a refused action on its row, a dropped connection
// (unstable -> resumed), a lost task attached after a restore, keyboard use, log off, the
// remembered settings (never the password), a 375 px phone; axe-core on every screen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PKG_ENTRY, PROXY, SIM, launchChromium, requireBuilt, startConsoleStack, startSilentServer, stopStack, until,
  waitForDetachedExpiry,
} from './harness.mjs';

const USER = 'alice';
const PASSWORD = 'wonderland';
const OP_MS = 800; // every VM operation takes this long on the simulator
const WINDOW_MS = 3000; // the proxy's resume window

const INVENTORY = `
[host]
hostname = ""
cpu_count = 16
cpu_model = "Test CPU"
cpu_speed_mhz = 2100
ram_mb = 65536
os = "Virtuozzo Linux release 9.0 (test)"

[[vm]]
name = "web-01"
state = "running"
os = "ubuntu"
cpus = 2
ram_mb = 2048
description = "nginx front end"

[[vm]]
name = "db-01"
state = "running"
os = "rhel9"
cpus = 4
ram_mb = 8192

[[vm]]
name = "build-01"
state = "stopped"
os = "win2022"
cpus = 4
ram_mb = 8192

[[vm]]
name = "build-02"
state = "stopped"
os = "debian"

[[vm]]
name = "legacy"
state = "suspended"
os = "centos7"

[[vm]]
name = "golden"
template = true
`;

let work;
let simPort;
let sim;
let proxy;
let forwarder;
let silent;     // a "service" that accepts connections and never answers
let browser;
let page;       // the console under test (through the forwarder)
let other;      // a second console on the same host (another operator)
let consoleUrl;
const problems = []; // page errors, console errors, failed requests
let cutting = false; // while the tests cut the connection, the browser's WebSocket errors are expected
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function openConsole(context) {
  const p = await context.newPage();
  p.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (cutting && /^WebSocket connection to '\S+' failed/.test(m.text())) return;
    problems.push(`console: ${m.text()}`);
  });
  p.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  await p.goto(consoleUrl);
  await p.waitForFunction(() => window.prlDemoReady === true, null, { timeout: 10000 });
  return p;
}

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY]);
  work = mkdtempSync(join(tmpdir(), 'prl-console-'));
  writeFileSync(join(work, 'vms.toml'), INVENTORY);
  silent = await startSilentServer();
  // Every session gets a 2-minute task, so a session lost for good leaves one to attach.
  ({ sim, proxy, forwarder, simPort, url: consoleUrl } = await startConsoleStack(work, {
    simArgs: ['--user', `${USER}:${PASSWORD}`, '--product-version', 'prl-sim console', '--vms', join(work, 'vms.toml'),
      '--transition-ms', `all=${OP_MS}`, '--task-on-login', '1200:100'],
    simEnv: { RUST_LOG: 'info,prl_sim::service::vms=debug' },
    resumeWindowMs: WINDOW_MS,
    extraPorts: [silent.port],
  }));
  browser = await launchChromium();
  // The settings a user types; the query string is the demo's link (tested in demo.test.mjs).
  page = await openConsole(await browser.newContext({ viewport: { width: 1280, height: 800 } }));
  other = await openConsole(await browser.newContext({ viewport: { width: 1280, height: 800 } }));
  for (const p of [page, other]) {
    await p.fill('#f-port', String(simPort));
    await p.fill('#f-user', USER);
  }
});

after(async () => {
  await browser?.close();
  await stopStack({ sim, proxy, forwarder });
  await silent?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * axe-core's serious and critical violations on `p` as it is now. axe is evaluated through the
 * DevTools protocol, so the proxy's CSP (no inline scripts) stays in force for the page.
 */
async function axe(p) {
  if (!(await p.evaluate(() => typeof window.axe === 'object'))) await p.evaluate(axeSource);
  const { rules, violations } = await p.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return {
      rules: r.passes.length + r.violations.length,
      violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) })),
    };
  });
  assert.ok(rules >= 20, `axe applied ${rules} rules only`);
  if (process.env.AXE_VERBOSE) console.log(JSON.stringify(violations));
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

const text = (p, sel) => p.textContent(sel).then((t) => t.trim());
const row = (name) => `#vm-list tr[data-name="${name}"]`;
const vmState = (p, name) => text(p, `${row(name)} .vm-state`);
const logLines = (p) => p.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
const waitText = (p, sel, want, timeout = 15000) => p.waitForFunction(
  ([s, w]) => document.querySelector(s)?.textContent.trim() === w, [sel, want], { timeout });
const waitState = (p, name, state) => waitText(p, `${row(name)} .vm-state`, state);
const waitConn = (p, state, timeout = 30000) => waitText(p, '#conn-state', state, timeout);

async function connect(p, password) {
  await p.fill('#f-password', password);
  await p.click('#login-button');
  await p.waitForSelector('#console:not([hidden]), #login-error:not([hidden])', { timeout: 15000 });
}

async function loggedIn(p) {
  await connect(p, PASSWORD);
  assert.ok(await p.isVisible('#console'), await p.textContent('#login-error'));
  await p.waitForSelector(`${row('web-01')}`);
}

test('the connect screen has every field, labelled, and no accessibility violations', async () => {
  assert.ok(await page.isVisible('#connect'));
  assert.ok(await page.isHidden('#console'));
  assert.ok(await page.isHidden('#session'));
  for (const [label, sel] of [['Host', '#f-host'], ['Port', '#f-port'], ['Security level', '#f-security'],
    ['Timeout (ms)', '#f-timeout'], ['User', '#f-user'], ['Password', '#f-password']]) {
    const byLabel = await page.getByLabel(label, { exact: true }).and(page.locator('input, select'))
      .evaluate((e) => `#${e.id}`);
    assert.equal(byLabel, sel, label);
  }
  assert.deepEqual(await axe(page), []);
});

test('a failed connect shows the PRL_ERR_* name and a one-line hint', async () => {
  await connect(page, 'not the password');
  assert.ok(await page.isVisible('#login-error'));
  assert.equal(await text(page, '#login-error-name'), 'PRL_ERR_AUTHENTICATION_FAILED');
  assert.equal(await text(page, '#login-error-hint'), 'Check the user name and password (both are case-sensitive).');
  assert.equal(await page.getAttribute('#login-error', 'role'), 'alert');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-error', 'focus moves to the error');
  assert.equal(await page.inputValue('#f-password'), '', 'the password does not stay in the form');
  assert.ok(await page.isVisible('#connect'));
  assert.deepEqual(await axe(page), []);
  // A service that accepts the connection and never answers, within a short connect budget:
  // another name, another hint. (Not a 1 ms budget against the real simulator: on a quiet
  // machine a loopback login can beat it.)
  await page.fill('#f-port', String(silent.port));
  await page.fill('#f-timeout', '700');
  try {
    await page.fill('#f-password', PASSWORD);
    await page.click('#login-button');
    await waitText(page, '#login-error-hint',
      'The service did not answer in time: check the host and port, or raise the timeout.');
    assert.match(await text(page, '#login-error-name'), /^PRL_ERR_\w+$/);
    assert.match(await text(page, '#login-error-kind'), /^\(timeout, 0x[0-9a-f]+\)$/);
    assert.ok(await page.isHidden('#console'));
  } finally {
    await page.fill('#f-port', String(simPort));
    await page.fill('#f-timeout', '10000');
  }
});

test('login: the session bar, the host panel and the VM table', async () => {
  await loggedIn(page);
  assert.ok(await page.isHidden('#connect'));
  assert.ok(await page.isHidden('#login-error'));
  assert.equal(await text(page, '#conn-state'), 'connected');
  assert.equal(await text(page, '#session-who'), `${USER} @ 127.0.0.1`);
  assert.match(await text(page, '#session-age'), /^\d+ s$/);
  // The host: the name the login used (a Linux service reports none), product, OS, CPUs, RAM.
  assert.equal(await text(page, '#host-name'), '127.0.0.1');
  const host = await page.$$eval('#host-fields .fact', (fs) => Object.fromEntries(
    fs.map((f) => [f.querySelector('dt').textContent, f.querySelector('dd').textContent])));
  assert.deepEqual(host, {
    Product: 'prl-sim console', OS: 'Virtuozzo Linux release 9.0 (test)', CPUs: '16 × Test CPU (2.1 GHz)', RAM: '64 GiB',
  });
  // The VMs in the service's order (templates first) with state, OS, CPUs, RAM.
  const vms = await page.$$eval('#vm-list tr', (trs) => trs.map((tr) => [...tr.children].slice(0, 5)
    .map((c) => c.textContent)));
  assert.deepEqual(vms, [
    ['goldentemplate', 'stopped', 'Linux', '1', '1 GiB'],
    ['web-01nginx front end', 'running', 'Ubuntu', '2', '2 GiB'],
    ['db-01', 'running', 'RHEL 9', '4', '8 GiB'],
    ['build-01', 'stopped', 'Windows Server 2022', '4', '8 GiB'],
    ['build-02', 'stopped', 'Debian', '1', '1 GiB'],
    ['legacy', 'suspended', 'CentOS 7', '1', '1 GiB'],
  ]);
  assert.equal(await text(page, '#vm-count'), '6');
  // Actions enabled only where the state allows them.
  const enabled = await page.$$eval('#vm-list tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.name,
    [...tr.querySelectorAll('.action-buttons button')].filter((b) => !b.disabled)
      .map((b) => b.className.replace('vm-', ''))])));
  assert.deepEqual(enabled, {
    golden: [],
    'web-01': ['stop', 'pause', 'suspend', 'reset'],
    'db-01': ['stop', 'pause', 'suspend', 'reset'],
    'build-01': ['start'],
    'build-02': ['start'],
    legacy: ['start'],
  });
  // Every action button says which VM it acts on.
  assert.equal(await page.getByRole('button', { name: 'Start build-01', exact: true }).count(), 1);
  assert.deepEqual(await axe(page), []);
});

test('the live region stays quiet while the event log fills: log lines are not announced', async () => {
  // The session's own task (the simulator's task on login) reports progress every 100 ms: a log
  // line updated in place, never an announcement.
  const counts = await page.evaluate(() => new Promise((resolve) => {
    const seen = { announced: 0, logged: 0 };
    const watch = (id, key) => {
      const o = new MutationObserver(() => { seen[key] += 1; });
      o.observe(document.getElementById(id), { childList: true, characterData: true, subtree: true });
      return o;
    };
    const observers = [watch('announcer', 'announced'), watch('log', 'logged')];
    const end = Date.now() + 10000;
    const check = () => {
      if (seen.logged < 10 && Date.now() < end) {
        setTimeout(check, 50);
        return;
      }
      for (const o of observers) o.disconnect();
      resolve(seen);
    };
    check();
  }));
  assert.ok(counts.logged >= 10, JSON.stringify(counts));
  assert.equal(counts.announced, 0, JSON.stringify(counts));
  const log = await logLines(page);
  assert.equal(log.filter((l) => l.includes('a task of this session')).length, 1, log.join('\n'));
});

test('the state badge follows vmstatechange: another console starts a VM', async () => {
  await loggedIn(other);
  await other.click(`${row('build-02')} .vm-start`);
  await waitState(page, 'build-02', 'running');
  assert.equal(await text(page, '#announcer'), 'build-02 is running', 'the change is announced');
  await page.waitForFunction((r) => !document.querySelector(`${r} .vm-stop`).disabled, row('build-02'));
  assert.ok(await page.isDisabled(`${row('build-02')} .vm-start`));
  const log = await logLines(page);
  assert.ok(log.some((l) => l.endsWith('VM build-02 is running')), log.join('\n'));
});

test('the filter shows the VMs whose name matches', async () => {
  await page.fill('#vm-filter', 'BUILD');
  const visible = () => page.$$eval('#vm-list tr', (trs) => trs.filter((tr) => !tr.hidden).map((tr) => tr.dataset.name));
  assert.deepEqual(await visible(), ['build-01', 'build-02']);
  assert.equal(await text(page, '#vm-count'), '2 of 6');
  await page.fill('#vm-filter', 'nothing like it');
  assert.deepEqual(await visible(), []);
  assert.ok(await page.isVisible('#vm-empty'));
  await page.fill('#vm-filter', '');
  assert.equal((await visible()).length, 6);
  assert.ok(await page.isHidden('#vm-empty'));
});

test('start shows the job under way; stop asks first, then shuts down or kills as chosen', async () => {
  const r = row('build-01');
  await page.click(`${r} .vm-start`);
  // Under way: progress, what it does, Cancel; the row's actions wait.
  assert.ok(await page.isVisible(`${r} .job progress`));
  assert.equal(await text(page, `${r} .job-text`), 'Starting…');
  assert.ok(await page.isVisible(`${r} .vm-cancel`));
  assert.ok(await page.isDisabled(`${r} .vm-start`));
  await waitState(page, 'build-01', 'running');
  await page.waitForSelector(`${r} .job`, { state: 'hidden' });

  // Stop: a confirmation dialog; Cancel changes nothing.
  await page.click(`${r} .vm-stop`);
  assert.ok(await page.isVisible('#confirm'));
  assert.equal(await text(page, '#confirm-title'), 'Stop build-01?');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel', 'the safe choice has focus');
  assert.ok(await page.isChecked('#confirm input[value=graceful]'));
  assert.deepEqual(await axe(page), [], 'the open dialog');
  await page.click('#confirm-cancel');
  assert.ok(await page.isHidden('#confirm'));
  assert.equal(await vmState(page, 'build-01'), 'running');
  assert.ok(await page.isVisible(`${r} .job`) === false);

  // Shut down.
  await page.click(`${r} .vm-stop`);
  await page.check('#confirm input[value=graceful]');
  await page.click('#confirm-ok');
  await waitState(page, 'build-01', 'stopped');

  // A paused VM cannot shut down (the service refuses): the dialog offers kill only, and the
  // kill is what goes to the service (a shutdown would be refused with PRL_ERR_DISP_VM_IS_NOT_RUNNING).
  await page.click(`${r} .vm-start`);
  await waitState(page, 'build-01', 'running');
  await page.waitForFunction((s) => !document.querySelector(`${s} .vm-pause`).disabled, r);
  await page.click(`${r} .vm-pause`);
  await waitState(page, 'build-01', 'paused');
  await page.waitForFunction((s) => !document.querySelector(`${s} .vm-stop`).disabled, r);
  assert.ok(await page.isEnabled(`${r} .vm-resume`));
  await page.click(`${r} .vm-stop`);
  assert.ok(await page.isDisabled('#confirm input[value=graceful]'));
  assert.ok(await page.isChecked('#confirm input[value=kill]'));
  await page.click('#confirm-ok');
  await waitState(page, 'build-01', 'stopped');
  await page.waitForSelector(`${r} .job`, { state: 'hidden' });
  assert.ok(await page.isHidden(`${r} .vm-msg`), await text(page, `${r} .vm-msg`));
  const log = await logLines(page);
  assert.ok(log.some((l) => l.endsWith('stop (shut down) build-01: done')), log.join('\n'));
  assert.ok(log.some((l) => l.endsWith('stop (kill) build-01: done')), log.join('\n'));
  // One line per task: the start's "under way" became its "done".
  assert.ok(!log.some((l) => l.includes('under way')), log.join('\n'));
});

test('Cancel of a running start: the service refuses to cancel a power operation, the row says so and follows the state', async () => {
  const r = row('build-01');
  await page.click(`${r} .vm-start`);
  await page.click(`${r} .vm-cancel`);
  await page.waitForSelector(`${r} .vm-msg:not([hidden])`);
  assert.equal(await text(page, `${r} .vm-error`), 'Not canceled (PRL_ERR_TASK_NOT_FOUND)');
  assert.match(await text(page, `${r} .vm-hint`), /runs a power operation to its end/);
  // Until the state event comes, the row waits (no action on a VM whose state is about to change).
  await waitState(page, 'build-01', 'running');
  await page.waitForSelector(`${r} .job`, { state: 'hidden' });
  assert.ok(await page.isEnabled(`${r} .vm-stop`));
});

test('a refused action shows the service\'s code and a hint on the VM\'s row', async () => {
  // Another operator starts build-02 a moment before: this console still shows it stopped, its
  // start is queued behind the other's (one operation per VM at a time) and refused.
  const mark = sim.logMark();
  const uuid = await page.getAttribute(row('build-02'), 'data-uuid');
  await other.click(`${row('build-02')} .vm-stop`);
  await other.check('#confirm input[value=kill]');
  await other.click('#confirm-ok');
  await waitState(page, 'build-02', 'stopped');
  await other.waitForSelector(`${row('build-02')} .job`, { state: 'hidden' });
  await page.waitForFunction((s) => !document.querySelector(`${s} .vm-start`).disabled, row('build-02'));
  await other.click(`${row('build-02')} .vm-start`);
  await sim.waitForLog(/vm operation queued[^\n]*op="?start/, mark);
  assert.equal(await vmState(page, 'build-02'), 'stopped', `${uuid} is still shown stopped`);
  await page.click(`${row('build-02')} .vm-start`);
  await page.waitForSelector(`${row('build-02')} .vm-msg.failed`);
  assert.equal(await text(page, `${row('build-02')} .vm-error`), 'PRL_ERR_FAILURE: VM is already running');
  assert.equal(await text(page, `${row('build-02')} .vm-hint`),
    'Refused in the VM\'s current state: another console may have changed it.');
  assert.equal(await vmState(page, 'build-02'), 'running');
  assert.match(await text(page, '#announcer'), /^(Start build-02 failed: PRL_ERR_FAILURE|build-02 is running)$/);
  // The session goes on.
  assert.equal(await text(page, '#conn-state'), 'connected');
});

test('a dropped connection: unstable, then resumed; the console stays', async () => {
  cutting = true;
  const before = (await logLines(page)).length;
  forwarder.drop(); // TCP resets: the browser sees an abnormal close
  await waitConn(page, 'connected');
  const log = (await logLines(page)).slice(before);
  const unstable = log.findIndex((l) => l.includes('connection connected → unstable'));
  const resumed = log.findIndex((l) => l.includes('session restored (resumed)'));
  assert.ok(unstable >= 0 && resumed > unstable, log.join('\n'));
  await waitText(page, '#announcer', 'Connection resumed');
  assert.ok(await page.isVisible('#console'));
  assert.equal(await vmState(page, 'web-01'), 'running');
  assert.ok(await page.isHidden('#tasks-button'), 'a resumed session has lost nothing');
});

test('a connection lost beyond the resume window: restored by a new login, the lost task attached and canceled', async () => {
  const mark = proxy.logMark();
  forwarder.refusing = true;
  forwarder.drop();
  await waitConn(page, 'unstable');
  assert.match(await text(page, '#announcer'), /^(Connection unstable: restoring the session|Restoring the session)$/);
  await waitForDetachedExpiry(proxy, mark); // the proxy gives the session up
  forwarder.refusing = false;
  await waitConn(page, 'connected', 40000);
  await waitConn(other, 'connected', 40000);
  cutting = false;
  await page.waitForSelector('#tasks:not([hidden]) #task-list li', { timeout: 15000 });
  assert.equal(await text(page, '#tasks-count'), '1');
  assert.equal(await page.getAttribute('#tasks-button', 'aria-expanded'), 'true');
  assert.match(await text(page, '#task-list .task-id'), /^\{[0-9a-f-]{36}\} \(command 9001\)$/);
  // Attached: its progress counts up on one line; Cancel asks the service, which cancels it.
  await page.click('#task-list .task-attach');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'task-cancel', 'focus moves to Cancel');
  await page.waitForFunction(() => document.querySelector('#task-list progress').value > 0, null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll('#log li[data-key^="task-"]').length === 1
    && /: \d+%$/.test(document.querySelector('#log li[data-key^="task-"]').textContent));
  await page.click('#task-list .task-cancel');
  await waitText(page, '#task-list .task-result', 'canceled by the service');
  assert.ok(await page.isDisabled('#task-list .task-attach'));
  const log = await logLines(page);
  assert.ok(log.some((l) => l.includes('session restored (relogin); 1 lost task(s)')), log.join('\n'));
  // The task is one line from attach to its end.
  const taskLines = log.filter((l) => l.includes('lost task {'));
  assert.equal(taskLines.length, 1, taskLines.join('\n'));
  assert.match(taskLines[0], /: canceled by the service$/);
});

test('keyboard only: the dialog opens and closes from the keyboard, focus is visible and returns', async () => {
  const stop = `${row('web-01')} .vm-stop`;
  await page.focus(stop);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#confirm[open]');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-ok');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#confirm', { state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.className), 'vm-stop', 'focus returns to the button');
  assert.equal(await vmState(page, 'web-01'), 'running', 'Escape cancels');
  // Keyboard focus is drawn.
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.equal(outline.style, 'solid');
  assert.ok(outline.width >= 2, JSON.stringify(outline));
  // The filter and the event log are reachable and usable by keyboard.
  await page.focus('#vm-filter');
  await page.keyboard.type('db');
  assert.deepEqual(await page.$$eval('#vm-list tr:not([hidden])', (trs) => trs.map((t) => t.dataset.name)), ['db-01']);
  await page.fill('#vm-filter', '');
  await page.focus('#events summary');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval('#events', (d) => d.open), true);
});

test('at 375 px: no horizontal scroll, every VM and action reachable, no accessibility violations', async () => {
  await page.setViewportSize({ width: 375, height: 812 });
  try {
    const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
    assert.ok(widths.doc <= 375 && widths.body <= 375, JSON.stringify(widths));
    const box = await page.locator(`${row('legacy')} .vm-start`).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, JSON.stringify(box));
    assert.deepEqual(await axe(page), [], 'narrow console');
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
});

test('log off: back to the connect screen; the host and user are remembered, never the password', async () => {
  await page.click('#logoff-button');
  await page.waitForSelector('#connect:not([hidden])');
  assert.ok(await page.isHidden('#console'));
  assert.ok(await page.isHidden('#session'));
  assert.ok(await page.isHidden('#lost-notice'), 'a log off offers no restore');
  const log = await logLines(page);
  assert.ok(log.some((l) => l.endsWith('logged off')), log.join('\n'));
  const stored = await page.evaluate(() => localStorage.getItem('prl-web.console.last'));
  assert.ok(!stored.includes(PASSWORD), stored);
  const saved = JSON.parse(stored);
  assert.deepEqual(Object.keys(saved).sort(), ['host', 'port', 'securityLevel', 'timeoutMs', 'user']);
  assert.equal(saved.user, USER);
  // A new visit: the form comes back filled in, except the password.
  await page.reload();
  await page.waitForFunction(() => window.prlDemoReady === true);
  assert.equal(await page.inputValue('#f-host'), '127.0.0.1');
  assert.equal(await page.inputValue('#f-user'), USER);
  assert.equal(await page.inputValue('#f-port'), String(saved.port));
  assert.equal(await page.inputValue('#f-password'), '');
  // The narrow connect screen.
  await page.setViewportSize({ width: 375, height: 812 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `scroll width ${width}`);
  assert.deepEqual(await axe(page), [], 'narrow connect screen');
});

test('nothing failed on the pages (no errors, no missing files, no CSP violations)', async () => {
  await until(() => true);
  // A wrong password is an expected failure of the login, not of the page.
  assert.deepEqual(problems, []);
});
