/**
 * The standalone script: the valuation view for pages where JupyterLab extensions do not
 * load (VS Code's notebooks, Colab, nbconvert's HTML). dvl_jupyter/standalone.py inlines
 * this file, bundled as one IIFE (scripts/build-standalone.mjs), into a result's text/html:
 *
 *   <div class="dvl-output" data-dvl-standalone="1">
 *     <div class="dvl-valuation">...the static PNG and table...</div>
 *     <script type="application/json" class="dvl-payload">...the payload...</script>
 *     <script>...this bundle...</script>
 *   </div>
 *
 * When it runs, it mounts every such output of the page that is not mounted yet (VS Code
 * runs an output's scripts elsewhere than where they sit, so the script cannot rely on its
 * own place): the view replaces the static part, which stays visible when the payload cannot
 * be read. Where scripts do not run, nothing happens and the static part is what shows.
 * The payload is parsed as JSON and every string in it is set as text, as in the extension.
 */
import { parsePayload } from './valuation';
import { ValuationView } from './view';

/** The renderer's style sheet, with a fallback for every theme variable (see the build). */
declare const __DVL_STYLE__: string;

const STYLE_ID = 'dvl-valuation-standalone-style';
const OUTPUTS = '.dvl-output[data-dvl-standalone]:not([data-dvl-mounted])';

function addStyle(doc: Document): void {
  if (doc.getElementById(STYLE_ID)) {
    return;
  }
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = __DVL_STYLE__;
  (doc.head ?? doc.documentElement).appendChild(style);
}

/** Mount the view in one output; false (the static part left showing) when it cannot. */
function mount(output: HTMLElement): boolean {
  const source = output.querySelector('script.dvl-payload');
  const fallback = output.querySelector<HTMLElement>('.dvl-valuation');
  let data: unknown;
  try {
    data = JSON.parse(source?.textContent ?? '');
    parsePayload(data); // throws on a payload the view could not show
  } catch (err) {
    console.warn('dvl-jupyter: the interactive view cannot read this result', err);
    return false;
  }
  const view = new ValuationView();
  view.node.classList.add('dvl-standalone');
  output.insertBefore(view.node, output.firstChild);
  view.render(data);
  if (fallback) {
    fallback.style.display = 'none';
  }
  view.attach();
  return true;
}

/** Mount every output of `doc` not mounted yet; returns how many were. */
export function mountAll(doc: Document = document): number {
  addStyle(doc);
  let mounted = 0;
  for (const output of Array.from(doc.querySelectorAll<HTMLElement>(OUTPUTS))) {
    output.setAttribute('data-dvl-mounted', '1');
    if (mount(output)) {
      mounted++;
    }
  }
  return mounted;
}

mountAll();
