/**
 * Pure logic of the valuation renderer: reading the payload, ranking, ordering and selecting
 * points, confidence intervals, the zoom/pan window, aggregation into pixel bins, ticks, rank
 * gaps, number formats and the CSV export. Nothing here touches the DOM, so all of it is
 * unit-tested in Node (test/).
 *
 * The tie rule, the same as dvl_jupyter.display's: rank 1 is the highest value and equal
 * values are ranked by data index, the lower index first, so ranks are ordinal and a point
 * has one rank in every view. "High to low" lists ranks 1, 2, ...; "low to high" is its exact
 * reverse; points without a value have no rank and come last in both.
 *
 * "±" is always the half-width of the confidence interval at the chosen level, and says so
 * ("± 95% CI"); the standard error is always labelled "stderr".
 */

/** The MIME type written by `ValuationResult._repr_mimebundle_`. */
export const MIME_TYPE = 'application/vnd.dvl-jupyter.valuation.v1+json';

/** Confidence levels offered by the renderer, in percent. */
export const CONFIDENCE_LEVELS = [90, 95, 99] as const;
export type ConfidenceLevel = (typeof CONFIDENCE_LEVELS)[number];

/** Two-sided standard normal quantiles: an interval is value +- z * stderr. */
export const Z_TABLE: Readonly<Record<ConfidenceLevel, number>> = {
  90: 1.6448536269514722,
  95: 1.959963984540054,
  99: 2.5758293035489004
};

export type SortOrder = 'descending' | 'ascending' | 'original';
export type SubsetMode = 'all' | 'top' | 'bottom';

/** The payload, as far as the renderer reads it. Unknown fields are ignored. */
export interface IValuationPayload {
  version: number;
  method?: string;
  indices: number[];
  names?: unknown[];
  values: (number | null)[];
  stderr?: (number | null)[];
  counts?: (number | null)[];
  labels?: unknown[] | null;
  /** Rank of each point (1 = highest), null without a value; absent in older payloads. */
  ranks?: unknown[] | null;
  images?: unknown;
  meta?: Record<string, unknown> | null;
  [key: string]: unknown;
}

/** One training point, with every field already turned into a number or a plain string. */
export interface IPoint {
  /** Position in the payload's arrays. */
  pos: number;
  /** Index of the point in the training data. */
  index: number;
  name: string;
  /** The point's class label, '' when the payload has none. */
  label: string;
  /** NaN when the value is missing (JSON null). */
  value: number;
  /** 0 when missing. */
  stderr: number;
  /** Number of updates of the estimate; null when unknown. */
  count: number | null;
  /**
   * Rank among all finite values of the result (listed or not): 1 = the highest, ties by
   * data index. Null for a missing value. Large results list only their highest and lowest
   * points, so ranks jump between the two.
   */
  rank: number | null;
  /** A `data:image/png;base64,...` URL, or null. */
  image: string | null;
}

/** What the renderer draws: the points plus a few summary facts. */
export interface IValuation {
  method: string;
  points: IPoint[];
  /** Number of training points valued; more than `points.length` when some are omitted. */
  total: number;
  /** Points with a finite value among all `total` (listed or not). */
  finiteTotal: number;
  meta: Record<string, unknown>;
  summary: Record<string, unknown>;
  /** True when at least one point has a thumbnail. */
  hasImages: boolean;
  /** The view the payload asks to open on (`--show`), or null for the default. */
  view: View | null;
}

export type View = 'chart' | 'grid' | 'table';

const VIEWS: Record<string, View> = { plot: 'chart', chart: 'chart', grid: 'grid', table: 'table' };

/** Raised for a payload the renderer cannot read; its message is shown to the user as text. */
export class PayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadError';
  }
}

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const DATA_URL_PREFIX = 'data:image/png;base64,';
/** Thumbnails are meant to be small: anything larger than this is ignored rather than drawn. */
const MAX_IMAGE_CHARS = 200_000;

/**
 * Turn a thumbnail field into a PNG data URL, or null when it is absent or not plain base64.
 * Only base64 characters pass, so the string can never leave the `data:` URL.
 */
export function imageUrl(raw: unknown): string | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_IMAGE_CHARS) {
    return null;
  }
  const body = raw.startsWith(DATA_URL_PREFIX) ? raw.slice(DATA_URL_PREFIX.length) : raw;
  const compact = body.replace(/\s+/g, '');
  return BASE64_RE.test(compact) ? DATA_URL_PREFIX + compact : null;
}

/** Any JSON scalar as display text: null and undefined become ''. */
export function asText(raw: unknown): string {
  if (raw === null || raw === undefined) {
    return '';
  }
  if (typeof raw === 'string') {
    return raw;
  }
  if (typeof raw === 'number' || typeof raw === 'boolean') {
    return String(raw);
  }
  return JSON.stringify(raw);
}

function asNumber(raw: unknown): number {
  return typeof raw === 'number' && Number.isFinite(raw) ? raw : NaN;
}

/**
 * Thumbnails may come as a list aligned with the points (null where missing), or as an object
 * mapping a point's training index to its image (for a subset of the points), optionally
 * wrapped as `{indices: [...], data: [...]}`. Returns a lookup by position.
 */
function imageLookup(images: unknown, indices: number[]): (pos: number) => string | null {
  if (Array.isArray(images)) {
    return pos => imageUrl(images[pos]);
  }
  if (images && typeof images === 'object') {
    const obj = images as Record<string, unknown>;
    if (Array.isArray(obj.indices) && Array.isArray(obj.data)) {
      const byIndex = new Map<number, unknown>();
      obj.indices.forEach((idx, i) => byIndex.set(Number(idx), (obj.data as unknown[])[i]));
      return pos => imageUrl(byIndex.get(indices[pos]));
    }
    return pos => imageUrl(obj[String(indices[pos])]);
  }
  return () => null;
}

function optionalArray(payload: IValuationPayload, key: string, n: number): unknown[] | null {
  const raw = payload[key];
  if (raw === undefined || raw === null) {
    return null;
  }
  if (!Array.isArray(raw)) {
    throw new PayloadError(`"${key}" must be a list, got ${typeof raw}`);
  }
  if (raw.length !== n) {
    throw new PayloadError(
      `"${key}" has ${raw.length} entries but "values" has ${n}; every list describes the same points`
    );
  }
  return raw;
}

/**
 * Read a payload into points. Throws a PayloadError saying which field is wrong.
 */
export function parsePayload(data: unknown): IValuation {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new PayloadError('the valuation payload must be a JSON object');
  }
  const payload = data as IValuationPayload;
  if (payload.version !== 1) {
    throw new PayloadError(
      `unsupported payload version ${asText(payload.version)}; this renderer reads version 1 ` +
        '(update the dvl-jupyter package to read newer results)'
    );
  }
  if (!Array.isArray(payload.values)) {
    throw new PayloadError('"values" must be a list of numbers');
  }
  const n = payload.values.length;
  const indicesRaw = optionalArray(payload, 'indices', n);
  const indices = indicesRaw ? indicesRaw.map(Number) : payload.values.map((_, i) => i);
  const names = optionalArray(payload, 'names', n);
  const stderr = optionalArray(payload, 'stderr', n);
  const counts = optionalArray(payload, 'counts', n);
  const labels = optionalArray(payload, 'labels', n);
  const image = imageLookup(payload.images, indices);

  const points: IPoint[] = [];
  let hasImages = false;
  for (let pos = 0; pos < n; pos++) {
    const se = stderr ? asNumber(stderr[pos]) : 0;
    const count = counts ? asNumber(counts[pos]) : NaN;
    const img = image(pos);
    hasImages = hasImages || img !== null;
    points.push({
      pos,
      index: indices[pos],
      name: names ? asText(names[pos]) : String(indices[pos]),
      label: labels ? asText(labels[pos]) : '',
      value: asNumber(payload.values[pos]),
      stderr: Number.isFinite(se) && se > 0 ? se : 0,
      count: Number.isFinite(count) ? count : null,
      rank: null,
      image: img
    });
  }
  const meta = asObject(payload.meta);
  const summary = asObject(payload.summary);
  const totalRaw = asNumber(summary.n);
  const total = Number.isFinite(totalRaw) && totalRaw >= n ? totalRaw : n;
  const nonFiniteRaw = asNumber(summary.non_finite);
  const listedFinite = points.filter(p => !Number.isNaN(p.value)).length;
  const finiteTotal =
    total > n && Number.isFinite(nonFiniteRaw) ? Math.max(listedFinite, total - nonFiniteRaw) : listedFinite;
  const given = payloadRanks(payload.ranks, points, finiteTotal);
  const ranks = given ?? computeRanks(points, finiteTotal);
  points.forEach((p, pos) => {
    p.rank = ranks[pos];
  });
  return {
    method: asText(payload.method) || 'valuation',
    points,
    total,
    finiteTotal,
    meta,
    summary,
    hasImages,
    view: VIEWS[asText(payload.view)] ?? null
  };
}

function asObject(raw: unknown): Record<string, unknown> {
  return raw && typeof raw === 'object' && !Array.isArray(raw)
    ? (raw as Record<string, unknown>)
    : {};
}

/**
 * The payload's own ranks, if it has usable ones: one per point, a distinct integer in
 * [1, finiteTotal] for each point with a value and null for each without. Anything else
 * (an older payload, or one written by hand) returns null, and the ranks are computed.
 */
export function payloadRanks(
  raw: unknown,
  points: readonly IPoint[],
  finiteTotal: number
): (number | null)[] | null {
  if (!Array.isArray(raw) || raw.length !== points.length) {
    return null;
  }
  const seen = new Set<number>();
  for (let pos = 0; pos < raw.length; pos++) {
    const r = raw[pos];
    const missing = Number.isNaN(points[pos].value);
    if (missing) {
      if (r !== null) {
        return null;
      }
      continue;
    }
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > finiteTotal || seen.has(r)) {
      return null;
    }
    seen.add(r);
  }
  return raw as (number | null)[];
}

/** Positions of the points with a value, by value (highest first), ties by data index. */
function byValue(points: readonly IPoint[]): number[] {
  return points
    .map((_, i) => i)
    .filter(i => !Number.isNaN(points[i].value))
    .sort(
      (a, b) =>
        points[b].value - points[a].value || points[a].index - points[b].index || a - b
    );
}

/**
 * Ranks for a payload without them (written before they were added): the tie rule applied
 * to the listed points. When values are omitted (a large result lists its highest and lowest),
 * the upper half of the listed points are the highest overall and the lower half the lowest,
 * as dvl_jupyter.display wrote them.
 */
export function computeRanks(points: readonly IPoint[], finiteTotal: number): (number | null)[] {
  const order = byValue(points);
  const listed = order.length;
  const gap = Math.max(0, finiteTotal - listed);
  const high = gap > 0 ? listed - Math.floor(listed / 2) : listed;
  const ranks: (number | null)[] = points.map(() => null);
  order.forEach((pos, j) => {
    ranks[pos] = j < high ? j + 1 : j + 1 + gap;
  });
  return ranks;
}

/**
 * Display order of the points (positions into `points`): by rank, either way, or in
 * training order. 'descending' lists rank 1 first, 'ascending' is its exact reverse; points
 * without a rank (no value) go last in both, in payload order.
 */
export function orderPoints(points: readonly IPoint[], sort: SortOrder): number[] {
  const order = points.map((_, i) => i);
  if (sort === 'original') {
    // Training order: by the points' data index (the payload lists them by value).
    return order.sort((a, b) => points[a].index - points[b].index || a - b);
  }
  const sign = sort === 'ascending' ? -1 : 1;
  return order.sort((a, b) => {
    const ra = points[a].rank;
    const rb = points[b].rank;
    if (ra === null || rb === null) {
      return ra === rb ? a - b : ra === null ? 1 : -1;
    }
    return sign * (ra - rb);
  });
}

/**
 * Where consecutive slots of a view skip ranks, so points are not listed between them:
 * [slot, count] pairs, `count` ranks missing before `slot`. Only a view of every listed
 * point by rank has gaps (a top or bottom k, or training order, lists no gap by design).
 */
export function findGaps(
  points: readonly IPoint[],
  shown: readonly number[],
  sort: SortOrder,
  subset: SubsetMode
): [number, number][] {
  const gaps: [number, number][] = [];
  if (sort === 'original' || subset !== 'all') {
    return gaps;
  }
  for (let i = 1; i < shown.length; i++) {
    const a = points[shown[i - 1]].rank;
    const b = points[shown[i]].rank;
    if (a !== null && b !== null && Math.abs(b - a) > 1) {
      gaps.push([i, Math.abs(b - a) - 1]);
    }
  }
  return gaps;
}

/**
 * Runs of consecutive ranks among the slots [first, last) of a view, as [lowest, highest]
 * pairs from left to right (a run ends where a rank is skipped); points without a rank are
 * counted apart, in `missing`.
 */
export function rankRuns(
  points: readonly IPoint[],
  shown: readonly number[],
  first: number,
  last: number
): { runs: [number, number][]; missing: number } {
  const runs: [number, number][] = [];
  let missing = 0;
  let prev: number | null = null;
  for (let slot = first; slot < last; slot++) {
    const r = points[shown[slot]].rank;
    if (r === null) {
      missing++;
      continue;
    }
    const run = runs[runs.length - 1];
    if (run && prev !== null && Math.abs(r - prev) === 1) {
      run[0] = Math.min(run[0], r);
      run[1] = Math.max(run[1], r);
    } else {
      runs.push([r, r]);
    }
    prev = r;
  }
  return { runs, missing };
}

/**
 * Keep the `k` highest ('top') or lowest ('bottom') valued points of `order`, preserving the
 * display order. 'all', or k at least the number of points, keeps everything.
 */
export function selectSubset(
  points: readonly IPoint[],
  order: readonly number[],
  mode: SubsetMode,
  k: number
): number[] {
  if (mode === 'all' || !(k >= 0) || k >= order.length) {
    return order.slice();
  }
  const inOrder = new Set(order);
  const ranked = orderPoints(points, mode === 'top' ? 'descending' : 'ascending');
  const keep = new Set(
    ranked.filter(i => inOrder.has(i) && points[i].rank !== null).slice(0, Math.floor(k))
  );
  return order.filter(i => keep.has(i));
}

/** Half-width of the confidence interval of one point. */
export function halfWidth(point: IPoint, level: ConfidenceLevel): number {
  return Z_TABLE[level] * point.stderr;
}

/**
 * The window of display slots that is visible: `start` (may be fractional) and `span` slots.
 * Slot i is centred at i + 0.5.
 */
export interface IWindow {
  start: number;
  span: number;
}

/** Narrowest window: fewer points than this never fill the whole width. */
export const MIN_SPAN = 5;

export function fullWindow(n: number): IWindow {
  return { start: 0, span: Math.max(n, 1) };
}

/** Keep a window inside [0, n] and no narrower than MIN_SPAN (or n, if smaller). */
export function clampWindow(w: IWindow, n: number): IWindow {
  const total = Math.max(n, 1);
  const span = Math.min(total, Math.max(Math.min(MIN_SPAN, total), w.span));
  const start = Math.min(Math.max(0, w.start), total - span);
  return { start, span };
}

/**
 * Zoom by `factor` (< 1 zooms in) keeping the slot under `anchor` (0..1 across the plot) fixed.
 */
export function zoomWindow(w: IWindow, n: number, factor: number, anchor = 0.5): IWindow {
  const a = Math.min(Math.max(anchor, 0), 1);
  const focus = w.start + a * w.span;
  // The span as clamped (at least MIN_SPAN, at most n), so the focus stays put at the limits.
  const span = clampWindow({ start: 0, span: w.span * factor }, n).span;
  return clampWindow({ start: focus - a * span, span }, n);
}

/** Move the window by `delta` slots (positive: towards later slots). */
export function panWindow(w: IWindow, n: number, delta: number): IWindow {
  return clampWindow({ start: w.start + delta, span: w.span }, n);
}

/** Shift the window just enough that slot `i` is inside it. */
export function revealSlot(w: IWindow, n: number, i: number): IWindow {
  if (i < w.start) {
    return clampWindow({ start: i, span: w.span }, n);
  }
  if (i + 1 > w.start + w.span) {
    return clampWindow({ start: i + 1 - w.span, span: w.span }, n);
  }
  return w;
}

/** The slots at least partly visible: [first, last). */
export function visibleSlots(w: IWindow, n: number): [number, number] {
  const first = Math.max(0, Math.floor(w.start));
  const last = Math.min(n, Math.ceil(w.start + w.span));
  return [first, Math.max(first, last)];
}

/**
 * A mark on the chart: one point (size 1) or an aggregate of consecutive slots when more
 * points are visible than the pixel budget allows.
 */
export interface IMark {
  /** First slot (inclusive) and last slot (exclusive) in display order. */
  first: number;
  last: number;
  /** Position of the point in `points` when the mark is a single point, else -1. */
  pos: number;
  /** Lowest, mean and highest value; lower and upper end of the intervals. */
  min: number;
  mean: number;
  max: number;
  lo: number;
  hi: number;
  /** Number of points with a value (NaNs are skipped). */
  n: number;
}

/**
 * Marks for the visible slots [first, last) of `order`: one per point while they fit in
 * `budget` marks, else consecutive slots grouped into at most `budget` aggregates.
 * Cost is proportional to the visible slots, whatever the total.
 */
export function buildMarks(
  points: readonly IPoint[],
  order: readonly number[],
  first: number,
  last: number,
  level: ConfidenceLevel,
  budget: number
): IMark[] {
  const count = last - first;
  if (count <= 0) {
    return [];
  }
  const size = count <= budget ? 1 : Math.ceil(count / Math.max(1, budget));
  const z = Z_TABLE[level];
  const marks: IMark[] = [];
  for (let s = first; s < last; s += size) {
    const e = Math.min(last, s + size);
    let min = Infinity;
    let max = -Infinity;
    let lo = Infinity;
    let hi = -Infinity;
    let sum = 0;
    let n = 0;
    for (let i = s; i < e; i++) {
      const p = points[order[i]];
      if (Number.isNaN(p.value)) {
        continue;
      }
      const h = z * p.stderr;
      min = Math.min(min, p.value);
      max = Math.max(max, p.value);
      lo = Math.min(lo, p.value - h);
      hi = Math.max(hi, p.value + h);
      sum += p.value;
      n++;
    }
    marks.push({
      first: s,
      last: e,
      pos: size === 1 ? order[s] : -1,
      min: n ? min : NaN,
      mean: n ? sum / n : NaN,
      max: n ? max : NaN,
      lo: n ? lo : NaN,
      hi: n ? hi : NaN,
      n
    });
  }
  return marks;
}

/**
 * The value range of the chart: all intervals of the shown points, at the chosen level, plus
 * zero (so the sign of a value reads at a glance), padded by 5%.
 */
export function valueDomain(
  points: readonly IPoint[],
  order: readonly number[],
  level: ConfidenceLevel
): [number, number] {
  const z = Z_TABLE[level];
  let lo = 0;
  let hi = 0;
  for (const i of order) {
    const p = points[i];
    if (Number.isNaN(p.value)) {
      continue;
    }
    lo = Math.min(lo, p.value - z * p.stderr);
    hi = Math.max(hi, p.value + z * p.stderr);
  }
  if (hi - lo <= 0) {
    return [lo - 1, hi + 1];
  }
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

/** About `count` round tick values inside [lo, hi] (steps of 1, 2 or 5 times a power of 10). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) {
    return [];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  const eps = 1e-9;
  const step = (unit <= 1 + eps ? 1 : unit <= 2 + eps ? 2 : unit <= 5 + eps ? 5 : 10) * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  }
  return ticks;
}

/** The round step (1, 2 or 5 times a power of 10, at least 1) that makes about `count`
 * steps of `span`. */
export function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  if (!(raw > 1)) {
    return 1;
  }
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  const eps = 1e-9;
  return (unit <= 1 + eps ? 1 : unit <= 2 + eps ? 2 : unit <= 5 + eps ? 5 : 10) * power;
}

/**
 * Ticks of the slot axis for the slots [first, last): the slots whose label (a rank, or a
 * place in training order) is a multiple of one round step, so ticks are evenly spaced
 * within each run of consecutive labels, whichever way the labels run; `labelOf` gives null
 * for a slot without one. The step gives about `count` ticks over the visible slots. Where a
 * gap in the labels brings two ticks closer than half a step, the later one is dropped, so
 * labels never overlap. The first slot without a label (the points without a value, which
 * come last) gets a tick too, labelled null. Returns [slot, label] pairs, left to right.
 */
export function axisTicks(
  labelOf: (slot: number) => number | null,
  first: number,
  last: number,
  count = 6
): [number, number | null][] {
  const step = niceStep(last - first, count);
  const ticks: [number, number | null][] = [];
  let missingTicked = false;
  for (let slot = first; slot < last; slot++) {
    const label = labelOf(slot);
    if (label === null ? missingTicked : label % step !== 0) {
      continue;
    }
    const prev = ticks[ticks.length - 1];
    if (prev && slot - prev[0] < step / 2) {
      continue;
    }
    missingTicked = missingTicked || label === null;
    ticks.push([slot, label]);
  }
  return ticks;
}

/** A value with 3 significant digits, in exponent form when very small or large. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) {
    return 'n/a';
  }
  const a = Math.abs(v);
  if (a < 1e-12) {
    return '0'; // floating-point noise of a sum of differences, not a value
  }
  if (a < 1e-3 || a >= 1e5) {
    return v.toExponential(2);
  }
  return String(Number(v.toPrecision(3)));
}

/** "1,234" style integer. */
export function formatCount(v: number): string {
  return Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a';
}

/** "1 point", "1,234 points": a count and its noun, singular for exactly one. */
export function countOf(n: number, noun: string): string {
  return `${formatCount(n)} ${noun}${formatCount(n) === '1' ? '' : 's'}`;
}

/**
 * Seconds as "8s", "1m 15s" or "1h 06m", as dvl_jupyter's text, HTML and progress views
 * write durations (dvl_jupyter.valuation.utils.format_duration), so every view agrees.
 */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return 'n/a';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  }
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "± 95% CI": what a "±" stands for, written beside every one of them. */
export function ciLabel(level: ConfidenceLevel): string {
  return `± ${level}% CI`;
}

/**
 * The lines of the tooltip for one point, as [label, text] pairs (all plain text).
 */
export function describePoint(
  p: IPoint,
  level: ConfidenceLevel,
  rank: string | null = null
): [string, string][] {
  const rows: [string, string][] = [];
  if (rank !== null) {
    rows.push(['rank', rank]);
  }
  if (p.label !== '') {
    rows.push(['label', p.label]);
  }
  rows.push(['index', String(p.index)]);
  if (p.name !== '' && p.name !== String(p.index)) {
    rows.push(['name', p.name]);
  }
  rows.push([
    'value',
    Number.isNaN(p.value)
      ? 'missing (no finite value)'
      : `${formatValue(p.value)} ± ${formatValue(halfWidth(p, level))} (${level}% CI)`
  ]);
  rows.push(['stderr', formatValue(p.stderr)]);
  rows.push(['updates', p.count === null ? 'n/a' : formatCount(p.count)]);
  return rows;
}

/** One line summarising the run, from the payload's meta. */
export function summaryLine(v: IValuation): string {
  const parts: string[] = [];
  const shown = v.points.length;
  parts.push(
    v.total > shown
      ? `${formatCount(shown)} of ${countOf(v.total, 'point')} listed (lowest and highest)`
      : countOf(shown, 'point')
  );
  const m = v.meta;
  const evaluations = asNumber(m.evaluations ?? m.n_evaluations);
  if (Number.isFinite(evaluations)) {
    parts.push(countOf(evaluations, 'evaluation'));
  }
  const hits = asNumber(m.cache_hits);
  if (Number.isFinite(hits)) {
    parts.push(countOf(hits, 'cache hit'));
  }
  const elapsed = asNumber(m.elapsed ?? m.elapsed_seconds);
  if (Number.isFinite(elapsed)) {
    parts.push(formatSeconds(elapsed));
  }
  const ended = asText(m.ended);
  if (ended && ended !== 'done') {
    parts.push(`ended: ${ended}`);
  }
  const failed = asNumber(m.failed_fits);
  if (failed > 0) {
    parts.push(countOf(failed, 'failed fit'));
  }
  return parts.join(' · ');
}

/**
 * How far the ranking can be trusted, from the payload's meta: the split-half reliability,
 * the values distinguishable from zero, and the advice the run gave when its ranking is
 * mostly noise (`warn`). Null when the payload says nothing about it (older payloads).
 */
export function trustLine(v: IValuation): { text: string; warn: boolean } | null {
  const m = v.meta;
  if (m.exact === true) {
    return { text: 'exact values (no sampling)', warn: false };
  }
  const advice = asText(m.advice);
  const r = asNumber(m.reliability);
  if (!advice && !Number.isFinite(r)) {
    return null;
  }
  const parts: string[] = [];
  if (Number.isFinite(r)) {
    parts.push(`reliability of the ranking ${r.toFixed(2)}`);
  }
  const distinct = asNumber(m.distinguishable);
  if (Number.isFinite(distinct)) {
    parts.push(`${formatCount(distinct)} of ${formatCount(v.total)} values distinguishable from zero`);
  }
  const text = parts.join(' · ');
  return advice ? { text: advice, warn: true } : { text, warn: false };
}

/** The settings of the run as [key, value] text pairs, in the payload's order. */
export function settingsRows(v: IValuation): [string, string][] {
  // A null setting (Python's None) reads "None": an empty cell would look like a missing row.
  const rows: [string, string][] = Object.entries(asObject(v.meta.settings)).map(([k, val]) => [
    k,
    val === null || val === undefined ? 'None' : asText(val)
  ]);
  for (const key of ['status', 'ended', 'permutations', 'path', 'run_id']) {
    const val = v.meta[key];
    if (val !== undefined && val !== null && val !== '') {
      rows.push([key.replace('_', ' '), asText(val)]);
    }
  }
  const mean = asNumber(v.summary.mean);
  if (v.total > v.points.length && Number.isFinite(mean)) {
    rows.push(['mean of all values', formatValue(mean)]);
  }
  return rows;
}

/** A CSV field: quoted when it has to be, and a text that a spreadsheet would run as a
 * formula (=, +, -, @ first) made inert with a leading apostrophe. */
function csvText(text: string): string {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function csvNumber(v: number | null): string {
  return v === null || !Number.isFinite(v) ? '' : String(v);
}

/**
 * The points of `order` as CSV (RFC 4180, CRLF line ends), one row each in that order: rank,
 * index, name, label, value, stderr, the interval at `level` and the number of updates.
 * Numbers keep full precision; a missing value is an empty field.
 */
export function toCsv(
  points: readonly IPoint[],
  order: readonly number[],
  level: ConfidenceLevel
): string {
  const head = ['rank', 'index', 'name', 'label', 'value', 'stderr'];
  head.push(`ci${level}_low`, `ci${level}_high`, 'updates');
  const lines = [head.join(',')];
  for (const pos of order) {
    const p = points[pos];
    const h = halfWidth(p, level);
    const has = !Number.isNaN(p.value);
    lines.push(
      [
        csvNumber(p.rank),
        csvNumber(p.index),
        csvText(p.name),
        csvText(p.label),
        csvNumber(has ? p.value : null),
        csvNumber(p.stderr),
        csvNumber(has ? p.value - h : null),
        csvNumber(has ? p.value + h : null),
        csvNumber(p.count)
      ].join(',')
    );
  }
  return lines.join('\r\n') + '\r\n';
}
