// Shared paths and process helpers for the end-to-end tests.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(E2E_DIR, '..', '..');
export const PKG_DIR = join(ROOT, 'dist', 'npm');
export const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? resolve(ROOT, process.env.CARGO_TARGET_DIR)
  : join(ROOT, 'target');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * Starts `cmd args` and resolves once a stdout line matches `ready` (with the match), or rejects
 * when the process exits first or `timeoutMs` passes. stderr is kept for error messages.
 */
export function startProcess(cmd, args, ready, { timeoutMs = 20000, env, logFile } = {}) {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    // The whole log, for scans of it (stderr below keeps only its tail).
    if (logFile) proc.stderr.pipe(createWriteStream(logFile, { flags: 'a' }));
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${cmd} not ready after ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err = (err + d).slice(-20000);
    });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ proc, match: m, stderr: () => err });
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
 * the same user in many times a minute.
 */
export function proxyConfig({ listen, staticRoot, pkgDir, ports, resumeWindowMs = 60000, origins = [], logLevel = 'info' }) {
  return [
    '[server]',
    `listen = "${listen}"`,
    `allowed_origins = ${JSON.stringify(origins.length ? [`http://${listen}`, ...origins] : [])}`,
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
    '',
    '[[policy.allow]]',
    'cidr = "127.0.0.1/32"',
    `ports = [${ports.join(', ')}]`,
    '',
    '[limits]',
    'login_burst_per_ip = 1000',
    'login_per_minute_per_ip = 1000',
    'login_burst_per_user = 1000',
    'login_per_minute_per_user = 1000',
    '',
    '[resume]',
    `window_ms = ${resumeWindowMs}`,
    '',
    '[log]',
    `level = "${logLevel}"`,
    '',
  ].join('\n');
}

/** A free loopback TCP port. */
export async function freePort() {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}
