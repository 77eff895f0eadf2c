/**
 * The toolbar: view buttons (chart, images, table), the confidence level, sort and subset
 * (top/bottom k) controls, the zoom and pan buttons and the exports (PNG and SVG of the
 * chart, CSV of the points). It reports choices through `IToolbarActions` and leaves the
 * state to the renderer.
 */
import { button, h, select } from './dom';
import { ZOOM_STEP } from './interaction';
import { IViewState } from './state';
import {
  CONFIDENCE_LEVELS,
  ConfidenceLevel,
  IValuation,
  SortOrder,
  SubsetMode,
  View
} from './valuation';

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

/** What the toolbar's controls ask for. */
export interface IToolbarActions {
  view(view: View): void;
  level(level: ConfidenceLevel): void;
  sort(sort: SortOrder): void;
  subset(mode: SubsetMode): void;
  /** A new k (always >= 1) for the top/bottom k subset. */
  k(k: number): void;
  /** Zoom by a factor of the visible span (< 1 zooms in). */
  zoom(factor: number): void;
  /** Pan by a fraction of the visible span (positive: to the right). */
  pan(fraction: number): void;
  showAll(): void;
  /** Download the chart (png, svg) or the shown points (csv). */
  export(format: 'png' | 'svg' | 'csv'): void;
}

export class Toolbar {
  /** The `.dvl-toolbar`. */
  readonly node: HTMLDivElement;

  /** `state` gives the controls' initial values (and the k to restore after a bad entry). */
  constructor(state: Readonly<IViewState>, actions: IToolbarActions) {
    const toolbar = (this.node = h('div', 'dvl-toolbar'));
    toolbar.setAttribute('role', 'toolbar');
    toolbar.setAttribute('aria-label', 'Valuation chart controls');
    toolbar.setAttribute('data-lm-suppress-shortcuts', 'true');

    const views = h('div', 'dvl-group');
    views.setAttribute('role', 'group');
    views.setAttribute('aria-label', 'View');
    const choose = (v: View) => () => actions.view(v);
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
      state.level,
      l => actions.level(l)
    );
    level.classList.add('dvl-level');
    const [sortField, sort] = select(
      'Sort',
      ['descending', 'ascending', 'original'] as const,
      o => SORT_LABELS[o],
      state.sort,
      o => actions.sort(o)
    );
    sort.classList.add('dvl-sort');
    const [subsetField, subset] = select(
      'Show',
      ['all', 'top', 'bottom'] as const,
      m => SUBSET_LABELS[m],
      state.subset,
      m => {
        this._k.disabled = m === 'all';
        actions.subset(m);
      }
    );
    subset.classList.add('dvl-subset');
    this._k = h('input', 'dvl-k');
    this._k.type = 'number';
    this._k.min = '1';
    this._k.value = String(state.k);
    this._k.disabled = true;
    this._k.setAttribute('aria-label', 'k, the number of points to show');
    this._k.addEventListener('change', () => {
      const k = Math.floor(Number(this._k.value));
      if (k >= 1) {
        actions.k(k);
      } else {
        this._k.value = String(state.k);
      }
    });
    subsetField.appendChild(this._k);
    toolbar.append(levelField, sortField, subsetField);

    this._zoom = h('div', 'dvl-group dvl-zoom');
    this._zoom.setAttribute('role', 'group');
    this._zoom.setAttribute('aria-label', 'Zoom and pan');
    this._zoom.append(
      button('−', 'Zoom out (-)', () => actions.zoom(1 / ZOOM_STEP)),
      button('+', 'Zoom in (+)', () => actions.zoom(ZOOM_STEP)),
      button('◀', 'Pan left (Page Up)', () => actions.pan(-0.5)),
      button('▶', 'Pan right (Page Down)', () => actions.pan(0.5)),
      button('All', 'Show all points', () => actions.showAll())
    );
    toolbar.appendChild(this._zoom);

    const exports = h('div', 'dvl-group dvl-export');
    exports.setAttribute('role', 'group');
    exports.setAttribute('aria-label', 'Export');
    this._chartExports = [
      button('PNG', 'Download the chart as PNG', () => actions.export('png')),
      button('SVG', 'Download the chart as SVG', () => actions.export('svg'))
    ];
    const csv = button('CSV', 'Download the shown points as CSV', () => actions.export('csv'));
    exports.append(h('span', 'dvl-field-label', 'Export'), ...this._chartExports, csv);
    toolbar.appendChild(exports);
  }

  /** Fit the controls to a result: the largest k, and what the grid button promises. */
  update(d: IValuation): void {
    this._k.max = String(Math.max(1, d.points.length));
    this._gridButton.title = d.hasImages
      ? 'Images of the points, in the chart order'
      : 'No images in this result: the grid shows labels and values';
  }

  /** Mark the current view's button pressed; the zoom buttons show with the chart only. */
  setView(view: View): void {
    this._chartButton.setAttribute('aria-pressed', String(view === 'chart'));
    this._gridButton.setAttribute('aria-pressed', String(view === 'grid'));
    this._tableButton.setAttribute('aria-pressed', String(view === 'table'));
    this._zoom.toggleAttribute('hidden', view !== 'chart');
    for (const b of this._chartExports) {
      b.toggleAttribute('hidden', view !== 'chart');
    }
  }

  private _chartButton: HTMLButtonElement;
  private _gridButton: HTMLButtonElement;
  private _tableButton: HTMLButtonElement;
  private _k: HTMLInputElement;
  private _zoom: HTMLDivElement;
  private _chartExports: HTMLButtonElement[];
}
