/**
 * The SVG error-bar chart: axes with value and rank ticks, one point with its error bar per
 * slot (or grouped ranges and bands when points outnumber pixels), the status line and
 * legend under it, and the highlight of the active mark. It only draws; the renderer decides
 * when.
 */
import { h, s } from './dom';
import { slotLabel, slotNumber, slotRange } from './format';
import { CHART_HEIGHT, IGeometry, MARGIN, xOf, yOf } from './geometry';
import { IViewState } from './state';
import {
  axisTicks,
  buildMarks,
  countOf,
  formatCount,
  formatValue,
  halfWidth,
  IMark,
  niceTicks,
  visibleSlots
} from './valuation';

/** At most one mark per this many pixels of plot width; beyond that, points are grouped. */
const PIXELS_PER_MARK = 2;
/** About one slot tick per this many pixels. */
const PIXELS_PER_TICK = 90;

export class ErrorBarChart {
  /** The focusable `.dvl-chart` holding the SVG. */
  readonly node: HTMLDivElement;
  readonly svg: SVGSVGElement;
  /** The `.dvl-status` line that goes under the chart. */
  readonly status: HTMLDivElement;

  /**
   * `id` is the renderer's unique id (for the clip path and the live region the chart is
   * described by); `state` is read on every draw.
   */
  constructor(id: string, state: IViewState) {
    this._state = state;
    this.node = h('div', 'dvl-chart');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'group');
    this.node.setAttribute('data-lm-suppress-shortcuts', 'true');
    this.node.setAttribute(
      'aria-label',
      'Chart of data values. Left and right arrow keys step through the points, ' +
        'plus and minus zoom, Page Up and Page Down pan, Home and End jump to the ends.'
    );
    this.node.setAttribute('aria-describedby', `${id}-live`);
    this.svg = s('svg', { class: 'dvl-svg', height: CHART_HEIGHT });
    const clipId = `${id}-clip`;
    const defs = s('defs', {});
    this._clipRect = s('rect', { x: 0, y: 0, width: 0, height: 0 });
    const clip = s('clipPath', { id: clipId });
    clip.appendChild(this._clipRect);
    defs.appendChild(clip);
    this._axes = s('g', { class: 'dvl-axes' });
    this._marksGroup = s('g', { class: 'dvl-marks', 'clip-path': `url(#${clipId})` });
    this._hoverGroup = s('g', { class: 'dvl-hover', 'clip-path': `url(#${clipId})` });
    this.svg.append(defs, this._axes, this._marksGroup, this._hoverGroup);
    this.node.appendChild(this.svg);

    this.status = h('div', 'dvl-status');
    this._statusText = h('span', 'dvl-status-text');
    const legend = h('span', 'dvl-legend');
    legend.setAttribute('aria-hidden', 'true'); // the colours repeat what the values say
    for (const [cls, text] of [
      ['dvl-swatch', 'value ≥ 0'],
      ['dvl-swatch dvl-negative', 'value < 0']
    ]) {
      const item = h('span', 'dvl-legend-item');
      item.append(h('span', cls), document.createTextNode(text));
      legend.appendChild(item);
    }
    this.status.append(this._statusText, legend);
  }

  /** Draw axes, marks and the status line for the state's data (which must be set). */
  draw(geo: IGeometry): void {
    const state = this._state;
    const d = state.data!;
    const { width, plotW, plotH } = geo;
    this.svg.setAttribute('width', String(width));
    this.svg.setAttribute('viewBox', `0 0 ${width} ${CHART_HEIGHT}`);
    for (const [k, v] of Object.entries({
      x: MARGIN.left,
      y: MARGIN.top - 6,
      width: plotW,
      height: plotH + 12
    })) {
      this._clipRect.setAttribute(k, String(v));
    }
    const n = state.shown.length;
    const [first, last] = visibleSlots(state.window, n);
    const budget = Math.max(10, Math.floor(plotW / PIXELS_PER_MARK));
    this._marks = buildMarks(d.points, state.shown, first, last, state.level, budget);
    this._drawAxes(plotW, plotH, first, last);
    this._drawMarks(plotW, plotH);
    const grouped = this._marks.length && this._marks[0].pos < 0;
    const unit = state.sort === 'original' ? 'point' : 'rank';
    const noun = d.total > d.points.length ? 'listed point' : 'point';
    const visible = last - first;
    this._statusText.textContent =
      n === 0
        ? 'no points to show'
        : `${slotRange(state, first, last, unit)} shown ` +
          `(${visible === n ? 'all ' : `${formatCount(visible)} of `}${countOf(n, noun)})` +
          (grouped
            ? ` · ${formatCount(this._marks.length)} groups of ${
                this._marks[0].last - this._marks[0].first
              } points (zoom in for single points)`
            : '') +
          ` · bars: ${state.level}% intervals`;
  }

  /** The mark drawn for a display slot. */
  markAt(slot: number): IMark | null {
    const marks = this._marks;
    if (!marks.length || slot < marks[0].first || slot >= marks[marks.length - 1].last) {
      return null;
    }
    const size = marks[0].last - marks[0].first;
    return marks[Math.min(marks.length - 1, Math.floor((slot - marks[0].first) / size))];
  }

  /** Remove the highlight of the active mark. */
  clearHighlight(): void {
    this._hoverGroup.replaceChildren();
  }

  /**
   * Highlight a mark (a guide line, and a ring on a single point with a value); returns the
   * point in SVG coordinates the tooltip should sit beside.
   */
  highlight(m: IMark, geo: IGeometry, slot: number): { cx: number; cy: number } {
    const state = this._state;
    const { plotW, plotH } = geo;
    const cx = xOf(state.window, (m.first + m.last) / 2, plotW);
    this._hoverGroup.appendChild(
      s('line', {
        class: 'dvl-guide',
        x1: cx,
        x2: cx,
        y1: MARGIN.top,
        y2: MARGIN.top + plotH
      })
    );
    // A point or group without any value has no place on the value axis: the middle of the
    // plot stands in for it (for the tooltip), and there is no ring.
    let cy = MARGIN.top + plotH / 2;
    if (m.pos >= 0) {
      const p = state.data!.points[m.pos];
      if (!Number.isNaN(p.value)) {
        cy = yOf(state.domain, p.value, plotH);
        this._hoverGroup.appendChild(s('circle', { class: 'dvl-ring', cx, cy, r: 6 }));
      }
    } else {
      // A group: the ring marks the point under the pointer, which the tooltip describes.
      const p = state.data!.points[state.shown[slot]];
      cy = yOf(state.domain, Number.isNaN(p.value) ? m.mean : p.value, plotH);
      if (!Number.isNaN(p.value)) {
        this._hoverGroup.appendChild(s('circle', { class: 'dvl-ring', cx, cy, r: 5 }));
      }
    }
    if (!Number.isFinite(cy)) {
      cy = MARGIN.top + plotH / 2;
    }
    return { cx, cy };
  }

  private _drawAxes(plotW: number, plotH: number, first: number, last: number): void {
    const state = this._state;
    const x = (slot: number) => xOf(state.window, slot, plotW);
    const y = (v: number) => yOf(state.domain, v, plotH);
    const g = this._axes;
    g.replaceChildren();
    const [lo, hi] = state.domain;
    for (const t of niceTicks(lo, hi, 6)) {
      const ty = y(t);
      g.appendChild(
        s('line', {
          class: t === 0 ? 'dvl-zero' : 'dvl-gridline',
          x1: MARGIN.left,
          x2: MARGIN.left + plotW,
          y1: ty,
          y2: ty
        })
      );
      const label = s('text', { class: 'dvl-tick', x: MARGIN.left - 6, y: ty, dy: '0.32em' });
      label.setAttribute('text-anchor', 'end');
      label.textContent = formatValue(t);
      g.appendChild(label);
    }
    const bottom = MARGIN.top + plotH;
    g.appendChild(
      s('line', {
        class: 'dvl-axis',
        x1: MARGIN.left,
        x2: MARGIN.left + plotW,
        y1: bottom,
        y2: bottom
      })
    );
    // Slot ticks: ranks (or places in training order) that are multiples of one round
    // step, so they are evenly spaced on either side of a gap and in both directions.
    const count = Math.max(2, Math.round(plotW / PIXELS_PER_TICK));
    for (const [slot] of axisTicks(i => slotNumber(state, i), first, last, count)) {
      const tx = x(slot + 0.5);
      if (tx < MARGIN.left - 1 || tx > MARGIN.left + plotW + 1) {
        continue;
      }
      g.appendChild(s('line', { class: 'dvl-axis', x1: tx, x2: tx, y1: bottom, y2: bottom + 4 }));
      const label = s('text', { class: 'dvl-tick dvl-slot-tick', x: tx, y: bottom + 16 });
      label.setAttribute('text-anchor', 'middle');
      label.textContent = slotLabel(state, slot);
      g.appendChild(label);
    }
    for (const [slot, size] of state.gaps) {
      const gx = x(slot);
      if (gx < MARGIN.left || gx > MARGIN.left + plotW) {
        continue;
      }
      g.appendChild(s('line', { class: 'dvl-gap', x1: gx, x2: gx, y1: MARGIN.top, y2: bottom }));
      const label = s('text', { class: 'dvl-gap-label', x: gx + 4, y: MARGIN.top + 10 });
      label.textContent = `${formatCount(size)} not listed`;
      g.appendChild(label);
    }
    const xTitle = s('text', {
      class: 'dvl-axis-title',
      x: MARGIN.left + plotW / 2,
      y: CHART_HEIGHT - 4
    });
    xTitle.setAttribute('text-anchor', 'middle');
    xTitle.textContent =
      state.sort === 'original'
        ? 'listed points in training order'
        : `rank (1 = highest value; ${state.sort === 'ascending' ? 'lowest' : 'highest'} first)`;
    const yTitle = s('text', {
      class: 'dvl-axis-title',
      transform: `translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)`
    });
    yTitle.setAttribute('text-anchor', 'middle');
    yTitle.textContent = `${state.data!.method} value`;
    g.append(xTitle, yTitle);
  }

  private _drawMarks(plotW: number, plotH: number): void {
    const state = this._state;
    const d = state.data!;
    const x = (slot: number) => xOf(state.window, slot, plotW);
    const y = (v: number) => yOf(state.domain, v, plotH);
    const g = this._marksGroup;
    const frag = document.createDocumentFragment();
    const slotW = plotW / state.window.span;
    const r = Math.min(4, Math.max(1.5, slotW * 0.3));
    const cap = slotW >= 8 ? Math.min(4, slotW * 0.3) : 0;
    const posBands: string[] = [];
    const negBands: string[] = [];
    const posRanges: string[] = [];
    const negRanges: string[] = [];
    let groups = 0;
    let groupW = 0;
    for (const m of this._marks) {
      if (m.n === 0) {
        continue;
      }
      if (m.pos >= 0) {
        const p = d.points[m.pos];
        const cx = x(m.first + 0.5);
        const neg = p.value < 0 ? ' dvl-negative' : '';
        if (p.stderr > 0) {
          const y1 = y(m.lo);
          const y2 = y(m.hi);
          const caps = cap ? `M${cx - cap} ${y1}H${cx + cap}M${cx - cap} ${y2}H${cx + cap}` : '';
          frag.appendChild(
            s('path', {
              class: `dvl-errorbar${neg}`,
              d: `M${cx} ${y1}V${y2}${caps}`,
              'data-index': p.index,
              'data-halfwidth': halfWidth(p, state.level)
            })
          );
        }
        frag.appendChild(
          s('circle', {
            class: `dvl-point${neg}`,
            cx,
            cy: y(p.value),
            r,
            'data-index': p.index,
            'data-slot': m.first
          })
        );
      } else {
        // Groups: all bands in one path and the value ranges in two (by sign of the mean),
        // so a full view of 10,000 points costs a handful of elements.
        const x1 = x(m.first);
        const w = Math.max(1, x(m.last) - x1 - 0.5);
        const top = y(m.hi);
        const neg = m.mean < 0;
        (neg ? negBands : posBands).push(`M${x1} ${top}h${w}V${y(m.lo)}h${-w}z`);
        // The range of values, at least 2 px tall so a group of equal values still shows.
        const cx = x1 + w / 2;
        let y1 = y(m.max);
        let y2 = y(m.min);
        if (y2 - y1 < 2) {
          const mid = (y1 + y2) / 2;
          [y1, y2] = [mid - 1, mid + 1];
        }
        (neg ? negRanges : posRanges).push(`M${cx} ${y1}V${y2}`);
        groupW = w;
        groups++;
      }
    }
    if (groups) {
      frag.appendChild(
        s('path', { class: 'dvl-band', d: posBands.join(''), 'data-groups': groups })
      );
      frag.appendChild(s('path', { class: 'dvl-band dvl-negative', d: negBands.join('') }));
      // The value ranges are what a group shows first: as wide as the group allows.
      const style = `stroke-width:${Math.max(1.5, Math.min(3, groupW * 0.8)).toFixed(2)}px`;
      frag.appendChild(s('path', { class: 'dvl-range', d: posRanges.join(''), style }));
      frag.appendChild(
        s('path', { class: 'dvl-range dvl-negative', d: negRanges.join(''), style })
      );
    }
    g.replaceChildren(frag);
  }

  private _state: IViewState;
  private _statusText: HTMLSpanElement;
  private _marks: IMark[] = [];
  private _clipRect: SVGRectElement;
  private _axes: SVGGElement;
  private _marksGroup: SVGGElement;
  private _hoverGroup: SVGGElement;
}
