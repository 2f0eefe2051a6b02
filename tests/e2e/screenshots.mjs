// Screenshots of the console for the README, taken by `cargo xtask screenshots` from the running
// demo: node screenshots.mjs <console URL> <output directory>.
// login.png (the connect screen), vms.png (the VM list with live states and a start under
// way), error.png (a wrong password), narrow.png (the console on a 375 px phone).
import { join } from 'node:path';
import { launchChromium } from './harness.mjs';

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node screenshots.mjs <console URL> <output directory>');
  process.exit(2);
}
const PASSWORD = 'demo'; // the demo user's (xtask/src/demo.rs DEMO_USERS)
const TIMEOUT = 20000;

async function open(browser, viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('pageerror', (e) => {
    throw e;
  });
  await page.goto(url);
  await page.waitForFunction(() => window.prlDemoReady === true, null, { timeout: TIMEOUT });
  return page;
}

async function connect(page, password) {
  await page.fill('#f-password', password);
  await page.click('#login-button');
}

const shot = (page, name) => page.screenshot({ path: join(out, name) });

const browser = await launchChromium();
try {
  const wide = { width: 1280, height: 800 };
  let page = await open(browser, wide);
  await page.focus('#f-password');
  await shot(page, 'login.png');

  await connect(page, 'not the password');
  await page.waitForSelector('#login-error:not([hidden])', { timeout: TIMEOUT });
  await shot(page, 'error.png');

  await connect(page, PASSWORD);
  await page.waitForSelector('#vm-list tr', { timeout: TIMEOUT });
  // A start under way (the demo's operations take a second) next to the others' live states.
  await page.click('#vm-list tr[data-name="win-build"] .vm-start');
  await page.waitForSelector('#vm-list tr[data-name="win-build"] .job:not([hidden])', { timeout: TIMEOUT });
  await page.mouse.move(0, 0);
  await shot(page, 'vms.png');
  await page.waitForFunction(() => document.querySelector('#vm-list tr[data-name="win-build"] .vm-state')
    .textContent === 'running', null, { timeout: TIMEOUT });
  await page.context().close();

  page = await open(browser, { width: 375, height: 812 });
  await connect(page, PASSWORD);
  await page.waitForSelector('#vm-list tr', { timeout: TIMEOUT });
  await page.mouse.move(0, 0);
  await shot(page, 'narrow.png');
  await page.context().close();
} finally {
  await browser.close();
}
