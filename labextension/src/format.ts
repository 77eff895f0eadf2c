/**
 * Text shared by the views, derived from the view state: the label of a display slot, the
 * rank of a point as the current sort counts it, a value with its interval.
 */
import { IViewState } from './state';
import {
  ConfidenceLevel,
  countOf,
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

/** The label of a slot whose point has no value, so no rank (the status: "1 missing value"). */
const MISSING_LABEL = 'missing';

/**
 * The x-axis label of a slot: the rank of its point, or its place in training order;
 * MISSING_LABEL for a point without a value when ranks are shown.
 */
export function slotLabel(state: IViewState, slot: number): string {
  const d = state.data;
  if (!d || state.sort === 'original' || slot < 0 || slot >= state.shown.length) {
    return formatCount(slot + 1);
  }
  return rankLabel(state, state.shown[slot]);
}

/**
 * The rank of the point at `pos` as the current sort counts it (training order counts from
 * the highest value), or MISSING_LABEL for a point without a value: the table's rank cell.
 */
export function rankLabel(state: IViewState, pos: number): string {
  const r = displayRank(state.data!, pos, rankSort(state.sort));
  return r === null ? MISSING_LABEL : formatCount(r);
}

/**
 * The slots [first, last) as text: the labels of the first and last slot that have one
 * (joined by `sep`, after `unit` if given: a singular noun, made plural for a range), and how
 * many slots have none. Points without a value have no rank (they sort last), so
 * "ranks 1–5 and 1 missing value", "rank 6 and 4 missing values" when one slot has a rank,
 * or "5 missing values" when none has. In training order every slot is labelled by its place.
 */
export function slotRange(
  state: IViewState,
  first: number,
  last: number,
  unit = '',
  sep = '–'
): string {
  const d = state.data;
  const ranked = (slot: number) =>
    !d || state.sort === 'original' || d.ascRanks[state.shown[slot]] !== null;
  let lo = first;
  while (lo < last && !ranked(lo)) {
    lo++;
  }
  let hi = last - 1;
  while (hi >= lo && !ranked(hi)) {
    hi--;
  }
  let missing = 0;
  for (let slot = first; slot < last; slot++) {
    if (!ranked(slot)) {
      missing++;
    }
  }
  const parts: string[] = [];
  if (lo <= hi) {
    const prefix = unit ? `${unit}${lo < hi ? 's' : ''} ` : '';
    const labels =
      lo < hi ? `${slotLabel(state, lo)}${sep}${slotLabel(state, hi)}` : slotLabel(state, lo);
    parts.push(prefix + labels);
  }
  if (missing) {
    parts.push(countOf(missing, 'missing value'));
  }
  return parts.join(' and ');
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
