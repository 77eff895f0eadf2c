/**
 * The header: the method's name, a one-line summary of the run, and the run's settings in a
 * collapsible list.
 */
import { h } from './dom';
import { IValuation, settingsRows, summaryLine, trustLine } from './valuation';

export class Header {
  /** The `.dvl-header`. */
  readonly node: HTMLDivElement;

  constructor() {
    this.node = h('div', 'dvl-header');
    this._title = h('span', 'dvl-title');
    this._summary = h('span', 'dvl-summary');
    this.node.append(this._title, this._summary);
    this._trust = h('div', 'dvl-trust');
    this.node.appendChild(this._trust);
    this._settings = h('details', 'dvl-settings');
    this.node.appendChild(this._settings);
  }

  /** Show the title, summary and settings of a result. */
  update(d: IValuation): void {
    this._title.textContent = d.method;
    this._summary.textContent = summaryLine(d);
    const trust = trustLine(d);
    this._trust.hidden = trust === null;
    this._trust.textContent = trust === null ? '' : trust.text;
    this._trust.classList.toggle('dvl-trust-warn', trust !== null && trust.warn);
    this._fillSettings(d);
  }

  private _fillSettings(d: IValuation): void {
    this._settings.replaceChildren();
    const rows = settingsRows(d);
    this._settings.hidden = rows.length === 0;
    if (!rows.length) {
      return;
    }
    this._settings.appendChild(h('summary', '', 'settings'));
    const dl = h('dl', 'dvl-settings-list');
    for (const [k, v] of rows) {
      dl.append(h('dt', '', k), h('dd', '', v));
    }
    this._settings.appendChild(dl);
  }

  private _title: HTMLSpanElement;
  private _summary: HTMLSpanElement;
  private _trust: HTMLDivElement;
  private _settings: HTMLDetailsElement;
}
