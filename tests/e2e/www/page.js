// Loads the package the way an application does and hands it to the test driver.
import init, * as prl from '/pkg/index.js';

await init();
window.prl = prl;

/** Resolves with `condition()` once it is truthy (checked every 10 ms); rejects after `ms`. */
window.until = async (condition, what = 'condition', ms = 10000) => {
  const end = performance.now() + ms;
  for (;;) {
    const value = condition();
    if (value) return value;
    if (performance.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/**
 * Records the IO packages the page's WebSockets send (type and bytes; relay text messages are
 * not packages), while they still go out unchanged. Returns the list; `sockets` holds the
 * WebSockets that sent, `stop()` ends recording.
 */
window.recordSent = () => {
  const sent = [];
  sent.sockets = new Set();
  const original = WebSocket.prototype.send;
  WebSocket.prototype.send = function send(data) {
    sent.sockets.add(this);
    if (typeof data !== 'string') {
      const view = ArrayBuffer.isView(data) ? data : new Uint8Array(data);
      const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
      sent.push({ type: new DataView(bytes.buffer).getUint32(64, true), bytes: Array.from(bytes) });
    }
    return original.call(this, data);
  };
  sent.stop = () => { WebSocket.prototype.send = original; };
  return sent;
};

/** A `Server` logged in to the simulator at `port` through the proxy at `url`. */
window.logIn = async ({ url, port, user, password }) => {
  const s = new prl.Server({ proxyUrl: url });
  try {
    await s.login({ host: '127.0.0.1', port, user, password, timeoutMs: 5000 });
  } catch (e) {
    s.free();
    throw e;
  }
  return s;
};

window.prlReady = true;
