import { IValuationPayload } from '../src/valuation';

/** A 1x1 grey PNG. */
export const PNG_1PX =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==';

/** A hand-written payload of `n` points: indices 10, 11, ...; values alternate in sign. */
export function fixture(n: number): IValuationPayload {
  const idx = Array.from({ length: n }, (_, i) => i);
  return {
    version: 1,
    method: 'TMC-Shapley',
    indices: idx.map(i => 10 + i),
    names: idx.map(i => `digit-${10 + i}`),
    values: idx.map(i => (i % 2 ? -1 : 1) * 0.1 * (i + 1)),
    stderr: idx.map(i => 0.05 * (1 + (i % 3))),
    counts: idx.map(i => 5 + 2 * i),
    labels: idx.map(i => String(i % 10)),
    images: idx.map(() => PNG_1PX),
    summary: {
      n,
      shown: n,
      omitted: 0,
      non_finite: 0,
      mean: 0,
      quantiles: { levels: [0, 0.5, 1], values: [null, null, null] },
      histogram: { edges: [], counts: [] }
    },
    meta: {
      evaluations: 1234,
      cache_hits: 56,
      elapsed: 12.34,
      settings: {
        stopping: 'MinUpdates(2)',
        truncation: 'RelativeTruncation(rtol=0.05)',
        seed: 36
      }
    }
  };
}
