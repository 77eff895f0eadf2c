import { describe, expect, it } from 'vitest';

import {
  buildMarks,
  clampWindow,
  axisTicks,
  computeRanks,
  describePoint,
  findGaps,
  formatSeconds,
  formatValue,
  fullWindow,
  imageUrl,
  IPoint,
  MIN_SPAN,
  niceStep,
  niceTicks,
  orderPoints,
  panWindow,
  parsePayload,
  PayloadError,
  payloadRanks,
  rankRuns,
  revealSlot,
  selectSubset,
  settingsRows,
  summaryLine,
  toCsv,
  trustLine,
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
    // No "ranks" (an older payload): the upper half of the listed are ranks 1.., the lower
    // half the last ranks.
    expect(v.points.map(p => p.rank)).toEqual([4997, 4996, 2, 1]);
    expect(summaryLine(v)).toMatch(/^4 of 5,000 points listed/);
    expect(settingsRows(v)).toContainEqual(['mean of all values', '0.01']);
  });

  it('ranks all points when none is omitted, missing values unranked', () => {
    const v = parsePayload({ ...fixture(3), values: [0.2, null, -0.1] });
    expect(v.points.map(p => p.rank)).toEqual([1, null, 2]);
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

  it('sorts by rank both ways, NaN last; ties by index, ascending the exact reverse', () => {
    // indices 0..4; 0 and 4 tie at 0.3: index 0 ranks first (2), index 4 next (3)
    expect(ps.map(p => p.rank)).toEqual([2, 4, null, 1, 3]);
    expect(orderPoints(ps, 'descending')).toEqual([3, 0, 4, 1, 2]);
    expect(orderPoints(ps, 'ascending')).toEqual([1, 4, 0, 3, 2]);
    expect(orderPoints(ps, 'original')).toEqual([0, 1, 2, 3, 4]);
  });

  it('puts training order by data index', () => {
    const v = parsePayload({ ...fixture(3), indices: [7, 2, 5] });
    expect(orderPoints(v.points, 'original')).toEqual([1, 2, 0]);
  });

  it('keeps the top or bottom k in display order', () => {
    const asc = orderPoints(ps, 'ascending');
    expect(selectSubset(ps, asc, 'top', 2)).toEqual([0, 3]);
    expect(selectSubset(ps, asc, 'bottom', 2)).toEqual([1, 4]); // ranks 4 and 3
    expect(selectSubset(ps, orderPoints(ps, 'original'), 'bottom', 2)).toEqual([1, 4]);
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

  it('describes a point with value ± half-width at the level', () => {
    const p = parsePayload(fixture(2)).points[1];
    const rows = Object.fromEntries(describePoint(p, 95));
    expect(rows.value).toBe('-0.2 ± 0.196 (95% CI)');
    expect(rows.stderr).toBe('0.1');
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
    // linear in the points: well under a second even on a loaded machine (quadratic work
    // over 10,000 points would take seconds)
    expect(elapsed).toBeLessThan(500);
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
    // as dvl_jupyter.valuation.utils.format_duration writes them
    expect(formatSeconds(0.4234)).toBe('0s');
    expect(formatSeconds(8)).toBe('8s');
    expect(formatSeconds(42.6)).toBe('43s');
    expect(formatSeconds(75.2)).toBe('1m 15s');
    expect(formatSeconds(245)).toBe('4m 05s');
    expect(formatSeconds(4000)).toBe('1h 06m');
    expect(formatSeconds(NaN)).toBe('n/a');
  });

  it('summarises the run and lists its settings as text', () => {
    const v = parsePayload(fixture(3));
    expect(summaryLine(v)).toBe('3 points · 1,234 evaluations · 56 cache hits · 12s');
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

/** A payload of these values at indices 0, 1, ... listed as display.py lists them. */
function tied(values: number[], extra: Record<string, unknown> = {}) {
  return parsePayload({ version: 1, indices: values.map((_, i) => i), values, ...extra });
}

describe('ties', () => {
  // Accuracy on a small test set: many exact ties.
  const values = [0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.3, 0.1];

  it('are ranked by data index, the same rank in both directions', () => {
    const v = tied(values);
    // 0.3 (index 6) first, then the 0.2s by index (1, 3, 5), then the 0.1s (0, 2, 4, 7)
    expect(v.points.map(p => p.rank)).toEqual([5, 2, 6, 3, 7, 4, 1, 8]);
    const desc = orderPoints(v.points, 'descending');
    const asc = orderPoints(v.points, 'ascending');
    expect(desc.map(i => v.points[i].rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(asc).toEqual([...desc].reverse());
    expect(desc.map(i => v.points[i].index)).toEqual([6, 1, 3, 5, 0, 2, 4, 7]);
  });

  it('do not depend on the order the payload lists them in', () => {
    const order = [7, 0, 2, 4, 1, 3, 5, 6].reverse();
    const v = parsePayload({
      version: 1,
      indices: order,
      values: order.map(i => values[i])
    });
    const byIndex = new Map(v.points.map(p => [p.index, p.rank]));
    expect([...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(e => e[1])).toEqual([
      5, 2, 6, 3, 7, 4, 1, 8
    ]);
  });

  it('leave no gap in either direction when every point is listed', () => {
    const v = tied(values);
    for (const sort of ['descending', 'ascending'] as const) {
      const shown = orderPoints(v.points, sort);
      expect(findGaps(v.points, shown, sort, 'all')).toEqual([]);
      expect(rankRuns(v.points, shown, 0, shown.length)).toEqual({ runs: [[1, 8]], missing: 0 });
    }
  });

  it('mark the one real gap of a large result, in both directions', () => {
    // 4 of 10 finite values listed (ranks 1, 2 and 9, 10), with a tie across the cut.
    const v = tied([0.1, 0.1, 0.5, 0.5], {
      ranks: [10, 9, 2, 1],
      summary: { n: 10, non_finite: 0 }
    });
    const desc = orderPoints(v.points, 'descending');
    expect(desc.map(i => v.points[i].rank)).toEqual([1, 2, 9, 10]);
    expect(findGaps(v.points, desc, 'descending', 'all')).toEqual([[2, 6]]);
    const asc = orderPoints(v.points, 'ascending');
    expect(findGaps(v.points, asc, 'ascending', 'all')).toEqual([[2, 6]]);
    expect(rankRuns(v.points, asc, 0, 4).runs).toEqual([
      [9, 10],
      [1, 2]
    ]);
    expect(findGaps(v.points, desc, 'descending', 'top')).toEqual([]);
    expect(findGaps(v.points, orderPoints(v.points, 'original'), 'original', 'all')).toEqual([]);
  });
});

describe('payloadRanks', () => {
  const ps = points([0.3, 0.1, null]);

  it("takes the payload's ranks when each is a distinct rank, null without a value", () => {
    expect(payloadRanks([7, 9, null], ps, 9)).toEqual([7, 9, null]);
    const v = parsePayload({ ...fixture(3), values: [0.3, 0.1, null], ranks: [1, 2, null] });
    expect(v.points.map(p => p.rank)).toEqual([1, 2, null]);
  });

  it('falls back to computing them for anything else', () => {
    for (const bad of [
      undefined,
      null,
      [1, 2],
      [1, 1, null],
      [0, 2, null],
      [1, 2, 3],
      [1.5, 2, null],
      ['1', 2, null],
      [1, 12, null]
    ]) {
      expect(payloadRanks(bad, ps, 9)).toBeNull();
    }
    const v = parsePayload({ ...fixture(3), values: [0.3, 0.1, null], ranks: [1, 1, null] });
    expect(v.points.map(p => p.rank)).toEqual(computeRanks(v.points, 2));
  });
});

describe('axisTicks', () => {
  const ranksOf = (labels: (number | null)[]) => (slot: number) => labels[slot];

  it('puts evenly spaced ticks on round ranks, on either side of a gap', () => {
    // ranks 1..500 then 758..1257 (1,000 listed of 1,257): the step is 200 for ~6 ticks
    const labels = [
      ...Array.from({ length: 500 }, (_, i) => i + 1),
      ...Array.from({ length: 500 }, (_, i) => 758 + i)
    ];
    expect(niceStep(1000, 6)).toBe(200);
    const ticks = axisTicks(ranksOf(labels), 0, 1000, 6);
    expect(ticks.map(t => t[1])).toEqual([200, 400, 800, 1000, 1200]);
    expect(ticks.map(t => t[0])).toEqual([199, 399, 542, 742, 942]);
  });

  it('drops a tick closer than half a step to the one before (at a gap)', () => {
    // ranks 1..10, then 19, 20: the 20 would sit 2 slots after the 10
    const labels = [...Array.from({ length: 10 }, (_, i) => i + 1), 19, 20];
    expect(axisTicks(ranksOf(labels), 0, 12, 3).map(t => t[1])).toEqual([5, 10]);
  });

  it('keeps the spacing when ranks run downwards, and ticks the first missing slot', () => {
    const labels = [20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, null];
    const ticks = axisTicks(ranksOf(labels), 0, labels.length, 5);
    expect(ticks).toEqual([
      [0, 20],
      [5, 15],
      [10, 10],
      [15, 5],
      [20, null]
    ]);
  });

  it('counts only the visible slots', () => {
    const labels = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(axisTicks(ranksOf(labels), 40, 60, 4).map(t => t[1])).toEqual([45, 50, 55, 60]);
    expect(axisTicks(ranksOf(labels), 40, 40, 4)).toEqual([]);
  });
});

describe('toCsv', () => {
  it('writes every shown point, text safely, numbers in full', () => {
    const v = parsePayload({
      ...fixture(3),
      names: ['a,b', '=cmd()', 'say "hi"\nthere'],
      values: [0.123456789, null, -0.5],
      ranks: [1, null, 2]
    });
    const csv = toCsv(v.points, orderPoints(v.points, 'descending'), 95);
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('rank,index,name,label,value,stderr,ci95_low,ci95_high,updates');
    expect(lines[1]).toBe(
      `1,10,"a,b",0,0.123456789,0.05,${0.123456789 - Z_TABLE[95] * 0.05},${
        0.123456789 + Z_TABLE[95] * 0.05
      },5`
    );
    expect(lines[2].startsWith('2,12,"say ""hi""\nthere",2,-0.5,')).toBe(true);
    expect(lines[3]).toBe(",11,'=cmd(),1,,0.1,,,7"); // no rank, no value; an inert formula
    expect(lines[4]).toBe('');
  });
});

describe('trustLine', () => {
  const base = {
    version: 1,
    method: 'TMC-Shapley',
    indices: [0, 1],
    names: ['a', 'b'],
    values: [0, 1],
    stderr: [0.1, 0.1],
    counts: [3, 3],
    summary: { n: 2, shown: 2, omitted: 0 },
    meta: { evaluations: 4, cache_hits: 0, elapsed: 1, settings: {} }
  };

  it('says nothing for an older payload, warns with the advice, says exact', () => {
    expect(trustLine(parsePayload(base))).toBeNull();
    const noisy = { ...base, meta: { ...base.meta, reliability: 0.1, advice: 'mostly noise' } };
    expect(trustLine(parsePayload(noisy))).toEqual({ text: 'mostly noise', warn: true });
    const fine = { ...base, meta: { ...base.meta, reliability: 0.9, distinguishable: 1 } };
    expect(trustLine(parsePayload(fine))).toEqual({
      text: 'reliability of the ranking 0.90 · 1 of 2 values distinguishable from zero',
      warn: false
    });
    const exact = { ...base, meta: { ...base.meta, exact: true } };
    expect(trustLine(parsePayload(exact))?.text).toBe('exact values (no sampling)');
  });
});
