/**
 * The valuation view, in plain DOM: owns the view state, assembles the parts (header,
 * toolbar, chart, image grid, table, tooltip) into one node, and decides what to recompute
 * and redraw when the payload or a choice changes. The JupyterLab renderer (./renderer)
 * wraps it in a Lumino widget; the standalone script (./standalone) mounts it in any page.
 */
import { ErrorBarChart } from './chart';
import { h } from './dom';
import { geometry, IGeometry } from './geometry';
import { ImageGrid } from './grid';
import { Header } from './header';
import { ChartInteraction, panState, zoomState } from './interaction';
import { createState, recompute } from './state';
import { ValueTable } from './table';
import { Toolbar } from './toolbar';
import { Exporter } from './export';
import { describeActive, Tooltip } from './tooltip';
import { fullWindow, parsePayload, View } from './valuation';

const CLASS_NAME = 'dvl-Valuation';

let instanceCount = 0;

/**
 * The view: header, toolbar, chart (or image grid, or table) and a tooltip, in `node`.
 * Call `attach()` once `node` is in the document (it starts following its width), `detach()`
 * before taking it out, and `dispose()` at the end.
 */
export class ValuationView {
  /** The `.dvl-Valuation` root. */
  readonly node: HTMLDivElement;

  constructor() {
    this.node = h('div', CLASS_NAME);
    const id = `dvl-valuation-${++instanceCount}`;
    const state = this._state;
    const root = this.node;

    this._error = h('div', 'dvl-error');
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    root.appendChild(this._error);

    this._body = h('div', 'dvl-body');
    root.appendChild(this._body);

    this._header = new Header();
    this._toolbar = new Toolbar(state, {
      view: v => {
        state.viewChosen = true;
        this._setView(v);
      },
      level: l => {
        state.level = l;
        this._recompute(false);
        this._refresh();
      },
      sort: o => {
        state.sort = o;
        this._recompute();
        this._refresh();
      },
      subset: m => {
        state.subset = m;
        this._recompute();
        this._refresh();
      },
      k: k => {
        state.k = k;
        this._recompute();
        this._refresh();
      },
      zoom: factor => this._zoom(factor),
      pan: fraction => this._pan(fraction),
      showAll: () => {
        state.window = fullWindow(state.shown.length);
        this._draw();
      },
      export: format => {
        if (format === 'csv') {
          this._exporter.csv();
        } else if (format === 'svg') {
          this._exporter.svg();
        } else {
          this._exporter.png().catch(err => this._showError(`Cannot export the chart: ${err}`));
        }
      }
    });
    this._chart = new ErrorBarChart(id, state);
    this._exporter = new Exporter(state, this._chart.svg);
    this._grid = new ImageGrid(state);
    this._table = new ValueTable(state);
    this._body.append(
      this._header.node,
      this._toolbar.node,
      this._chart.node,
      this._chart.status,
      this._grid.node,
      this._table.node
    );

    this._tooltip = new Tooltip(id);
    root.append(this._tooltip.node, this._tooltip.live);

    new ChartInteraction(this._chart.svg, this._chart.node, {
      state,
      plotWidth: () => this._geometry().plotW,
      setActive: slot => this._setActive(slot),
      zoom: (factor, anchor) => this._zoom(factor, anchor),
      pan: fraction => this._pan(fraction),
      schedule: () => this._schedule(),
      draw: () => this._draw()
    });
    this._setView('chart');
  }

  /** Show a payload; keeps the user's level, sort and subset across re-renders. */
  render(data: unknown): void {
    const state = this._state;
    try {
      state.data = parsePayload(data);
    } catch (err) {
      state.data = null;
      this._showError(
        `Cannot show this valuation result: ${err instanceof Error ? err.message : String(err)}`
      );
      this._body.hidden = true;
      return;
    }
    this._error.hidden = true;
    this._body.hidden = false;
    const d = state.data;
    this._header.update(d);
    this._toolbar.update(d);
    this._recompute();
    if (d.view && !state.viewChosen) {
      this._setView(d.view);
    } else {
      this._setView(state.view);
    }
  }

  /** Start following the node's width (it must be in the document), and draw. */
  attach(): void {
    if (typeof ResizeObserver !== 'undefined') {
      this._resizeObserver = new ResizeObserver(entries => {
        // The width comes from the observer, so drawing never forces a layout.
        const width = Math.round(entries[entries.length - 1].contentRect.width);
        if (width > 0 && width !== this._width) {
          this._width = width;
          this._schedule();
        }
      });
      this._resizeObserver.observe(this._chart.node);
    }
    this._schedule();
  }

  /** Stop following the node's width (before it leaves the document). */
  detach(): void {
    this._resizeObserver?.disconnect();
    this._resizeObserver = null;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    this.detach();
  }

  private _showError(message: string): void {
    this._error.textContent = message;
    this._error.hidden = false;
  }

  private _setView(view: View): void {
    this._state.view = view;
    this._toolbar.setView(view);
    this._chart.node.hidden = view !== 'chart';
    this._chart.status.hidden = view !== 'chart';
    this._grid.node.hidden = view !== 'grid';
    this._table.node.hidden = view !== 'table';
    this._setActive(null);
    this._refresh();
  }

  /** Redraw whichever view is showing. */
  private _refresh(): void {
    const view = this._state.view;
    if (view === 'grid') {
      this._grid.render();
    } else if (view === 'table') {
      this._table.render();
    } else {
      this._draw();
    }
  }

  /** Recompute the shown points (and, unless `resetWindow` is false, reset zoom and paging). */
  private _recompute(resetWindow = true): void {
    if (recompute(this._state, resetWindow) && resetWindow) {
      this._grid.reset();
      this._table.reset();
    }
  }

  private _zoom(factor: number, anchor = 0.5): void {
    zoomState(this._state, factor, anchor);
    this._schedule();
  }

  private _pan(fraction: number): void {
    panState(this._state, fraction);
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

  private _geometry(): IGeometry {
    return geometry(this._width);
  }

  /**
   * Draw the chart and its active mark, if the chart is showing. A redraw scheduled for the
   * next frame would draw the same state again, so it is cancelled.
   */
  private _draw(): void {
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    const state = this._state;
    if (!state.data || state.view !== 'chart') {
      return;
    }
    this._chart.draw(this._geometry());
    this._drawActive();
  }

  private _setActive(slot: number | null): void {
    this._state.activeSlot = slot;
    this._drawActive();
  }

  /** Highlight of the active mark, its tooltip and its announcement. */
  private _drawActive(): void {
    const state = this._state;
    this._chart.clearHighlight();
    const slot = state.activeSlot;
    const m = slot === null ? null : this._chart.markAt(slot);
    if (!state.data || !m || state.view !== 'chart') {
      this._tooltip.hide();
      return;
    }
    const { cx, cy } = this._chart.highlight(m, this._geometry(), slot!);
    this._tooltip.show(describeActive(state, m, slot!));
    this._tooltip.place(cx, cy, this.node, this._chart.svg);
  }

  private _state = createState();
  private _disposed = false;
  private _exporter: Exporter;
  private _frame = 0;
  /** Content width of the chart, from the ResizeObserver; 0 until it reports. */
  private _width = 0;
  private _resizeObserver: ResizeObserver | null = null;

  private _error: HTMLDivElement;
  private _body: HTMLDivElement;
  private _header: Header;
  private _toolbar: Toolbar;
  private _chart: ErrorBarChart;
  private _grid: ImageGrid;
  private _table: ValueTable;
  private _tooltip: Tooltip;
}
