/**
 * The ValuationRenderer widget: the JupyterLab / Notebook 7 face of the valuation view
 * (./view), a Lumino widget whose node is the view's and whose lifecycle drives it.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { ValuationView } from './view';

/**
 * The renderer: header, toolbar, chart (or image grid, or table) and a tooltip.
 */
export class ValuationRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    const view = new ValuationView();
    super({ node: view.node });
    this._view = view;
    this._mimeType = options.mimeType;
  }

  /** Render the payload; keeps the user's level, sort and subset across re-renders. */
  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._view.render(model.data[this._mimeType]);
    return Promise.resolve();
  }

  protected onAfterAttach(): void {
    this._view.attach();
  }

  protected onBeforeDetach(): void {
    this._view.detach();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._view.dispose();
    super.dispose();
  }

  private _view: ValuationView;
  private _mimeType: string;
}
