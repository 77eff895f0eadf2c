/**
 * The image grid: one cell per shown point, in chart order, with its image (if the result has
 * images), label, value ± interval and rank; paged, with a "Show more" button.
 */
import { button, h } from './dom';
import { rankText, valueWithInterval } from './format';
import { IViewState } from './state';
import { describePoint, formatCount } from './valuation';

/** Cells shown at first, and added by each "Show more". */
const GRID_PAGE = 60;

export class ImageGrid {
  /** The `.dvl-gridview` container (hidden until the grid view is chosen). */
  readonly node: HTMLDivElement;

  constructor(state: IViewState) {
    this._state = state;
    this.node = h('div', 'dvl-gridview');
    this.node.hidden = true;
  }

  /** Back to the first page (when the shown points change). */
  reset(): void {
    this._count = GRID_PAGE;
  }

  /** Fill the grid from the state. */
  render(): void {
    const state = this._state;
    const d = state.data;
    const grid = this.node;
    grid.replaceChildren();
    if (!d) {
      return;
    }
    if (!d.hasImages) {
      grid.appendChild(
        h('p', 'dvl-note', 'This result has no images (the data are not images, or --no-images).')
      );
    }
    grid.appendChild(
      h(
        'p',
        'dvl-note dvl-grid-key',
        `Under each point: #rank (1 = highest value) · index, and value ± ${state.level}% CI.`
      )
    );
    const list = h('ol', 'dvl-cells');
    const count = Math.min(this._count, state.shown.length);
    for (let slot = 0; slot < count; slot++) {
      const p = d.points[state.shown[slot]];
      const cell = h('li', 'dvl-cell');
      cell.dataset.index = String(p.index);
      if (p.image) {
        const img = h('img', 'dvl-cell-image');
        img.src = p.image;
        img.alt = `image of point ${p.index}`;
        cell.appendChild(img);
      } else if (d.hasImages) {
        cell.appendChild(h('div', 'dvl-cell-noimage', 'no image'));
      }
      cell.appendChild(h('div', 'dvl-cell-label', p.label !== '' ? p.label : p.name));
      cell.appendChild(h('div', 'dvl-cell-value', valueWithInterval(p, state.level)));
      const rank = p.rank;
      cell.appendChild(
        h('div', 'dvl-cell-rank', `${rank === null ? '' : `#${formatCount(rank)} · `}idx ${p.index}`)
      );
      cell.title = describePoint(p, state.level, rankText(state, p.pos))
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n');
      list.appendChild(cell);
    }
    grid.appendChild(list);
    if (count < state.shown.length) {
      grid.appendChild(
        button(
          `Show ${Math.min(GRID_PAGE, state.shown.length - count)} more`,
          'Show more images',
          () => {
            this._count += GRID_PAGE;
            this.render();
          }
        )
      );
    }
  }

  private _state: IViewState;
  private _count = GRID_PAGE;
}
