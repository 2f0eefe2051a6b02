// The README's example, type-checked against the package's index.d.ts (tsc --noEmit).
import init, {
  ParallelsError,
  SecurityLevel,
  Server,
  type ConnectionState,
  type ErrorKind,
  type HostInfo,
  type LoginResponse,
  type RequestReply,
  type RestoredDetail,
  type VmStateName,
  type VmSummary,
} from '@prl-web/client';

export async function example(proxyUrl: string): Promise<LoginResponse | ErrorKind> {
  await init();
  const server = new Server({ proxyUrl, autoRestore: true, ticket: async () => 'ticket' });
  server.addEventListener('statechange', (e) => {
    const state: ConnectionState = e.detail.state;
    console.log('state:', state, 'was', e.detail.previous, e.detail.error?.kind);
  });
  server.addEventListener('restored', (e) => {
    const d: RestoredDetail = e.detail;
    for (const task of d.lostTasks) {
      void server.attachToLostTask(task.taskId, { onProgress: (p) => console.log(p.percent) });
    }
  });
  server.addEventListener('event', (e) => console.log(e.detail.packageType));
  const abort = new AbortController();
  try {
    const r = await server.login({
      host: '10.0.0.5',
      user: 'alice',
      password: 'secret',
      port: 0,
      securityLevel: SecurityLevel.Normal,
      timeoutMs: 10000,
      signal: abort.signal,
    });
    console.log('logged in to', r.productVersion, 'on', r.hostOsVersion, r.restored);
    const sid: string | undefined = server.sessionId;
    console.log(sid !== undefined, r.runningTasks.map((t) => t.taskId));
    await server.logoff();
    return r;
  } catch (e) {
    if (e instanceof ParallelsError) {
      const code: number = e.code;
      console.error(e.kind, e.codeName, code, e.message);
      return e.kind;
    }
    throw e;
  } finally {
    server.free();
  }
}

export async function local(server: Server): Promise<string> {
  const r = await server.loginLocal({ securityLevel: SecurityLevel.High });
  return r.sessionUuid;
}

// The package README's host and VM example.
export async function vms(server: Server): Promise<VmSummary[]> {
  const host: HostInfo = await server.getHostInfo();
  console.log(host.cpuCount, host.cpuModel, host.ramMb, host.osName, host.hostName || host.host);
  server.addEventListener('vmstatechange', (e) => {
    const state: VmStateName = e.detail.state;
    console.log(e.detail.uuid, state, e.detail.stateCode);
  });
  server.addEventListener('vmremoved', (e) => console.log(e.detail.uuid, e.detail.reason));
  server.addEventListener('vmadded', (e) => console.log(e.detail.uuid));
  server.addEventListener('vmconfigchange', (e) => console.log(e.detail.uuid));
  const list = await server.getVmList({ xml: false });
  const vm = list.find((v) => v.name === 'web-01' && v.validRc === 0);
  if (vm === undefined) return list;
  const abort = new AbortController();
  try {
    await server.startVm(vm.uuid, { signal: abort.signal, onProgress: (p) => console.log(p.percent) });
    await server.pauseVm(vm.uuid, { acpi: false });
    await server.resumeVm(vm.uuid);
    await server.stopVm(vm.uuid, { graceful: true });
    await server.stopVm(vm.uuid, { mode: 2, flags: 2048 });
    const s = await server.getVmState(vm.uuid);
    console.log(s.state, s.stateCode, s.isInvalid, s.validRc, s.additionState, s.xml.length);
  } catch (e) {
    if (e instanceof ParallelsError) {
      const details: string | undefined = e.details;
      const confirmed: boolean | undefined = e.cancelConfirmed;
      console.error(e.kind, e.codeName, details, confirmed, e.cancelCode, e.cancelCodeName);
    }
  }
  const reply: RequestReply = await server.request(2062, [
    { name: 'basic_vm_cmd_vm_uuid', type: 'string', value: vm.uuid },
    { name: 'n', type: 'uInt64', value: 2n ** 40n },
  ], { flags: 0 });
  console.log(reply.code, reply.codeName, reply.opcode, reply.standardParams, reply.error?.details);
  for (const p of reply.params) console.log(p.name, p.type, p.value, p.items);
  return list;
}
