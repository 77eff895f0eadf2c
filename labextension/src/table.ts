/**
 * The table view: one row per shown point (rank, index, name, label, value, interval,
 * stderr, updates), paged, with a "Show more rows" button.
 */
import { button, h } from './dom';
import { rankLabel } from './format';
import { IViewState } from './state';
import { ciLabel, countOf, formatCount, formatValue, halfWidth } from './valuation';

/** Rows shown at first, and added by each "Show more rows". */
const TABLE_PAGE = 100;

export class ValueTable {
  /** The `.dvl-tableview` container (hidden until the table view is chosen). */
  readonly node: HTMLDivElement;

  constructor(state: IViewState) {
    this._state = state;
    this.node = h('div', 'dvl-tableview');
    this.node.hidden = true;
  }

  /** Back to the first page (when the shown points change). */
  reset(): void {
    this._count = TABLE_PAGE;
  }

  /** Fill the table from the state. */
  render(): void {
    const state = this._state;
    const d = state.data;
    const wrap = this.node;
    wrap.replaceChildren();
    if (!d) {
      return;
    }
    const level = state.level;
    const table = h('table', 'dvl-table');
    const head = h('tr');
    for (const title of [
      'rank',
      'index',
      'name',
      'label',
      'value',
      ciLabel(level),
      'stderr',
      'updates'
    ]) {
      const th = h('th', '', title);
      th.scope = 'col';
      head.appendChild(th);
    }
    table.appendChild(h('thead')).appendChild(head);
    const body = h('tbody');
    const count = Math.min(this._count, state.shown.length);
    for (let slot = 0; slot < count; slot++) {
      const p = d.points[state.shown[slot]];
      const tr = h('tr');
      for (const [text, numeric] of [
        [rankLabel(state, p.pos), true],
        [String(p.index), true],
        [p.name, false],
        [p.label, false],
        [formatValue(p.value), true],
        [Number.isNaN(p.value) ? 'n/a' : formatValue(halfWidth(p, level)), true],
        [formatValue(p.stderr), true],
        [p.count === null ? 'n/a' : formatCount(p.count), true]
      ] as [string, boolean][]) {
        tr.appendChild(h('td', numeric ? 'dvl-num' : '', text));
      }
      body.appendChild(tr);
    }
    table.appendChild(body);
    wrap.appendChild(table);
    if (count < state.shown.length) {
      wrap.appendChild(
        button(
          `Show ${countOf(Math.min(TABLE_PAGE, state.shown.length - count), 'more row')}`,
          'Show more rows',
          () => {
            this._count += TABLE_PAGE;
            this.render();
          }
        )
      );
    }
  }

  private _state: IViewState;
  private _count = TABLE_PAGE;
}
