/**
 * Entry of a saved page (viewer.save_html / explorer.save_html): reads the page's embedded JSON
 * (`<script type="application/json" id="audiovis-page">`), builds a StaticModel over the saved trait
 * state and calls the same `render` the notebook widget uses. Nothing is fetched: data, audio, styles and
 * this script are all inside the page.
 */

import viewerWidget from "../viewer";
import type { GridSpec, SpectrogramMeta, TileSpec } from "../types";
import { type ViewerPart, decodeFrames, pageAnswers } from "./answers";
import { type ExplorerPart, mountExplorer } from "./explorer";
import { type SavedState, StaticModel, restoreState } from "./model";
import "./page.css";

interface PagePart {
  format: 1;
  kind: "viewer" | "explorer";
  audiovis_version: string;
  viewer: ViewerPart;
  explorer?: ExplorerPart;
}

/** The overview [bins, columns] max-pooled from full frames, as tiles.py's overview() computes it. */
function poolOverview(frames: Uint8Array | Float32Array, meta: SpectrogramMeta): DataView {
  const { n_bins: bins, n_frames: n, frames_per_column: pool } = meta;
  const columns = Math.ceil(n / pool);
  const out = frames instanceof Float32Array ? new Float32Array(bins * columns) : new Uint8Array(bins * columns);
  for (let b = 0; b < bins; b++) {
    for (let c = 0; c < columns; c++) {
      let m = frames[b * n + c * pool]!;
      const end = Math.min(n, (c + 1) * pool);
      for (let f = c * pool + 1; f < end; f++) if (frames[b * n + f]! > m) m = frames[b * n + f]!;
      out[b * columns + c] = m;
    }
  }
  return new DataView(out.buffer);
}

/** A StaticModel for one saved viewer and its rendered view; returns the model and the view's cleanup. */
export async function mountViewer(part: ViewerPart, host: HTMLElement): Promise<{ model: StaticModel; destroy: () => void }> {
  const state = await restoreState(part);
  if (part.overview_from_frames && part.frames) {
    const meta = state._meta as SpectrogramMeta;
    const frames = await decodeFrames(part.frames);
    state._spectrogram = { view: poolOverview(frames, meta), dtype: part.frames.dtype, shape: [meta.n_bins, Math.ceil(meta.n_frames / meta.frames_per_column)] };
  }
  const geometry = () => {
    const info = model.get("_audio_info") as { start?: number } | null;
    const offset = model.get("_grid_offset");
    return {
      grid: (model.get("_grid") as GridSpec | null) ?? null,
      meta: model.get("_meta") as SpectrogramMeta,
      gridOffset: typeof offset === "number" && Number.isFinite(offset) ? offset : 0,
      audioStart: typeof info?.start === "number" && Number.isFinite(info.start) ? info.start : 0,
    };
  };
  const model: StaticModel = new StaticModel(
    state,
    pageAnswers({ audio: part.audio, frames: part.frames, tiles: (state._tiles as TileSpec | null) ?? null, geometry }),
  );
  const destroy = viewerWidget.render({ model: model as any, el: host } as any);
  return { model, destroy };
}

function showError(err: unknown): void {
  const box = document.createElement("pre");
  box.className = "audiovis-page-error";
  box.dataset.testid = "audiovis-page-error";
  box.textContent = `audiovis: this page could not be shown: ${err instanceof Error ? err.message : String(err)}`;
  document.body.prepend(box);
  console.error(err);
}

async function main(): Promise<void> {
  const node = document.getElementById("audiovis-page");
  if (!node) throw new Error("no #audiovis-page data in this page");
  const page = JSON.parse(node.textContent ?? "") as PagePart;
  if (page.format !== 1) throw new Error(`page data format ${String(page.format)} is not known to this script`);
  const host = document.getElementById("audiovis-root") ?? document.body;
  if (page.kind === "explorer" && page.explorer) {
    await mountExplorer(page.explorer, page.viewer, host, mountViewer);
  } else {
    await mountViewer(page.viewer, host);
  }
  document.body.dataset.audiovisReady = "1";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => main().catch(showError));
else main().catch(showError);
