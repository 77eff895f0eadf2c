/**
 * Zoom and pan of the chart: the window arithmetic on the view state, and the pointer
 * (hover, drag to pan), wheel (ctrl/cmd to zoom, shift or horizontal to pan) and keyboard
 * handlers of the chart. A plain vertical wheel is left to scroll the notebook.
 */
import { MARGIN } from './geometry';
import { IViewState } from './state';
import { clampWindow, panWindow, revealSlot, visibleSlots, zoomWindow } from './valuation';

/** The zoom factor of one step (button or key): halves or doubles the visible span. */
export const ZOOM_STEP = 0.5;

/**
 * Zoom the state's window by `factor` (< 1 zooms in), keeping the slot under `anchor`
 * (0..1 across the plot) in place; the default centre anchor becomes the active slot, if any.
 */
export function zoomState(state: IViewState, factor: number, anchor = 0.5): void {
  if (state.activeSlot !== null && anchor === 0.5) {
    anchor = (state.activeSlot + 0.5 - state.window.start) / state.window.span;
  }
  state.window = zoomWindow(state.window, state.shown.length, factor, anchor);
}

/** Pan the state's window by `fraction` of its span (positive: to later slots). */
export function panState(state: IViewState, fraction: number): void {
  state.window = panWindow(state.window, state.shown.length, fraction * state.window.span);
}

/** What the interaction needs from the renderer. */
export interface IInteractionHost {
  readonly state: IViewState;
  /** Width of the plot area, in SVG pixels. */
  plotWidth(): number;
  /** Make a slot (or none) the active one, and show it. */
  setActive(slot: number | null): void;
  /** Zoom (see `zoomState`) and redraw soon. */
  zoom(factor: number, anchor?: number): void;
  /** Pan (see `panState`) and redraw soon. */
  pan(fraction: number): void;
  /** Redraw at the next animation frame. */
  schedule(): void;
  /** Redraw now. */
  draw(): void;
}

export class ChartInteraction {
  /** Listen on the chart's `svg` (pointer, wheel) and focusable `chart` (keys, blur). */
  constructor(svg: SVGSVGElement, chart: HTMLElement, host: IInteractionHost) {
    this._svg = svg;
    this._host = host;
    svg.addEventListener('pointermove', e => this._onPointerMove(e));
    svg.addEventListener('pointerdown', e => this._onPointerDown(e));
    svg.addEventListener('pointerup', e => this._onPointerUp(e));
    svg.addEventListener('pointercancel', e => this._onPointerUp(e));
    svg.addEventListener('pointerleave', () => {
      if (!this._drag) {
        host.setActive(null);
      }
    });
    svg.addEventListener('wheel', e => this._onWheel(e), { passive: false });
    chart.addEventListener('keydown', e => this._onKeyDown(e));
    chart.addEventListener('blur', () => host.setActive(null));
  }

  /** The slot under the pointer and its place across the plot (0..1), if inside it. */
  private _slotAt(e: PointerEvent | WheelEvent): { slot: number; anchor: number } | null {
    const { window } = this._host.state;
    const rect = this._svg.getBoundingClientRect();
    const plotW = this._host.plotWidth();
    const px = e.clientX - rect.left - MARGIN.left;
    if (px < 0 || px > plotW) {
      return null;
    }
    const anchor = px / plotW;
    return { slot: Math.floor(window.start + anchor * window.span), anchor };
  }

  private _onPointerMove(e: PointerEvent): void {
    const state = this._host.state;
    if (this._drag) {
      const plotW = this._host.plotWidth();
      const dx = e.clientX - this._drag.x;
      state.window = clampWindow(
        { start: this._drag.start - (dx / plotW) * state.window.span, span: state.window.span },
        state.shown.length
      );
      this._host.schedule();
      return;
    }
    const at = this._slotAt(e);
    const slot = at && at.slot < state.shown.length ? at.slot : null;
    if (slot !== state.activeSlot) {
      this._host.setActive(slot);
    }
  }

  private _onPointerDown(e: PointerEvent): void {
    const state = this._host.state;
    if (e.button !== 0 || state.window.span >= state.shown.length) {
      return; // nothing to pan when everything is visible
    }
    this._drag = { x: e.clientX, start: state.window.start };
    this._svg.setPointerCapture?.(e.pointerId);
    this._svg.classList.add('dvl-dragging');
  }

  private _onPointerUp(e: PointerEvent): void {
    if (!this._drag) {
      return;
    }
    this._drag = null;
    this._svg.releasePointerCapture?.(e.pointerId);
    this._svg.classList.remove('dvl-dragging');
  }

  private _onWheel(e: WheelEvent): void {
    const at = this._slotAt(e);
    if (!at) {
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      this._host.zoom(Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.002))), at.anchor);
    } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      const delta = (e.shiftKey && !e.deltaX ? e.deltaY : e.deltaX) / this._host.plotWidth();
      this._host.pan(delta);
    }
    // A plain vertical wheel scrolls the notebook, as everywhere else in it.
  }

  private _onKeyDown(e: KeyboardEvent): void {
    const state = this._host.state;
    const n = state.shown.length;
    if (!n || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    const current = state.activeSlot;
    const [first, last] = visibleSlots(state.window, n);
    let next: number | null = current;
    switch (e.key) {
      case 'ArrowRight':
        next = current === null ? first : Math.min(n - 1, current + (e.shiftKey ? 10 : 1));
        break;
      case 'ArrowLeft':
        next = current === null ? last - 1 : Math.max(0, current - (e.shiftKey ? 10 : 1));
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = n - 1;
        break;
      case 'PageDown':
      case 'PageUp': {
        const dir = e.key === 'PageDown' ? 1 : -1;
        state.window = panWindow(state.window, n, dir * state.window.span);
        const step = dir * Math.round(state.window.span);
        next = current === null ? null : Math.min(n - 1, Math.max(0, current + step));
        break;
      }
      case '+':
      case '=':
        zoomState(state, ZOOM_STEP); // drawn below, at once, like every key
        break;
      case '-':
      case '_':
        zoomState(state, 1 / ZOOM_STEP);
        break;
      case 'Escape':
        next = null;
        break;
      default:
        return;
    }
    e.preventDefault();
    e.stopPropagation();
    if (next !== null) {
      state.window = revealSlot(state.window, n, next);
    }
    state.activeSlot = next;
    this._host.draw();
  }

  private _svg: SVGSVGElement;
  private _host: IInteractionHost;
  private _drag: { x: number; start: number } | null = null;
}
