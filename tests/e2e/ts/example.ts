// The README's example, type-checked against the package's index.d.ts (tsc --noEmit).
import init, {
  ParallelsError,
  SecurityLevel,
  Server,
  type ConnectionState,
  type ErrorKind,
  type LoginResponse,
  type RestoredDetail,
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
