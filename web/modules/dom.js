// Small DOM helpers shared by the console's modules.

/** The element with this id (the page's markup is fixed: a missing one is a bug). */
export const byId = (id) => document.getElementById(id);

/**
 * Creates `<tag>` with `props` (`class`, `text`, `on<event>` handlers, boolean properties such as
 * `hidden`/`disabled`, anything else as an attribute) and `children` (nodes or strings).
 */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  e.append(...children.filter((c) => c !== undefined && c !== null && c !== false));
  return e;
}

/** A button whose visible text is `label` and whose accessible name adds `context` (e.g. the VM's name). */
export function button(label, context, props = {}) {
  return el('button', { type: 'button', ...props }, label,
    context ? el('span', { class: 'visually-hidden', text: ` ${context}` }) : null);
}
