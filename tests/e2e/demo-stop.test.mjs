// `cargo xtask demo` stops prl-sim and prl-proxy with it when it is terminated: a `kill` (SIGTERM),
// a closed terminal (SIGHUP), an interrupt sent to it alone (SIGINT), not only Ctrl-C on a terminal
// (which reaches the whole process group). Run as a user runs it, `cargo xtask demo`, with
// `--no-build` (the release binaries and dist/npm are built by the steps before).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PKG_ENTRY, PROXY, SIM, requireBuilt, startProcess, until } from './harness.mjs';

/** Whether process `pid` exists (a zombie counts: its parent has not reaped it). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if (e.code === 'ESRCH') return false;
    throw e;
  }
}

for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT']) {
  test(`${signal} to the demo recipe stops prl-sim and prl-proxy too`, async () => {
    requireBuilt([SIM, PROXY, PKG_ENTRY]);
    const demo = await startProcess('cargo', ['xtask', 'demo', '--no-build'],
      /simulator: .* \(pid (\d+)\)\n\s*proxy: .* \(pid (\d+)\)/, { timeoutMs: 180000, env: { NO_COLOR: '1' } });
    const { proc } = demo;
    const children = demo.match.slice(1, 3).map(Number);
    const exited = new Promise((resolve) => {
      proc.removeAllListeners('exit');
      proc.once('exit', (code, sig) => resolve({ code, signal: sig }));
    });
    try {
      assert.ok(children.every(alive), `${children} run`);
      let out = '';
      proc.stdout.on('data', (d) => { out += d; });
      // `cargo run` replaces itself with the recipe (exec): this is the xtask process.
      proc.kill(signal);
      assert.deepEqual(await exited, { code: 0, signal: null }, demo.stderr());
      assert.match(out, new RegExp(`prl-web demo stopped \\(${signal}\\)`));
      // Reaped by the recipe before it exited: gone, not even zombies.
      await until(() => !children.some(alive), { timeoutMs: 2000, what: `${children} gone` });
    } finally {
      for (const pid of [proc.pid, ...children]) {
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
}
