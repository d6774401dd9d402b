/**
 * The tooltip under the pointer: the hovered patch (index, row and column, time span, band, heatmap value,
 * masked) and the spectrogram's value under the pointer. Lines are set as text, never as HTML.
 */

import { formatHz, unitLabel } from "../axes";
import { type View, binToHz, frameToTime, patchBounds, patchPosition, xToFrame, yToBin } from "../geometry";
import type { ModelData } from "../model";
import type { ActiveHeatmap } from "./heatmap";

/** What the tooltip shows. */
export interface TooltipInput {
  data: ModelData;
  /** The visible range and canvas size. */
  view: View;
  /** Canvas position (CSS px) of this view's pointer, or null (no tooltip). */
  pointer: [number, number] | null;
  hovered: number | null;
  /** The heatmap drawn now (asked only when a patch is hovered). */
  heatmap: () => ActiveHeatmap | null;
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a < 1 ? 3 : 2);
}

/** The tooltip's lines for a pointer at canvas px `pointer` (none: hide it). */
export function tooltipLines(input: TooltipInput, pointer: [number, number]): string[] {
  const { data, view, hovered: patch } = input;
  const { meta, axes, grid } = data;
  const frame = xToFrame(view, pointer[0]);
  const bin = yToBin(view, pointer[1]);
  const lines: string[] = [];
  if (grid && patch !== null) {
    const [row, col] = patchPosition(grid, patch);
    const b = patchBounds(grid, patch);
    const t0 = frameToTime(axes, b.timeStart + data.gridOffset);
    const t1 = frameToTime(axes, b.timeEnd + data.gridOffset);
    lines.push(`patch ${patch} (row ${row}, col ${col})`);
    lines.push(`${t0.toFixed(3)}–${t1.toFixed(3)} s`);
    lines.push(`${formatHz(binToHz(axes, b.freqStart))}–${formatHz(binToHz(axes, b.freqEnd))}${meta.scale === "mel" ? " (mel band)" : ""}`);
    const hm = input.heatmap();
    if (hm) lines.push(`${hm.label}: ${formatValue(hm.values[patch]!)}`);
    if (data.masked.has(patch)) lines.push("masked");
  }
  if (frame >= 0 && frame < meta.n_frames && bin >= 0 && bin < meta.n_bins) {
    const column = new Float32Array(meta.n_bins);
    const k = Math.floor(frame);
    data.source.reduceFrames(k, k + 1, column);
    const value = column[Math.min(meta.n_bins - 1, Math.floor(bin))]!;
    const pad = frame >= meta.valid_frames ? "  (padding)" : "";
    lines.push(`${frameToTime(axes, frame).toFixed(3)} s, ${formatHz(binToHz(axes, bin))}: ${formatValue(value)} ${unitLabel(meta.units)}${pad}`);
  }
  return lines;
}

/** Rewrites the tooltip `el` and places it beside the pointer, inside the canvas; hides it when empty. */
export function updateTooltip(el: HTMLElement, input: TooltipInput): void {
  const p = input.pointer;
  const lines = p ? tooltipLines(input, p) : [];
  if (!p || !lines.length) {
    el.hidden = true;
    return;
  }
  el.replaceChildren(
    ...lines.map((text) => {
      const row = document.createElement("div");
      row.textContent = text;
      return row;
    }),
  );
  el.hidden = false;
  const { width, height } = input.view;
  const w = el.offsetWidth;
  const h = el.offsetHeight;
  const left = p[0] + 14 + w > width ? p[0] - 14 - w : p[0] + 14;
  const top = Math.min(Math.max(0, p[1] + 14), Math.max(0, height - h));
  el.style.left = `${Math.max(0, left)}px`;
  el.style.top = `${top}px`;
}
