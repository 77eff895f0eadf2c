// @vitest-environment jsdom
/**
 * The standalone script as a page runs it: outputs written by dvl_jupyter/standalone.py
 * (the static part, the payload as JSON, the script) are mounted once each.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

import { fixture } from './fixture';

const EVIL = '<img src=x onerror=alert(1)></script><!--';

/** An output as dvl_jupyter/standalone.py writes it (JSON escaped the same way). */
function output(payloadJson: string): HTMLElement {
  const out = document.createElement('div');
  out.className = 'dvl-output';
  out.dataset.dvlStandalone = '1';
  const fallback = document.createElement('div');
  fallback.className = 'dvl-valuation';
  fallback.textContent = 'the static PNG and table';
  const data = document.createElement('script');
  data.type = 'application/json';
  data.className = 'dvl-payload';
  data.textContent = payloadJson
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026');
  out.append(fallback, data);
  document.body.appendChild(out);
  return out;
}

afterEach(() => {
  document.body.replaceChildren();
});

describe('the standalone script', () => {
  it('mounts each output once, over its static part, with one style sheet', async () => {
    const data = fixture(12);
    data.names = data.names!.map((n, i) => (i === 3 ? EVIL : n));
    const a = output(JSON.stringify(data));
    const b = output(JSON.stringify(fixture(3)));
    const { mountAll } = await import('../src/standalone'); // runs mountAll() on load
    for (const out of [a, b]) {
      expect(out.dataset.dvlMounted).toBe('1');
      expect(out.querySelector('.dvl-Valuation.dvl-standalone')).not.toBeNull();
      expect(out.querySelector<HTMLElement>('.dvl-valuation')!.style.display).toBe('none');
    }
    expect(a.querySelectorAll('.dvl-point')).toHaveLength(12);
    expect(b.querySelectorAll('.dvl-point')).toHaveLength(3);
    expect(document.querySelectorAll('style#dvl-valuation-standalone-style')).toHaveLength(1);
    // the crafted name is text
    a.querySelector<HTMLButtonElement>('.dvl-view-table')!.click();
    expect([...a.querySelectorAll('td')].some(td => td.textContent === EVIL)).toBe(true);
    expect(document.querySelectorAll('img[src="x"]')).toHaveLength(0);
    // a second run (the script of the next output) mounts nothing twice
    expect(mountAll()).toBe(0);
    expect(a.querySelectorAll('.dvl-Valuation')).toHaveLength(1);
    const c = output(JSON.stringify(fixture(2)));
    expect(mountAll()).toBe(1);
    expect(c.querySelectorAll('.dvl-point')).toHaveLength(2);
  });

  it('leaves the static part showing when the payload cannot be read', async () => {
    const { mountAll } = await import('../src/standalone');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const broken = output('{"version": 1, "values": "oops"');
    const wrong = output(JSON.stringify({ version: 7, values: [] }));
    expect(mountAll()).toBe(0);
    expect(warn).toHaveBeenCalledTimes(2);
    warn.mockRestore();
    for (const out of [broken, wrong]) {
      expect(out.querySelector('.dvl-Valuation')).toBeNull();
      expect(out.querySelector<HTMLElement>('.dvl-valuation')!.style.display).toBe('');
    }
  });
});
