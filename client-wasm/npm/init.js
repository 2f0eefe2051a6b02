// init(): wasm-bindgen's loader, handed the .wasm it should load (README: Using with a bundler).
import wasmInit from './prl_client_wasm.js';

let loading;

export default function init(module) {
  if (module !== undefined) return wasmInit(module);
  loading ??= fetchWasm().then((r) => wasmInit({ module_or_path: r }));
  loading.catch(() => (loading = undefined));
  return loading;
}

// A dev server without the file answers 404 or its index.html.
const isWasm = (r) => r.ok && !/^text\/html/i.test(r.headers.get('Content-Type'));

async function fetchWasm() {
  // The form bundlers recognise, to ship the .wasm with the bundle.
  const url = new URL('prl_client_wasm_bg.wasm', import.meta.url);
  const r = await fetch(url);
  if (isWasm(r)) return r;
  // Vite <= 7's dev server pre-bundles this module into node_modules/.vite/deps/ without the
  // .wasm (vitejs/vite#8427); the package is two levels up (where Vite 8 looks itself).
  if (/\/node_modules\/\.vite\/deps\/[^/]+$/.test(url.pathname)) {
    const moved = await fetch(new URL('../../@prl-web/client/prl_client_wasm_bg.wasm', url));
    if (isWasm(moved)) return moved;
  }
  throw new Error(`cannot load ${url}: got ${r.status} ${r.headers.get('Content-Type')}; ` +
    'pass its URL as init({ module_or_path })');
}
