// @vitest-environment jsdom
/**
 * The chart's interaction and the toolbar's controls, through the DOM a user sees: keys,
 * wheel and pointer on the chart, the zoom and pan buttons, the level, sort, subset and k
 * controls, and the paging of the image grid and the table.
 *
 * The 20-point fixture, highest value first: slots 0..9 hold indices 28, 26, ..., 10 (values
 * 1.9 down to 0.1), slots 10..19 indices 11, 13, ..., 29 (values -0.2 down to -2.0).
 * One zoom step halves the span: from the full 20 slots to 10 around the centre, ranks 6–15.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { ErrorBarChart } from '../src/chart';
import { geometry, MARGIN } from '../src/geometry';
import { createState, recompute } from '../src/state';
import { parsePayload, Z_TABLE } from '../src/valuation';

import { fixture } from './fixture';
import {
  $,
  choose,
  click,
  key,
  manualFrames,
  PLOT_W,
  plotX,
  pointer,
  pointIndices,
  range,
  render,
  status,
  unmountAll,
  wheel
} from './render';

let frames: ReturnType<typeof manualFrames>;

beforeEach(() => {
  frames = manualFrames();
});

afterEach(() => {
  unmountAll();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

/** The tooltip's title, or null while it is hidden. */
function tooltipTitle(r: ReturnType<typeof render>): string | null {
  const t = $(r, '.dvl-tooltip');
  return t.hidden ? null : $(r, '.dvl-tooltip-title').textContent;
}

/** The labels of the rank (x-axis) ticks, left to right. */
function rankTicks(r: ReturnType<typeof render>): (string | null)[] {
  return [...r.node.querySelectorAll('.dvl-axes .dvl-tick[text-anchor="middle"]')].map(
    e => e.textContent
  );
}

/** Every attribute and inline style in the renderer that says NaN, as "tag attr=value". */
function nanAttributes(r: ReturnType<typeof render>): string[] {
  const found: string[] = [];
  for (const el of [r.node, ...r.node.querySelectorAll('*')]) {
    for (const a of el.attributes) {
      if (a.value.includes('NaN')) {
        found.push(`${el.tagName} ${a.name}=${a.value}`);
      }
    }
  }
  return found;
}

/** A payload of `n` points whose last `missing` (in payload order) have no value. */
function withMissing(n: number, missing: number) {
  const data = fixture(n);
  for (let i = n - missing; i < n; i++) {
    data.values[i] = null;
  }
  return data;
}

describe('keyboard', () => {
  it('steps through the points with the arrow keys, Home and End', () => {
    const r = render(fixture(20));
    expect(tooltipTitle(r)).toBeNull();
    key(r, 'ArrowRight');
    expect(tooltipTitle(r)).toBe('digit-28');
    expect($(r, '.dvl-tip-rank').textContent).toBe('1 of 20 (1 = highest)');
    expect($(r, '.dvl-live').textContent).toMatch(/^index 28, value 1\.9 ± /);
    expect(r.node.querySelectorAll('.dvl-ring')).toHaveLength(1);
    key(r, 'ArrowRight');
    expect(tooltipTitle(r)).toBe('digit-26');
    key(r, 'ArrowRight', { shiftKey: true }); // ten at a time: slot 11
    expect(tooltipTitle(r)).toBe('digit-13');
    key(r, 'ArrowLeft');
    expect(tooltipTitle(r)).toBe('digit-11');
    key(r, 'ArrowLeft', { shiftKey: true }); // slot 0
    expect(tooltipTitle(r)).toBe('digit-28');
    key(r, 'ArrowRight', { shiftKey: true });
    key(r, 'ArrowRight', { shiftKey: true }); // slot 19: no further than the last
    expect(tooltipTitle(r)).toBe('digit-29');
    key(r, 'End');
    expect(tooltipTitle(r)).toBe('digit-29');
    expect($(r, '.dvl-tip-rank').textContent).toBe('20 of 20 (1 = highest)');
    key(r, 'ArrowRight'); // stays on the last point
    expect(tooltipTitle(r)).toBe('digit-29');
    key(r, 'Home');
    expect(tooltipTitle(r)).toBe('digit-28');
    key(r, 'ArrowLeft'); // stays on the first point
    expect(tooltipTitle(r)).toBe('digit-28');
    key(r, 'Escape');
    expect(tooltipTitle(r)).toBeNull();
    expect(r.node.querySelectorAll('.dvl-ring')).toHaveLength(0);
  });

  it('starts from the right end with ArrowLeft', () => {
    const r = render(fixture(20));
    key(r, 'ArrowLeft');
    expect(tooltipTitle(r)).toBe('digit-29');
  });

  it('zooms in with + or = and out with - or _, drawing only the visible points', () => {
    const r = render(fixture(20));
    expect(status(r)).toBe('ranks 1–20 shown (all 20 points) · bars: 95% intervals');
    const e = key(r, '+');
    expect(e.defaultPrevented).toBe(true);
    expect(status(r)).toBe('ranks 6–15 shown (10 of 20 points) · bars: 95% intervals');
    expect(pointIndices(r)).toEqual([18, 16, 14, 12, 10, 11, 13, 15, 17, 19]);
    key(r, '-');
    expect(range(r)).toBe('ranks 1–20');
    expect(pointIndices(r)).toHaveLength(20);
    key(r, '=');
    expect(range(r)).toBe('ranks 6–15');
    key(r, '_');
    expect(range(r)).toBe('ranks 1–20');
    key(r, '-'); // no further out than all points
    expect(range(r)).toBe('ranks 1–20');
  });

  it('zooms in no further than five slots', () => {
    const r = render(fixture(20));
    key(r, '+');
    key(r, '+');
    expect(status(r)).toMatch(/^ranks 8–13 shown \(6 of 20 points\)/); // 5 slots from 7.5
    key(r, '+'); // the same five slots: the window stays where it is
    expect(range(r)).toBe('ranks 8–13');
    key(r, '+');
    expect(range(r)).toBe('ranks 8–13');
  });

  it('zooms around the active point', () => {
    const r = render(fixture(20));
    key(r, 'End');
    key(r, '+'); // about slot 19.5, then just enough to show all of slot 19
    expect(range(r)).toBe('ranks 11–20');
    expect(tooltipTitle(r)).toBe('digit-29');
    key(r, 'Home');
    expect(range(r)).toBe('ranks 1–10'); // Home brings the first point into view
    expect(tooltipTitle(r)).toBe('digit-28');
    key(r, '-');
    key(r, 'ArrowRight');
    key(r, 'ArrowRight');
    key(r, 'ArrowRight'); // slot 3, 3.5 slots from the left of 20
    key(r, '+'); // 1.75 slots from the left of 10
    expect(range(r)).toBe('ranks 2–12');
    expect(tooltipTitle(r)).toBe('digit-22');
  });

  it('pans a whole window with Page Down and Page Up, taking the active point along', () => {
    const r = render(fixture(20));
    key(r, '+');
    key(r, 'ArrowRight'); // the first visible point: slot 5
    expect(tooltipTitle(r)).toBe('digit-18');
    key(r, 'PageDown');
    expect(range(r)).toBe('ranks 11–20');
    expect(tooltipTitle(r)).toBe('digit-21'); // slot 15
    key(r, 'PageDown'); // the window is at the end already; the point goes to the last
    expect(range(r)).toBe('ranks 11–20');
    expect(tooltipTitle(r)).toBe('digit-29');
    key(r, 'PageUp');
    expect(range(r)).toBe('ranks 1–10');
    expect(tooltipTitle(r)).toBe('digit-10'); // slot 9
  });

  it('moves the window to keep the active point in view', () => {
    const r = render(fixture(20));
    key(r, '+');
    key(r, 'PageUp');
    key(r, 'Home');
    expect(range(r)).toBe('ranks 1–10');
    key(r, 'ArrowRight', { shiftKey: true }); // slot 10, just right of the window
    expect(range(r)).toBe('ranks 2–11');
    expect(tooltipTitle(r)).toBe('digit-11');
    key(r, 'End');
    expect(range(r)).toBe('ranks 11–20');
  });

  it('leaves keys with modifiers, and other keys, to the browser', () => {
    const r = render(fixture(20));
    for (const init of [{ ctrlKey: true }, { metaKey: true }, { altKey: true }]) {
      const e = key(r, '+', init);
      expect(e.defaultPrevented).toBe(false);
    }
    expect(key(r, 'a').defaultPrevented).toBe(false);
    expect(key(r, 'ArrowDown').defaultPrevented).toBe(false);
    expect(range(r)).toBe('ranks 1–20');
    expect(tooltipTitle(r)).toBeNull();
  });
});

describe('mouse wheel', () => {
  it('zooms with ctrl or cmd, keeping the point under the pointer in place', () => {
    const r = render(fixture(20));
    // deltaY -1000 zooms in by e (the most one event may), to about 7.4 slots.
    const e = wheel(r, 0, { deltaY: -1000, ctrlKey: true });
    expect(e.defaultPrevented).toBe(true);
    frames.flush();
    expect(status(r)).toMatch(/^ranks 1–8 shown \(8 of 20 points\)/);
    wheel(r, 0, { deltaY: 500, ctrlKey: true });
    frames.flush();
    expect(range(r)).toBe('ranks 1–20');
    wheel(r, 1, { deltaY: -500, metaKey: true });
    frames.flush();
    expect(range(r)).toBe('ranks 13–20');
    wheel(r, 1, { deltaY: 500, metaKey: true });
    wheel(r, 0.5, { deltaY: -500, ctrlKey: true });
    frames.flush();
    expect(range(r)).toBe('ranks 7–14');
    expect(pointIndices(r)).toHaveLength(8);
  });

  it('zooms less for a small step', () => {
    const r = render(fixture(20));
    wheel(r, 0, { deltaY: -100, ctrlKey: true }); // by e^0.2: 16.4 slots
    frames.flush();
    expect(range(r)).toBe('ranks 1–17');
  });

  it('pans with shift or a horizontal wheel', () => {
    const r = render(fixture(20));
    key(r, '+');
    const e = wheel(r, 0.5, { deltaY: PLOT_W / 2, shiftKey: true }); // half the plot: 5 slots
    expect(e.defaultPrevented).toBe(true);
    frames.flush();
    expect(range(r)).toBe('ranks 11–20');
    wheel(r, 0.5, { deltaX: -PLOT_W, deltaY: 3 });
    frames.flush();
    expect(range(r)).toBe('ranks 1–10');
  });

  it('leaves a plain vertical wheel, and any wheel outside the plot, to scroll the page', () => {
    const r = render(fixture(20));
    key(r, '+');
    expect(wheel(r, 0.5, { deltaY: 200 }).defaultPrevented).toBe(false);
    expect(wheel(r, -0.05, { deltaY: -500, ctrlKey: true }).defaultPrevented).toBe(false);
    expect(wheel(r, 1.05, { deltaY: 200, shiftKey: true }).defaultPrevented).toBe(false);
    frames.flush();
    expect(range(r)).toBe('ranks 6–15');
  });
});

describe('pointer', () => {
  it('shows the point under the pointer, and hides it when the pointer leaves', () => {
    const r = render(fixture(20));
    pointer(r, 'pointermove', plotX(3.5 / 20));
    expect(tooltipTitle(r)).toBe('digit-22');
    pointer(r, 'pointermove', plotX(12.5 / 20));
    expect(tooltipTitle(r)).toBe('digit-15');
    pointer(r, 'pointerleave', 0);
    expect(tooltipTitle(r)).toBeNull();
  });

  it('pans by dragging when zoomed in', () => {
    const r = render(fixture(20));
    const svg = $(r, 'svg.dvl-svg');
    key(r, '+');
    pointer(r, 'pointerdown', plotX(0.5));
    expect(svg.classList.contains('dvl-dragging')).toBe(true);
    pointer(r, 'pointermove', plotX(0)); // half the plot to the left: 5 slots later
    frames.flush();
    expect(range(r)).toBe('ranks 11–20');
    expect(tooltipTitle(r)).toBeNull(); // dragging, not hovering
    pointer(r, 'pointermove', plotX(1)); // half the plot right of the start: 5 slots earlier
    frames.flush();
    expect(range(r)).toBe('ranks 1–10');
    pointer(r, 'pointerup', plotX(1));
    expect(svg.classList.contains('dvl-dragging')).toBe(false);
    pointer(r, 'pointermove', plotX(0.05)); // a hover again: no pan
    frames.flush();
    expect(range(r)).toBe('ranks 1–10');
    expect(tooltipTitle(r)).toBe('digit-28');
  });

  it('does not drag when everything is visible, or with another button', () => {
    const r = render(fixture(20));
    const svg = $(r, 'svg.dvl-svg');
    pointer(r, 'pointerdown', plotX(0.5));
    expect(svg.classList.contains('dvl-dragging')).toBe(false);
    key(r, '+');
    pointer(r, 'pointerdown', plotX(0.5), 2);
    expect(svg.classList.contains('dvl-dragging')).toBe(false);
    pointer(r, 'pointermove', plotX(0));
    frames.flush();
    expect(range(r)).toBe('ranks 6–15');
  });

  it('ends a drag on pointercancel', () => {
    const r = render(fixture(20));
    const svg = $(r, 'svg.dvl-svg');
    key(r, '+');
    pointer(r, 'pointerdown', plotX(0.5));
    pointer(r, 'pointercancel', plotX(0.5));
    expect(svg.classList.contains('dvl-dragging')).toBe(false);
    pointer(r, 'pointermove', plotX(0));
    frames.flush();
    expect(range(r)).toBe('ranks 6–15');
  });
});

describe('toolbar zoom and pan buttons', () => {
  it('zoom in and out on the next frame', () => {
    const r = render(fixture(20));
    click(r, 'Zoom in (+)');
    expect(range(r)).toBe('ranks 1–20'); // drawn on the next frame
    frames.flush();
    expect(range(r)).toBe('ranks 6–15');
    expect(pointIndices(r)).toHaveLength(10);
    click(r, 'Zoom in (+)');
    frames.flush();
    expect(range(r)).toBe('ranks 8–13');
    click(r, 'Zoom out (-)');
    click(r, 'Zoom out (-)');
    frames.flush();
    expect(range(r)).toBe('ranks 1–20');
    expect(pointIndices(r)).toHaveLength(20);
  });

  it('pan by half a window, and show all points', () => {
    const r = render(fixture(20));
    click(r, 'Zoom in (+)');
    click(r, 'Pan right (Page Down)');
    frames.flush();
    expect(range(r)).toBe('ranks 11–20');
    click(r, 'Pan left (Page Up)');
    frames.flush();
    expect(range(r)).toBe('ranks 6–15');
    click(r, 'Pan left (Page Up)');
    frames.flush();
    expect(range(r)).toBe('ranks 1–10');
    click(r, 'Show all points');
    expect(range(r)).toBe('ranks 1–20');
    expect(pointIndices(r)).toHaveLength(20);
  });

  it('show with the chart only', () => {
    const r = render(fixture(20));
    const zoom = $(r, '.dvl-zoom');
    expect(zoom.hidden).toBe(false);
    click(r, 'Show the image grid');
    expect(zoom.hidden).toBe(true);
    click(r, 'Show the table of values');
    expect(zoom.hidden).toBe(true);
    click(r, 'Show the chart of values');
    expect(zoom.hidden).toBe(false);
  });
});

describe('level, sort, subset and k', () => {
  it('widen the bars with the level, keeping the zoom', () => {
    const r = render(fixture(20));
    key(r, '+');
    const first = () => Number($(r, '.dvl-errorbar').getAttribute('data-halfwidth'));
    expect(first()).toBeCloseTo(Z_TABLE[95] * 0.15, 9); // slot 5: index 18, stderr 0.15
    choose(r, 'select.dvl-level', '99');
    expect(first()).toBeCloseTo(Z_TABLE[99] * 0.15, 9);
    expect(status(r)).toBe('ranks 6–15 shown (10 of 20 points) · bars: 99% intervals');
    choose(r, 'select.dvl-level', '90');
    expect(first()).toBeCloseTo(Z_TABLE[90] * 0.15, 9);
    expect(status(r)).toMatch(/90% intervals$/);
  });

  it('sort the points, and reset the zoom', () => {
    const r = render(fixture(20));
    const title = () => r.node.querySelectorAll('.dvl-axis-title')[0].textContent;
    key(r, '+');
    choose(r, 'select.dvl-sort', 'ascending');
    expect(range(r)).toBe('ranks 1–20');
    expect(pointIndices(r).slice(0, 3)).toEqual([29, 27, 25]);
    expect(pointIndices(r).slice(-2)).toEqual([26, 28]);
    expect(title()).toBe('rank (1 = highest value; lowest first)');
    expect(rankTicks(r)).toEqual(['20', '15', '10', '5']); // the same ranks, right to left
    key(r, 'ArrowRight');
    // The lowest value keeps its rank: 20, counted from the highest, in both directions.
    expect($(r, '.dvl-tip-rank').textContent).toBe('20 of 20 (1 = highest)');
    choose(r, 'select.dvl-sort', 'original');
    expect(status(r)).toMatch(/^points 1–20 shown \(all 20 points\)/);
    expect(pointIndices(r)).toEqual(Array.from({ length: 20 }, (_, i) => 10 + i));
    expect(title()).toBe('listed points in training order');
    expect(tooltipTitle(r)).toBeNull(); // the active point goes with the old order
    choose(r, 'select.dvl-sort', 'descending');
    expect(pointIndices(r).slice(0, 3)).toEqual([28, 26, 24]);
    expect(title()).toBe('rank (1 = highest value; highest first)');
  });

  it('show the top or bottom k, with k from its field', () => {
    const r = render(fixture(20));
    const k = $<HTMLInputElement>(r, 'input.dvl-k');
    const setK = (v: string) => {
      k.value = v;
      k.dispatchEvent(new Event('change'));
    };
    expect(k.disabled).toBe(true);
    choose(r, 'select.dvl-subset', 'top');
    expect(k.disabled).toBe(false);
    expect(pointIndices(r)).toEqual([28, 26, 24, 22, 20, 18, 16, 14, 12, 10]);
    expect(range(r)).toBe('ranks 1–10');
    setK('3');
    expect(pointIndices(r)).toEqual([28, 26, 24]);
    expect(status(r)).toMatch(/^ranks 1–3 shown \(all 3 points\)/);
    choose(r, 'select.dvl-subset', 'bottom');
    expect(pointIndices(r)).toEqual([25, 27, 29]);
    expect(range(r)).toBe('ranks 18–20');
    setK('0'); // not a k: the field goes back to the last one
    expect(k.value).toBe('3');
    expect(pointIndices(r)).toEqual([25, 27, 29]);
    setK('2.7');
    expect(pointIndices(r)).toEqual([27, 29]);
    choose(r, 'select.dvl-subset', 'all');
    expect(k.disabled).toBe(true);
    expect(pointIndices(r)).toHaveLength(20);
  });
});

describe('paging', () => {
  it('shows the image grid 60 cells at a time', () => {
    const r = render(fixture(130));
    click(r, 'Show the image grid');
    const grid = $(r, '.dvl-gridview');
    const cells = () => grid.querySelectorAll('.dvl-cell');
    const more = () => grid.querySelector<HTMLButtonElement>('button.dvl-button');
    expect(cells()).toHaveLength(60);
    expect(cells()[0].getAttribute('data-index')).toBe('138'); // the highest value first
    expect(more()!.textContent).toBe('Show 60 more');
    more()!.click();
    expect(cells()).toHaveLength(120);
    expect(more()!.textContent).toBe('Show 10 more');
    more()!.click();
    expect(cells()).toHaveLength(130);
    expect(cells()[129].getAttribute('data-index')).toBe('139'); // the lowest last
    expect(more()).toBeNull();
    choose(r, 'select.dvl-level', '99'); // the same points: the pages stay
    expect(cells()).toHaveLength(130);
    choose(r, 'select.dvl-sort', 'ascending'); // other points first: back to one page
    expect(cells()).toHaveLength(60);
    expect(cells()[0].getAttribute('data-index')).toBe('139');
  });

  it('shows the table 100 rows at a time', () => {
    const r = render(fixture(250));
    click(r, 'Show the table of values');
    const table = $(r, '.dvl-tableview');
    const rows = () => table.querySelectorAll('tbody tr');
    const more = () => table.querySelector<HTMLButtonElement>('button.dvl-button');
    expect(rows()).toHaveLength(100);
    expect(more()!.textContent).toBe('Show 100 more rows');
    more()!.click();
    expect(rows()).toHaveLength(200);
    expect(rows()[199].querySelector('td')!.textContent).toBe('200'); // the rank column
    expect(more()!.textContent).toBe('Show 50 more rows');
    more()!.click();
    expect(rows()).toHaveLength(250);
    expect(more()).toBeNull();
    choose(r, 'select.dvl-subset', 'top'); // k = 10
    expect(rows()).toHaveLength(10);
    expect(more()).toBeNull();
    choose(r, 'select.dvl-subset', 'all');
    expect(rows()).toHaveLength(100);
  });

  it('offers the last row of the table as one row', () => {
    const r = render(fixture(101));
    click(r, 'Show the table of values');
    const more = $(r, '.dvl-tableview button.dvl-button');
    expect(more.textContent).toBe('Show 1 more row');
    expect(more.getAttribute('aria-label')).toBe('Show more rows');
  });
});

describe('missing values', () => {
  it('keep the status range to the ranked points', () => {
    const r = render(withMissing(6, 1));
    expect(status(r)).toBe(
      'ranks 1–5 and 1 missing value shown (all 6 points) · bars: 95% intervals'
    );
    choose(r, 'select.dvl-sort', 'ascending'); // missing values still go last
    expect(range(r)).toBe('ranks 1–5 and 1 missing value');
    choose(r, 'select.dvl-sort', 'original'); // positions, which every point has
    expect(range(r)).toBe('points 1–6');
  });

  it('are counted when the window shows nothing else', () => {
    const r = render(withMissing(12, 6));
    expect(range(r)).toBe('ranks 1–6 and 6 missing values');
    key(r, '+');
    key(r, '+');
    key(r, 'End');
    expect(status(r)).toMatch(/^5 missing values shown \(5 of 12 points\)/);
    key(r, 'Home');
    expect(range(r)).toBe('ranks 1–5');
  });

  it('are labelled on the rank axis as missing', () => {
    const r = render(withMissing(6, 1));
    expect(rankTicks(r)).toEqual(['1', '2', '3', '4', '5', 'missing']);
    choose(r, 'select.dvl-sort', 'ascending'); // ranks run the other way, missing stays last
    expect(rankTicks(r)).toEqual(['5', '4', '3', '2', '1', 'missing']);
    choose(r, 'select.dvl-sort', 'original'); // positions, which every point has
    expect(rankTicks(r)).toEqual(['1', '2', '3', '4', '5', '6']);
  });

  // 1,000 points in the default 656-pixel plot, one mark per 2 pixels: groups of 4 slots.
  it('put the highlight of a group with no value in the middle of the plot', () => {
    const r = render(withMissing(1000, 8)); // slots 992..999 missing
    pointer(r, 'pointermove', plotX(997.5 / 1000)); // slot 997, in the group of 996..999
    expect(tooltipTitle(r)).toBe('digit-1007'); // the point under the pointer
    expect($(r, '.dvl-tip-group').textContent).toBe('4 points (4 missing values)');
    expect(r.node.querySelectorAll('.dvl-guide')).toHaveLength(1);
    expect(r.node.querySelectorAll('.dvl-ring')).toHaveLength(0);
    expect($(r, '.dvl-tooltip').style.top).toMatch(/^\d+(\.\d+)?px$/);
    expect($(r, '.dvl-tooltip').style.left).toMatch(/^\d+(\.\d+)?px$/);
    expect(nanAttributes(r)).toEqual([]);
  });

  it('say plainly that the point has no value, in the tooltip and the live region', () => {
    const r = render(withMissing(1000, 8)); // slots 992..999 missing
    pointer(r, 'pointermove', plotX(997.5 / 1000));
    expect($(r, '.dvl-tip-value').textContent).toBe('missing (no finite value)');
    expect(r.node.querySelector('.dvl-tip-rank')).toBeNull();
    expect($(r, '.dvl-tip-note').textContent).toBe('zoom in to tell them apart');
    expect($(r, '.dvl-tooltip').textContent).not.toContain('NaN');
    expect($(r, '.dvl-live').textContent).toBe(
      'index 1007, value n/a; one of 4 points (4 missing values) drawn as one mark'
    );
    // A point with a value in a group: its own value and rank, and a ring on it.
    pointer(r, 'pointermove', plotX(990.5 / 1000)); // slot 990, rank 991
    expect($(r, '.dvl-tip-rank').textContent).toBe('991 of 992 (1 = highest)');
    expect($(r, '.dvl-tip-group').textContent).toBe(
      '4 points (ranks 989 to 992)'
    );
    expect(r.node.querySelectorAll('.dvl-ring')).toHaveLength(1);
    expect(nanAttributes(r)).toEqual([]);
  });

  it('give the highlight of a group with no value the middle of the plot as its place', () => {
    const state = createState();
    state.data = parsePayload(withMissing(1000, 8));
    recompute(state);
    const chart = new ErrorBarChart('nan-test', state);
    const geo = geometry(0);
    chart.draw(geo);
    const group = chart.markAt(997)!;
    expect(group).toMatchObject({ first: 996, last: 1000, n: 0 });
    expect(chart.highlight(group, geo, 997)).toEqual({
      cx: MARGIN.left + (998 / 1000) * geo.plotW,
      cy: MARGIN.top + geo.plotH / 2
    });
    const mixed = chart.markAt(993)!; // slots 992..995: no value; 988..991 all values
    expect(mixed.n).toBe(0);
    expect(chart.markAt(990)!.n).toBe(4);
    expect(Number.isFinite(chart.highlight(chart.markAt(990)!, geo, 990).cy)).toBe(true);
  });

  it('are named in the group line of the tooltip', () => {
    const r = render(withMissing(1000, 10)); // slots 990..999 missing
    expect(status(r)).toMatch(/^ranks 1–990 and 10 missing values shown \(all 1,000 points\)/);
    pointer(r, 'pointermove', plotX(989.5 / 1000)); // the group of slots 988..991
    expect($(r, '.dvl-tip-group').textContent).toBe(
      '4 points (ranks 989 to 990 and 2 missing values)'
    );
    pointer(r, 'pointermove', plotX(981.5 / 1000));
    expect($(r, '.dvl-tip-group').textContent).toBe('4 points (ranks 981 to 984)');
    // the fixture's values alternate in sign with the index: the group spans both
    expect($(r, '.dvl-tip-itsvalues').textContent).toMatch(/^-?[\d.]+ … -?[\d.]+$/);
  });

  it('leave a single rank in a group or window named once', () => {
    const r = render(withMissing(1000, 11)); // slots 989..999 missing
    pointer(r, 'pointermove', plotX(988.5 / 1000)); // slots 988..991: only 988 has a value
    expect($(r, '.dvl-tip-group').textContent).toBe('4 points (rank 989 and 3 missing values)');
    unmountAll();
    const s = render(withMissing(12, 6)); // slots 6..11 missing
    key(s, '+');
    key(s, '+');
    key(s, 'End'); // slots 7..11
    expect(range(s)).toBe('5 missing values');
    for (let i = 0; i < 6; i++) {
      key(s, 'ArrowLeft'); // to slot 5: the window moves to slots 5..9
    }
    expect(tooltipTitle(s)).toBe('digit-15');
    expect(range(s)).toBe('rank 6 and 4 missing values');
  });
});

describe('a single point', () => {
  it('is one rank, or one point in training order', () => {
    const r = render(fixture(1));
    expect(status(r)).toBe('rank 1 shown (all 1 point) · bars: 95% intervals');
    expect($(r, '.dvl-summary').textContent).toMatch(/^1 point · /);
    key(r, 'ArrowRight');
    expect($(r, '.dvl-tip-rank').textContent).toBe('1 of 1 (1 = highest)');
    choose(r, 'select.dvl-sort', 'original');
    expect(status(r)).toBe('point 1 shown (all 1 point) · bars: 95% intervals');
  });

  it('with a missing value has no rank', () => {
    const r = render(withMissing(1, 1));
    expect(status(r)).toBe('1 missing value shown (all 1 point) · bars: 95% intervals');
    expect(rankTicks(r)).toEqual(['missing']);
  });
});

describe('drawing', () => {
  it('draws the chart once for a zoom key, at once', () => {
    const r = render(fixture(20));
    const draw = vi.spyOn(ErrorBarChart.prototype, 'draw');
    for (const k of ['+', '-', '=', '_']) {
      draw.mockClear();
      key(r, k);
      expect(draw).toHaveBeenCalledTimes(1); // at once, not a frame later
      expect(frames.requested()).toBe(0); // nor asks for a frame
      frames.flush();
      expect(draw).toHaveBeenCalledTimes(1);
    }
    expect(range(r)).toBe('ranks 1–20');
  });

  it('draws the chart once for a key pressed while a frame is pending', () => {
    const r = render(fixture(20));
    const draw = vi.spyOn(ErrorBarChart.prototype, 'draw');
    click(r, 'Zoom in (+)');
    key(r, 'PageDown'); // draws now, with the zoom: the frame has nothing left to do
    expect(range(r)).toBe('ranks 11–20');
    frames.flush();
    expect(draw).toHaveBeenCalledTimes(1);
  });
});
