// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';

import extension from '../src/index';
import { MIME_TYPE } from '../src/valuation';

import { fixture } from './fixture';
import { render, unmountAll } from './render';

afterEach(() => {
  unmountAll();
});

describe('the extension', () => {
  it('is a safe mime extension ranked ahead of text/html', () => {
    expect(extension.rendererFactory.mimeTypes).toEqual([MIME_TYPE]);
    expect(extension.rendererFactory.safe).toBe(true);
    expect(extension.rank).toBeLessThanOrEqual(10);
    expect(extension.rendererFactory.defaultRank).toBeLessThanOrEqual(10);
  });
});

describe('ValuationRenderer', () => {
  it('draws one point mark and one error bar per point', () => {
    const r = render(fixture(20));
    expect(r.node.querySelectorAll('.dvl-point')).toHaveLength(20);
    expect(r.node.querySelectorAll('.dvl-errorbar')).toHaveLength(20);
    expect(r.node.querySelector('.dvl-summary')!.textContent).toContain('20 points');
  });

  it('widens the error bars when the confidence level goes up', () => {
    const r = render(fixture(5));
    const level = r.node.querySelector<HTMLSelectElement>('select.dvl-level')!;
    const before = r.node.querySelector('.dvl-errorbar')!.getAttribute('d');
    level.value = '99';
    level.dispatchEvent(new Event('change'));
    const after = r.node.querySelector('.dvl-errorbar')!.getAttribute('d');
    expect(after).not.toBe(before);
    expect(r.node.querySelector('.dvl-status')!.textContent).toContain('99% intervals');
  });

  it('shows the top k only', () => {
    const r = render(fixture(20));
    const subset = r.node.querySelector<HTMLSelectElement>('select.dvl-subset')!;
    subset.value = 'top';
    subset.dispatchEvent(new Event('change'));
    expect(r.node.querySelectorAll('.dvl-point')).toHaveLength(10);
  });

  it('renders a crafted label as text, never as markup', () => {
    const data = fixture(3);
    const evil = '<img src=x onerror=alert(1)>';
    data.labels = [evil, evil, evil];
    data.method = '<b>bold</b>';
    data.meta = { settings: { '<i>k</i>': '<script>alert(1)</script>' } };
    const r = render(data);
    r.node.querySelector<HTMLButtonElement>('.dvl-view-grid')!.click();
    const labels = [...r.node.querySelectorAll('.dvl-cell-label')].map(e => e.textContent);
    expect(labels).toEqual([evil, evil, evil]);
    expect(r.node.querySelector('.dvl-title')!.textContent).toBe('<b>bold</b>');
    expect(r.node.querySelectorAll('b, i, script')).toHaveLength(0);
    // The only images are the thumbnails, all data: URLs.
    const imgs = [...r.node.querySelectorAll('img')];
    expect(imgs).toHaveLength(3);
    expect(imgs.every(i => i.getAttribute('src')!.startsWith('data:image/png;base64,'))).toBe(
      true
    );
  });

  it('reports an unreadable payload as text', () => {
    const r = render({ version: 1, values: 'oops <b>x</b>' });
    const err = r.node.querySelector('.dvl-error')!;
    expect(err.textContent).toMatch(/Cannot show this valuation result: "values" must be a list/);
    expect(r.node.querySelectorAll('b')).toHaveLength(0);
  });

  it('groups 10,000 points into a bounded number of marks', () => {
    const r = render(fixture(10_000));
    expect(r.node.querySelectorAll('.dvl-point')).toHaveLength(0);
    // Groups are drawn as two band paths and two range paths (by sign), whatever their number.
    expect(r.node.querySelectorAll('.dvl-band')).toHaveLength(2);
    expect(r.node.querySelectorAll('.dvl-marks > *').length).toBeLessThanOrEqual(4);
    const groups = Number(r.node.querySelector('.dvl-band')!.getAttribute('data-groups'));
    expect(groups).toBeGreaterThan(0);
    expect(groups).toBeLessThanOrEqual(656 / 2); // one per 2 pixels of the default plot
  });
});

describe('views', () => {
  it('opens on the view the payload asks for, and lists points in the table', () => {
    const r = render({ ...fixture(4), view: 'table' });
    const table = r.node.querySelector('.dvl-tableview')!;
    expect(table.hasAttribute('hidden')).toBe(false);
    expect(table.querySelectorAll('tbody tr')).toHaveLength(4);
    expect(r.node.querySelector('.dvl-chart')!.hasAttribute('hidden')).toBe(true);
  });

  it('marks the omitted middle of a large result', () => {
    const data = {
      ...fixture(4),
      values: [-0.5, -0.4, 0.3, 0.6],
      summary: { n: 100, shown: 4, omitted: 96, non_finite: 0 }
    };
    const r = render(data);
    expect(r.node.querySelector('.dvl-gap-label')!.textContent).toBe('96 not listed');
  });
});

/** Texts of the elements matching `selector`. */
function texts(r: ReturnType<typeof render>, selector: string): string[] {
  return [...r.node.querySelectorAll(selector)].map(e => e.textContent ?? '');
}

function choose(r: ReturnType<typeof render>, selector: string, value: string): void {
  const sel = r.node.querySelector<HTMLSelectElement>(selector)!;
  sel.value = value;
  sel.dispatchEvent(new Event('change'));
}

/**
 * 60 points valued by accuracy on a small test set: 6 distinct values, 10 points each,
 * listed as display.py lists them (ascending, the exact reverse of rank order).
 */
function tiedPayload(withRanks: boolean) {
  const n = 60;
  const value = (i: number) => [0.05, 0.1, -0.05, 0.0, 0.15, 0.1][i % 6];
  const byRank = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => value(b) - value(a) || a - b
  );
  const listed = [...byRank].reverse();
  return {
    ...fixture(n),
    indices: listed,
    names: listed.map(i => `p${i}`),
    values: listed.map(value),
    stderr: listed.map(() => 0.02),
    counts: listed.map(() => 8),
    labels: listed.map(i => String(i % 10)),
    images: listed.map(() => null),
    ranks: withRanks ? listed.map(i => byRank.indexOf(i) + 1) : undefined
  };
}

describe('ties', () => {
  for (const withRanks of [true, false]) {
    it(`keep one rank per point in every view and both directions (${
      withRanks ? 'ranks in the payload' : 'an older payload without them'
    })`, () => {
      const r = render(tiedPayload(withRanks));
      const expected = Array.from({ length: 60 }, (_, i) => String(i + 1));
      for (const sort of ['descending', 'ascending']) {
        choose(r, 'select.dvl-sort', sort);
        const inOrder = sort === 'descending' ? expected : [...expected].reverse();
        // the chart: no gap marker, ticks on multiples of one step, evenly spaced
        expect(r.node.querySelectorAll('.dvl-gap')).toHaveLength(0);
        const ticks = texts(r, '.dvl-slot-tick').map(Number);
        const step = Math.abs(ticks[1] - ticks[0]);
        expect(ticks.every(t => t % step === 0)).toBe(true);
        const xs = [...r.node.querySelectorAll('.dvl-slot-tick')].map(e =>
          Number(e.getAttribute('x'))
        );
        const gaps = xs.slice(1).map((x, i) => x - xs[i]);
        expect(Math.max(...gaps) - Math.min(...gaps)).toBeLessThan(1e-6);
        expect(texts(r, '.dvl-status-text')[0]).toMatch(/^ranks 1–60 shown \(all 60 points\)/);
        // the table's rank column reads 1..60 (or 60..1), in order
        r.node.querySelector<HTMLButtonElement>('.dvl-view-table')!.click();
        const rows = [...r.node.querySelectorAll('.dvl-tableview tbody tr')];
        expect(rows.map(tr => tr.children[0].textContent)).toEqual(inOrder);
        // the grid: #1 before #2 (or #60 before #59)
        r.node.querySelector<HTMLButtonElement>('.dvl-view-grid')!.click();
        const cells = texts(r, '.dvl-cell-rank').map(t => t.split(' · ')[0].slice(1));
        expect(cells).toEqual(inOrder);
        r.node.querySelector<HTMLButtonElement>('.dvl-view-chart')!.click();
      }
    });
  }

  it('rank the tooltip the same as the table, hovering any slot', () => {
    const r = render(tiedPayload(true));
    const chart = r.node.querySelector<HTMLElement>('.dvl-chart')!;
    const press = (key: string) =>
      chart.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
    for (const [sort, first] of [
      ['descending', 1],
      ['ascending', 60]
    ] as const) {
      choose(r, 'select.dvl-sort', sort);
      press('Home');
      for (let slot = 0; slot < 60; slot++) {
        const rank = sort === 'descending' ? first + slot : first - slot;
        expect(texts(r, '.dvl-tip-rank')[0]).toBe(`${rank} of 60 (1 = highest)`);
        press('ArrowRight');
      }
    }
  });
});

describe('the chart says what it shows', () => {
  it("labels the value axis with the method, and has a legend for the two colours", () => {
    const r = render(fixture(6));
    expect(texts(r, '.dvl-axis-title')).toContain('TMC-Shapley value');
    expect(texts(r, '.dvl-legend-item')).toEqual(['value ≥ 0', 'value < 0']);
    expect(r.node.querySelectorAll('.dvl-legend .dvl-swatch.dvl-negative')).toHaveLength(1);
  });

  it('says what ± is in the table, the grid and the tooltip', () => {
    const r = render(fixture(6));
    r.node.querySelector<HTMLButtonElement>('.dvl-view-table')!.click();
    expect(texts(r, '.dvl-tableview th')).toContain('± 95% CI');
    expect(texts(r, '.dvl-tableview th')).toContain('stderr');
    r.node.querySelector<HTMLButtonElement>('.dvl-view-grid')!.click();
    expect(texts(r, '.dvl-grid-key')[0]).toContain('value ± 95% CI');
  });

  it('shows a null setting as None, keeping the list in pairs', () => {
    const r = render({ ...fixture(2), meta: { settings: { scheduler: null, seed: 1 } } });
    expect(texts(r, '.dvl-settings-list dt')).toEqual(['scheduler', 'seed']);
    expect(texts(r, '.dvl-settings-list dd')).toEqual(['None', '1']);
  });

  it('counts a large result by its listed points and the ranks it leaves out', () => {
    // 4 listed of 1,257: ranks 1, 2 and 1,256, 1,257
    const r = render({
      ...fixture(4),
      values: [-0.5, -0.4, 0.3, 0.6],
      ranks: [1257, 1256, 2, 1],
      summary: { n: 1257, shown: 4, omitted: 1253, non_finite: 0 }
    });
    expect(texts(r, '.dvl-status-text')[0]).toMatch(
      /^ranks 1–2 and 1,256–1,257 shown \(all 4 listed points\)/
    );
    expect(texts(r, '.dvl-gap-label')).toEqual(['1,253 not listed']);
  });
});

/** A Blob's text (jsdom's Blob has no text()). */
function blobText(b: Blob): Promise<string> {
  return new Promise(resolve => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.readAsText(b);
  });
}

describe('export', () => {
  it('downloads the shown points as CSV, in the view order', async () => {
    const blobs: Blob[] = [];
    const names: string[] = [];
    (URL as any).createObjectURL = (b: Blob) => {
      blobs.push(b);
      return 'blob:test';
    };
    (URL as any).revokeObjectURL = () => undefined;
    const click = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function (this: HTMLAnchorElement) {
      names.push(this.download);
    };
    try {
      const r = render(fixture(5));
      r.node.querySelector<HTMLButtonElement>('button[aria-label="Download the shown points as CSV"]')!.click();
      expect(names).toEqual(['tmc-shapley-values.csv']);
      const text = await blobText(blobs[0]);
      const lines = text.trim().split('\r\n');
      expect(lines).toHaveLength(6);
      expect(lines.slice(1).map(l => l.split(',')[0])).toEqual(['1', '2', '3', '4', '5']);
      r.node.querySelector<HTMLButtonElement>('button[aria-label="Download the chart as SVG"]')!.click();
      expect(names[1]).toBe('tmc-shapley-values.svg');
      const svg = await blobText(blobs[1]);
      expect(svg).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      expect(svg).toContain('<title>TMC-Shapley values</title>');
      expect(svg).toContain('TMC-Shapley value</text>');
      expect((svg.match(/class="dvl-point/g) ?? []).length).toBe(5);
    } finally {
      HTMLAnchorElement.prototype.click = click;
    }
  });
});
