// @prl-web/client in real apps: the fixture apps of bundlers/ (Vite 7, Vite 5, webpack 5), each
// installed from its committed lockfile plus the packed package (`npm pack` of dist/npm), built
// or served by its bundler with no configuration for the package, and logging in through a real
// prl-proxy and prl-sim in headless Chromium. Built apps are served by the proxy (its
// Content-Security-Policy applies); Vite's dev server serves its own origin, which the proxy
// allows. Needs dist/npm and release builds of prl-sim and prl-proxy, like login.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import {
  CHROMIUM, E2E_DIR, PKG_DIR, TARGET_DIR, freePort, proxyConfig, startProcess, stopProcess,
} from './harness.mjs';

const SIM = process.env.PRL_SIM ?? join(TARGET_DIR, 'release', 'prl-sim');
const PROXY = process.env.PRL_PROXY ?? join(TARGET_DIR, 'release', 'prl-proxy');
const FIXTURES = join(E2E_DIR, 'bundlers');
const USER = 'alice';
const PASSWORD = 'wonderland';
const VITES = ['vite7', 'vite5'];

const have = existsSync(SIM) && existsSync(PROXY) && existsSync(join(PKG_DIR, 'index.js'));
const skip = have ? false : `needs ${SIM}, ${PROXY} and ${PKG_DIR} (build them first)`;

const run = promisify(execFile);
let work;
let www; // the proxy's static root: one directory per built app
let sim;
let simPort;
let proxy;
let proxyPort;
let browser;
const apps = {}; // fixture name -> its installed copy
const devPorts = {};

/** Runs `node <script> ...args` in `cwd`; the output is in the error when it fails. */
async function node(cwd, script, args, env = {}) {
  try {
    return await run(process.execPath, [script, ...args], {
      cwd, env: { ...process.env, ...env }, maxBuffer: 16 << 20,
    });
  } catch (e) {
    throw new Error(`${script} ${args.join(' ')} failed in ${cwd}:\n${e.stdout}\n${e.stderr}`);
  }
}

/** A copy of the fixture with the shared app, its lockfile's packages and the packed package. */
async function install(name, tarball) {
  const dir = join(work, name);
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  mkdirSync(join(dir, 'src'));
  cpSync(join(FIXTURES, 'app', 'main.js'), join(dir, 'src', 'main.js'));
  if (name.startsWith('vite')) cpSync(join(FIXTURES, 'app', 'vite.html'), join(dir, 'index.html'));
  const npm = (args) => run('npm', [...args, '--no-audit', '--no-fund'], { cwd: dir, maxBuffer: 16 << 20 });
  await npm(['ci']);
  // Everything else is in npm's cache now; the package itself is a local tarball.
  await npm(['install', '--no-save', '--offline', tarball]);
  return dir;
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'prl-bundlers-'));
  www = join(work, 'www');
  for (const d of ['vite7', 'vite5', 'webpack5', 'plain']) mkdirSync(join(www, d), { recursive: true });
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: PKG_DIR, encoding: 'utf8',
  }));
  const tarball = join(work, info.filename);
  const installs = Promise.all(['vite7', 'vite5', 'webpack5'].map(async (name) => {
    apps[name] = await install(name, tarball);
  }));

  simPort = await freePort();
  sim = await startProcess(SIM, ['--listen', `127.0.0.1:${simPort}`, '--user', `${USER}:${PASSWORD}`,
    '--product-version', 'bundlers'], /prl-sim listening/);
  proxyPort = await freePort();
  for (const name of VITES) devPorts[name] = await freePort();
  writeFileSync(join(work, 'proxy.toml'), proxyConfig({
    listen: `127.0.0.1:${proxyPort}`,
    staticRoot: www,
    pkgDir: PKG_DIR,
    ports: [simPort],
    origins: VITES.map((name) => `http://127.0.0.1:${devPorts[name]}`),
  }));
  proxy = await startProcess(PROXY, ['--config', join(work, 'proxy.toml')], /prl-proxy listening/);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
  await installs;
});

after(async () => {
  await browser?.close();
  for (const p of [proxy, sim]) await stopProcess(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Opens `url`, waits for the app's init(), logs in and off with the right password and fails
 * with a wrong one; returns both results and the URL the .wasm came from.
 */
async function loginFrom(url) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  let wasmUrl;
  page.on('response', (r) => {
    if (r.headers()['content-type'] === 'application/wasm') wasmUrl = r.url();
  });
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.prlReady || window.prlInitError, null, { timeout: 30000 });
    const initError = await page.evaluate(() => window.prlInitError ?? null);
    assert.equal(initError, null, `init() failed on ${url}: ${initError}\n${problems.join('\n')}`);
    const args = { proxyUrl: `ws://127.0.0.1:${proxyPort}/ws`, host: '127.0.0.1', port: simPort, user: USER };
    const ok = await page.evaluate((a) => window.prlLogin(a), { ...args, password: PASSWORD });
    const wrong = await page.evaluate((a) => window.prlLogin(a), { ...args, password: 'not-it' });
    return { ok, wrong, wasmUrl, problems };
  } finally {
    await page.close();
  }
}

function assertLogins(r, where) {
  assert.deepEqual(r.ok, { productVersion: 'bundlers', during: 'connected', after: 'disconnected' },
    `${where}: ${JSON.stringify(r.ok)} ${r.problems.join('\n')}`);
  assert.equal(r.wrong.error?.isParallels, true, `${where}: ${JSON.stringify(r.wrong)}`);
  assert.equal(r.wrong.error.kind, 'authentication');
  assert.deepEqual(r.problems, []);
}

for (const name of VITES) {
  test(`${name}: the dev server's page logs in (no Vite configuration)`, { skip }, async () => {
    const dir = apps[name];
    const port = devPorts[name];
    const dev = await startProcess(process.execPath,
      [join(dir, 'node_modules', 'vite', 'bin', 'vite.js'), dir, '--host', '127.0.0.1',
        '--port', String(port), '--strictPort'],
      /Local:\s+http:\/\/127\.0\.0\.1:\d+\//, { timeoutMs: 30000 });
    try {
      const r = await loginFrom(`http://127.0.0.1:${port}/`);
      assertLogins(r, `${name} dev`);
      // Vite pre-bundled the package away from its .wasm; init() found the package's own copy.
      assert.equal(r.wasmUrl, `http://127.0.0.1:${port}/node_modules/@prl-web/client/prl_client_wasm_bg.wasm`);
    } finally {
      await stopProcess(dev);
    }
  });

  test(`${name}: the production build logs in, served by prl-proxy`, { skip }, async () => {
    const dir = apps[name];
    await node(dir, join(dir, 'node_modules', 'vite', 'bin', 'vite.js'),
      ['build', '--base', `/${name}/`, '--outDir', join(www, name), '--emptyOutDir']);
    const assets = readdirSync(join(www, name, 'assets'));
    assert.ok(assets.some((f) => f.endsWith('.wasm')), `no .wasm among ${assets}`);
    const r = await loginFrom(`http://127.0.0.1:${proxyPort}/${name}/`);
    assertLogins(r, `${name} build`);
    assert.match(r.wasmUrl, new RegExp(`^http://127\\.0\\.0\\.1:${proxyPort}/${name}/assets/[^/]+\\.wasm$`));
  });
}

test('webpack5: the production build logs in, served by prl-proxy', { skip }, async () => {
  const dir = apps.webpack5;
  const out = join(www, 'webpack5');
  await node(dir, join(dir, 'node_modules', 'webpack-cli', 'bin', 'cli.js'), ['--mode', 'production'],
    { OUT_DIR: out });
  cpSync(join(FIXTURES, 'app', 'webpack.html'), join(out, 'index.html'));
  assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), `no .wasm in ${readdirSync(out)}`);
  const r = await loginFrom(`http://127.0.0.1:${proxyPort}/webpack5/`);
  assertLogins(r, 'webpack5');
  assert.match(r.wasmUrl, new RegExp(`^http://127\\.0\\.0\\.1:${proxyPort}/webpack5/[^/]+\\.wasm$`));
});

test('without its .wasm, init() rejects naming the URL (not a CompileError)', { skip }, async () => {
  const dir = join(www, 'plain');
  cpSync(PKG_DIR, join(dir, 'pkg'), { recursive: true });
  rmSync(join(dir, 'pkg', 'prl_client_wasm_bg.wasm'));
  writeFileSync(join(dir, 'index.html'),
    '<!doctype html><meta charset="utf-8"><script type="module" src="page.js"></script>');
  writeFileSync(join(dir, 'page.js'),
    "import init from './pkg/index.js';\n" +
    'init().then(() => { window.prlReady = true; }, (e) => { window.prlInitError = String(e); });\n');
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${proxyPort}/plain/`);
    await page.waitForFunction(() => window.prlReady || window.prlInitError, null, { timeout: 10000 });
    const err = await page.evaluate(() => window.prlInitError ?? 'resolved');
    assert.match(err, new RegExp(
      `^Error: cannot load http://127\\.0\\.0\\.1:${proxyPort}/plain/pkg/prl_client_wasm_bg\\.wasm: got 404 `));
  } finally {
    await page.close();
  }
});
