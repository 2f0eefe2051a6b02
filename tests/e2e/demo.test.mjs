// The demo page of `cargo xtask demo` (web/) in headless Chromium, driven through its form the
// way a new user clicks, against a real prl-proxy serving it and a real prl-sim.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PKG_ENTRY, PROXY, SIM, launchChromium, requireBuilt, startConsoleStack, stopStack, waitForDetachedExpiry,
} from './harness.mjs';

const WINDOW_MS = 1000;

let work;
let sim;
let simPort;
let proxy;
let forwarder;
let browser;
let page;
const problems = []; // page errors, console errors, failed requests

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY]);
  work = mkdtempSync(join(tmpdir(), 'prl-demo-'));
  // Every session gets a task, so a lost session has something to show.
  ({ sim, proxy, forwarder, simPort } = await startConsoleStack(work, {
    simArgs: ['--user', 'demo:demo', '--product-version', 'prl-sim demo', '--task-on-login', '50:100'],
    resumeWindowMs: WINDOW_MS,
  }));
  browser = await launchChromium();
  page = await browser.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
  // Through the forwarder, so a test can cut the connection; the URL is the one the demo prints.
  await page.goto(`http://127.0.0.1:${forwarder.port}/?host=127.0.0.1&port=${simPort}&user=demo`);
  await page.waitForFunction(() => window.prlDemoReady === true, null, { timeout: 10000 });
});

after(async () => {
  await browser?.close();
  await stopStack({ sim, proxy, forwarder });
  if (work) rmSync(work, { recursive: true, force: true });
});

const text = (sel) => page.textContent(sel).then((t) => t.trim());
const state = () => text('#conn-state');
const hostFacts = () => page.$$eval('#host-fields .fact', (fs) => Object.fromEntries(
  fs.map((f) => [f.querySelector('dt').textContent, f.querySelector('dd').textContent])));
const logLines = () => page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));

async function logIn(password) {
  await page.fill('input[name=password]', password);
  await page.click('#login-button');
  await page.waitForSelector('#console:not([hidden]), #login-error:not([hidden])', { timeout: 15000 });
}

async function logOff() {
  await page.click('#logoff-button');
  await page.waitForSelector('#connect:not([hidden])');
}

test('the query string fills the form; a demo login shows the console; log off', async () => {
  assert.ok(await page.isVisible('#connect'));
  assert.ok(await page.isHidden('#session'));
  assert.equal(await page.inputValue('input[name=host]'), '127.0.0.1');
  assert.equal(await page.inputValue('input[name=port]'), String(simPort));
  assert.equal(await page.inputValue('input[name=user]'), 'demo');
  await logIn('demo');
  assert.equal(await state(), 'connected');
  assert.equal(await text('#session-who'), 'demo @ 127.0.0.1');
  await page.waitForSelector('#host-fields .fact');
  assert.equal((await hostFacts()).Product, 'prl-sim demo');
  assert.equal(await page.inputValue('input[name=password]'), '', 'the password does not stay in the form');
  assert.ok(await page.isHidden('#connect'));
  assert.ok(await page.isHidden('#tasks'), 'a new session has no lost tasks');
  await logOff();
  assert.ok(await page.isHidden('#console'));
  assert.ok(await page.isHidden('#session'));
  assert.ok(await page.isHidden('#lost-notice'), 'a log off offers no restore');
});

test('a wrong password shows the typed error', async () => {
  await logIn('not the password');
  assert.equal(await text('#login-error-name'), 'PRL_ERR_AUTHENTICATION_FAILED');
  assert.equal(await text('#login-error-kind'), '(authentication, 0x80000330)');
  assert.notEqual(await text('#login-error-hint'), '');
  assert.ok(await page.isVisible('#connect'));
  assert.ok(await page.isHidden('#session'));
});

test('without automatic restore, a lost session is offered for the next login and restored', async () => {
  await page.uncheck('input[name=autoRestore]');
  await logIn('demo');
  assert.equal(await state(), 'connected');
  // A new Server replaced the first one (the setting changed); the old one's end is not shown.
  let log = await logLines();
  assert.ok(!log.some((l) => l.includes('closed')), log.join('\n'));
  const mark = proxy.logMark();
  forwarder.drop();
  // Back to the connect screen, offering to restore the lost session.
  await page.waitForSelector('#lost-notice:not([hidden])', { timeout: 15000 }).catch(async (e) => {
    throw new Error(`${e.message}\nstate ${await state()}; log:\n${(await logLines()).join('\n')}`);
  });
  assert.ok(await page.isVisible('#connect'));
  assert.ok(await page.isChecked('input[name=restoreSession]'));
  await waitForDetachedExpiry(proxy, mark); // the proxy gives the session up
  await logIn('demo');
  assert.equal(await state(), 'connected');
  assert.ok(await page.isHidden('#lost-notice'));
  // The lost task is listed with an Attach button; attaching follows it to its end.
  assert.ok(await page.isVisible('#tasks'));
  assert.equal(await text('#tasks-count'), '1');
  const rows = await page.$$eval('#task-list li .task-id', (els) => els.map((e) => e.textContent));
  assert.equal(rows.length, 1);
  assert.match(rows[0], /^\{[0-9a-f-]{36}\} \(command 9001\)$/);
  const taskId = rows[0].split(' ')[0];
  await page.click('#task-list li .task-attach');
  await page.waitForFunction(() => document.querySelector('#task-list .task-result').textContent.startsWith('done'),
    null, { timeout: 15000 });
  assert.equal(await text('#task-list .task-result'), 'done (code 0)');
  assert.equal(await page.$eval('#task-list progress', (p) => p.value), 100);
  log = await logLines();
  assert.ok(log.some((l) => l.includes('the lost session restored')), log.join('\n'));
  assert.ok(log.some((l) => l.endsWith(`lost task ${taskId}: done`)), log.join('\n'));
  // The progress of the session's own task is one line that counts up, not one per event.
  assert.equal(log.filter((l) => l.includes('a task of this session')).length <= 2, true, log.join('\n'));
  await logOff();
});

/** The VM table as `name: state` (the state cell's text). */
const vmStates = () => page.$$eval('#vm-list tr', (trs) => Object.fromEntries(
  trs.map((tr) => [tr.dataset.name, tr.querySelector('.vm-state').textContent])));
const vmState = (name) => page.textContent(`#vm-list tr[data-name="${name}"] .vm-state`);

test('the VM list shows the default inventory; start and stop follow the service\'s state events', async () => {
  await page.check('input[name=autoRestore]');
  await logIn('demo');
  await page.waitForSelector('#vm-list tr');
  // The simulator's default inventory: what `cargo xtask demo` shows.
  assert.deepEqual(await vmStates(), {
    'web-01': 'running', 'db-01': 'running', 'win-build': 'stopped', 'legacy-billing': 'suspended',
  });
  assert.equal(await text('#host-name'), '127.0.0.1');
  const host = await hostFacts();
  assert.equal(host.Product, 'prl-sim demo');
  assert.match(host.CPUs, /^\d+ × .+/);
  assert.match(host.RAM, /^\d+(\.\d)? (GiB|MiB)$/);
  const row = '#vm-list tr[data-name="win-build"]';
  assert.ok(await page.isEnabled(`${row} .vm-start`));
  assert.ok(await page.isDisabled(`${row} .vm-stop`));
  await page.click(`${row} .vm-start`);
  await page.waitForFunction((r) => document.querySelector(`${r} .vm-state`).textContent === 'running', row);
  await page.waitForFunction((r) => !document.querySelector(`${r} .vm-stop`).disabled, row);
  assert.ok(await page.isDisabled(`${row} .vm-start`));
  await page.click(`${row} .vm-stop`);
  await page.click('#confirm-ok'); // the confirmation (shut down, the default for a running VM)
  await page.waitForFunction((r) => document.querySelector(`${r} .vm-state`).textContent === 'stopped', row);
  // A refusal shows the service's code and message in the row (a second console started the
  // VM meanwhile would be the same): start the running web-01 through the page's own Server.
  await page.evaluate(() => { document.querySelector('#vm-list tr[data-name="web-01"] .vm-start').disabled = false; });
  await page.click('#vm-list tr[data-name="web-01"] .vm-start');
  await page.waitForFunction(() => document.querySelector('#vm-list tr[data-name="web-01"] .vm-error').textContent !== '');
  assert.equal(await page.textContent('#vm-list tr[data-name="web-01"] .vm-error'), 'PRL_ERR_FAILURE: VM is already running');
  assert.equal(await vmState('web-01'), 'running');
  const log = await logLines();
  assert.ok(log.some((l) => l.endsWith('VM win-build is running')), log.join('\n'));
  assert.ok(log.some((l) => l.endsWith('VM win-build is stopped')), log.join('\n'));
  await logOff();
  assert.ok(await page.isHidden('#console'));
});

test('nothing failed on the page (no errors, no missing files)', () => {
  // A wrong password is an expected failure of the login, not of the page.
  assert.deepEqual(problems, []);
});
