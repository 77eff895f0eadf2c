/**
 * Exports from the toolbar: the chart as SVG or PNG, the listed points as CSV, each as a
 * download. The SVG is the chart as drawn, with its computed colours and fonts written into
 * each element, so the file looks the same outside the page (no theme variables, no CSS).
 */
import { toCsv } from './valuation';
import { IViewState } from './state';

const SVG_NS = 'http://www.w3.org/2000/svg';
/** The style properties that make the chart look as it does; all of them are inlined. */
const STYLE_PROPERTIES = [
  'fill',
  'fill-opacity',
  'stroke',
  'stroke-width',
  'stroke-dasharray',
  'stroke-opacity',
  'opacity',
  'font-family',
  'font-size',
  'font-weight'
];

/** A file name from the method's name: "tmc-shapley-values.svg". */
export function fileName(method: string, ext: string): string {
  const stem = method
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${stem || 'data'}-values.${ext}`;
}

/**
 * The chart `svg` as a standalone SVG document: computed styles inlined, the hover
 * highlight left out, a `background` rectangle behind it and `title` as its title.
 */
export function chartSvg(svg: SVGSVGElement, title: string, background: string): string {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const source = [svg, ...svg.querySelectorAll('*')];
  const target = [clone, ...clone.querySelectorAll('*')];
  source.forEach((el, i) => {
    const style = getComputedStyle(el);
    const decl = STYLE_PROPERTIES.map(p => [p, style.getPropertyValue(p)])
      .filter(([, v]) => v !== '')
      .map(([p, v]) => `${p}:${v}`)
      .join(';');
    target[i].setAttribute('style', decl);
  });
  clone.querySelector('.dvl-hover')?.replaceChildren();
  clone.setAttribute('xmlns', SVG_NS);
  clone.removeAttribute('class');
  const name = document.createElementNS(SVG_NS, 'title');
  name.textContent = title;
  const rect = document.createElementNS(SVG_NS, 'rect');
  for (const [k, v] of Object.entries({ x: 0, y: 0, width: '100%', height: '100%' })) {
    rect.setAttribute(k, String(v));
  }
  rect.setAttribute('style', `fill:${background}`);
  clone.insertBefore(rect, clone.firstChild);
  clone.insertBefore(name, clone.firstChild);
  return new XMLSerializer().serializeToString(clone);
}

/** Rasterise an SVG document of `width` x `height` CSS pixels at `scale` (2: sharp on
 * high-density screens and in slides). */
export function svgToPng(text: string, width: number, height: number, scale = 2): Promise<Blob> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      const ctx = canvas.getContext('2d');
      if (!ctx) {
        reject(new Error('no 2D canvas in this browser'));
        return;
      }
      ctx.scale(scale, scale);
      ctx.drawImage(img, 0, 0, width, height);
      canvas.toBlob(b => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png');
    };
    img.onerror = () => reject(new Error('the chart could not be rasterised'));
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  });
}

/** Offer `blob` as a download named `name`. */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** The chart's background colour, as the page paints it (the SVG itself is transparent). */
function backgroundOf(el: Element): string {
  for (let node: Element | null = el; node; node = node.parentElement) {
    const bg = getComputedStyle(node).backgroundColor;
    if (bg && bg !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(bg)) {
      return bg;
    }
  }
  return '#ffffff';
}

/** What the toolbar's export buttons do, for one renderer. */
export class Exporter {
  constructor(
    private readonly _state: IViewState,
    private readonly _svg: SVGSVGElement
  ) {}

  private _svgText(): string {
    const d = this._state.data!;
    return chartSvg(this._svg, `${d.method} values`, backgroundOf(this._svg));
  }

  svg(): void {
    if (!this._state.data) {
      return;
    }
    const blob = new Blob([this._svgText()], { type: 'image/svg+xml' });
    download(blob, fileName(this._state.data.method, 'svg'));
  }

  async png(): Promise<void> {
    if (!this._state.data) {
      return;
    }
    const width = Number(this._svg.getAttribute('width')) || this._svg.clientWidth;
    const height = Number(this._svg.getAttribute('height')) || this._svg.clientHeight;
    const blob = await svgToPng(this._svgText(), width, height);
    download(blob, fileName(this._state.data.method, 'png'));
  }

  /** The shown points (every one, not only the table's first page), in the view's order. */
  csv(): void {
    const d = this._state.data;
    if (!d) {
      return;
    }
    const text = toCsv(d.points, this._state.shown, this._state.level);
    download(new Blob([text], { type: 'text/csv' }), fileName(d.method, 'csv'));
  }
}
