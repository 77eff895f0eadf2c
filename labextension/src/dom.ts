/**
 * Shared DOM helpers: HTML and SVG element factories, a toolbar button and a labelled select.
 * Text always goes in as `textContent`, never as HTML.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element with a class and, optionally, text (always as text, never as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** An SVG element with attributes. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

/** A `dvl-button` with visible text, an accessible label (also its title) and a handler. */
export function button(text: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', 'dvl-button', text);
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.title = label;
  b.addEventListener('click', onClick);
  return b;
}

/** A labelled `dvl-select` of `options`; `onChange` gets the chosen option, typed. */
export function select<T extends string | number>(
  label: string,
  options: readonly T[],
  names: (v: T) => string,
  value: T,
  onChange: (v: T) => void
): [HTMLLabelElement, HTMLSelectElement] {
  const wrap = h('label', 'dvl-field');
  wrap.appendChild(h('span', 'dvl-field-label', label));
  const sel = h('select', 'dvl-select');
  for (const o of options) {
    const opt = h('option', '', names(o));
    opt.value = String(o);
    sel.appendChild(opt);
  }
  sel.value = String(value);
  sel.addEventListener('change', () => {
    const found = options.find(o => String(o) === sel.value);
    if (found !== undefined) {
      onChange(found);
    }
  });
  wrap.appendChild(sel);
  return [wrap, sel];
}
