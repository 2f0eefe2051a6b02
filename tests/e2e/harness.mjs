// Shared paths and process helpers for the end-to-end tests.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(E2E_DIR, '..', '..');
export const PKG_DIR = join(ROOT, 'dist', 'npm');
export const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? resolve(ROOT, process.env.CARGO_TARGET_DIR)
  : join(ROOT, 'target');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SIM = process.env.PRL_SIM ?? join(TARGET_DIR, 'release', 'prl-sim');
export const PROXY = process.env.PRL_PROXY ?? join(TARGET_DIR, 'release', 'prl-proxy');
/** The built npm package's entry point. */
export const PKG_ENTRY = join(PKG_DIR, 'index.js');

/**
 * Fails (never skips) when something the tests need was not built: a missing prerequisite is a
 * failed run, not a quietly passing one.
 */
export function requireBuilt(paths) {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')}: build them first (\`cargo xtask build-wasm\`, `
      + '`cargo build --release -p prl-sim -p prl-proxy`), or run `cargo xtask test`');
  }
}

/** Terminal colours in a log (matched without them). */
const ANSI = /\x1b\[[0-9;]*m/g;

/** The most of a process's stderr (its log) kept for `waitForLog` and error messages. */
const LOG_LIMIT = 16 * 1024 * 1024;

/**
 * Starts `cmd args` and resolves once a stdout line matches `ready` (with the match), or rejects
 * when the process exits first or `timeoutMs` passes. stderr (the log) is kept: `stderr()` is
 * its tail, `logMark()` its length so far, `waitForLog(re, mark)` waits for a match after a mark.
 */
export function startProcess(cmd, args, ready, { timeoutMs = 20000, env, logFile } = {}) {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    // The whole log, for scans of it (stderr below keeps only its tail).
    if (logFile) proc.stderr.pipe(createWriteStream(logFile, { flags: 'a' }));
    let out = '';
    let err = '';
    let dropped = 0; // log characters no longer kept
    const log = {
      stderr: () => err.slice(-20000),
      logMark: () => dropped + err.length,
      waitForLog: (re, mark = 0, { timeoutMs: limit = 20000 } = {}) => until(() => {
        const m = err.slice(Math.max(0, mark - dropped)).replace(ANSI, '').match(re);
        return m ?? (proc.exitCode !== null ? Promise.reject(new Error(`${cmd} exited`)) : null);
      }, { timeoutMs: limit, what: `log line ${re}` }),
    };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${cmd} not ready after ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err += d;
      if (err.length > LOG_LIMIT) {
        dropped += err.length - LOG_LIMIT / 2;
        err = err.slice(-LOG_LIMIT / 2);
      }
    });
    proc.stdout.on('data', (d) => {
      out += d;
      // Matched without terminal colours: Vite colours its ready line when FORCE_COLOR is set.
      const m = out.replace(ANSI, '').match(ready);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ proc, match: m, ...log });
      }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code ?? signal}) before ready\nstdout: ${out}\nstderr: ${err}`));
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Starts a server that prints no ready line (nginx, Caddy) and resolves once `probe()` is
 * truthy; rejects when the process exits first or `timeoutMs` passes. Its output is kept for
 * error messages (`output()`). Stop it with stopProcess.
 */
export async function startServer(cmd, args, probe, { timeoutMs = 20000, env } = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  const keep = (d) => {
    out = (out + d).slice(-20000);
  };
  proc.stdout.setEncoding('utf8').on('data', keep);
  proc.stderr.setEncoding('utf8').on('data', keep);
  let failed = null;
  proc.on('error', (e) => {
    failed = e;
  });
  proc.on('exit', (code, signal) => {
    failed ??= new Error(`${cmd} exited (${code ?? signal})\n${out}`);
  });
  const started = { proc, output: () => out };
  try {
    await until(async () => {
      if (failed) throw failed;
      return probe().catch(() => false);
    }, { timeoutMs, what: `${cmd} ready` });
  } catch (e) {
    await stopProcess(started);
    throw new Error(`${e.message}\n${out}`);
  }
  return started;
}

/** Stops a process started by startProcess and waits for it. */
export function stopProcess(started) {
  if (!started) return Promise.resolve();
  const { proc } = started;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    proc.removeAllListeners('exit');
    proc.once('exit', () => res());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
  });
}

/**
 * Waits until `proxy` (started by startProcess) has closed the next session it kept for
 * resume after `mark` because its resume window expired: the browser's session is then gone
 * on the service too. Exact: it follows that session's `lineage` in the proxy's log.
 */
export async function waitForDetachedExpiry(proxy, mark, { timeoutMs = 20000 } = {}) {
  const [, lineage] = await proxy.waitForLog(/browser gone; upstream kept for resume lineage=(\d+)/, mark,
    { timeoutMs });
  await proxy.waitForLog(
    new RegExp(`detached session closed lineage=${lineage} reason="?resume window expired`), mark, { timeoutMs });
}

/**
 * A TCP forwarder `127.0.0.1:<listenPort>` (a free port when 0) -> `target`; `drop()` cuts
 * every connection abruptly.
 */
export async function startForwarder(targetPort, listenPort = 0) {
  const net = await import('node:net');
  const sockets = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  await new Promise((r) => server.listen(listenPort, '127.0.0.1', r));
  return {
    port: server.address().port,
    /** Resets every open connection (the browser sees an abnormal close, code 1006). */
    drop() {
      for (const s of sockets) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
      sockets.clear();
    },
    set refusing(v) {
      refusing = v;
    },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** A "service" that accepts TCP connections and never says a word (a stalled handshake). */
export async function startSilentServer() {
  const net = await import('node:net');
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/**
 * The proxy configuration the tests run with. `origins`: page origins allowed besides the
 * proxy's own (pages served through a forwarder). Login throttles are raised: the tests log
 * the same user in many times a minute; `limits` overrides `[limits]` keys. `extra`: more
 * TOML sections, appended.
 */
export function proxyConfig({ listen, staticRoot, pkgDir, ports, resumeWindowMs = 60000, origins = [], logLevel = 'info',
  trustedProxies = [], scope = 'all', maxPackageBytes = 16 << 20, limits = {}, extra = '' }) {
  const login = {
    login_burst_per_ip: 1000,
    login_per_minute_per_ip: 1000,
    login_burst_per_user: 1000,
    login_per_minute_per_user: 1000,
    ...limits,
  };
  return [
    '[server]',
    `listen = "${listen}"`,
    `allowed_origins = ${JSON.stringify(origins.length ? [`http://${listen}`, ...origins] : [])}`,
    `trusted_proxies = ${JSON.stringify(trustedProxies)}`,
    '',
    '[static]',
    `root = ${JSON.stringify(staticRoot)}`,
    '',
    '[[static.mount]]',
    'prefix = "/pkg/"',
    `dir = ${JSON.stringify(pkgDir)}`,
    '',
    '[policy]',
    'resolve_names = false',
    `scope = "${scope}"`,
    '',
    '[[policy.allow]]',
    'cidr = "127.0.0.1/32"',
    `ports = [${ports.join(', ')}]`,
    '',
    '[limits]',
    ...Object.entries(login).map(([k, v]) => `${k} = ${v}`),
    `max_package_bytes = ${maxPackageBytes}`,
    '',
    '[resume]',
    `window_ms = ${resumeWindowMs}`,
    '',
    '[log]',
    `level = "${logLevel}"`,
    '',
    extra,
  ].join('\n');
}

/**
 * The console's stack as the demo runs it: prl-sim (`simArgs` after its address), prl-proxy
 * serving the console of `web/` and the package, and a forwarder in front of the proxy (the
 * page is loaded through it, so a test can cut the connection; its origin is allowed). The
 * proxy allows the simulator's port and `extraPorts`. Config files go to `work`. Stop it with
 * stopStack.
 */
export async function startConsoleStack(work, { simArgs = [], simEnv, resumeWindowMs, extraPorts = [] }) {
  const simPort = await freePort();
  const sim = await startProcess(SIM, ['--listen', `127.0.0.1:${simPort}`, ...simArgs], /prl-sim listening/,
    { env: simEnv });
  const proxyPort = await freePort();
  const forwarder = await startForwarder(proxyPort);
  writeFileSync(join(work, 'proxy.toml'), proxyConfig({
    listen: `127.0.0.1:${proxyPort}`,
    staticRoot: join(ROOT, 'web'),
    pkgDir: PKG_DIR,
    ports: [simPort, ...extraPorts],
    resumeWindowMs,
    origins: [`http://127.0.0.1:${forwarder.port}`],
  }));
  const proxy = await startProcess(PROXY, ['--config', join(work, 'proxy.toml')], /prl-proxy listening/);
  return { sim, simPort, proxy, forwarder, url: `http://127.0.0.1:${forwarder.port}/` };
}

/** Stops what startConsoleStack started. */
export async function stopStack(stack) {
  await stack?.forwarder?.close();
  await stopProcess(stack?.proxy);
  await stopProcess(stack?.sim);
}

/** A free loopback TCP port (on `host`, 127.0.0.1 by default). */
export async function freePort(host = '127.0.0.1') {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise((r) => server.listen(0, host, r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

const CONTENT_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

/**
 * A stand-in for prl-proxy that accepts the WebSocket upgrade (with the subprotocol the page
 * offers first) and then never says a word: the client's own connect deadline is all that ends
 * a login against it. It serves `www` at `/` and `pkg` at `/pkg/` (no Content-Security-Policy,
 * so the page may connect to it). `requests` counts the text frames (relay requests) received.
 */
export async function startSilentProxy({ www, pkg }) {
  const http = await import('node:http');
  const { createHash } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  const { extname, normalize } = await import('node:path');
  const sockets = new Set();
  const state = { requests: 0 };
  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const [root, rel] = path.startsWith('/pkg/') ? [pkg, path.slice(5)] : [www, path.slice(1) || 'index.html'];
    const file = join(root, normalize(rel));
    if (!file.startsWith(root)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    const protocol = (req.headers['sec-websocket-protocol'] ?? '').split(',')[0].trim();
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${accept}`, ...(protocol ? [`Sec-WebSocket-Protocol: ${protocol}`] : []),
      '', ''].join('\r\n'));
    // The first byte of a frame: FIN + opcode 1 (text). The client's requests fit in one frame.
    socket.on('data', (d) => {
      if ((d[0] & 0x0f) === 1) state.requests += 1;
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    get requests() {
      return state.requests;
    },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Headless Chromium (Debian's) as every browser test runs it. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

/** Opens `url` (the test page) in `browser` and waits until the package is loaded on it. */
export async function openTestPage(browser, url) {
  const p = await browser.newPage();
  p.on('pageerror', (e) => console.log('pageerror:', e.message));
  await p.goto(url);
  await p.waitForFunction(() => window.prlReady === true, null, { timeout: 10000 });
  return p;
}

/**
 * Runs `fn(prl, args)` in `page` (the test page: `window.prl` is the package); errors come back
 * as plain objects (`{ err: { isParallels, isError, kind, code, codeName, message } }`, with
 * `details` and the `cancel*` fields when the error has them), a result as `{ ok }`. The wrapper is composed as
 * source text that Playwright calls through the DevTools protocol (no eval in the page, so the
 * proxy's Content-Security-Policy stays in force). Bounded: 20 s.
 */
export function callInPage(page, fn, args) {
  const source = `async (a) => {
    const f = ${fn.toString()};
    try {
      return { ok: await f(window.prl, a) };
    } catch (e) {
      const err = { isParallels: e instanceof window.prl.ParallelsError, isError: e instanceof Error,
        kind: e.kind, code: e.code, codeName: e.codeName, message: e.message };
      for (const k of ['details', 'cancelConfirmed', 'cancelCode', 'cancelCodeName']) if (k in e) err[k] = e[k];
      return { err };
    }
  }`;
  const call = page.evaluate(`(${source})(${JSON.stringify(args ?? null)})`);
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('page call did not finish in 20 s')), 20000);
  });
  return Promise.race([call, limit]).finally(() => clearTimeout(timer));
}

/** The uuid (`{...}`, as the protocol writes it) of a package's bytes: its first 16 bytes. */
export function packageUuid(bytes) {
  const hex = Buffer.from(bytes.slice(0, 16)).toString('hex');
  return `{${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}}`;
}

/** Resolves once `condition()` (sync or async) is truthy; rejects after `timeoutMs`. */
export async function until(condition, { timeoutMs = 10000, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
