// The app every bundler fixture builds: it imports @prl-web/client the way an application does
// and gives the test driver a login (the password comes through the driver, never a URL).
import init, { ParallelsError, SecurityLevel, Server } from '@prl-web/client';

window.prlLogin = async ({ proxyUrl, host, port, user, password }) => {
  const server = new Server({ proxyUrl });
  try {
    const reply = await server.login({
      host, port, user, password, securityLevel: SecurityLevel.Normal, timeoutMs: 10000,
    });
    const during = server.state;
    await server.logoff();
    return { productVersion: reply.productVersion, during, after: server.state };
  } catch (e) {
    return { error: { isParallels: e instanceof ParallelsError, kind: e.kind, message: e.message } };
  } finally {
    server.free();
  }
};

init().then(
  () => {
    window.prlReady = true;
  },
  (e) => {
    window.prlInitError = String(e);
  },
);
