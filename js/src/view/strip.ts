/**
 * The LongViewer's strip under a long recording: one box per analysis window with its top label; clicking
 * a window zooms to it. Also the LongViewer-only traits, which the plain viewer does not have.
 */

import { type View, frameToX, xToFrame } from "../geometry";
import { STRIP_HEIGHT, context2d, listen } from "./dom";

/** Traits only a LongViewer (audiovis/widgets/longview.py) sets; absent on a SpectrogramViewer. */
export interface LongViewerTraits {
  /** Analysis windows for the label strip (read through parseWindows: untrusted shape). */
  _windows?: unknown;
  /** Frame of the recording where the grid's frame 0 lies (the analysis window under view). */
  _grid_offset?: number;
  /** Index of the analysis window under view, outlined in the strip. */
  window?: number | null;
}

/** One analysis window (the `_windows` trait): frames [start, end) and its top labels, best first. */
export interface WindowLabel {
  start: number;
  end: number;
  labels: Array<[string, number]>;
}

/** Windows from the model, keeping only well-formed entries (strings are drawn as text, never as HTML). */
export function parseWindows(value: unknown): WindowLabel[] {
  if (!Array.isArray(value)) return [];
  const out: WindowLabel[] = [];
  for (const w of value) {
    if (typeof w !== "object" || w === null) continue;
    const { start, end, labels } = w as Record<string, unknown>;
    if (typeof start !== "number" || typeof end !== "number" || !(end > start)) continue;
    const clean: Array<[string, number]> = [];
    if (Array.isArray(labels)) {
      for (const l of labels) if (Array.isArray(l) && typeof l[0] === "string" && typeof l[1] === "number") clean.push([l[0], l[1]]);
    }
    out.push({ start, end, labels: clean });
  }
  return out;
}

/** Index of the first window whose span holds `frame`, or -1 (windows sorted by start). */
export function windowAt(windows: readonly WindowLabel[], frame: number): number {
  let lo = 0;
  let hi = windows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (windows[mid]!.end <= frame) lo = mid + 1;
    else hi = mid;
  }
  return lo < windows.length && windows[lo]!.start <= frame ? lo : -1;
}

/** "label 0.93" fitted to `maxWidth` px: the score goes first, then the label is cut with an ellipsis. */
export function fitLabel(label: [string, number] | undefined, maxWidth: number, measure: (s: string) => number): string {
  if (!label || maxWidth < 8) return "";
  const full = `${label[0]} ${label[1].toFixed(2)}`;
  if (measure(full) <= maxWidth) return full;
  let text = label[0];
  if (measure(text) <= maxWidth) return text;
  while (text.length > 1 && measure(`${text}…`) > maxWidth) text = text.slice(0, -1);
  return text.length > 1 ? `${text}…` : "";
}

/** Draw the windows visible in `view` into a strip `height` px tall; `current` is outlined. */
export function drawWindowStrip(
  ctx: CanvasRenderingContext2D,
  windows: readonly WindowLabel[],
  view: View,
  height: number,
  current: number,
  color: string,
): void {
  ctx.clearRect(0, 0, view.width, height);
  ctx.font = "11px var(--jp-ui-font-family, system-ui, sans-serif)";
  ctx.textBaseline = "middle";
  const first = Math.max(0, windowAt(windows, view.f0) === -1 ? 0 : windowAt(windows, view.f0));
  for (let i = first; i < windows.length; i++) {
    const w = windows[i]!;
    if (w.start >= view.f1) break;
    if (w.end <= view.f0) continue;
    const x0 = Math.max(0, frameToX(view, w.start));
    const x1 = Math.min(view.width, frameToX(view, w.end));
    ctx.fillStyle = i % 2 ? "rgba(127, 127, 127, 0.16)" : "rgba(127, 127, 127, 0.30)";
    ctx.fillRect(x0, 1, Math.max(1, x1 - x0 - 1), height - 2);
    if (i === current) {
      ctx.strokeStyle = "rgba(0, 180, 230, 0.95)";
      ctx.lineWidth = 2;
      ctx.strokeRect(x0 + 1, 2, Math.max(1, x1 - x0 - 3), height - 4);
    }
    // a window whose labels are still being computed shows an ellipsis
    const text = w.labels.length ? fitLabel(w.labels[0], x1 - x0 - 8, (s) => ctx.measureText(s).width)
      : x1 - x0 > 16 ? "…" : "";
    if (text) {
      ctx.fillStyle = color;
      ctx.fillText(text, x0 + 4, height / 2);
    }
  }
}

/** Shows the strip only when there are windows to show. */
export function showStrip(canvas: HTMLCanvasElement, windows: readonly WindowLabel[]): void {
  canvas.style.display = windows.length ? "" : "none";
}

/** Clicking a window calls `zoomTo` with its frames; returns the listener's removal. */
export function attachStrip(
  canvas: HTMLCanvasElement,
  windows: () => readonly WindowLabel[],
  view: () => View,
  zoomTo: (f0: number, f1: number) => void,
): () => void {
  return listen(canvas, "click", (e) => {
    const list = windows();
    const i = windowAt(list, xToFrame(view(), e.clientX - canvas.getBoundingClientRect().left));
    if (i >= 0) zoomTo(list[i]!.start, list[i]!.end);
  });
}

/**
 * Draws the strip at `dpr` device pixels per CSS pixel (nothing without windows); `current` is the
 * `window` trait as received (a number outlines that window).
 */
export function paintStrip(canvas: HTMLCanvasElement, windows: readonly WindowLabel[], view: View, current: unknown, dpr: number, color: string): void {
  if (!windows.length) return;
  const ctx = context2d(canvas);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawWindowStrip(ctx, windows, view, STRIP_HEIGHT, typeof current === "number" ? current : -1, color);
}
