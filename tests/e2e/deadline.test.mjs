// The client's own connect deadline, against a stand-in proxy that accepts the WebSocket and
// then stays silent (so no proxy timeout can end the login): the caller's `timeoutMs` plus the
// grace, and with `timeoutMs: 0` the 75 s backstop. Time is virtual (Playwright's clock in the
// page), so the 75 s cost nothing and every instant is exact.
// Needs dist/npm (`cargo xtask build-wasm`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  E2E_DIR, PKG_DIR, PKG_ENTRY, launchChromium, requireBuilt, startSilentProxy, until,
} from './harness.mjs';

const GRACE_MS = 1500;
const BACKSTOP_MS = 75000;

let standIn;
let browser;

before(async () => {
  requireBuilt([PKG_ENTRY]);
  standIn = await startSilentProxy({ www: join(E2E_DIR, 'www'), pkg: PKG_DIR });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await standIn?.close();
});

/** A page with a paused virtual clock: no timer fires unless the test advances time. */
async function pausedPage() {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await page.clock.install({ time: new Date('2030-01-01T00:00:00Z') });
  await page.goto(`http://127.0.0.1:${standIn.port}/`);
  await until(() => page.evaluate(() => window.prlReady === true), { what: 'package loaded' });
  await page.clock.pauseAt(new Date('2030-01-01T00:01:00Z'));
  return page;
}

/** Starts a login with `timeoutMs` in the page; its outcome lands in `window.out`. */
async function startLogin(page, timeoutMs) {
  const sent = standIn.requests;
  await page.evaluate(({ url, timeoutMs }) => {
    const s = new window.prl.Server({ proxyUrl: url });
    const t0 = Date.now();
    window.out = { s };
    s.login({ host: '127.0.0.1', user: 'u', password: 'p', timeoutMs }).then(
      () => { window.out.result = 'logged in?'; },
      (e) => { window.out.result = { kind: e.kind, code: e.code, message: e.message, after: Date.now() - t0 }; },
    );
  }, { url: `ws://127.0.0.1:${standIn.port}/ws`, timeoutMs });
  // The open request reached the stand-in: the client now waits for an answer that never comes.
  await until(() => standIn.requests > sent, { what: 'open request sent' });
}

const outcome = (page) => page.evaluate(() => ({ result: window.out.result ?? null, state: window.out.s.state }));

async function expectDeadline(timeoutMs, deadlineMs) {
  const page = await pausedPage();
  try {
    await startLogin(page, timeoutMs);
    await page.clock.runFor(deadlineMs - 1);
    assert.deepEqual(await outcome(page), { result: null, state: 'connecting' },
      `the login ended before ${deadlineMs} ms`);
    await page.clock.runFor(1);
    const { result, state } = await until(async () => {
      const o = await outcome(page);
      return o.result && o;
    }, { what: `login rejected at ${deadlineMs} ms` });
    assert.equal(state, 'disconnected');
    assert.deepEqual({ ...result, message: undefined },
      { kind: 'timeout', code: 0x80000249, message: undefined, after: deadlineMs });
    assert.match(result.message, new RegExp(`connect budget of ${timeoutMs || BACKSTOP_MS} ms expired`));
    await page.evaluate(() => window.out.s.free());
  } finally {
    await page.close();
  }
}

test('timeoutMs: a silent proxy is given up after the budget plus the grace, not before', async () => {
  await expectDeadline(2000, 2000 + GRACE_MS);
});

test('timeoutMs 0: a silent proxy is given up by the 75 s backstop, not before', async () => {
  await expectDeadline(0, BACKSTOP_MS);
});
