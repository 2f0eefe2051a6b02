// No rule for the package's .wasm: webpack 5 ships the file that
// `new URL('prl_client_wasm_bg.wasm', import.meta.url)` names as an asset by itself.
import { resolve } from 'node:path';

export default {
  entry: './src/main.js',
  output: {
    path: resolve(process.env.OUT_DIR ?? 'dist'),
    filename: 'main.js',
    clean: true,
  },
};
