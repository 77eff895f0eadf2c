/**
 * The tooltip of the active chart mark: its text (with the point's thumbnail), its placement
 * beside the mark inside the widget, and its screen-reader twin, a polite live region.
 */
import { h } from './dom';
import { rankText, slotRange, valueWithLevel } from './format';
import { IViewState } from './state';
import { countOf, describePoint, formatValue, IMark } from './valuation';

/** What the tooltip and the live region say about a mark. */
export interface IActiveDescription {
  title: string;
  /** [label, text] lines. */
  rows: [string, string][];
  /** The point's thumbnail (a data: URL), if any. */
  image: string | null;
  /** The result has images but this point has no thumbnail (the payload keeps a bounded
   * number, the most extreme points first). */
  noThumbnail: boolean;
  /** The one-line announcement for screen readers. */
  live: string;
}

/**
 * Describe the active slot of the chart: its point (also inside a group of points drawn as
 * one mark, where the pointer or keyboard picks one of them), and for a group, what it
 * holds.
 */
export function describeActive(state: IViewState, m: IMark, slot: number): IActiveDescription {
  const level = state.level;
  const p = state.data!.points[state.shown[Math.min(Math.max(slot, m.first), m.last - 1)]];
  const rows = describePoint(p, level, rankText(state, p.pos)).filter(([k]) => k !== 'name');
  let live = `index ${p.index}, value ${valueWithLevel(p, level)}`;
  if (m.pos < 0) {
    // The mark under the pointer stands for several points: "5 points (ranks 981 to 985)".
    const unit = state.sort === 'original' ? 'point' : 'rank';
    const group = `${countOf(m.last - m.first, 'point')} (${slotRange(
      state,
      m.first,
      m.last,
      unit,
      ' to '
    )})`;
    rows.push(['group', group]);
    if (m.n > 1 && m.max > m.min) {
      rows.push(['its values', `${formatValue(m.min)} … ${formatValue(m.max)}`]);
    }
    rows.push(['', 'zoom in to tell them apart']);
    live += `; one of ${group} drawn as one mark`;
  }
  const noThumbnail = state.data!.hasImages && !p.image;
  return { title: p.name, rows, image: p.image, noThumbnail, live };
}

export class Tooltip {
  /** The `.dvl-tooltip`, positioned inside the widget's node. */
  readonly node: HTMLDivElement;
  /** The `.dvl-live` region, with id `${id}-live` (the chart's aria-describedby). */
  readonly live: HTMLDivElement;

  constructor(id: string) {
    this.node = h('div', 'dvl-tooltip');
    this.node.setAttribute('role', 'tooltip');
    this.node.hidden = true;
    this.live = h('div', 'dvl-live');
    this.live.id = `${id}-live`;
    this.live.setAttribute('aria-live', 'polite');
  }

  /** Announce the description and show it in the tooltip (call `place` next). */
  show(desc: IActiveDescription): void {
    this.live.textContent = desc.live;
    const t = this.node;
    t.replaceChildren();
    if (desc.image) {
      const img = h('img', 'dvl-thumb');
      img.alt = 'thumbnail of the point';
      img.src = desc.image;
      t.appendChild(img);
    } else if (desc.noThumbnail) {
      const none = h('div', 'dvl-thumb dvl-nothumb', 'no thumbnail');
      none.title = 'Only the most extreme points carry a thumbnail; see the Images view.';
      t.appendChild(none);
    }
    const text = h('div', 'dvl-tooltip-text');
    text.appendChild(h('div', 'dvl-tooltip-title', desc.title));
    const table = h('table');
    for (const [k, v] of desc.rows) {
      const tr = h('tr');
      tr.append(h('th', '', k), h('td', `dvl-tip-${k.replace(/[^a-z]/g, '') || 'note'}`, v));
      table.appendChild(tr);
    }
    text.appendChild(table);
    t.appendChild(text);
    t.hidden = false;
  }

  hide(): void {
    this.node.hidden = true;
  }

  /**
   * Put the tooltip beside the point (`cx`, `cy` in the coordinates of `svg`), inside `root`
   * (the widget's node, which the tooltip is positioned in).
   */
  place(cx: number, cy: number, root: HTMLElement, svg: SVGSVGElement): void {
    const t = this.node;
    const rootRect = root.getBoundingClientRect();
    const svgRect = svg.getBoundingClientRect();
    const x = svgRect.left - rootRect.left + cx;
    const y = svgRect.top - rootRect.top + cy;
    const w = t.offsetWidth || 220;
    const hgt = t.offsetHeight || 120;
    const left = x + 14 + w > rootRect.width ? Math.max(0, x - 14 - w) : x + 14;
    // Beside the point and inside the chart (not over the toolbar or the status line)
    // whenever the chart is tall enough, else inside the widget.
    const chartTop = svgRect.top - rootRect.top;
    const [lo, hi] =
      hgt <= svgRect.height
        ? [chartTop, chartTop + svgRect.height - hgt]
        : [0, Math.max(0, rootRect.height - hgt)];
    const top = Math.min(Math.max(lo, y - hgt / 2), hi);
    t.style.left = `${left}px`;
    t.style.top = `${top}px`;
  }
}
