/**
 * Helpers for the DOM tests (jsdom): mount a renderer on a payload, drive animation frames by
 * hand, and send the chart the key, wheel and pointer events a user would.
 */
import { vi } from 'vitest';

import { geometry, MARGIN } from '../src/geometry';
import { rendererFactory, ValuationRenderer } from '../src/index';
import { MIME_TYPE } from '../src/valuation';

const mounted: ValuationRenderer[] = [];

/** A renderer showing `data`, its node in the document. */
export function render(data: unknown): ValuationRenderer {
  const r = rendererFactory.createRenderer({
    mimeType: MIME_TYPE,
    sanitizer: { sanitize: (s: string) => s },
    resolver: null,
    linkHandler: null,
    latexTypesetter: null
  } as any) as ValuationRenderer;
  document.body.appendChild(r.node);
  mounted.push(r);
  void r.renderModel({ data: { [MIME_TYPE]: data }, metadata: {}, trusted: false } as any);
  return r;
}

/** Dispose of every renderer `render` made, and take their nodes out of the document. */
export function unmountAll(): void {
  for (const r of mounted.splice(0)) {
    r.dispose();
    r.node.remove();
  }
}

/**
 * Replace requestAnimationFrame with a queue that runs only on `flush()`, so a test sees what
 * is drawn at once and what waits for the next frame (undo with vi.unstubAllGlobals()).
 */
export function manualFrames(): { requested(): number; flush(): void } {
  const queue = new Map<number, FrameRequestCallback>();
  let next = 0;
  let requested = 0;
  vi.stubGlobal('requestAnimationFrame', (cb: FrameRequestCallback) => {
    requested++;
    queue.set(++next, cb);
    return next;
  });
  vi.stubGlobal('cancelAnimationFrame', (id: number) => {
    queue.delete(id);
  });
  return {
    /** Frames asked for since the last `flush()` (cancelled ones too). */
    requested: () => requested,
    flush() {
      requested = 0;
      const callbacks = [...queue.values()];
      queue.clear();
      for (const cb of callbacks) {
        cb(performance.now());
      }
    }
  };
}

/** Query one element of the renderer, failing loudly when it is not there. */
export function $<E extends Element = HTMLElement>(r: ValuationRenderer, selector: string): E {
  const el = r.node.querySelector<E>(selector);
  if (!el) {
    throw new Error(`no ${selector} in the renderer`);
  }
  return el;
}

/** The status line under the chart (without its legend). */
export function status(r: ValuationRenderer): string {
  return $(r, '.dvl-status-text').textContent ?? '';
}

/** The "ranks a–b" (or "points a–b") part of the status line. */
export function range(r: ValuationRenderer): string {
  return status(r).split(' shown (')[0];
}

/** The training indices of the drawn points, left to right. */
export function pointIndices(r: ValuationRenderer): number[] {
  return [...r.node.querySelectorAll('.dvl-point')].map(e => Number(e.getAttribute('data-index')));
}

/** Press a key on the chart; returns the event (to check whether it was taken). */
export function key(r: ValuationRenderer, k: string, init: KeyboardEventInit = {}): KeyboardEvent {
  const e = new KeyboardEvent('keydown', { key: k, bubbles: true, cancelable: true, ...init });
  $(r, '.dvl-chart').dispatchEvent(e);
  return e;
}

/** Width of the plot area: jsdom lays nothing out, so the chart keeps its default width. */
export const PLOT_W = geometry(0).plotW;

/** The client x of a place across the plot (0: its left edge, 1: its right edge). */
export function plotX(fraction: number): number {
  return MARGIN.left + fraction * PLOT_W; // the SVG sits at x = 0: jsdom lays nothing out
}

/** A wheel event over the plot at `fraction` across it; returns the event. */
export function wheel(r: ValuationRenderer, fraction: number, init: WheelEventInit): WheelEvent {
  const e = new WheelEvent('wheel', {
    clientX: plotX(fraction),
    clientY: 100,
    bubbles: true,
    cancelable: true,
    ...init
  });
  $(r, 'svg.dvl-svg').dispatchEvent(e);
  return e;
}

/** A pointer event on the chart's SVG (jsdom has no PointerEvent: a MouseEvent stands in). */
export function pointer(r: ValuationRenderer, type: string, clientX: number, button = 0): void {
  const Ctor: typeof MouseEvent = (globalThis as any).PointerEvent ?? MouseEvent;
  const e = new Ctor(type, { clientX, clientY: 100, button, bubbles: true, cancelable: true });
  $(r, 'svg.dvl-svg').dispatchEvent(e);
}

/** Pick an option of a toolbar select, as a user would. */
export function choose(r: ValuationRenderer, selector: string, value: string): void {
  const sel = $<HTMLSelectElement>(r, selector);
  sel.value = value;
  if (sel.value !== value) {
    throw new Error(`${selector} has no option ${value}`);
  }
  sel.dispatchEvent(new Event('change'));
}

/** Click a toolbar button by its accessible label. */
export function click(r: ValuationRenderer, label: string): void {
  $<HTMLButtonElement>(r, `button[aria-label="${label}"]`).click();
}
