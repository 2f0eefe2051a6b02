// Host and VM operations of @prl-web/client in headless Chromium, through a real prl-proxy to a
// real prl-sim serving an inventory of its own (issue 8): host info, the VM list, VM states,
// power operations with their state events, the service's refusals with their real codes and
// Details, an aborted start (the service refuses the cancel of a power operation and the start
// completes), a `read` command scope refusing a power operation while the session goes on, and
// the request() escape hatch. Needs dist/npm and release builds of prl-sim and prl-proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  E2E_DIR, PKG_DIR, PKG_ENTRY, PROXY, SIM, callInPage, freePort, launchChromium, openTestPage,
  packageUuid, proxyConfig, requireBuilt, startProcess, stopProcess,
} from './harness.mjs';

const USER = 'alice';
const PASSWORD = 'wonderland';
const START_MS = 400; // a start takes this long on the simulator: an abort lands while it runs

// VMs by name: each test uses its own, so the order of the tests does not matter.
const INVENTORY = `
[[vm]]
name = "e2e-running"
state = "running"
os = "ubuntu"
cpus = 2
ram_mb = 2048
description = "front end"

[[vm]]
name = "e2e-cycle"
state = "stopped"
os = "rhel9"
cpus = 4
ram_mb = 8192

[[vm]]
name = "e2e-abort"
state = "stopped"

[[vm]]
name = "e2e-scope"
state = "stopped"

[[vm]]
name = "e2e-private"
owner = "mallory"
others = "none"

[[vm]]
name = "e2e-golden"
template = true
`;

const RUNNING = 0x30000004;
const STOPPED = 0x30000001;
const UNKNOWN_VM = '{00000000-0000-4000-8000-000000000001}';

let work;
let sim;
let proxy;     // scope all
let proxyRead; // [policy] scope = "read"
let browser;
let page;      // served by `proxy`
let readPage;  // served by `proxyRead`
let url;
let readUrl;
let metricsUrl;

async function startProxy(name, { scope = 'all', simPort = sim.port, maxPackageBytes } = {}) {
  const port = await freePort();
  const file = join(work, `${name}.toml`);
  writeFileSync(file, proxyConfig({
    listen: `127.0.0.1:${port}`,
    staticRoot: join(E2E_DIR, 'www'),
    pkgDir: PKG_DIR,
    ports: [simPort],
    scope,
    maxPackageBytes,
  }));
  const started = await startProcess(PROXY, ['--config', file], /prl-proxy listening on ws:\/\/\S+/);
  return { ...started, port };
}

before(async () => {
  requireBuilt([SIM, PROXY, PKG_ENTRY]);
  work = mkdtempSync(join(tmpdir(), 'prl-e2e-vm-'));
  writeFileSync(join(work, 'vms.toml'), INVENTORY);
  const simPort = await freePort();
  sim = {
    ...await startProcess(SIM, ['--listen', `127.0.0.1:${simPort}`, '--user', `${USER}:${PASSWORD}`,
      '--product-version', 'e2e', '--vms', join(work, 'vms.toml'), '--transition-ms', `start=${START_MS}`],
    /prl-sim listening on tcp:\/\/\S+/),
    port: simPort,
  };
  [proxy, proxyRead] = await Promise.all([
    startProxy('proxy', { scope: 'all' }),
    startProxy('read', { scope: 'read' }),
  ]);
  url = `ws://127.0.0.1:${proxy.port}/ws`;
  readUrl = `ws://127.0.0.1:${proxyRead.port}/ws`;
  metricsUrl = `http://127.0.0.1:${proxyRead.port}/metrics`;
  browser = await launchChromium();
  page = await openTestPage(browser, `http://127.0.0.1:${proxy.port}/`);
  readPage = await openTestPage(browser, `http://127.0.0.1:${proxyRead.port}/`);
});

after(async () => {
  await browser?.close();
  for (const p of [proxy, proxyRead, sim]) await stopProcess(p);
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The login arguments of the page's `logIn`. */
const login = (proxyUrl = url) => ({ url: proxyUrl, port: sim.port, user: USER, password: PASSWORD });

test('getHostInfo: the host as the SDK reads it, with what the login told', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    try {
      return await s.getHostInfo();
    } finally {
      s.free();
    }
  }, { login: login() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const h = r.ok;
  assert.ok(Number.isInteger(h.cpuCount) && h.cpuCount > 0, `cpuCount ${h.cpuCount}`);
  assert.ok(h.cpuModel.length > 0);
  assert.ok(h.ramMb > 0);
  assert.equal(h.osType, 1); // PHO_LIN
  assert.equal(typeof h.osVersion.major, 'number');
  assert.ok(h.osName.length > 0);
  // A Linux service leaves the host name empty (as the real one does); `host` is the login's.
  assert.equal(h.hostName, '');
  assert.equal(h.host, '127.0.0.1');
  assert.equal(h.productVersion, 'e2e');
  assert.match(h.xml, /^<VirtuozzoHostInfo/);
});

test('getVmList: every VM typed with its state, the documents on request, an entry the user may not read', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    try {
      return { plain: await s.getVmList(), withXml: await s.getVmList({ xml: true }) };
    } finally {
      s.free();
    }
  }, { login: login() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { plain, withXml } = r.ok;
  const names = plain.map((v) => v.name);
  // Templates first, then the VMs in inventory order (CDspVmDirHelper's chain).
  assert.deepEqual(names, ['e2e-golden', 'e2e-running', 'e2e-cycle', 'e2e-abort', 'e2e-scope', 'e2e-private']);
  for (const v of plain) {
    assert.match(v.uuid, /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/);
    assert.equal(v.xml, undefined, 'no documents unless asked for');
    assert.equal(v.error, undefined);
  }
  const running = plain.find((v) => v.name === 'e2e-running');
  assert.deepEqual(
    { ...running, uuid: undefined, home: undefined },
    {
      uuid: undefined, name: 'e2e-running', state: 'running', stateCode: RUNNING, osType: 9,
      osVersion: 0x090a, cpuCount: 2, ramMb: 2048, description: 'front end', home: undefined,
      isTemplate: false, validRc: 0, vmType: 0, hostName: '',
    },
  );
  assert.match(running.home, /config\.pvs$/);
  const golden = plain.find((v) => v.name === 'e2e-golden');
  assert.equal(golden.isTemplate, true);
  assert.equal(golden.state, 'stopped');
  // Listed, but without a state: PRL_ERR_ACCESS_TO_VM_DENIED in ValidRc.
  const hidden = plain.find((v) => v.name === 'e2e-private');
  assert.equal(hidden.validRc, 0x80000239);
  assert.equal(hidden.state, 'unknown');
  assert.equal(hidden.stateCode, 0);
  assert.deepEqual(withXml.map((v) => v.name), names);
  for (const v of withXml) assert.match(v.xml, /^<VirtuozzoVirtualMachine[^>]*>/);
  assert.ok(withXml[1].xml.includes(`<VmUuid>${withXml[1].uuid}</VmUuid>`));
});

test('startVm resolves once the VM runs, vmstatechange announces it; stopVm stops it', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    try {
      const events = [];
      s.addEventListener('vmstatechange', (e) => events.push(e.detail));
      const vm = (await s.getVmList()).find((v) => v.name === 'e2e-cycle');
      const before = await s.getVmState(vm.uuid);
      await s.startVm(vm.uuid, { onProgress: () => events.push('progress') });
      await window.until(() => events.some((d) => d.uuid === vm.uuid && d.state === 'running'), 'running');
      const running = await s.getVmState(vm.uuid);
      await s.stopVm(vm.uuid, { graceful: true });
      await window.until(() => events.some((d) => d.uuid === vm.uuid && d.state === 'stopped'), 'stopped');
      const stopped = await s.getVmState(vm.uuid);
      return { uuid: vm.uuid, before, running, stopped, events };
    } finally {
      s.free();
    }
  }, { login: login() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const { uuid, before: was, running, stopped, events } = r.ok;
  assert.equal(was.state, 'stopped');
  assert.equal(was.stateCode, STOPPED);
  assert.equal(running.state, 'running');
  assert.equal(running.uuid, uuid);
  assert.equal(running.isInvalid, false);
  assert.equal(running.validRc, 0);
  assert.match(running.xml, /vminfo_vm_state/);
  assert.equal(stopped.state, 'stopped');
  // One event per transition, nothing else (a libvirt host sends no transient states and no
  // progress for power operations).
  assert.deepEqual(events, [
    { uuid, state: 'running', stateCode: RUNNING },
    { uuid, state: 'stopped', stateCode: STOPPED },
  ]);
});

test('refused transitions reject with the service code and Details; its duplicate replies are dropped', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    const replies = []; // service packages no job waited for (a late reply would land here)
    s.addEventListener('event', (e) => { if (e.detail.packageType === 5001) replies.push(e.detail); });
    const caught = async (p) => p.then(() => null, (e) => ({
      isParallels: e instanceof prl.ParallelsError, kind: e.kind, code: e.code, codeName: e.codeName,
      details: e.details, message: e.message,
    }));
    try {
      const list = await s.getVmList();
      const byName = (n) => list.find((v) => v.name === n).uuid;
      const out = {
        startRunning: await caught(s.startVm(byName('e2e-running'))),
        pauseStopped: await caught(s.pauseVm(byName('e2e-scope'))),
        killStopped: await caught(s.stopVm(byName('e2e-scope'), { graceful: false })),
        startUnknown: await caught(s.startVm(a.unknown)),
        startTemplate: await caught(s.startVm(byName('e2e-golden'))),
      };
      // Answered after every duplicate the service sent before it.
      out.after = await s.getVmState(byName('e2e-scope'));
      out.replies = replies;
      out.state = s.state;
      return out;
    } finally {
      s.free();
    }
  }, { login: login(), unknown: UNKNOWN_VM });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const o = r.ok;
  const expect = (got, code, codeName, details) => {
    assert.equal(got?.isParallels, true, JSON.stringify(got));
    assert.equal(got.kind, 'service');
    assert.equal(got.code, code, got.message);
    assert.equal(got.codeName, codeName);
    if (details === null) assert.equal(got.details, undefined, got.message); // an empty Details
    else if (details) assert.match(got.details, details);
  };
  // One reply each (immediate refusals): the Details say why.
  expect(o.startRunning, 0x80000009, 'PRL_ERR_FAILURE', /^VM is already running$/);
  assert.match(o.startRunning.message, /^start vm failed: service returned PRL_ERR_FAILURE \(0x80000009\): "VM is already running"$/);
  expect(o.pauseStopped, 0x80000009, 'PRL_ERR_FAILURE', /non-running state is impossible/);
  // Forked failures: the service answers twice (the error, then PRL_ERR_FAILURE); the first counts.
  expect(o.killStopped, 0x80000516, 'PRL_ERR_INVALID_ACTION_REQUESTED', /domain is not running/);
  expect(o.startUnknown, 0x80000105, 'PRL_ERR_VM_UUID_NOT_FOUND', null);
  expect(o.startTemplate, 0x80000368, 'PRL_ERR_CANT_TO_START_VM_TEMPLATE');
  assert.equal(o.after.state, 'stopped');
  assert.deepEqual(o.replies, [], 'a duplicate reply reached the application');
  assert.equal(o.state, 'connected');
});

test('an aborted start: the SDK cancel (2053) goes out, the service refuses it, the VM starts anyway', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    const sent = window.recordSent();
    try {
      const events = [];
      s.addEventListener('vmstatechange', (e) => events.push(e.detail));
      const vm = (await s.getVmList()).find((v) => v.name === 'e2e-abort');
      const ac = new AbortController();
      const start = s.startVm(vm.uuid, { signal: ac.signal });
      await window.until(() => sent.some((p) => p.type === 1001), 'the start request');
      ac.abort();
      const err = await start.then(() => null, (e) => ({
        isParallels: e instanceof prl.ParallelsError, kind: e.kind, code: e.code, codeName: e.codeName,
        cancelConfirmed: e.cancelConfirmed, cancelCode: e.cancelCode, cancelCodeName: e.cancelCodeName,
        message: e.message,
      }));
      const stateAtReject = (await s.getVmState(vm.uuid)).state;
      // The service goes on with the start: the event tells the truth.
      await window.until(() => events.some((d) => d.uuid === vm.uuid && d.state === 'running'), 'running', 5000);
      const after = await s.getVmState(vm.uuid);
      return { err, stateAtReject, after, events, uuid: vm.uuid, sent: [...sent], state: s.state };
    } finally {
      sent.stop();
      s.free();
    }
  }, { login: login() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const o = r.ok;
  assert.deepEqual({ ...o.err, message: undefined }, {
    isParallels: true, kind: 'canceled', code: 0x80000275, codeName: 'PRL_ERR_OPERATION_WAS_CANCELED',
    cancelConfirmed: false, cancelCode: 0x80000092, cancelCodeName: 'PRL_ERR_TASK_NOT_FOUND', message: undefined,
  });
  assert.match(o.err.message, /the operation may still complete/);
  // The promise settled while the start was still running on the service.
  assert.equal(o.stateAtReject, 'stopped');
  assert.equal(o.after.state, 'running');
  assert.deepEqual(o.events, [{ uuid: o.uuid, state: 'running', stateCode: RUNNING }]);
  assert.equal(o.state, 'connected');
  // The cancel names the start's request (its job uuid), from the same connection.
  const types = o.sent.map((p) => p.type);
  const start = o.sent.find((p) => p.type === 1001);
  const cancel = o.sent.find((p) => p.type === 2053);
  assert.ok(cancel && types.indexOf(2053) > types.indexOf(1001), `sent ${types}`);
  assert.ok(Buffer.from(cancel.bytes).toString('latin1').includes(packageUuid(start.bytes)),
    'the cancel does not name the start request');
  assert.deepEqual(cancel.bytes.slice(32, 48), start.bytes.slice(32, 48));
});

test('a read scope refuses startVm with command_refused; the session goes on', async () => {
  const metric = async () => {
    const text = await (await fetch(metricsUrl)).text();
    const m = text.match(/prl_proxy_rejections_total\{reason="command_refused"\} (\d+)/);
    return m ? Number(m[1]) : 0;
  };
  const counted = await metric();
  const r = await callInPage(readPage, async (prl, a) => {
    const s = await window.logIn(a.login);
    try {
      const vm = (await s.getVmList()).find((v) => v.name === 'e2e-scope');
      const err = await s.startVm(vm.uuid).then(() => null, (e) => ({
        isParallels: e instanceof prl.ParallelsError, kind: e.kind, code: e.code, codeName: e.codeName,
        message: e.message,
      }));
      const state = s.state;
      const after = await s.getVmState(vm.uuid);
      const host = await s.getHostInfo();
      await s.logoff();
      return { err, state, after: after.state, host: host.productVersion, end: s.state };
    } finally {
      s.free();
    }
  }, { login: login(readUrl) });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const o = r.ok;
  assert.deepEqual({ ...o.err, message: undefined }, {
    isParallels: true, kind: 'command_refused', code: 0x80000005, codeName: 'PRL_ERR_ACCESS_DENIED', message: undefined,
  });
  assert.match(o.err.message, /^start vm failed: command_refused: request \{[0-9a-f-]{36}\} \(command 1001\) not forwarded/);
  // Still logged in: reads work, the VM never started, the logoff is normal.
  assert.equal(o.state, 'connected');
  assert.equal(o.after, 'stopped');
  assert.equal(o.host, 'e2e');
  assert.equal(o.end, 'disconnected');
  assert.equal(await metric(), counted + 1);
});

test('request(): any command the core can describe, resolved with the reply', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const s = await window.logIn(a.login);
    const caught = async (p) => p.then(() => null, (e) => ({ kind: e.kind, code: e.code, codeName: e.codeName }));
    try {
      const vm = (await s.getVmList()).find((v) => v.name === 'e2e-running');
      const uuidParam = [{ name: 'basic_vm_cmd_vm_uuid', type: 'string', value: vm.uuid }];
      return {
        info: await s.request(2062, uuidParam),
        list: await s.request(2029, [], { flags: 16384 /* PGVLF_GET_STATE_INFO */ }),
        resume: await caught(s.request(1009, uuidParam)),
        login: await caught(s.request(2039, [])),
        badType: await caught(s.request(2062, [{ name: 'x', type: 'float', value: 1 }])),
        tooBig: await caught(s.request(2062, [{ name: 'x', type: 'unsignedInt', value: 2 ** 32 }])),
        count: (await s.getVmList()).length,
      };
    } finally {
      s.free();
    }
  }, { login: login() });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  const o = r.ok;
  assert.equal(o.info.code, 0);
  assert.equal(o.info.codeName, 'PRL_ERR_SUCCESS');
  assert.equal(o.info.opcode, 2062);
  assert.deepEqual(o.info.standardParams, []);
  assert.equal(o.info.error, undefined);
  const names = o.info.params.map((p) => p.name);
  assert.deepEqual(names, ['proto_force_questions_sign', 'proto_command_flags', 'proto_request_op_code',
    'ws_response_cmd_vm_event']);
  const vmEvent = o.info.params[3];
  assert.equal(vmEvent.type, 1);
  assert.match(vmEvent.value, /<Name>vminfo_vm_state<\/Name>/);
  assert.match(o.info.xml, /<EventCode>0<\/EventCode>/);
  // One standard parameter per VM; with PGVLF_GET_STATE_INFO each carries only the state.
  assert.equal(o.list.standardParams.length, o.count);
  assert.ok(o.list.standardParams.every((x) => x.startsWith('<VirtuozzoVirtualMachine')));
  // 1009 has no handler on the service (PrlVm_Resume sends 1001).
  assert.deepEqual(o.resume, { kind: 'service', code: 0x80000091, codeName: 'PRL_ERR_UNRECOGNIZED_REQUEST' });
  // Checked before anything is sent.
  assert.equal(o.login.kind, 'invalid_argument');
  assert.equal(o.badType.kind, 'invalid_argument');
  assert.equal(o.tooBig.kind, 'invalid_argument');
});

test('operations need a login, and after free() they reject at once', async () => {
  const r = await callInPage(page, async (prl, a) => {
    const caught = async (p) => p.then(() => null, (e) => e.kind);
    const s = new prl.Server({ proxyUrl: a.url });
    const before = [await caught(s.getVmList()), await caught(s.startVm('{x}')), await caught(s.request(2051, []))];
    const badUuid = await caught(s.startVm(''));
    const badStop = await caught(s.stopVm('{x}', { graceful: true, mode: 2 }));
    s.free();
    const freed = [await caught(s.getHostInfo()), await caught(s.stopVm('{x}')), await caught(s.request(2051, []))];
    return { before, badUuid, badStop, freed };
  }, { url });
  assert.equal(r.err, undefined, JSON.stringify(r.err));
  assert.deepEqual(r.ok, {
    before: ['invalid_state', 'invalid_state', 'invalid_state'],
    badUuid: 'invalid_argument',
    badStop: 'invalid_argument',
    freed: ['invalid_state', 'invalid_state', 'invalid_state'],
  });
});

test('getVmList of 1000 VMs: a ~20 MB reply, through a proxy whose package limit allows it', async () => {
  // The proxy's default limits.max_package_bytes (16 MiB) holds about 800 VMs' configurations.
  const inventory = Array.from({ length: 1000 }, (_, i) =>
    `[[vm]]\nname = "vm-${String(i).padStart(4, '0')}"\nstate = "${i % 2 ? 'stopped' : 'running'}"\n`).join('\n');
  writeFileSync(join(work, 'big.toml'), inventory);
  const port = await freePort();
  let bigSim;
  let bigProxy;
  let bigPage;
  try {
    bigSim = await startProcess(SIM, ['--listen', `127.0.0.1:${port}`, '--user', `${USER}:${PASSWORD}`,
      '--vms', join(work, 'big.toml')], /prl-sim listening on tcp:\/\/\S+/);
    bigProxy = await startProxy('big', { simPort: port, maxPackageBytes: 64 << 20 });
    bigPage = await openTestPage(browser, `http://127.0.0.1:${bigProxy.port}/`);
    const r = await callInPage(bigPage, async (prl, a) => {
      const s = await window.logIn(a.login);
      try {
        const list = await s.getVmList();
        // The session goes on after the large reply.
        const state = await s.getVmState(list[999].uuid);
        return { count: list.length, first: list[0], last: list[999].name, state: state.state,
          running: list.filter((v) => v.state === 'running').length };
      } finally {
        s.free();
      }
    }, { login: { url: `ws://127.0.0.1:${bigProxy.port}/ws`, port, user: USER, password: PASSWORD } });
    assert.equal(r.err, undefined, JSON.stringify(r.err));
    const o = r.ok;
    assert.equal(o.count, 1000);
    assert.equal(o.first.name, 'vm-0000');
    assert.equal(o.first.state, 'running');
    assert.equal(o.last, 'vm-0999');
    assert.equal(o.state, 'stopped');
    assert.equal(o.running, 500);
  } finally {
    await bigPage?.close();
    await stopProcess(bigProxy);
    await stopProcess(bigSim);
  }
});
