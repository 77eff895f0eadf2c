/**
 * Text shared by the views, derived from the view state: the label of a display slot, the
 * rank of a point, the ranks a window shows, a value with its interval. A point's rank is
 * the same in every view and either sort direction (1 = the highest value; see valuation.ts).
 */
import { IViewState } from './state';
import {
  ConfidenceLevel,
  countOf,
  formatCount,
  formatValue,
  halfWidth,
  IPoint,
  rankRuns
} from './valuation';

/** The label of a slot whose point has no value, so no rank (the status: "1 missing value"). */
const MISSING_LABEL = 'missing';

/**
 * The number an x-axis slot is labelled with: the rank of its point, or its place in
 * training order; null for a point without a value when ranks are shown.
 */
export function slotNumber(state: IViewState, slot: number): number | null {
  const d = state.data;
  if (!d || state.sort === 'original' || slot < 0 || slot >= state.shown.length) {
    return slot + 1;
  }
  return d.points[state.shown[slot]].rank;
}

/** The x-axis label of a slot (see slotNumber), MISSING_LABEL for a point without a rank. */
export function slotLabel(state: IViewState, slot: number): string {
  const n = slotNumber(state, slot);
  return n === null ? MISSING_LABEL : formatCount(n);
}

/** The rank of the point at `pos`, or MISSING_LABEL without a value: the table's rank cell. */
export function rankLabel(state: IViewState, pos: number): string {
  const r = state.data!.points[pos].rank;
  return r === null ? MISSING_LABEL : formatCount(r);
}

function joinAnd(parts: string[]): string {
  return parts.length <= 1
    ? parts.join('')
    : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/**
 * The slots [first, last) as text. By rank: the runs of consecutive ranks, each as
 * lowest–highest (`sep` between), left to right, after `unit` if given (a singular noun,
 * made plural for more than one rank), and how many slots have no rank: "ranks 1–500 and
 * 758–1,257", "ranks 1–5 and 1 missing value", "rank 6", "5 missing values". In training
 * order, the places of the first and last slot.
 */
export function slotRange(
  state: IViewState,
  first: number,
  last: number,
  unit = '',
  sep = '–'
): string {
  const d = state.data;
  if (last <= first) {
    return '';
  }
  if (!d || state.sort === 'original') {
    const prefix = unit ? `${unit}${last - first > 1 ? 's' : ''} ` : '';
    const a = formatCount(first + 1);
    return prefix + (last - first > 1 ? `${a}${sep}${formatCount(last)}` : a);
  }
  const { runs, missing } = rankRuns(d.points, state.shown, first, last);
  const parts: string[] = [];
  if (runs.length) {
    const many = runs.length > 1 || runs[0][0] !== runs[0][1];
    const prefix = unit ? `${unit}${many ? 's' : ''} ` : '';
    parts.push(
      prefix +
        joinAnd(
          runs.map(([lo, hi]) =>
            lo === hi ? formatCount(lo) : `${formatCount(lo)}${sep}${formatCount(hi)}`
          )
        )
    );
  }
  if (missing) {
    parts.push(countOf(missing, 'missing value'));
  }
  return parts.join(' and ');
}

/** "3 of 20 (1 = highest)": the rank of a point among all the values of the result. */
export function rankText(state: IViewState, pos: number): string | null {
  const d = state.data!;
  const r = d.points[pos].rank;
  return r === null ? null : `${formatCount(r)} of ${formatCount(d.finiteTotal)} (1 = highest)`;
}

/** "0.12 ± 0.03": a point's value and the half-width of its interval at `level`. */
export function valueWithInterval(p: IPoint, level: ConfidenceLevel): string {
  return Number.isNaN(p.value)
    ? 'n/a'
    : `${formatValue(p.value)} ± ${formatValue(halfWidth(p, level))}`;
}

/** "0.12 ± 0.03 (95% CI)": valueWithInterval saying what "±" is. */
export function valueWithLevel(p: IPoint, level: ConfidenceLevel): string {
  return Number.isNaN(p.value) ? 'n/a' : `${valueWithInterval(p, level)} (${level}% CI)`;
}
