// The npm package as a user gets it: `npm pack` of dist/npm (built by `cargo xtask build-wasm`),
// installed into a fresh folder, imported by Node, and type-checked with tsc.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PKG_DIR, E2E_DIR } from './harness.mjs';

let work;
let app;
let tarball;

before(() => {
  assert.ok(
    existsSync(join(PKG_DIR, 'package.json')),
    `no package in ${PKG_DIR}: run \`cargo xtask build-wasm\` first`,
  );
  work = mkdtempSync(join(tmpdir(), 'prl-client-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: PKG_DIR,
    encoding: 'utf8',
  });
  const [info] = JSON.parse(out);
  tarball = join(work, info.filename);
  app = join(work, 'app');
  cpSync(join(E2E_DIR, 'ts'), app, { recursive: true });
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }),
  );
  // The package has no dependencies, so this needs no registry.
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], {
    cwd: app,
    stdio: 'pipe',
  });
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball holds exactly the package files', () => {
  const out = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
  const files = out.trim().split('\n').map((f) => f.replace(/^package\//, '')).sort();
  const snippet = files.filter((f) => f.startsWith('snippets/'));
  assert.deepEqual(
    files.filter((f) => !f.startsWith('snippets/')),
    [
      'CHANGELOG.md',
      'LICENSE-APACHE',
      'LICENSE-MIT',
      'README.md',
      'index.d.ts',
      'index.js',
      'init.js',
      'package.json',
      'prl_client_wasm.js',
      'prl_client_wasm_bg.wasm',
    ],
  );
  assert.equal(snippet.length, 1);
  assert.match(snippet[0], /^snippets\/[^/]+\/npm\/parallels-error\.js$/);
});

test('package.json: ESM exports with types first, files, sideEffects, engines, no runtime deps', async () => {
  const { default: pkg } = await import(join(app, 'node_modules/@prl-web/client/package.json'), {
    with: { type: 'json' },
  });
  assert.equal(pkg.name, '@prl-web/client');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(Object.keys(pkg.exports['.']), ['types', 'default']);
  assert.equal(pkg.sideEffects, false);
  assert.equal(pkg.dependencies, undefined);
  assert.ok(Array.isArray(pkg.files));
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'CHANGELOG.md']) assert.ok(pkg.files.includes(f), f);
  assert.equal(pkg.license, 'MIT OR Apache-2.0');
  assert.match(pkg.engines?.node ?? '', /^>=\d+/);
  // No placeholder home: these come once the project has a real public one.
  assert.equal(pkg.repository, undefined);
  assert.equal(pkg.homepage, undefined);
  assert.match(pkg.version, /^\d+\.\d+\.\d+/);
});

test('the installed package imports and runs in Node', () => {
  const script = `
    import { readFileSync } from 'node:fs';
    import { initSync, Server, SecurityLevel, ParallelsError, errorKinds } from '@prl-web/client';
    const wasm = readFileSync(new URL(import.meta.resolve('@prl-web/client/prl_client_wasm_bg.wasm')));
    initSync({ module: wasm });
    const s = new Server({ proxyUrl: 'ws://127.0.0.1:9/ws' });
    let err;
    try { new Server({ proxyUrl: 'ftp://x' }); } catch (e) { err = e; }
    console.log(JSON.stringify({
      state: s.state, session: s.sessionId ?? null, high: SecurityLevel.High,
      isError: err instanceof Error, isParallels: err instanceof ParallelsError,
      kind: err.kind, code: err.code, codeName: err.codeName, kinds: errorKinds().length,
    }));
    s.free();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: app,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    state: 'disconnected',
    session: null,
    high: 2,
    isError: true,
    isParallels: true,
    kind: 'invalid_argument',
    code: 0x80000003,
    codeName: 'PRL_ERR_INVALID_ARG',
    kinds: 24,
  });
});

const tsc = join(E2E_DIR, 'node_modules', 'typescript', 'bin', 'tsc');

test('the TypeScript example compiles against index.d.ts (tsc --noEmit)', () => {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], {
    cwd: app,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('a wrong call does not compile (the declarations are really checked)', () => {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json', '--listFilesOnly'], {
    cwd: app,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.ok(
    r.stdout.includes('node_modules/@prl-web/client/index.d.ts'),
    'tsc did not read the package declarations',
  );
  const wrong = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--module', 'ES2022', '--moduleResolution', 'bundler',
      '--target', 'ES2022', '--lib', 'ES2022,DOM', 'wrong.ts'],
    { cwd: app, encoding: 'utf8' },
  );
  assert.notEqual(wrong.status, 0, 'wrong.ts compiled');
  assert.match(wrong.stdout, /wrong\.ts\(5,/);
  assert.ok(readdirSync(app).includes('wrong.ts'));
});
