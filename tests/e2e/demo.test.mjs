// The demo page of `cargo xtask demo` (web/) in headless Chromium, driven through its form the
// way a new user clicks, against a real prl-proxy serving it and a real prl-sim.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PKG_DIR, PKG_ENTRY, PROXY, ROOT, SIM, freePort, launchChromium, proxyConfig, requireBuilt,
  startForwarder, startProcess, stopProcess, waitForDetachedExpiry,
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
  simPort = await freePort();
  // Every session gets a task, so a lost session has something to show.
  sim = await startProcess(SIM, ['--listen', `127.0.0.1:${simPort}`, '--user', 'demo:demo',
    '--product-version', 'prl-sim demo', '--task-on-login', '50:100'], /prl-sim listening/);
  const proxyPort = await freePort();
  forwarder = await startForwarder(proxyPort);
  writeFileSync(join(work, 'proxy.toml'), proxyConfig({
    listen: `127.0.0.1:${proxyPort}`,
    staticRoot: join(ROOT, 'web'),
    pkgDir: PKG_DIR,
    ports: [simPort],
    resumeWindowMs: WINDOW_MS,
    origins: [`http://127.0.0.1:${forwarder.port}`],
  }));
  proxy = await startProcess(PROXY, ['--config', join(work, 'proxy.toml')], /prl-proxy listening/);
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
  await forwarder?.close();
  await stopProcess(proxy);
  await stopProcess(sim);
  if (work) rmSync(work, { recursive: true, force: true });
});

const fields = (id) => page.$$eval(`#${id}-fields dt`, (dts) => Object.fromEntries(
  dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
const state = () => page.textContent('#state');

async function logIn(password) {
  await page.fill('input[name=password]', password);
  await page.click('#login-button');
  await page.waitForSelector('#result:not([hidden]), #error:not([hidden])', { timeout: 15000 });
}

test('the query string fills the form; a demo login shows the LoginResponse; log off', async () => {
  assert.equal(await state(), 'disconnected');
  assert.equal(await page.inputValue('input[name=host]'), '127.0.0.1');
  assert.equal(await page.inputValue('input[name=port]'), String(simPort));
  assert.equal(await page.inputValue('input[name=user]'), 'demo');
  await logIn('demo');
  assert.equal(await state(), 'connected');
  const r = await fields('result');
  assert.match(r.session, /^\{[0-9a-f-]{36}\}$/);
  assert.equal(r.product, 'prl-sim demo');
  assert.equal(r.restored, 'false');
  assert.equal(await page.inputValue('input[name=password]'), '', 'the password does not stay in the form');
  assert.ok(await page.isDisabled('#login-button'));
  await page.click('#logoff-button');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'disconnected');
  assert.ok(await page.isHidden('#result'));
  assert.equal(await page.inputValue('input[name=prevSessionId]'), '', 'a log off offers no restore');
});

test('a wrong password shows the typed error', async () => {
  await logIn('not the password');
  assert.deepEqual({ ...(await fields('error')), message: undefined }, {
    kind: 'authentication', code: '0x80000330', name: 'PRL_ERR_AUTHENTICATION_FAILED', message: undefined,
  });
  assert.equal(await state(), 'disconnected');
});

test('without automatic restore, a lost session is offered as previous session and restored', async () => {
  await page.uncheck('input[name=autoRestore]');
  await logIn('demo');
  const first = (await fields('result')).session;
  // A new Server replaced the first one (the setting changed); the old one's end is not shown.
  let log = await page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
  assert.ok(!log.some((l) => l.includes('closed')), log.join('\n'));
  const mark = proxy.logMark();
  forwarder.drop();
  await page.waitForFunction(() => document.getElementById('state').textContent === 'disconnected');
  assert.equal(await page.inputValue('input[name=prevSessionId]'), first);
  await waitForDetachedExpiry(proxy, mark); // the proxy gives the session up
  await logIn('demo');
  const r = await fields('result');
  assert.notEqual(r.session, first);
  assert.equal(r.restored, 'true');
  assert.match(r['lost tasks'], /^\{[0-9a-f-]{36}\}$/);
  assert.equal(await page.inputValue('input[name=prevSessionId]'), '');
  // The lost task is listed with an Attach button; attaching follows it to its end.
  assert.ok(await page.isVisible('#tasks'));
  const rows = await page.$$eval('#task-list li .task-id', (els) => els.map((e) => e.textContent));
  assert.deepEqual(rows, [`${r['lost tasks']} (command 9001)`]);
  await page.click('#task-list li button');
  await page.waitForFunction(() => document.querySelector('#task-list .task-result').textContent.startsWith('done'),
    null, { timeout: 15000 });
  assert.equal(await page.textContent('#task-list .task-result'), 'done (code 0)');
  assert.equal(await page.$eval('#task-list progress', (p) => p.value), 100);
  log = await page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
  assert.ok(log.some((l) => l.includes(`session ${first} lost`)), log.join('\n'));
  assert.ok(log.some((l) => l.includes(`task ${r['lost tasks']} done`)), log.join('\n'));
  // The progress of the session's own task is one line that counts up, not one per event.
  assert.equal(log.filter((l) => l.includes('a task of this session')).length <= 2, true, log.join('\n'));
  await page.click('#logoff-button');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'disconnected');
});

/** The VM table as `name: state` (the state cell's text). */
const vmStates = () => page.$$eval('#vm-list tr', (trs) => Object.fromEntries(
  trs.map((tr) => [tr.dataset.name, tr.querySelector('.vm-state').textContent])));
const vmState = (name) => page.textContent(`#vm-list tr[data-name="${name}"] .vm-state`);

test('the VM list shows the default inventory; start and stop follow the service\'s state events', async () => {
  await page.check('input[name=autoRestore]');
  await logIn('demo');
  await page.waitForSelector('#vms:not([hidden])');
  // The simulator's default inventory: what `cargo xtask demo` shows.
  assert.deepEqual(await vmStates(), {
    'web-01': 'running', 'db-01': 'running', 'win-build': 'stopped', 'legacy-billing': 'suspended',
  });
  assert.match(await page.textContent('#host-line'), /^127\.0\.0\.1 · .+ · \d+ × .+ RAM · prl-sim demo$/);
  const row = '#vm-list tr[data-name="win-build"]';
  assert.ok(await page.isEnabled(`${row} .vm-start`));
  assert.ok(await page.isDisabled(`${row} .vm-stop`));
  await page.click(`${row} .vm-start`);
  await page.waitForFunction((r) => document.querySelector(`${r} .vm-state`).textContent === 'running', row);
  await page.waitForFunction((r) => !document.querySelector(`${r} .vm-stop`).disabled, row);
  assert.ok(await page.isDisabled(`${row} .vm-start`));
  await page.click(`${row} .vm-stop`);
  await page.waitForFunction((r) => document.querySelector(`${r} .vm-state`).textContent === 'stopped', row);
  // A refusal shows the service's code and message in the row (a second console started the
  // VM meanwhile would be the same): start the running web-01 through the page's own Server.
  await page.evaluate(() => { document.querySelector('#vm-list tr[data-name="web-01"] .vm-start').disabled = false; });
  await page.click('#vm-list tr[data-name="web-01"] .vm-start');
  await page.waitForFunction(() => document.querySelector('#vm-list tr[data-name="web-01"] .vm-error').textContent !== '');
  assert.equal(await page.textContent('#vm-list tr[data-name="web-01"] .vm-error'), 'PRL_ERR_FAILURE: VM is already running');
  assert.equal(await vmState('web-01'), 'running');
  const log = await page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
  assert.ok(log.some((l) => l.endsWith('VM win-build is running')), log.join('\n'));
  assert.ok(log.some((l) => l.endsWith('VM win-build is stopped')), log.join('\n'));
  await page.click('#logoff-button');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'disconnected');
  assert.ok(await page.isHidden('#vms'));
});

test('nothing failed on the page (no errors, no missing files)', () => {
  // A wrong password is an expected failure of the login, not of the page.
  assert.deepEqual(problems, []);
});
