import { describe, expect, it } from 'vitest';

import {
  buildMarks,
  clampWindow,
  describeMark,
  describePoint,
  displayRank,
  formatSeconds,
  formatValue,
  fullWindow,
  imageUrl,
  IPoint,
  MIN_SPAN,
  niceTicks,
  orderPoints,
  panWindow,
  parsePayload,
  PayloadError,
  revealSlot,
  selectSubset,
  settingsRows,
  summaryLine,
  valueDomain,
  visibleSlots,
  Z_TABLE,
  zoomWindow
} from '../src/valuation';

import { fixture, PNG_1PX } from './fixture';

describe('parsePayload', () => {
  it('reads every field of a v1 payload', () => {
    const v = parsePayload(fixture(4));
    expect(v.method).toBe('TMC-Shapley');
    expect(v.points).toHaveLength(4);
    expect(v.points[1]).toMatchObject({
      pos: 1,
      index: 11,
      name: 'digit-11',
      label: '1',
      value: -0.2,
      stderr: 0.1,
      count: 7
    });
    expect(v.points[0].image).toMatch(/^data:image\/png;base64,/);
    expect(v.hasImages).toBe(true);
    expect(v.total).toBe(4);
  });

  it('keeps strings as plain text, markup included', () => {
    const data = fixture(2);
    data.labels = ['<img src=x onerror=alert(1)>', 3];
    const v = parsePayload(data);
    expect(v.points[0].label).toBe('<img src=x onerror=alert(1)>');
    expect(v.points[1].label).toBe('3');
  });

  it('turns JSON null values into NaN, and missing stderr into 0', () => {
    const data = fixture(3);
    data.values[2] = null;
    data.stderr = undefined;
    const v = parsePayload(data);
    expect(Number.isNaN(v.points[2].value)).toBe(true);
    expect(v.points.map(p => p.stderr)).toEqual([0, 0, 0]);
  });

  it('says which list has the wrong length', () => {
    const data = fixture(3);
    data.stderr = [0.1];
    expect(() => parsePayload(data)).toThrow(PayloadError);
    expect(() => parsePayload(data)).toThrow(/"stderr" has 1 entries but "values" has 3/);
  });

  it('rejects other versions and non-objects', () => {
    expect(() => parsePayload({ ...fixture(1), version: 2 })).toThrow(/version 2/);
    expect(() => parsePayload('x')).toThrow(/JSON object/);
    expect(() => parsePayload(null)).toThrow(PayloadError);
  });

  it('accepts images as a list, a map by index, or {indices, data}', () => {
    const png = PNG_1PX;
    const asList = parsePayload({ ...fixture(2), images: [null, png] });
    expect(asList.points.map(p => p.image !== null)).toEqual([false, true]);
    const asMap = parsePayload({ ...fixture(2), images: { '11': png } });
    expect(asMap.points.map(p => p.image !== null)).toEqual([false, true]);
    const asPairs = parsePayload({ ...fixture(2), images: { indices: [10], data: [png] } });
    expect(asPairs.points.map(p => p.image !== null)).toEqual([true, false]);
    const none = parsePayload({ ...fixture(2), images: null });
    expect(none.hasImages).toBe(false);
  });

  it('reads the total of a summarised payload, and ranks across the omitted middle', () => {
    // The 2 lowest and 2 highest of 5,000 values (3 of which are NaN), ascending.
    const data = {
      ...fixture(4),
      values: [-0.5, -0.4, 0.3, 0.6],
      summary: { n: 5000, shown: 4, omitted: 4996, non_finite: 3, mean: 0.01 }
    };
    const v = parsePayload(data);
    expect(v.total).toBe(5000);
    expect(v.finiteTotal).toBe(4997);
    expect(v.ascRanks).toEqual([1, 2, 4996, 4997]);
    expect(displayRank(v, 3, 'descending')).toBe(1);
    expect(displayRank(v, 0, 'descending')).toBe(4997);
    expect(summaryLine(v)).toMatch(/^4 of 5,000 points listed/);
    expect(settingsRows(v)).toContainEqual(['mean of all values', '0.01']);
  });

  it('ranks all points when none is omitted, missing values unranked', () => {
    const v = parsePayload({ ...fixture(3), values: [0.2, null, -0.1] });
    expect(v.ascRanks).toEqual([2, null, 1]);
    expect(displayRank(v, 0, 'descending')).toBe(1);
  });

  it('reads the view asked for with --show', () => {
    expect(parsePayload({ ...fixture(1), view: 'grid' }).view).toBe('grid');
    expect(parsePayload({ ...fixture(1), view: 'plot' }).view).toBe('chart');
    expect(parsePayload(fixture(1)).view).toBeNull();
  });
});

describe('imageUrl', () => {
  it('only lets base64 through', () => {
    expect(imageUrl('iVBORw0KGgo=')).toBe('data:image/png;base64,iVBORw0KGgo=');
    expect(imageUrl('data:image/png;base64,iVBO Rw0K\nGgo=')).toBe(
      'data:image/png;base64,iVBORw0KGgo='
    );
    expect(imageUrl('x" onerror="alert(1)')).toBeNull();
    expect(imageUrl('javascript:alert(1)')).toBeNull();
    expect(imageUrl(42)).toBeNull();
    expect(imageUrl('')).toBeNull();
  });
});

function points(values: (number | null)[]): IPoint[] {
  return parsePayload({
    version: 1,
    indices: values.map((_, i) => i),
    values,
    stderr: values.map(() => 0.1)
  }).points;
}

describe('orderPoints and selectSubset', () => {
  const ps = points([0.3, -0.1, null, 0.5, 0.3]);

  it('sorts by value both ways, NaN last, ties in payload order', () => {
    expect(orderPoints(ps, 'descending')).toEqual([3, 0, 4, 1, 2]);
    expect(orderPoints(ps, 'ascending')).toEqual([1, 0, 4, 3, 2]);
    expect(orderPoints(ps, 'original')).toEqual([0, 1, 2, 3, 4]);
  });

  it('puts training order by data index', () => {
    const v = parsePayload({ ...fixture(3), indices: [7, 2, 5] });
    expect(orderPoints(v.points, 'original')).toEqual([1, 2, 0]);
  });

  it('keeps the top or bottom k in display order', () => {
    const asc = orderPoints(ps, 'ascending');
    expect(selectSubset(ps, asc, 'top', 2)).toEqual([0, 3]);
    expect(selectSubset(ps, asc, 'bottom', 2)).toEqual([1, 0]);
    expect(selectSubset(ps, orderPoints(ps, 'original'), 'bottom', 2)).toEqual([0, 1]);
    expect(selectSubset(ps, asc, 'all', 2)).toEqual(asc);
    expect(selectSubset(ps, asc, 'top', 99)).toEqual(asc);
  });
});

describe('confidence levels', () => {
  it('uses the two-sided normal quantiles', () => {
    expect(Z_TABLE[90]).toBeCloseTo(1.645, 3);
    expect(Z_TABLE[95]).toBeCloseTo(1.96, 3);
    expect(Z_TABLE[99]).toBeCloseTo(2.576, 3);
  });

  it('widens the intervals of marks and the domain with the level', () => {
    const ps = points([0.2, 0.4]);
    const order = [0, 1];
    const m90 = buildMarks(ps, order, 0, 2, 90, 100)[0];
    const m99 = buildMarks(ps, order, 0, 2, 99, 100)[0];
    expect(m90.hi - m90.lo).toBeCloseTo(2 * 1.6449 * 0.1, 3);
    expect(m99.hi - m99.lo).toBeGreaterThan(m90.hi - m90.lo);
    const [lo90, hi90] = valueDomain(ps, order, 90);
    const [lo99, hi99] = valueDomain(ps, order, 99);
    expect(hi99).toBeGreaterThan(hi90);
    expect(lo99).toBeLessThanOrEqual(lo90);
  });

  it('describes a group with the slots text it is given, and its values at the level', () => {
    const ps = points([0.2, 0.4, null, 0.1, 0.3]);
    const [m] = buildMarks(ps, [1, 4, 0, 3, 2], 0, 5, 95, 1);
    expect(describeMark(m, 95, '1 to 4 and 1 missing value')).toEqual([
      ['points', '5 (1 to 4 and 1 missing value)'],
      ['values', '0.1 … 0.4'],
      ['mean', '0.25'],
      ['95% band', '-0.096 … 0.596'],
      ['', 'zoom in to see single points']
    ]);
  });

  it('describes a group with no value as such, without a mean or band', () => {
    const ps = points([0.2, null, null, null]);
    const [m] = buildMarks(ps, [0, 1, 2, 3], 1, 4, 95, 1);
    expect(m.n).toBe(0);
    expect(describeMark(m, 95, '3 missing values')).toEqual([
      ['points', '3 (3 missing values)'],
      ['values', 'no values (3 missing)'],
      ['', 'zoom in to see single points']
    ]);
  });

  it('describes a point with value ± half-width at the level', () => {
    const p = parsePayload(fixture(2)).points[1];
    const rows = Object.fromEntries(describePoint(p, 95));
    expect(rows.value).toBe('-0.2 ± 0.196 (95%)');
    expect(rows.label).toBe('1');
    expect(rows.index).toBe('11');
    expect(rows.updates).toBe('7');
    expect(rows.name).toBe('digit-11');
  });
});

describe('zoom and pan window', () => {
  it('zooms around the anchor and stays inside the data', () => {
    const w = zoomWindow(fullWindow(100), 100, 0.5, 0.5);
    expect(w).toEqual({ start: 25, span: 50 });
    const left = zoomWindow(fullWindow(100), 100, 0.5, 0);
    expect(left.start).toBe(0);
    expect(zoomWindow(w, 100, 4)).toEqual({ start: 0, span: 100 });
  });

  it('never zooms narrower than MIN_SPAN', () => {
    let w = fullWindow(1000);
    for (let i = 0; i < 30; i++) {
      w = zoomWindow(w, 1000, 0.5);
    }
    expect(w.span).toBe(MIN_SPAN);
    expect(clampWindow({ start: 0, span: 1 }, 3)).toEqual({ start: 0, span: 3 });
  });

  it('keeps the anchor in place when the span is at its limit', () => {
    const w = { start: 40, span: MIN_SPAN };
    expect(zoomWindow(w, 100, 0.5, 0.5)).toEqual(w);
    expect(zoomWindow(w, 100, 0.5, 1)).toEqual(w);
    expect(zoomWindow({ start: 30, span: 60 }, 100, 2, 0.5)).toEqual({ start: 0, span: 100 });
  });

  it('pans within [0, n]', () => {
    const w = { start: 10, span: 20 };
    expect(panWindow(w, 100, 5)).toEqual({ start: 15, span: 20 });
    expect(panWindow(w, 100, -50)).toEqual({ start: 0, span: 20 });
    expect(panWindow(w, 100, 500)).toEqual({ start: 80, span: 20 });
  });

  it('reveals a slot outside the window and lists visible slots', () => {
    const w = { start: 10, span: 20 };
    expect(revealSlot(w, 100, 40)).toEqual({ start: 21, span: 20 });
    expect(revealSlot(w, 100, 3)).toEqual({ start: 3, span: 20 });
    expect(revealSlot(w, 100, 15)).toBe(w);
    expect(visibleSlots({ start: 2.5, span: 10 }, 100)).toEqual([2, 13]);
    expect(visibleSlots({ start: 95, span: 10 }, 100)).toEqual([95, 100]);
  });
});

describe('buildMarks', () => {
  it('draws one mark per point within the budget', () => {
    const ps = points([1, 2, 3, 4]);
    const marks = buildMarks(ps, [0, 1, 2, 3], 0, 4, 95, 10);
    expect(marks.map(m => m.pos)).toEqual([0, 1, 2, 3]);
    expect(marks[2]).toMatchObject({ first: 2, last: 3, min: 3, max: 3, mean: 3, n: 1 });
  });

  it('groups 10,000 points into at most `budget` marks, cheaply', () => {
    const n = 10_000;
    const values = Array.from({ length: n }, (_, i) => Math.sin(i) / 10);
    const ps = points(values);
    const order = orderPoints(ps, 'descending');
    const t0 = performance.now();
    const marks = buildMarks(ps, order, 0, n, 95, 250);
    const elapsed = performance.now() - t0;
    expect(marks.length).toBeLessThanOrEqual(250);
    expect(marks.every(m => m.pos === -1)).toBe(true);
    expect(marks[0].first).toBe(0);
    expect(marks[marks.length - 1].last).toBe(n);
    expect(marks.reduce((a, m) => a + m.n, 0)).toBe(n);
    expect(marks[0].max).toBeCloseTo(Math.max(...values), 10);
    expect(elapsed).toBeLessThan(50);
  });

  it('skips missing values inside a group', () => {
    const ps = points([1, null, 3]);
    const [m] = buildMarks(ps, [0, 1, 2], 0, 3, 95, 1);
    expect(m).toMatchObject({ n: 2, min: 1, max: 3, mean: 2 });
  });
});

describe('ticks and formats', () => {
  it('picks round ticks', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(-0.013, 0.021, 4)).toEqual([-0.01, 0, 0.01, 0.02]);
    expect(niceTicks(1, 20, 4)).toEqual([5, 10, 15, 20]);
    expect(niceTicks(1, 1)).toEqual([]);
  });

  it('formats values, counts and durations', () => {
    expect(formatValue(0.012345)).toBe('0.0123');
    expect(formatValue(-0.2)).toBe('-0.2');
    expect(formatValue(1.2e-5)).toBe('1.20e-5');
    expect(formatValue(NaN)).toBe('n/a');
    expect(formatSeconds(0.4234)).toBe('0.42 s');
    expect(formatSeconds(42.16)).toBe('42.2 s');
    expect(formatSeconds(245)).toBe('4 min 05 s');
    expect(formatSeconds(3720)).toBe('1 h 02 min');
  });

  it('summarises the run and lists its settings as text', () => {
    const v = parsePayload(fixture(3));
    expect(summaryLine(v)).toBe('3 points · 1,234 evaluations · 56 cache hits · 12.3 s');
    expect(settingsRows(v)).toEqual([
      ['stopping', 'MinUpdates(2)'],
      ['truncation', 'RelativeTruncation(rtol=0.05)'],
      ['seed', '36']
    ]);
    const stopped = parsePayload({
      ...fixture(3),
      meta: { ended: 'interrupted', failed_fits: 2, run_id: 'abc', settings: {} }
    });
    expect(summaryLine(stopped)).toBe('3 points · ended: interrupted · 2 failed fits');
    const one = parsePayload({
      ...fixture(1),
      meta: { evaluations: 1, cache_hits: 1, failed_fits: 1 }
    });
    expect(summaryLine(one)).toBe('1 point · 1 evaluation · 1 cache hit · 1 failed fit');
    expect(settingsRows(stopped)).toEqual([
      ['ended', 'interrupted'],
      ['run id', 'abc']
    ]);
  });
});
