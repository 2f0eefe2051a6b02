/**
 * The error every `@prl-web/client` call rejects (or throws) with.
 *
 * `code` is the Parallels SDK's `PRL_RESULT` (e.g. 0x80000330 for a wrong password), or 0
 * when the failure has none; `codeName` its `PRL_ERR_*` name ("" when unknown); `kind` a
 * stable string naming the failure (see `ErrorKind` in index.d.ts).
 */
export class ParallelsError extends Error {
  constructor(message, code, codeName, kind) {
    super(message);
    this.name = 'ParallelsError';
    this.code = code;
    this.codeName = codeName;
    this.kind = kind;
  }
}
