/**
 * The renderer's view state: the parsed result, the user's choices (level, sort, subset, k,
 * view) and what follows from them (the shown points, value domain, zoom window, rank gaps,
 * active slot). One object, shared by reference between the renderer's parts.
 */
import {
  clampWindow,
  ConfidenceLevel,
  findGaps,
  fullWindow,
  IValuation,
  IWindow,
  orderPoints,
  selectSubset,
  SortOrder,
  SubsetMode,
  valueDomain,
  View
} from './valuation';

export interface IViewState {
  /** The parsed payload; null before the first render or when it could not be read. */
  data: IValuation | null;
  level: ConfidenceLevel;
  sort: SortOrder;
  subset: SubsetMode;
  /** The k of "top k" / "bottom k". */
  k: number;
  view: View;
  /** Whether the user picked the view (then a re-render keeps it over the payload's). */
  viewChosen: boolean;
  /** Positions in `data.points` of the shown points, in display order (one per slot). */
  shown: number[];
  /** The value range of the chart. */
  domain: [number, number];
  /** The visible window of slots (zoom and pan). */
  window: IWindow;
  /** [slot, count]: before `slot`, `count` ranks are not listed in the payload. */
  gaps: [number, number][];
  /** The slot under the pointer or keyboard focus. */
  activeSlot: number | null;
}

/** The state before any payload: 95% level, highest values first, all points, the chart. */
export function createState(): IViewState {
  return {
    data: null,
    level: 95,
    sort: 'descending',
    subset: 'all',
    k: 10,
    view: 'chart',
    viewChosen: false,
    shown: [],
    domain: [-1, 1],
    window: fullWindow(1),
    gaps: [],
    activeSlot: null
  };
}

/**
 * Recompute the shown points, domain and gaps from the data and the user's choices; unless
 * `resetWindow` is false, also reset zoom and the active slot. Returns false (and changes
 * nothing) when there are no data.
 */
export function recompute(state: IViewState, resetWindow = true): boolean {
  const d = state.data;
  if (!d) {
    return false;
  }
  const order = orderPoints(d.points, state.sort);
  state.shown = selectSubset(d.points, order, state.subset, state.k);
  state.domain = valueDomain(d.points, state.shown, state.level);
  if (resetWindow) {
    state.window = fullWindow(state.shown.length);
    state.activeSlot = null;
  }
  state.window = clampWindow(state.window, state.shown.length);
  // Where consecutive slots skip ranks (the middle of a large result is not listed).
  state.gaps = findGaps(d.points, state.shown, state.sort, state.subset);
  return true;
}
