/**
 * The tooltip of the active chart mark: its text (with the point's thumbnail), its placement
 * beside the mark inside the widget, and its screen-reader twin, a polite live region.
 */
import { h } from './dom';
import { rankText, slotRange, valueWithInterval } from './format';
import { IViewState } from './state';
import { describeMark, describePoint, IMark } from './valuation';

/** What the tooltip and the live region say about a mark. */
export interface IActiveDescription {
  title: string;
  /** [label, text] lines. */
  rows: [string, string][];
  /** The point's thumbnail (a data: URL), if any. */
  image: string | null;
  /** The one-line announcement for screen readers. */
  live: string;
}

/** Describe a mark of the chart: a single point, or a group of consecutive slots. */
export function describeActive(state: IViewState, m: IMark): IActiveDescription {
  const level = state.level;
  if (m.pos >= 0) {
    const p = state.data!.points[m.pos];
    return {
      title: p.name,
      rows: describePoint(p, level, rankText(state, p.pos)).filter(([k]) => k !== 'name'),
      image: p.image,
      live: `index ${p.index}, value ${valueWithInterval(p, level)}`
    };
  }
  const rows = describeMark(m, level, slotRange(state, m.first, m.last, '', ' to '));
  return {
    title: 'group of points',
    rows,
    image: null,
    // "5 (981 to 985), values 0.1 … 0.4", or "5 (5 missing values), no values (5 missing)".
    live: `${rows[0][1]}, ${m.n === 0 ? '' : 'values '}${rows[1][1]}`
  };
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
    const top = Math.min(Math.max(0, y - hgt / 2), Math.max(0, rootRect.height - hgt));
    t.style.left = `${left}px`;
    t.style.top = `${top}px`;
  }
}
