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
    // Groups are drawn as one band path and two range paths, whatever their number.
    expect(r.node.querySelectorAll('.dvl-band')).toHaveLength(1);
    expect(r.node.querySelectorAll('.dvl-marks > *').length).toBeLessThanOrEqual(3);
    const groups = Number(r.node.querySelector('.dvl-band')!.getAttribute('data-groups'));
    expect(groups).toBeGreaterThan(0);
    expect(groups).toBeLessThanOrEqual(250);
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
