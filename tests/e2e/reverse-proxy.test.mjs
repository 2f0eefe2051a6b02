// prl-proxy behind TLS front ends from Debian's packages (nginx, Caddy), configured exactly as
// docs/reverse-proxy.md says: the nginx and Caddy blocks are read from that file, given this
// run's ports and a throwaway certificate, and run as the current user from a temp dir
// (loopback only, no system service). The front ends listen on [::1] and reach prl-proxy (plain
// ws on 127.0.0.1, `trusted_proxies = ["127.0.0.1/32"]`) from 127.0.0.1, so the browser's
// address (::1) differs from theirs and the proxy's log shows which one it used. Headless
// Chromium checks TLS as usual except for this run's key, which it is told to accept
// (--ignore-certificate-errors-spki-list): a certificate with any other key is still refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  CHROMIUM, E2E_DIR, PKG_DIR, PKG_ENTRY, PROXY, ROOT, SIM, freePort, proxyConfig, requireBuilt,
  startProcess, startServer, stopProcess,
} from './harness.mjs';

const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
const CADDY = process.env.CADDY ?? '/usr/bin/caddy';
const DOC = join(ROOT, 'docs', 'reverse-proxy.md');
const USER = 'alice';
const PASSWORD = 'wonderland';

let work;
let cert; // { certFile, keyFile, pem, spki }
let sim;
let proxy;
let proxyPort;
let nginx;
let caddy;
let browser;
const port = {};

/** A self-signed certificate for localhost, 127.0.0.1 and ::1 (openssl CLI), and its key's hash. */
function makeCert(name) {
  const certFile = join(work, `${name}.crt`);
  const keyFile = join(work, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
    '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
  const pem = readFileSync(certFile, 'utf8');
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { certFile, keyFile, pem, spki: createHash('sha256').update(der).digest('base64') };
}

/** The fenced block of docs/reverse-proxy.md with this info string. */
function docBlock(lang) {
  const blocks = [...readFileSync(DOC, 'utf8').matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))];
  assert.equal(blocks.length, 1, `one \`\`\`${lang} block in ${DOC}`);
  return blocks[0][1];
}

/** `text` with `from` (which must occur exactly once: the docs and this test agree) replaced. */
function replaceOnce(text, from, to) {
  const parts = text.split(from);
  assert.equal(parts.length, 2, `expected ${JSON.stringify(from)} once in the documented config`);
  return parts.join(to);
}

/** An HTTPS request to the front end at `p` on [::1], verifying this run's certificate. */
async function httpsRequest(p, path, headers = {}) {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '::1', port: p, path, headers, ca: cert.pem, servername: 'localhost' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** prl-proxy's /metrics, asked directly from 127.0.0.3: loopback, but not a trusted proxy. */
async function directMetrics() {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxyPort, path: '/metrics', localAddress: '127.0.0.3' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

const ready = (p) => async () => (await httpsRequest(p, '/readyz')).status === 200;

async function startNginx() {
  let site = docBlock('nginx');
  site = replaceOnce(site, 'listen 443 ssl http2;', `listen [::1]:${port.nginx} ssl http2;`);
  site = replaceOnce(site, '    listen [::]:443 ssl http2;\n', '');
  site = replaceOnce(site, '/etc/ssl/certs/prl.example.com.pem', cert.certFile);
  site = replaceOnce(site, '/etc/ssl/private/prl.example.com.key', cert.keyFile);
  site = replaceOnce(site, 'http://127.0.0.1:8080', `http://127.0.0.1:${proxyPort}`);
  const dir = join(work, 'nginx');
  mkdirSync(dir);
  writeFileSync(join(dir, 'prl-proxy.conf'), site);
  // What a system installation's nginx.conf provides, in the temp dir: no daemon, own pid
  // file and temp paths, errors on stderr.
  writeFileSync(join(dir, 'nginx.conf'), [
    'daemon off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    'error_log stderr notice;',
    'events { worker_connections 64; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`),
    `  include ${join(dir, 'prl-proxy.conf')};`,
    '}',
    '',
  ].join('\n'));
  return startServer(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], ready(port.nginx));
}

async function startCaddy() {
  let site = docBlock('caddyfile');
  // Its own port on loopback only (a site address alone listens on every interface).
  site = replaceOnce(site, 'prl.example.com {',
    `https://[::1]:${port.caddy} {\n\tbind ::1\n\ttls ${cert.certFile} ${cert.keyFile}`);
  site = replaceOnce(site, 'reverse_proxy 127.0.0.1:8080', `reverse_proxy 127.0.0.1:${proxyPort}`);
  const dir = join(work, 'caddy');
  mkdirSync(dir);
  // Global options a test run needs: no admin endpoint, no :80 redirect listener, state in the
  // temp dir.
  writeFileSync(join(dir, 'Caddyfile'), [
    '{',
    '\tadmin off',
    '\tauto_https disable_redirects',
    `\tstorage file_system ${join(dir, 'data')}`,
    '}',
    '',
    site,
  ].join('\n'));
  return startServer(CADDY, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'],
    ready(port.caddy), { env: { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') } });
}

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY, NGINX, CADDY]);
  work = mkdtempSync(join(tmpdir(), 'prl-revproxy-'));
  cert = makeCert('front');
  port.sim = await freePort();
  sim = await startProcess(SIM, ['--listen', `127.0.0.1:${port.sim}`, '--user', `${USER}:${PASSWORD}`],
    /prl-sim listening/);
  proxyPort = await freePort();
  port.nginx = await freePort('::1');
  port.caddy = await freePort('::1');
  const file = join(work, 'proxy.toml');
  writeFileSync(file, proxyConfig({
    listen: `127.0.0.1:${proxyPort}`,
    staticRoot: join(E2E_DIR, 'www'),
    pkgDir: PKG_DIR,
    ports: [port.sim],
    origins: [`https://[::1]:${port.nginx}`, `https://[::1]:${port.caddy}`],
    trustedProxies: ['127.0.0.1/32'],
  }));
  proxy = await startProcess(PROXY, ['--config', file], /prl-proxy listening on ws:\/\/\S+/);
  [nginx, caddy] = await Promise.all([startNginx(), startCaddy()]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', `--ignore-certificate-errors-spki-list=${cert.spki}`],
  });
});

after(async () => {
  await browser?.close();
  for (const p of [nginx, caddy, proxy, sim]) await stopProcess(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Log in and off in headless Chromium through the front end at `p`; the session UUID. */
async function loginThrough(p) {
  const page = await browser.newPage();
  try {
    page.on('pageerror', (e) => console.log('pageerror:', e.message));
    await page.goto(`https://[::1]:${p}/`);
    await page.waitForFunction(() => window.prlReady === true, null, { timeout: 10000 });
    const r = await page.evaluate(async (a) => {
      const s = new window.prl.Server({ proxyUrl: a.url });
      try {
        const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
          timeoutMs: 5000 });
        const state = s.state;
        await s.logoff();
        return { session: resp.sessionUuid, state };
      } catch (e) {
        return { err: `${e.kind}: ${e.message}` };
      } finally {
        s.free();
      }
    }, { url: `wss://[::1]:${p}/ws`, port: port.sim, user: USER, password: PASSWORD });
    assert.equal(r.err, undefined, `${r.err}\nproxy log:\n${proxy.stderr()}`);
    assert.equal(r.state, 'connected');
    return r.session;
  } finally {
    await page.close();
  }
}

for (const [name, front] of [['nginx', () => nginx], ['Caddy', () => caddy]]) {
  const p = () => port[name.toLowerCase()];

  test(`${name}: TLS with HSTS in front of plain ws; /readyz answers, /metrics is refused`, async () => {
    const r = await httpsRequest(p(), '/readyz');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ready\n');
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');
    assert.match(r.headers['content-security-policy'] ?? '', /default-src/, 'prl-proxy\'s headers pass through');
    // Through the front end, /metrics is remote even though every hop is on loopback.
    assert.equal((await httpsRequest(p(), '/metrics')).status, 403);
    assert.ok(front().proc.exitCode === null, front().output());
  });

  test(`${name}: Chromium logs in over wss through it; the proxy sees the browser's address`, async () => {
    const mark = proxy.logMark();
    const before = await directMetrics();
    assert.equal(before.status, 200, 'a local scraper outside trusted_proxies gets /metrics');
    const session = await loginThrough(p());
    assert.match(session, /^\{[0-9a-f-]{36}\}$/);
    // The browser is ::1, the front end 127.0.0.1: the address came from X-Forwarded-For.
    await proxy.waitForLog(/upstream connection opened client=::1 via 127\.0\.0\.1 /, mark);
    const count = (t) => Number(t.match(/^prl_proxy_forwarded_total\{outcome="client"\} (\d+)/m)?.[1] ?? 0);
    const after = await directMetrics();
    assert.ok(count(after.body) > count(before.body), after.body);
  });

  test(`${name}: a client's own X-Forwarded-For does not choose its address`, async () => {
    const mark = proxy.logMark();
    // An upgrade from a foreign origin, claiming another address: refused, and logged with
    // the address the front end saw.
    const r = await httpsRequest(p(), '/ws', {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'prl-relay.v1',
      Origin: 'https://evil.example', 'X-Forwarded-For': '203.0.113.66', Forwarded: 'for=203.0.113.67',
    });
    assert.equal(r.status, 403);
    await proxy.waitForLog(/websocket upgrade refused client=::1 via 127\.0\.0\.1 reason="?origin_denied/, mark);
    assert.doesNotMatch(proxy.stderr().slice(-2000), /client=203\.0\.113/);
  });
}

test('the browser still checks TLS: a certificate with another key is refused', async () => {
  const https = await import('node:https');
  const other = makeCert('other');
  const server = https.createServer({ cert: readFileSync(other.certFile), key: readFileSync(other.keyFile) },
    (req, res) => res.end('should not be reached'));
  await new Promise((r) => server.listen(0, '::1', r));
  const page = await browser.newPage();
  try {
    await assert.rejects(page.goto(`https://[::1]:${server.address().port}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await page.close();
    await new Promise((r) => server.close(r));
  }
});
