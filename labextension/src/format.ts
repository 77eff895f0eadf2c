/**
 * Text shared by the views, derived from the view state: the label of a display slot, the
 * rank of a point as the current sort counts it, a value with its interval.
 */
import { IViewState } from './state';
import {
  ConfidenceLevel,
  displayRank,
  formatCount,
  formatValue,
  halfWidth,
  IPoint,
  SortOrder
} from './valuation';

/** The direction ranks are counted in: training order counts from the highest value. */
export function rankSort(sort: SortOrder): 'ascending' | 'descending' {
  return sort === 'ascending' ? 'ascending' : 'descending';
}

/** The x-axis label of a slot: the rank of its point, or its place in training order. */
export function slotLabel(state: IViewState, slot: number): string {
  const d = state.data;
  if (!d || state.sort === 'original' || slot < 0 || slot >= state.shown.length) {
    return formatCount(slot + 1);
  }
  const r = displayRank(d, state.shown[slot], state.sort);
  return r === null ? '' : formatCount(r);
}

/** "3 of 20 (highest first)": the rank of a point, as the current sort counts it. */
export function rankText(state: IViewState, pos: number): string | null {
  const d = state.data!;
  const sort = rankSort(state.sort);
  const r = displayRank(d, pos, sort);
  return r === null
    ? null
    : `${formatCount(r)} of ${formatCount(d.finiteTotal)} (${
        sort === 'ascending' ? 'lowest' : 'highest'
      } first)`;
}

/** "0.12 ± 0.03": a point's value and the half-width of its interval at `level`. */
export function valueWithInterval(p: IPoint, level: ConfidenceLevel): string {
  return `${formatValue(p.value)} ± ${formatValue(halfWidth(p, level))}`;
}
