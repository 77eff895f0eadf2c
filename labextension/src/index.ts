/**
 * A mime renderer for dvl_jupyter's valuation results
 * (`application/vnd.dvl-jupyter.valuation.v1+json`): an SVG chart of the values with error
 * bars, and a grid of the points' images. One widget, one factory, one extension, as in
 * jupyterlab/extension-examples' mimerenderer. The logic that needs no DOM lives in
 * ./valuation and is unit-tested there.
 *
 * Safety: every string from the payload reaches the page through `textContent`, SVG text
 * nodes or element properties; the renderer never parses HTML, so it is marked `safe` and
 * draws saved results in untrusted notebooks too.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import {
  buildMarks,
  clampWindow,
  CONFIDENCE_LEVELS,
  ConfidenceLevel,
  describeMark,
  describePoint,
  displayRank,
  formatCount,
  formatValue,
  fullWindow,
  halfWidth,
  IMark,
  IValuation,
  IWindow,
  MIME_TYPE,
  niceTicks,
  orderPoints,
  panWindow,
  parsePayload,
  revealSlot,
  selectSubset,
  settingsRows,
  SortOrder,
  SubsetMode,
  summaryLine,
  valueDomain,
  View,
  visibleSlots,
  zoomWindow
} from './valuation';

export { MIME_TYPE } from './valuation';

const CLASS_NAME = 'dvl-Valuation';
const SVG_NS = 'http://www.w3.org/2000/svg';
const CHART_HEIGHT = 300;
const MARGIN = { top: 12, right: 28, bottom: 40, left: 64 };
/** At most one mark per this many pixels of plot width; beyond that, points are grouped. */
const PIXELS_PER_MARK = 3;
const DEFAULT_WIDTH = 720;
const GRID_PAGE = 60;
const TABLE_PAGE = 100;
const ZOOM_STEP = 0.5;

const SORT_LABELS: Record<SortOrder, string> = {
  descending: 'value, high to low',
  ascending: 'value, low to high',
  original: 'training order'
};
const SUBSET_LABELS: Record<SubsetMode, string> = {
  all: 'all points',
  top: 'top k',
  bottom: 'bottom k'
};

let instanceCount = 0;

/** An HTML element with a class and, optionally, text (always as text, never as HTML). */
function h<K extends keyof HTMLElementTagNameMap>(
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
function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

function button(text: string, label: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', 'dvl-button', text);
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.title = label;
  b.addEventListener('click', onClick);
  return b;
}

function select<T extends string | number>(
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

/**
 * The renderer: header, toolbar, chart (or image grid) and a tooltip.
 */
export class ValuationRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._mimeType = options.mimeType;
    this._id = `dvl-valuation-${++instanceCount}`;
    this.addClass(CLASS_NAME);
    this._build();
  }

  /** Render the payload; keeps the user's level, sort and subset across re-renders. */
  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    try {
      this._data = parsePayload(model.data[this._mimeType]);
    } catch (err) {
      this._data = null;
      this._error.textContent = `Cannot show this valuation result: ${
        err instanceof Error ? err.message : String(err)
      }`;
      this._error.hidden = false;
      this._body.hidden = true;
      return Promise.resolve();
    }
    this._error.hidden = true;
    this._body.hidden = false;
    const d = this._data;
    this._title.textContent = d.method;
    this._summary.textContent = summaryLine(d);
    this._fillSettings();
    this._k.max = String(Math.max(1, d.points.length));
    this._gridButton.title = d.hasImages
      ? 'Images of the points, in the chart order'
      : 'No images in this result: the grid shows labels and values';
    this._recompute();
    if (d.view && !this._viewChosen) {
      this._setView(d.view);
    } else {
      this._setView(this._view);
    }
    return Promise.resolve();
  }

  protected onAfterAttach(): void {
    if (typeof ResizeObserver !== 'undefined') {
      this._resizeObserver = new ResizeObserver(entries => {
        // The width comes from the observer, so drawing never forces a layout.
        const width = Math.round(entries[entries.length - 1].contentRect.width);
        if (width > 0 && width !== this._width) {
          this._width = width;
          this._schedule();
        }
      });
      this._resizeObserver.observe(this._chart);
    }
    this._schedule();
  }

  protected onBeforeDetach(): void {
    this._resizeObserver?.disconnect();
    this._resizeObserver = null;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    if (this._frame) {
      cancelAnimationFrame(this._frame);
    }
    this._resizeObserver?.disconnect();
    super.dispose();
  }

  // ---------------------------------------------------------------- building the DOM

  private _build(): void {
    const root = this.node;
    this._error = h('div', 'dvl-error');
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    root.appendChild(this._error);

    this._body = h('div', 'dvl-body');
    root.appendChild(this._body);

    const header = h('div', 'dvl-header');
    this._title = h('span', 'dvl-title');
    this._summary = h('span', 'dvl-summary');
    header.append(this._title, this._summary);
    this._settings = h('details', 'dvl-settings');
    header.appendChild(this._settings);
    this._body.appendChild(header);

    const toolbar = h('div', 'dvl-toolbar');
    toolbar.setAttribute('role', 'toolbar');
    toolbar.setAttribute('aria-label', 'Valuation chart controls');
    toolbar.setAttribute('data-lm-suppress-shortcuts', 'true');

    const views = h('div', 'dvl-group');
    views.setAttribute('role', 'group');
    views.setAttribute('aria-label', 'View');
    const choose = (v: View) => () => {
      this._viewChosen = true;
      this._setView(v);
    };
    this._chartButton = button('Chart', 'Show the chart of values', choose('chart'));
    this._gridButton = button('Images', 'Show the image grid', choose('grid'));
    this._tableButton = button('Table', 'Show the table of values', choose('table'));
    this._chartButton.classList.add('dvl-view-chart');
    this._gridButton.classList.add('dvl-view-grid');
    this._tableButton.classList.add('dvl-view-table');
    views.append(this._chartButton, this._gridButton, this._tableButton);
    toolbar.appendChild(views);

    const [levelField, level] = select(
      'Confidence',
      CONFIDENCE_LEVELS,
      l => `${l}%`,
      this._level,
      l => {
        this._level = l;
        this._recompute(false);
        this._refresh();
      }
    );
    level.classList.add('dvl-level');
    const [sortField, sort] = select(
      'Sort',
      ['descending', 'ascending', 'original'] as const,
      o => SORT_LABELS[o],
      this._sort,
      o => {
        this._sort = o;
        this._recompute();
        this._refresh();
      }
    );
    sort.classList.add('dvl-sort');
    const [subsetField, subset] = select(
      'Show',
      ['all', 'top', 'bottom'] as const,
      m => SUBSET_LABELS[m],
      this._subset,
      m => {
        this._subset = m;
        this._k.disabled = m === 'all';
        this._recompute();
        this._refresh();
      }
    );
    subset.classList.add('dvl-subset');
    this._k = h('input', 'dvl-k');
    this._k.type = 'number';
    this._k.min = '1';
    this._k.value = String(this._kValue);
    this._k.disabled = true;
    this._k.setAttribute('aria-label', 'k, the number of points to show');
    this._k.addEventListener('change', () => {
      const k = Math.floor(Number(this._k.value));
      if (k >= 1) {
        this._kValue = k;
        this._recompute();
        this._refresh();
      } else {
        this._k.value = String(this._kValue);
      }
    });
    subsetField.appendChild(this._k);
    toolbar.append(levelField, sortField, subsetField);

    const zoom = h('div', 'dvl-group dvl-zoom');
    zoom.setAttribute('role', 'group');
    zoom.setAttribute('aria-label', 'Zoom and pan');
    zoom.append(
      button('−', 'Zoom out (-)', () => this._zoom(1 / ZOOM_STEP)),
      button('+', 'Zoom in (+)', () => this._zoom(ZOOM_STEP)),
      button('◀', 'Pan left (Page Up)', () => this._pan(-0.5)),
      button('▶', 'Pan right (Page Down)', () => this._pan(0.5)),
      button('All', 'Show all points', () => {
        this._window = fullWindow(this._shown.length);
        this._draw();
      })
    );
    toolbar.appendChild(zoom);
    this._body.appendChild(toolbar);

    this._chart = h('div', 'dvl-chart');
    this._chart.tabIndex = 0;
    this._chart.setAttribute('role', 'group');
    this._chart.setAttribute('data-lm-suppress-shortcuts', 'true');
    this._chart.setAttribute(
      'aria-label',
      'Chart of data values. Left and right arrow keys step through the points, ' +
        'plus and minus zoom, Page Up and Page Down pan, Home and End jump to the ends.'
    );
    this._chart.setAttribute('aria-describedby', `${this._id}-live`);
    this._svg = s('svg', { class: 'dvl-svg', height: CHART_HEIGHT });
    const clipId = `${this._id}-clip`;
    const defs = s('defs', {});
    this._clipRect = s('rect', { x: 0, y: 0, width: 0, height: 0 });
    const clip = s('clipPath', { id: clipId });
    clip.appendChild(this._clipRect);
    defs.appendChild(clip);
    this._axes = s('g', { class: 'dvl-axes' });
    this._marksGroup = s('g', { class: 'dvl-marks', 'clip-path': `url(#${clipId})` });
    this._hoverGroup = s('g', { class: 'dvl-hover', 'clip-path': `url(#${clipId})` });
    this._svg.append(defs, this._axes, this._marksGroup, this._hoverGroup);
    this._chart.appendChild(this._svg);
    this._body.appendChild(this._chart);

    this._status = h('div', 'dvl-status');
    this._body.appendChild(this._status);

    this._grid = h('div', 'dvl-gridview');
    this._grid.hidden = true;
    this._body.appendChild(this._grid);

    this._table = h('div', 'dvl-tableview');
    this._table.hidden = true;
    this._body.appendChild(this._table);

    this._tooltip = h('div', 'dvl-tooltip');
    this._tooltip.setAttribute('role', 'tooltip');
    this._tooltip.hidden = true;
    root.appendChild(this._tooltip);

    this._live = h('div', 'dvl-live');
    this._live.id = `${this._id}-live`;
    this._live.setAttribute('aria-live', 'polite');
    root.appendChild(this._live);

    this._svg.addEventListener('pointermove', e => this._onPointerMove(e));
    this._svg.addEventListener('pointerdown', e => this._onPointerDown(e));
    this._svg.addEventListener('pointerup', e => this._onPointerUp(e));
    this._svg.addEventListener('pointercancel', e => this._onPointerUp(e));
    this._svg.addEventListener('pointerleave', () => {
      if (!this._drag) {
        this._setActive(null);
      }
    });
    this._svg.addEventListener('wheel', e => this._onWheel(e), { passive: false });
    this._chart.addEventListener('keydown', e => this._onKeyDown(e));
    this._chart.addEventListener('blur', () => this._setActive(null));
    this._setView('chart');
  }

  private _fillSettings(): void {
    this._settings.replaceChildren();
    const rows = this._data ? settingsRows(this._data) : [];
    this._settings.hidden = rows.length === 0;
    if (!rows.length) {
      return;
    }
    this._settings.appendChild(h('summary', '', 'settings'));
    const dl = h('dl', 'dvl-settings-list');
    for (const [k, v] of rows) {
      dl.append(h('dt', '', k), h('dd', '', v));
    }
    this._settings.appendChild(dl);
  }

  // ---------------------------------------------------------------- state

  private _setView(view: View): void {
    this._view = view;
    this._chartButton.setAttribute('aria-pressed', String(view === 'chart'));
    this._gridButton.setAttribute('aria-pressed', String(view === 'grid'));
    this._tableButton.setAttribute('aria-pressed', String(view === 'table'));
    this._chart.hidden = view !== 'chart';
    this._status.hidden = view !== 'chart';
    this.node.querySelector('.dvl-zoom')?.toggleAttribute('hidden', view !== 'chart');
    this._grid.hidden = view !== 'grid';
    this._table.hidden = view !== 'table';
    this._setActive(null);
    this._refresh();
  }

  /** Redraw whichever view is showing. */
  private _refresh(): void {
    if (this._view === 'grid') {
      this._fillGrid();
    } else if (this._view === 'table') {
      this._fillTable();
    } else {
      this._draw();
    }
  }

  /** The x-axis label of a slot: the rank of its point, or its place in training order. */
  private _slotLabel(slot: number): string {
    const d = this._data;
    if (!d || this._sort === 'original' || slot < 0 || slot >= this._shown.length) {
      return formatCount(slot + 1);
    }
    const r = displayRank(d, this._shown[slot], this._sort);
    return r === null ? '' : formatCount(r);
  }

  /** "3 of 20 (highest first)": the rank of a point, as the current sort counts it. */
  private _rankText(pos: number): string | null {
    const d = this._data!;
    const sort = this._sort === 'ascending' ? 'ascending' : 'descending';
    const r = displayRank(d, pos, sort);
    return r === null
      ? null
      : `${formatCount(r)} of ${formatCount(d.finiteTotal)} (${
          sort === 'ascending' ? 'lowest' : 'highest'
        } first)`;
  }

  /** Recompute the shown points (and, unless `keepWindow`, reset zoom). */
  private _recompute(resetWindow = true): void {
    const d = this._data;
    if (!d) {
      return;
    }
    const order = orderPoints(d.points, this._sort);
    this._shown = selectSubset(d.points, order, this._subset, this._kValue);
    this._domain = valueDomain(d.points, this._shown, this._level);
    if (resetWindow) {
      this._window = fullWindow(this._shown.length);
      this._activeSlot = null;
      this._gridCount = GRID_PAGE;
      this._tableCount = TABLE_PAGE;
    }
    this._window = clampWindow(this._window, this._shown.length);
    // Where consecutive slots skip ranks (the middle of a large result is not listed).
    this._gaps = [];
    if (this._sort !== 'original') {
      for (let i = 1; i < this._shown.length; i++) {
        const a = d.ascRanks[this._shown[i - 1]];
        const b = d.ascRanks[this._shown[i]];
        if (a !== null && b !== null && Math.abs(b - a) > 1 && this._subset === 'all') {
          this._gaps.push([i, Math.abs(b - a) - 1]);
        }
      }
    }
  }

  private _zoom(factor: number, anchor = 0.5): void {
    if (this._activeSlot !== null && anchor === 0.5) {
      anchor = (this._activeSlot + 0.5 - this._window.start) / this._window.span;
    }
    this._window = zoomWindow(this._window, this._shown.length, factor, anchor);
    this._schedule();
  }

  private _pan(fraction: number): void {
    this._window = panWindow(this._window, this._shown.length, fraction * this._window.span);
    this._schedule();
  }

  private _schedule(): void {
    if (this._frame || this.isDisposed) {
      return;
    }
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._draw();
    });
  }

  // ---------------------------------------------------------------- the chart

  private _geometry(): { width: number; plotW: number; plotH: number } {
    const width = Math.max(240, this._width || DEFAULT_WIDTH);
    return {
      width,
      plotW: width - MARGIN.left - MARGIN.right,
      plotH: CHART_HEIGHT - MARGIN.top - MARGIN.bottom
    };
  }

  private _x(slot: number, plotW: number): number {
    return MARGIN.left + ((slot - this._window.start) / this._window.span) * plotW;
  }

  private _y(v: number, plotH: number): number {
    const [lo, hi] = this._domain;
    return MARGIN.top + (1 - (v - lo) / (hi - lo)) * plotH;
  }

  private _draw(): void {
    const d = this._data;
    if (!d || this._view !== 'chart') {
      return;
    }
    const { width, plotW, plotH } = this._geometry();
    this._svg.setAttribute('width', String(width));
    this._svg.setAttribute('viewBox', `0 0 ${width} ${CHART_HEIGHT}`);
    for (const [k, v] of Object.entries({
      x: MARGIN.left,
      y: MARGIN.top - 6,
      width: plotW,
      height: plotH + 12
    })) {
      this._clipRect.setAttribute(k, String(v));
    }
    const n = this._shown.length;
    const [first, last] = visibleSlots(this._window, n);
    const budget = Math.max(10, Math.floor(plotW / PIXELS_PER_MARK));
    this._marks = buildMarks(d.points, this._shown, first, last, this._level, budget);
    this._drawAxes(plotW, plotH, first, last);
    this._drawMarks(plotW, plotH);
    const grouped = this._marks.length && this._marks[0].pos < 0;
    this._status.textContent =
      n === 0
        ? 'no points to show'
        : `${this._sort === 'original' ? 'points' : 'ranks'} ${this._slotLabel(first)}–${this._slotLabel(
            last - 1
          )} (${formatCount(last - first)} of ${formatCount(n)} shown)` +
          (grouped
            ? ` · ${this._marks.length} groups of ${
                this._marks[0].last - this._marks[0].first
              } points (zoom in for single points)`
            : '') +
          ` · bars: ${this._level}% intervals`;
    this._drawActive();
  }

  private _drawAxes(plotW: number, plotH: number, first: number, last: number): void {
    const g = this._axes;
    g.replaceChildren();
    const [lo, hi] = this._domain;
    for (const t of niceTicks(lo, hi, 6)) {
      const y = this._y(t, plotH);
      g.appendChild(
        s('line', {
          class: t === 0 ? 'dvl-zero' : 'dvl-gridline',
          x1: MARGIN.left,
          x2: MARGIN.left + plotW,
          y1: y,
          y2: y
        })
      );
      const label = s('text', { class: 'dvl-tick', x: MARGIN.left - 6, y, dy: '0.32em' });
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
    // Rank ticks (1-based) across the visible slots.
    for (const t of niceTicks(first + 1, last, 6)) {
      if (!Number.isInteger(t)) {
        continue;
      }
      const x = this._x(t - 0.5, plotW);
      if (x < MARGIN.left - 1 || x > MARGIN.left + plotW + 1) {
        continue;
      }
      g.appendChild(s('line', { class: 'dvl-axis', x1: x, x2: x, y1: bottom, y2: bottom + 4 }));
      const label = s('text', { class: 'dvl-tick', x, y: bottom + 16 });
      label.setAttribute('text-anchor', 'middle');
      label.textContent = this._slotLabel(t - 1);
      g.appendChild(label);
    }
    for (const [slot, size] of this._gaps) {
      const x = this._x(slot, plotW);
      if (x < MARGIN.left || x > MARGIN.left + plotW) {
        continue;
      }
      g.appendChild(
        s('line', { class: 'dvl-gap', x1: x, x2: x, y1: MARGIN.top, y2: bottom })
      );
      const label = s('text', { class: 'dvl-gap-label', x: x + 4, y: MARGIN.top + 10 });
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
      this._sort === 'original'
        ? 'listed points in training order'
        : `rank (${this._sort === 'ascending' ? 'lowest' : 'highest'} value first)`;
    const yTitle = s('text', {
      class: 'dvl-axis-title',
      transform: `translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)`
    });
    yTitle.setAttribute('text-anchor', 'middle');
    yTitle.textContent = 'value';
    g.append(xTitle, yTitle);
  }

  private _drawMarks(plotW: number, plotH: number): void {
    const d = this._data!;
    const g = this._marksGroup;
    const frag = document.createDocumentFragment();
    const slotW = plotW / this._window.span;
    const r = Math.min(4, Math.max(1.5, slotW * 0.3));
    const cap = slotW >= 8 ? Math.min(4, slotW * 0.3) : 0;
    const bands: string[] = [];
    const posRanges: string[] = [];
    const negRanges: string[] = [];
    let groups = 0;
    for (const m of this._marks) {
      if (m.n === 0) {
        continue;
      }
      if (m.pos >= 0) {
        const p = d.points[m.pos];
        const cx = this._x(m.first + 0.5, plotW);
        const neg = p.value < 0 ? ' dvl-negative' : '';
        if (p.stderr > 0) {
          const y1 = this._y(m.lo, plotH);
          const y2 = this._y(m.hi, plotH);
          const caps = cap ? `M${cx - cap} ${y1}H${cx + cap}M${cx - cap} ${y2}H${cx + cap}` : '';
          frag.appendChild(
            s('path', {
              class: `dvl-errorbar${neg}`,
              d: `M${cx} ${y1}V${y2}${caps}`,
              'data-index': p.index,
              'data-halfwidth': halfWidth(p, this._level)
            })
          );
        }
        frag.appendChild(
          s('circle', {
            class: `dvl-point${neg}`,
            cx,
            cy: this._y(p.value, plotH),
            r,
            'data-index': p.index,
            'data-slot': m.first
          })
        );
      } else {
        // Groups: all bands in one path and the value ranges in two (by sign of the mean),
        // so a full view of 10,000 points costs a handful of elements.
        const x1 = this._x(m.first, plotW);
        const w = Math.max(1, this._x(m.last, plotW) - x1 - 0.5);
        const top = this._y(m.hi, plotH);
        bands.push(`M${x1} ${top}h${w}V${this._y(m.lo, plotH)}h${-w}z`);
        const cx = x1 + w / 2;
        (m.mean < 0 ? negRanges : posRanges).push(
          `M${cx} ${this._y(m.min, plotH)}V${this._y(m.max, plotH)}`
        );
        groups++;
      }
    }
    if (groups) {
      frag.appendChild(s('path', { class: 'dvl-band', d: bands.join(''), 'data-groups': groups }));
      frag.appendChild(s('path', { class: 'dvl-range', d: posRanges.join('') }));
      frag.appendChild(s('path', { class: 'dvl-range dvl-negative', d: negRanges.join('') }));
    }
    g.replaceChildren(frag);
  }

  /** The mark drawn for a display slot. */
  private _markAt(slot: number): IMark | null {
    const marks = this._marks;
    if (!marks.length || slot < marks[0].first || slot >= marks[marks.length - 1].last) {
      return null;
    }
    const size = marks[0].last - marks[0].first;
    return marks[Math.min(marks.length - 1, Math.floor((slot - marks[0].first) / size))];
  }

  private _setActive(slot: number | null): void {
    this._activeSlot = slot;
    this._drawActive();
  }

  /** Highlight of the active point and its tooltip. */
  private _drawActive(): void {
    this._hoverGroup.replaceChildren();
    const d = this._data;
    const slot = this._activeSlot;
    const m = slot === null ? null : this._markAt(slot);
    if (!d || !m || this._view !== 'chart') {
      this._tooltip.hidden = true;
      return;
    }
    const { plotW, plotH } = this._geometry();
    const cx = this._x((m.first + m.last) / 2, plotW);
    this._hoverGroup.appendChild(
      s('line', {
        class: 'dvl-guide',
        x1: cx,
        x2: cx,
        y1: MARGIN.top,
        y2: MARGIN.top + plotH
      })
    );
    const level = this._level;
    let cy = MARGIN.top + plotH / 2;
    let rows: [string, string][];
    let title: string;
    let image: string | null = null;
    if (m.pos >= 0) {
      const p = d.points[m.pos];
      if (!Number.isNaN(p.value)) {
        cy = this._y(p.value, plotH);
        this._hoverGroup.appendChild(s('circle', { class: 'dvl-ring', cx, cy, r: 6 }));
      }
      rows = describePoint(p, level, this._rankText(p.pos)).filter(([k]) => k !== 'name');
      title = p.name;
      image = p.image;
      this._live.textContent =
        `index ${p.index}, value ${formatValue(p.value)} ± ` +
        `${formatValue(halfWidth(p, level))}`;
    } else {
      cy = this._y(m.mean, plotH);
      rows = describeMark(m, level);
      rows[0][1] = `${formatCount(m.last - m.first)} (${this._slotLabel(m.first)} to ${this._slotLabel(
        m.last - 1
      )})`;
      title = 'group of points';
      this._live.textContent = `${rows[0][1]}, values ${rows[1][1]}`;
    }
    this._fillTooltip(title, rows, image);
    this._placeTooltip(cx, cy);
  }

  private _fillTooltip(title: string, rows: [string, string][], image: string | null): void {
    const t = this._tooltip;
    t.replaceChildren();
    if (image) {
      const img = h('img', 'dvl-thumb');
      img.alt = 'thumbnail of the point';
      img.src = image;
      t.appendChild(img);
    }
    const text = h('div', 'dvl-tooltip-text');
    text.appendChild(h('div', 'dvl-tooltip-title', title));
    const table = h('table');
    for (const [k, v] of rows) {
      const tr = h('tr');
      tr.append(h('th', '', k), h('td', `dvl-tip-${k.replace(/[^a-z]/g, '') || 'note'}`, v));
      table.appendChild(tr);
    }
    text.appendChild(table);
    t.appendChild(text);
    t.hidden = false;
  }

  /** Put the tooltip beside the point (chart coordinates), inside the widget. */
  private _placeTooltip(cx: number, cy: number): void {
    const t = this._tooltip;
    const root = this.node.getBoundingClientRect();
    const svg = this._svg.getBoundingClientRect();
    const x = svg.left - root.left + cx;
    const y = svg.top - root.top + cy;
    const w = t.offsetWidth || 220;
    const hgt = t.offsetHeight || 120;
    const left = x + 14 + w > root.width ? Math.max(0, x - 14 - w) : x + 14;
    const top = Math.min(Math.max(0, y - hgt / 2), Math.max(0, root.height - hgt));
    t.style.left = `${left}px`;
    t.style.top = `${top}px`;
  }

  // ---------------------------------------------------------------- interaction

  private _slotAt(e: PointerEvent | WheelEvent): { slot: number; anchor: number } | null {
    const rect = this._svg.getBoundingClientRect();
    const { plotW } = this._geometry();
    const px = e.clientX - rect.left - MARGIN.left;
    if (px < 0 || px > plotW) {
      return null;
    }
    const anchor = px / plotW;
    return { slot: Math.floor(this._window.start + anchor * this._window.span), anchor };
  }

  private _onPointerMove(e: PointerEvent): void {
    if (this._drag) {
      const { plotW } = this._geometry();
      const dx = e.clientX - this._drag.x;
      this._window = clampWindow(
        { start: this._drag.start - (dx / plotW) * this._window.span, span: this._window.span },
        this._shown.length
      );
      this._schedule();
      return;
    }
    const at = this._slotAt(e);
    const slot = at && at.slot < this._shown.length ? at.slot : null;
    if (slot !== this._activeSlot) {
      this._setActive(slot);
    }
  }

  private _onPointerDown(e: PointerEvent): void {
    if (e.button !== 0 || this._window.span >= this._shown.length) {
      return; // nothing to pan when everything is visible
    }
    this._drag = { x: e.clientX, start: this._window.start };
    this._svg.setPointerCapture?.(e.pointerId);
    this._svg.classList.add('dvl-dragging');
  }

  private _onPointerUp(e: PointerEvent): void {
    if (!this._drag) {
      return;
    }
    this._drag = null;
    this._svg.releasePointerCapture?.(e.pointerId);
    this._svg.classList.remove('dvl-dragging');
  }

  private _onWheel(e: WheelEvent): void {
    const at = this._slotAt(e);
    if (!at) {
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      this._zoom(Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.002))), at.anchor);
    } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      const delta = (e.shiftKey && !e.deltaX ? e.deltaY : e.deltaX) / this._geometry().plotW;
      this._pan(delta);
    }
    // A plain vertical wheel scrolls the notebook, as everywhere else in it.
  }

  private _onKeyDown(e: KeyboardEvent): void {
    const n = this._shown.length;
    if (!n || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    const current = this._activeSlot;
    const [first, last] = visibleSlots(this._window, n);
    let next: number | null = current;
    switch (e.key) {
      case 'ArrowRight':
        next = current === null ? first : Math.min(n - 1, current + (e.shiftKey ? 10 : 1));
        break;
      case 'ArrowLeft':
        next = current === null ? last - 1 : Math.max(0, current - (e.shiftKey ? 10 : 1));
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = n - 1;
        break;
      case 'PageDown':
      case 'PageUp': {
        const dir = e.key === 'PageDown' ? 1 : -1;
        this._window = panWindow(this._window, n, dir * this._window.span);
        const step = dir * Math.round(this._window.span);
        next = current === null ? null : Math.min(n - 1, Math.max(0, current + step));
        break;
      }
      case '+':
      case '=':
        this._zoom(ZOOM_STEP);
        break;
      case '-':
      case '_':
        this._zoom(1 / ZOOM_STEP);
        break;
      case 'Escape':
        next = null;
        break;
      default:
        return;
    }
    e.preventDefault();
    e.stopPropagation();
    if (next !== null) {
      this._window = revealSlot(this._window, n, next);
    }
    this._activeSlot = next;
    this._draw();
  }

  // ---------------------------------------------------------------- the image grid

  private _fillGrid(): void {
    const d = this._data;
    const grid = this._grid;
    grid.replaceChildren();
    if (!d) {
      return;
    }
    if (!d.hasImages) {
      grid.appendChild(
        h('p', 'dvl-note', 'This result has no images (the data are not images, or --no-images).')
      );
    }
    const list = h('ol', 'dvl-cells');
    const count = Math.min(this._gridCount, this._shown.length);
    for (let slot = 0; slot < count; slot++) {
      const p = d.points[this._shown[slot]];
      const cell = h('li', 'dvl-cell');
      cell.dataset.index = String(p.index);
      if (p.image) {
        const img = h('img', 'dvl-cell-image');
        img.src = p.image;
        img.alt = `image of point ${p.index}`;
        cell.appendChild(img);
      } else if (d.hasImages) {
        cell.appendChild(h('div', 'dvl-cell-noimage', 'no image'));
      }
      cell.appendChild(h('div', 'dvl-cell-label', p.label !== '' ? p.label : p.name));
      cell.appendChild(
        h(
          'div',
          'dvl-cell-value',
          `${formatValue(p.value)} ± ${formatValue(halfWidth(p, this._level))}`
        )
      );
      const rank = displayRank(d, p.pos, this._sort === 'ascending' ? 'ascending' : 'descending');
      cell.appendChild(
        h('div', 'dvl-cell-rank', `${rank === null ? '' : `#${formatCount(rank)} · `}idx ${p.index}`)
      );
      cell.title = describePoint(p, this._level, this._rankText(p.pos))
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n');
      list.appendChild(cell);
    }
    grid.appendChild(list);
    if (count < this._shown.length) {
      grid.appendChild(
        button(
          `Show ${Math.min(GRID_PAGE, this._shown.length - count)} more`,
          'Show more images',
          () => {
            this._gridCount += GRID_PAGE;
            this._fillGrid();
          }
        )
      );
    }
  }

  // ---------------------------------------------------------------- the table

  private _fillTable(): void {
    const d = this._data;
    const wrap = this._table;
    wrap.replaceChildren();
    if (!d) {
      return;
    }
    const level = this._level;
    const table = h('table', 'dvl-table');
    const head = h('tr');
    for (const title of [
      'rank',
      'index',
      'name',
      'label',
      'value',
      `± ${level}%`,
      'stderr',
      'updates'
    ]) {
      const th = h('th', '', title);
      th.scope = 'col';
      head.appendChild(th);
    }
    table.appendChild(h('thead')).appendChild(head);
    const body = h('tbody');
    const sort = this._sort === 'ascending' ? 'ascending' : 'descending';
    const count = Math.min(this._tableCount, this._shown.length);
    for (let slot = 0; slot < count; slot++) {
      const p = d.points[this._shown[slot]];
      const rank = displayRank(d, p.pos, sort);
      const tr = h('tr');
      for (const [text, numeric] of [
        [rank === null ? '' : formatCount(rank), true],
        [String(p.index), true],
        [p.name, false],
        [p.label, false],
        [formatValue(p.value), true],
        [formatValue(halfWidth(p, level)), true],
        [formatValue(p.stderr), true],
        [p.count === null ? 'n/a' : formatCount(p.count), true]
      ] as [string, boolean][]) {
        tr.appendChild(h('td', numeric ? 'dvl-num' : '', text));
      }
      body.appendChild(tr);
    }
    table.appendChild(body);
    wrap.appendChild(table);
    if (count < this._shown.length) {
      wrap.appendChild(
        button(
          `Show ${Math.min(TABLE_PAGE, this._shown.length - count)} more rows`,
          'Show more rows',
          () => {
            this._tableCount += TABLE_PAGE;
            this._fillTable();
          }
        )
      );
    }
  }

  private _mimeType: string;
  private _id: string;
  private _data: IValuation | null = null;
  private _level: ConfidenceLevel = 95;
  private _sort: SortOrder = 'descending';
  private _subset: SubsetMode = 'all';
  private _kValue = 10;
  private _view: View = 'chart';
  private _viewChosen = false;
  private _gaps: [number, number][] = [];
  private _tableCount = TABLE_PAGE;
  private _shown: number[] = [];
  private _domain: [number, number] = [-1, 1];
  private _window: IWindow = fullWindow(1);
  private _marks: IMark[] = [];
  private _activeSlot: number | null = null;
  private _gridCount = GRID_PAGE;
  private _drag: { x: number; start: number } | null = null;
  private _frame = 0;
  /** Content width of the chart, from the ResizeObserver; 0 until it reports. */
  private _width = 0;
  private _resizeObserver: ResizeObserver | null = null;

  private _error!: HTMLDivElement;
  private _body!: HTMLDivElement;
  private _title!: HTMLSpanElement;
  private _summary!: HTMLSpanElement;
  private _settings!: HTMLDetailsElement;
  private _chartButton!: HTMLButtonElement;
  private _gridButton!: HTMLButtonElement;
  private _tableButton!: HTMLButtonElement;
  private _k!: HTMLInputElement;
  private _chart!: HTMLDivElement;
  private _svg!: SVGSVGElement;
  private _clipRect!: SVGRectElement;
  private _axes!: SVGGElement;
  private _marksGroup!: SVGGElement;
  private _hoverGroup!: SVGGElement;
  private _status!: HTMLDivElement;
  private _grid!: HTMLDivElement;
  private _table!: HTMLDivElement;
  private _tooltip!: HTMLDivElement;
  private _live!: HTMLDivElement;
}

/**
 * The renderer factory. Rank 0 puts it ahead of the text/html and image/png fallbacks
 * that the same output carries.
 */
export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE],
  defaultRank: 0,
  createRenderer: options => new ValuationRenderer(options)
};

/** The extension: works wherever mime extensions load (JupyterLab 4, Notebook 7). */
const extension: IRenderMime.IExtension = {
  id: 'dvl-jupyter:valuation',
  description: 'Interactive chart and image grid of dvl_jupyter data values.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
