/**
 * The error every `@prl-web/client` call rejects (or throws) with.
 *
 * `code` is the Parallels SDK's `PRL_RESULT` (e.g. 0x80000330 for a wrong password), or 0
 * when the failure has none; `codeName` its `PRL_ERR_*` name ("" when unknown); `kind` a
 * stable string naming the failure (see `ErrorKind` in index.d.ts). `extra` holds the fields
 * some kinds add (`details` of a service failure; `cancelConfirmed`, `cancelCode` and
 * `cancelCodeName` of a cancel).
 */
export class ParallelsError extends Error {
  constructor(message, code, codeName, kind, extra) {
    super(message);
    this.name = 'ParallelsError';
    this.code = code;
    this.codeName = codeName;
    this.kind = kind;
    if (extra) Object.assign(this, extra);
  }
}
