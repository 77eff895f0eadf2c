/**
 * A mime renderer for dvl_jupyter's valuation results
 * (`application/vnd.dvl-jupyter.valuation.v1+json`): an SVG chart of the values with error
 * bars, a grid of the points' images and a table. This module is the entry point: the
 * renderer factory and the extension, as in jupyterlab/extension-examples' mimerenderer.
 *
 * The parts live in their own modules: ./renderer (the widget, which assembles them),
 * ./header, ./toolbar, ./chart (the SVG chart), ./interaction (zoom, pan, keyboard),
 * ./tooltip, ./grid, ./table, with ./state, ./format, ./geometry and ./dom shared. The logic
 * that needs no DOM lives in ./valuation and is unit-tested there.
 *
 * Safety: every string from the payload reaches the page through `textContent`, SVG text
 * nodes or element properties; the renderer never parses HTML, so it is marked `safe` and
 * draws saved results in untrusted notebooks too.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { ValuationRenderer } from './renderer';
import { MIME_TYPE } from './valuation';

export { MIME_TYPE } from './valuation';
export { ValuationRenderer } from './renderer';

/**
 * The renderer factory. Rank 0 puts it ahead of the text/html and image/png fallbacks
 * that the same output carries.
 */
export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE],
  defaultRank: 0,
  createRenderer: options => new ValuationRenderer(options)
};

/** The extension: works wherever mime extensions load (JupyterLab 4, Notebook 7). */
const extension: IRenderMime.IExtension = {
  id: 'dvl-jupyter:valuation',
  description: 'Interactive chart and image grid of dvl_jupyter data values.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
