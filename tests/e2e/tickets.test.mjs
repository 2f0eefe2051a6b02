// Tickets any backend can mint (docs/tickets.md): JWTs signed here with `node:crypto` alone,
// HS256 with a shared secret and EdDSA (Ed25519) where the proxy holds only the public key,
// presented by @prl-web/client in headless Chromium to a real prl-proxy in front of prl-sim.
// Accepted tickets log in; tampered, expired, wrong-origin, wrong-mode and replayed ones are
// refused with the documented reason (the browser's `ticket_invalid` message starts with it,
// and prl_proxy_ticket_rejections_total counts it). Each refused ticket is valid in every other
// respect, so a refusal test fails if its check were removed. The documented test vectors are
// reproduced byte for byte with `node:crypto` too.
// Needs dist/npm (`cargo xtask build-wasm`) and release builds of prl-sim and prl-proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  createHmac, createPrivateKey, generateKeyPairSync, randomBytes, sign,
} from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  E2E_DIR, PKG_DIR, PKG_ENTRY, PROXY, ROOT, SIM, callInPage, freePort, launchChromium, openTestPage,
  proxyConfig, requireBuilt, startProcess, stopProcess,
} from './harness.mjs';

const USER = 'alice';
const PASSWORD = 'wonderland';
const ED_KID = 'ed-e2e';
const MAX_TTL = 60;

let work;
let sim;
let proxy;
let proxyPort;
let browser;
let page;
let hsSecret;   // the HS256 key (tickets.key_file: no kid)
let edPrivate;  // the Ed25519 private key; the proxy gets the public key only
let edPublicPem;

// --- minting with node:crypto alone ---------------------------------------------------------

const b64u = (s) => Buffer.from(s).toString('base64url');

/** A compact JWS of exactly these header and payload strings. */
function jws(header, payload, key) {
  const input = `${b64u(header)}.${b64u(payload)}`;
  const signature = key.alg === 'HS256'
    ? createHmac('sha256', key.secret).update(input).digest()
    : sign(null, Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

const hs256 = () => ({ alg: 'HS256', secret: hsSecret });
const eddsa = () => ({ alg: 'EdDSA', kid: ED_KID, privateKey: edPrivate });

/** A ticket for a remote login to the simulator from the proxy's own page, valid 30 s. */
function claims(over = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: 'user-42',
    aud: 'prl-proxy',
    iat: now,
    exp: now + 30,
    jti: randomBytes(16).toString('base64url'),
    mode: 'remote',
    target: `127.0.0.1:${sim.port}`,
    origin: `http://127.0.0.1:${proxyPort}`,
    ...over,
  };
}

function mint(key, c = claims()) {
  const header = key.kid ? { alg: key.alg, typ: 'JWT', kid: key.kid } : { alg: key.alg, typ: 'JWT' };
  return jws(JSON.stringify(header), JSON.stringify(c), key);
}

// --- the proxy and the page -----------------------------------------------------------------

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY]);
  work = mkdtempSync(join(tmpdir(), 'prl-e2e-tickets-'));
  hsSecret = randomBytes(32);
  writeFileSync(join(work, 'ticket.key'), `${hsSecret.toString('base64url')}\n`, { mode: 0o600 });
  const pair = generateKeyPairSync('ed25519');
  edPrivate = pair.privateKey;
  edPublicPem = pair.publicKey.export({ type: 'spki', format: 'pem' });
  writeFileSync(join(work, 'ed.pub.pem'), edPublicPem);

  const simPort = await freePort();
  sim = {
    ...await startProcess(SIM, ['--listen', `127.0.0.1:${simPort}`, '--user', `${USER}:${PASSWORD}`,
      '--product-version', 'e2e'], /prl-sim listening on tcp:\/\/\S+/),
    port: simPort,
  };
  proxyPort = await freePort();
  const config = join(work, 'proxy.toml');
  writeFileSync(config, [
    proxyConfig({
      listen: `127.0.0.1:${proxyPort}`,
      staticRoot: join(E2E_DIR, 'www'),
      pkgDir: PKG_DIR,
      ports: [simPort],
    }),
    '[tickets]',
    'required = true',
    `max_ttl_secs = ${MAX_TTL}`,
    'key_file = "ticket.key"',
    '',
    '[[tickets.keys]]',
    `kid = "${ED_KID}"`,
    'alg = "EdDSA"',
    'file = "ed.pub.pem"',
    '',
  ].join('\n'));
  proxy = await startProcess(PROXY, ['--config', config], /prl-proxy listening on ws:\/\/\S+/);
  browser = await launchChromium();
  page = await openTestPage(browser, `http://127.0.0.1:${proxyPort}/`);
});

after(async () => {
  await browser?.close();
  for (const p of [proxy, sim]) await stopProcess(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Logs in to the simulator through the proxy with `ticket` (and logs off again):
 * `{ ok: sessionUuid }`, or `{ err }` with the ParallelsError as a plain object.
 */
function loginWith(ticket) {
  return callInPage(page, async (prl, a) => {
    const s = new prl.Server({ proxyUrl: a.url, ticket: a.ticket });
    try {
      const resp = await s.login({ host: '127.0.0.1', port: a.port, user: a.user, password: a.password,
        timeoutMs: 5000 });
      await s.logoff();
      return resp.sessionUuid;
    } finally {
      s.free();
    }
  }, { url: `ws://127.0.0.1:${proxyPort}/ws`, port: sim.port, user: USER, password: PASSWORD, ticket });
}

/** prl_proxy_ticket_rejections_total{reason} from the proxy's /metrics (loopback). */
async function refusals(reason) {
  const text = await (await fetch(`http://127.0.0.1:${proxyPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`prl_proxy_ticket_rejections_total{reason="${reason}"} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** `ticket` is refused with this documented reason, and counted under it. */
async function assertRefused(ticket, reason) {
  const before = await refusals(reason);
  const r = await loginWith(ticket);
  assert.equal(r.err?.kind, 'ticket_invalid', `${reason}: ${JSON.stringify(r)}\n${proxy.stderr()}`);
  assert.equal(r.err.isParallels, true);
  assert.match(r.err.message, new RegExp(`^login failed: ticket_invalid: ${reason}: `), JSON.stringify(r));
  assert.ok(!r.err.message.includes(ticket), 'the ticket is not echoed');
  assert.equal(await refusals(reason), before + 1, reason);
}

async function assertAccepted(ticket) {
  const r = await loginWith(ticket);
  assert.equal(r.err, undefined, `${JSON.stringify(r.err)}\n${proxy.stderr()}`);
  assert.match(r.ok, /^\{[0-9a-f-]{36}\}$/);
}

// --- tests ----------------------------------------------------------------------------------

test('the documented test vectors come out of node:crypto byte for byte', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'tickets.md'), 'utf8');
  const vectors = [...doc.matchAll(/```text\n(vector:[\s\S]*?)```/g)].map((m) => Object.fromEntries(
    m[1].trim().split('\n').map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    }),
  ));
  assert.deepEqual(vectors.map((v) => v.alg), ['HS256', 'EdDSA', 'HS256', 'EdDSA']);
  for (const v of vectors) {
    const key = v.alg === 'HS256'
      ? { alg: 'HS256', secret: Buffer.from(v.secret, 'base64url') }
      : { alg: 'EdDSA', privateKey: createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: v.seed, x: v.x }, format: 'jwk' }) };
    assert.equal(jws(v.header, v.payload, key), v.token, v.vector);
  }
});

test('an HS256 ticket minted with node:crypto logs in, once', async () => {
  const ticket = mint(hs256());
  await assertAccepted(ticket);
  await assertRefused(ticket, 'replayed');
});

test('an EdDSA ticket minted with node:crypto logs in (the proxy holds the public key only), once', async () => {
  assert.match(readFileSync(join(work, 'ed.pub.pem'), 'utf8'), /BEGIN PUBLIC KEY/);
  const ticket = mint(eddsa(), claims({ aud: ['https://backend.example', 'prl-proxy'], scope: 'read' }));
  await assertAccepted(ticket);
  await assertRefused(ticket, 'replayed');
});

test('tampered: another signed payload under the same signature is bad_signature', async () => {
  for (const key of [hs256(), eddsa()]) {
    const c = claims({ sub: 'user-1' });
    const [header, , signature] = mint(key, c).split('.');
    // A payload as valid as the signed one, for another user.
    const tampered = `${header}.${b64u(JSON.stringify({ ...c, sub: 'admin' }))}.${signature}`;
    await assertRefused(tampered, 'bad_signature');
  }
  // Signed by a key the proxy does not hold, under the proxy's kid.
  const stranger = generateKeyPairSync('ed25519').privateKey;
  await assertRefused(mint({ ...eddsa(), privateKey: stranger }), 'bad_signature');
  // HS256 keyed with the EdDSA key's public key bytes, under its kid (algorithm confusion).
  const confused = { alg: 'HS256', kid: ED_KID, secret: Buffer.from(edPublicPem) };
  await assertRefused(mint(confused), 'alg_not_allowed');
});

test('expired: exp in the past is refused', async () => {
  const now = Math.floor(Date.now() / 1000);
  for (const key of [hs256(), eddsa()]) {
    await assertRefused(mint(key, claims({ iat: now - 40, exp: now - 1 })), 'expired');
    // The second it expires, already.
    await assertRefused(mint(key, claims({ iat: now - 30, exp: now })), 'expired');
  }
});

test('wrong origin: a ticket for another page origin is origin_mismatch', async () => {
  for (const key of [hs256(), eddsa()]) {
    await assertRefused(mint(key, claims({ origin: 'https://evil.example' })), 'origin_mismatch');
    await assertRefused(mint(key, claims({ origin: `http://localhost:${proxyPort}` })), 'origin_mismatch');
  }
});

test('wrong mode: a local-mode ticket never opens a remote target', async () => {
  for (const key of [hs256(), eddsa()]) {
    const local = claims({ mode: 'local' });
    delete local.target;
    await assertRefused(mint(key, local), 'mode_mismatch');
  }
});

test('a ticket refused before its replay check is not spent', async () => {
  const c = claims();
  // The same jti, signed for another origin first: refused, not consumed.
  await assertRefused(mint(hs256(), { ...c, origin: 'https://evil.example' }), 'origin_mismatch');
  await assertAccepted(mint(hs256(), c));
  await assertRefused(mint(eddsa(), c), 'replayed');
});
