/**
 * Chart geometry: the SVG's size and margins, and the scales from display slots and values
 * to SVG pixels.
 */
import { IWindow } from './valuation';

export const CHART_HEIGHT = 300;
export const MARGIN = { top: 12, right: 28, bottom: 40, left: 64 };
/** The chart's width until the ResizeObserver reports one. */
const DEFAULT_WIDTH = 720;

export interface IGeometry {
  /** Width of the SVG. */
  width: number;
  /** Width and height of the plot area (the SVG less the margins). */
  plotW: number;
  plotH: number;
}

/** The geometry for a measured content width (0: not measured yet). */
export function geometry(measured: number): IGeometry {
  const width = Math.max(240, measured || DEFAULT_WIDTH);
  return {
    width,
    plotW: width - MARGIN.left - MARGIN.right,
    plotH: CHART_HEIGHT - MARGIN.top - MARGIN.bottom
  };
}

/** The x pixel of a (fractional) slot in the visible window. */
export function xOf(window: IWindow, slot: number, plotW: number): number {
  return MARGIN.left + ((slot - window.start) / window.span) * plotW;
}

/** The y pixel of a value in the chart's domain. */
export function yOf(domain: [number, number], v: number, plotH: number): number {
  const [lo, hi] = domain;
  return MARGIN.top + (1 - (v - lo) / (hi - lo)) * plotH;
}
