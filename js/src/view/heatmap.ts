/** Which per-patch values are drawn over the spectrogram now, under what label, and their colour range. */

import type { ModelData, ViewModel } from "../model";

export interface ActiveHeatmap {
  values: Float32Array;
  label: string;
}

/**
 * Cosine similarity to the hovered patch in similarity mode (computed in the browser), else the heatmap
 * trait, else null.
 * @param model the widget model (hover_mode, heatmap_label)
 * @param data the decoded traits (heatmap, embeddings and the similarity cache)
 * @param hovered the hovered patch, or null
 */
export function activeHeatmap(model: ViewModel, data: ModelData, hovered: number | null): ActiveHeatmap | null {
  if (model.get("hover_mode") === "similarity" && data.embeddings && hovered !== null) {
    return { values: data.similarityTo(data.embeddings, hovered), label: `cosine similarity to patch ${hovered}` };
  }
  return data.heatmap ? { values: data.heatmap, label: model.get("heatmap_label") || "heatmap" } : null;
}

/** The `heatmap_range` trait when it is two finite numbers, else the values' finite extent (never empty). */
export function heatmapRange(values: Float32Array, range: unknown): [number, number] {
  if (Array.isArray(range) && range.length === 2 && Number.isFinite(range[0]) && Number.isFinite(range[1])) return [range[0], range[1]];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [0, 1];
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}
