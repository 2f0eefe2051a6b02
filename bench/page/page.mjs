// The page benchmark of `cargo xtask bench`: the demo page (web/) and the npm package
// (dist/npm, with the .br/.gz files of `cargo xtask build-wasm`) served by a real prl-proxy in
// front of a real prl-sim, loaded in headless Chromium (Debian's, through playwright-core).
//
// For each setting and each round: `https` (wss; the certificate is self-signed, so Chromium
// caches nothing from it), `http` (Chromium offers br and gzip to 127.0.0.1) and `identity`
// (http, `Accept-Encoding: identity` forced), a fresh browser context (cold cache) navigates
// to the page,
// logs in through the form, and the time from the start of the navigation to the login result
// on the page is taken, with the bytes on the wire (response headers + encoded bodies) of every
// request. Then the same context navigates again (warm cache: revalidation, 304s).
//
//   node bench/page/page.mjs --proxy BIN --sim BIN --out FILE [--rounds 5]
//
// Loopback only; every wait is bounded.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
// playwright-core is the e2e tests' (tests/e2e, installed by `cargo xtask setup`).
const { chromium } = createRequire(join(ROOT, 'tests', 'e2e', 'package.json'))('playwright-core');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const ROUNDS = Number(args.rounds ?? 5);
const PKG = resolve(args.pkg ?? join(ROOT, 'dist', 'npm'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function start(cmd, argv, ready) {
  return new Promise((res, rej) => {
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, RUST_LOG: 'warn' } });
    let out = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); rej(new Error(`${cmd} not ready in 20 s`)); }, 20000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      if (ready.test(out)) { clearTimeout(timer); res(proc); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); rej(new Error(`${cmd} exited ${code} before ready`)); });
  });
}

function stop(proc) {
  if (!proc || proc.exitCode !== null) return Promise.resolve();
  return new Promise((res) => {
    proc.removeAllListeners('exit');
    proc.once('exit', () => res());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : null;
};

async function main() {
  if (!existsSync(join(PKG, 'index.js'))) throw new Error(`no package in ${PKG}: run cargo xtask build-wasm`);
  const work = mkdtempSync(join(tmpdir(), 'prl-page-'));
  const simPort = await freePort();
  const proxyPort = await freePort();
  const sim = await start(args.sim, ['--listen', `127.0.0.1:${simPort}`, '--user', 'demo:demo'], /prl-sim listening/);
  const config = (port, tls) => [
    '[server]', `listen = "127.0.0.1:${port}"`, '',
    ...(tls ? ['[tls]', 'self_signed = true', ''] : []),
    '[static]', `root = ${JSON.stringify(join(ROOT, 'web'))}`, '',
    '[[static.mount]]', 'prefix = "/pkg/"', `dir = ${JSON.stringify(PKG)}`, '',
    '[policy]', 'resolve_names = false', '',
    '[[policy.allow]]', 'cidr = "127.0.0.1/32"', `ports = [${simPort}]`, '',
    '[limits]', 'login_burst_per_ip = 1000', 'login_per_minute_per_ip = 1000',
    'login_burst_per_user = 1000', 'login_per_minute_per_user = 1000', '',
    '[log]', 'level = "warn"', '',
  ].join('\n');
  const tlsPort = await freePort();
  writeFileSync(join(work, 'proxy.toml'), config(proxyPort, false));
  writeFileSync(join(work, 'proxy-tls.toml'), config(tlsPort, true));
  const proxy = await start(args.proxy, ['--config', join(work, 'proxy.toml')], /prl-proxy listening/);
  const proxyTls = await start(args.proxy, ['--config', join(work, 'proxy-tls.toml')], /prl-proxy listening/);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const query = `/?host=127.0.0.1&port=${simPort}&user=demo`;
  const settings = {
    https: { url: `https://127.0.0.1:${tlsPort}${query}`, context: { ignoreHTTPSErrors: true } },
    http: { url: `http://127.0.0.1:${proxyPort}${query}`, context: {} },
    identity: {
      url: `http://127.0.0.1:${proxyPort}${query}`,
      context: { extraHTTPHeaders: { 'accept-encoding': 'identity' } },
    },
  };
  const results = {};
  try {
    for (const [encoding, setting] of Object.entries(settings)) {
      const { url } = setting;
      const rounds = [];
      for (let round = 0; round < ROUNDS; round++) {
        const context = await browser.newContext(setting.context);
        const page = await context.newPage();
        const requests = [];
        page.on('requestfinished', (r) => requests.push(r));
        const t0 = Date.now();
        await page.goto(url, { timeout: 20000 });
        await page.waitForFunction(() => window.prlDemoReady === true, null, { timeout: 20000 });
        await page.fill('input[name=password]', 'demo');
        await page.click('#login-button');
        // Logged in: the console replaces the connect screen.
        await page.waitForSelector('#console:not([hidden])', { timeout: 20000 });
        const loginMs = Date.now() - t0;
        // Bytes on the wire of the page load (the WebSocket is not an HTTP response).
        let bytes = 0;
        const files = {};
        for (const r of requests) {
          const sizes = await r.sizes();
          const resp = await r.response();
          bytes += sizes.responseHeadersSize + sizes.responseBodySize;
          const name = new URL(r.url()).pathname;
          files[name] = {
            status: resp?.status(),
            encoding: (await resp?.headerValue('content-encoding')) ?? 'identity',
            body: sizes.responseBodySize,
          };
        }
        // Warm: the same context again (revalidation with If-None-Match).
        const warm = [];
        page.removeAllListeners('requestfinished');
        page.on('requestfinished', (r) => warm.push(r));
        const t1 = Date.now();
        await page.goto(url, { timeout: 20000 });
        await page.waitForFunction(() => window.prlDemoReady === true, null, { timeout: 20000 });
        const warmMs = Date.now() - t1;
        let warmBytes = 0;
        let notModified = 0;
        for (const r of warm) {
          const sizes = await r.sizes();
          warmBytes += sizes.responseHeadersSize + sizes.responseBodySize;
          if ((await r.response())?.status() === 304) notModified += 1;
        }
        rounds.push({ loginMs, bytes, files, warmMs, warmBytes, notModified, requests: requests.length });
        await context.close();
      }
      results[encoding] = {
        rounds,
        median_login_ms: median(rounds.map((r) => r.loginMs)),
        median_bytes: median(rounds.map((r) => r.bytes)),
        median_warm_ms: median(rounds.map((r) => r.warmMs)),
        median_warm_bytes: median(rounds.map((r) => r.warmBytes)),
      };
      process.stderr.write(`page: ${encoding}: login ${results[encoding].median_login_ms} ms, ${results[encoding].median_bytes} bytes\n`);
    }
  } finally {
    await browser.close();
    await stop(proxy);
    await stop(proxyTls);
    await stop(sim);
    rmSync(work, { recursive: true, force: true });
  }
  const pkgFiles = {};
  for (const f of ['prl_client_wasm_bg.wasm', 'prl_client_wasm.js', 'index.js']) {
    const size = (p) => (existsSync(p) ? readFileSync(p).length : null);
    pkgFiles[f] = { raw: size(join(PKG, f)), gz: size(join(PKG, `${f}.gz`)), br: size(join(PKG, `${f}.br`)) };
  }
  const out = { rounds: ROUNDS, chromium: CHROMIUM, results, package: pkgFiles };
  writeFileSync(args.out, JSON.stringify(out, null, 2));
}

main().catch((e) => {
  process.stderr.write(`page: ${e.stack ?? e}\n`);
  process.exit(1);
});
