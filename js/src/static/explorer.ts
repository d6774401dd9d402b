/**
 * The explorer of a saved page: the viewer, menus over the overlays precomputed at save time, the top
 * labels, and the Bokeh embedding plot with its selection linked to the viewer's, all in the browser.
 * Python's explorer (audiovis/widgets/explorer.py) links the views through the kernel; here one function
 * (`select`) brings both views to a selection and ignores the echo of its own change.
 */

import { binToHz, frameToTime, numPatches, patchBounds } from "../geometry";
import { PatchEmbeddings } from "../similarity";
import type { GridSpec, SpectrogramMeta } from "../types";
import { base64ToBytes, type StaticModel } from "./model";
import type { ViewerPart } from "./answers";

interface SavedArray {
  data: string;
  dtype: "float16" | "float32";
  shape: number[];
}

interface SavedMap {
  values: SavedArray;
  label: string;
}

export interface ExplorerPart {
  header: string;
  predictions_title: string;
  predictions: Array<[string, number]>;
  modes: Array<[string, string]>;
  overlay: string;
  layer: number;
  num_layers: number;
  class_index: number;
  /** Classes whose class maps were saved: [index, menu text]. */
  classes: Array<[number, string]>;
  /** Modes with one map per class ("saliency", "relevance"). */
  class_modes?: string[];
  /** "rollout", "cls:<layer>", "<class mode>:<class>" -> values. */
  maps: Record<string, SavedMap>;
  /** Layer -> patch embeddings (for similarity). */
  embeddings: Record<string, SavedArray>;
  /** Layer -> PCA coordinates of the plot's points. */
  pca: Record<string, { x: SavedArray; y: SavedArray; ratio: [number, number] }>;
  /** bokeh.embed.json_item of the embedding plot, or null. */
  plot: unknown;
  plot_source: string;
  notes: string[];
}

type MountViewer = (part: ViewerPart, host: HTMLElement) => Promise<{ model: StaticModel; destroy: () => void }>;

function binary(saved: SavedArray): { view: DataView; dtype: string; shape: number[] } {
  const bytes = base64ToBytes(saved.data);
  return { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), dtype: saved.dtype, shape: saved.shape };
}

function div(cls: string, testid?: string): HTMLDivElement {
  const node = document.createElement("div");
  node.className = cls;
  if (testid) node.dataset.testid = testid;
  return node;
}

function menu(label: string, testid: string, options: Array<[string, string]>, value: string): { box: HTMLLabelElement; select: HTMLSelectElement } {
  const box = document.createElement("label");
  box.className = "avp-control";
  box.append(document.createTextNode(`${label} `));
  const select = document.createElement("select");
  select.dataset.testid = testid;
  for (const [key, text] of options) {
    const option = document.createElement("option");
    option.value = key;
    option.textContent = text;
    select.append(option);
  }
  select.value = value;
  box.append(select);
  return { box, select };
}

export async function mountExplorer(part: ExplorerPart, viewerPart: ViewerPart, host: HTMLElement, mountViewer: MountViewer): Promise<void> {
  const root = div("avp-explorer", "audiovis-explorer");
  const header = div("avp-header");
  header.textContent = part.header;
  const controls = div("avp-controls");
  const overlayMenu = menu("Overlay", "audiovis-overlay-menu", part.modes, part.overlay);
  const layerMenu = menu("Layer", "audiovis-layer-menu", Array.from({ length: part.num_layers }, (_, i) => [String(i), String(i)] as [string, string]), String(part.layer));
  const classMenu = menu("Class", "audiovis-class-menu", part.classes.map(([i, text]) => [String(i), text] as [string, string]), String(part.class_index));
  controls.append(overlayMenu.box, layerMenu.box, classMenu.box);
  const viewerHost = div("avp-viewer");
  const lower = div("avp-lower");
  const plotHost = div("avp-plot", "audiovis-embedding-plot");
  plotHost.id = "audiovis-embedding-plot";
  const side = div("avp-side");
  const predictions = div("avp-predictions", "audiovis-predictions");
  const title = div("avp-predictions-title");
  title.textContent = part.predictions_title;
  predictions.append(title);
  for (const [name, p] of part.predictions) {
    const row = div("avp-prediction");
    const text = document.createElement("span");
    text.className = "avp-label";
    text.textContent = name;
    text.title = name;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = p;
    const value = document.createElement("span");
    value.textContent = p.toFixed(3);
    row.append(text, bar, value);
    predictions.append(row);
  }
  const status = div("avp-status", "audiovis-status");
  const notes = div("avp-notes");
  notes.textContent = part.notes.join(" ");
  side.append(predictions, status);
  lower.append(plotHost, side);
  root.append(header, controls, viewerHost, lower, notes);
  host.append(root);

  const { model } = await mountViewer(viewerPart, viewerHost);
  const grid = model.get("_grid") as GridSpec;
  const meta = model.get("_meta") as SpectrogramMeta;
  const axes = { timeOffset: meta.time_offset, hopSeconds: meta.hop_seconds, edges: meta.frequency_edges };
  const embeddings = new Map<number, PatchEmbeddings>();
  const embeddingPayload = (layer: number) => part.embeddings[String(layer)];
  let overlay = part.overlay;
  let layer = part.layer;
  let classIndex = part.class_index;
  let note = "";

  const plot = await mountPlot(part, plotHost);

  const setHeatmap = (values: Float32Array | SavedArray | null, label: string) => {
    if (values === null) model.set("heatmap", null);
    else if (values instanceof Float32Array) model.set("heatmap", { view: new DataView(values.buffer), dtype: "float32", shape: [values.length] });
    else model.set("heatmap", binary(values));
    model.set("heatmap_label", label);
    model.set("heatmap_range", null);
  };

  const refreshOverlay = () => {
    note = "";
    const classModes = part.class_modes ?? ["saliency"];
    classMenu.select.disabled = !classModes.includes(overlay);
    const selection = model.get("selected_patches") as number[];
    if (overlay === "similarity") {
      const payload = embeddingPayload(layer);
      if (!payload) {
        note = `similarity for layer ${layer} was not saved in this page`;
        model.set("hover_mode", "none");
        model.set("embeddings", null);
        setHeatmap(null, "");
      } else {
        model.set("embeddings", binary(payload));
        model.set("hover_mode", "similarity");
        if (!embeddings.has(layer)) embeddings.set(layer, PatchEmbeddings.fromBinary(binary(payload) as never));
        if (selection.length) setHeatmap(embeddings.get(layer)!.similarity(selection), `cosine similarity, layer ${layer}`);
        else {
          setHeatmap(null, "");
          note = "similarity: select patches";
        }
      }
    } else {
      model.set("hover_mode", "none");
      const key = overlay === "cls" ? `cls:${layer}` : classModes.includes(overlay) ? `${overlay}:${classIndex}` : overlay;
      const map = overlay === "none" ? null : part.maps[key];
      if (overlay !== "none" && !map) note = `${overlay} overlay for these settings was not saved in this page`;
      setHeatmap(map ? map.values : null, map ? map.label : "");
    }
    updateStatus();
  };

  const updateStatus = () => {
    const selection = model.get("selected_patches") as number[];
    let text = "No selection: click or shift-drag on the spectrogram, or tap / box / lasso points.";
    if (selection.length && grid) {
      let a = Infinity, b = -Infinity, lo = Infinity, hi = -Infinity;
      for (const i of selection) {
        const box = patchBounds(grid, i);
        a = Math.min(a, box.timeStart);
        b = Math.max(b, box.timeEnd);
        lo = Math.min(lo, box.freqStart);
        hi = Math.max(hi, box.freqEnd);
      }
      const hz = (bin: number) => Math.round(binToHz(axes, bin)).toLocaleString("en-US");
      text = `${selection.length} patch${selection.length > 1 ? "es" : ""} selected: ${frameToTime(axes, a).toFixed(2)}–${frameToTime(axes, b).toFixed(2)} s, ${hz(lo)}–${hz(hi)} Hz`;
    }
    status.textContent = note ? `${text} · ${note}` : text;
  };

  // one selection for both views; each view's echo of a change it was just given is ignored
  let syncing = false;
  const select = (patches: number[], origin: "viewer" | "plot") => {
    if (syncing) return;
    syncing = true;
    try {
      const n = grid ? numPatches(grid) : 0;
      const clean = [...new Set(patches.filter((p) => Number.isInteger(p) && p >= 0 && p < n))].sort((x, y) => x - y);
      if (origin !== "viewer") model.set("selected_patches", clean);
      if (origin !== "plot") plot?.select(clean);
      if (overlay === "similarity") refreshOverlay();
      else updateStatus();
    } finally {
      syncing = false;
    }
  };
  model.on("change:selected_patches", () => select(model.get("selected_patches") as number[], "viewer"));
  plot?.onSelect((indices) => select(indices, "plot"));

  overlayMenu.select.addEventListener("change", () => {
    overlay = overlayMenu.select.value;
    refreshOverlay();
  });
  layerMenu.select.addEventListener("change", () => {
    layer = Number(layerMenu.select.value);
    plot?.showLayer(layer);
    refreshOverlay();
  });
  classMenu.select.addEventListener("change", () => {
    classIndex = Number(classMenu.select.value);
    refreshOverlay();
  });
  plot?.showLayer(layer);
  plot?.select(model.get("selected_patches") as number[]);
  refreshOverlay();
}

interface PlotLink {
  select(indices: number[]): void;
  onSelect(fn: (indices: number[]) => void): void;
  showLayer(layer: number): void;
}

/** Embeds the Bokeh plot (BokehJS is inlined in the page) and returns its selection link, or null. */
async function mountPlot(part: ExplorerPart, host: HTMLElement): Promise<PlotLink | null> {
  const Bokeh = (window as any).Bokeh;
  if (!part.plot || !Bokeh) {
    host.textContent = part.plot ? "The embedding plot needs BokehJS, which is missing from this page." : "";
    return null;
  }
  await Bokeh.embed.embed_item(part.plot, host.id);
  let source: any = null;
  for (const doc of Bokeh.documents) source = doc.get_model_by_name(part.plot_source) ?? source;
  if (!source) return null;
  const listeners: Array<(indices: number[]) => void> = [];
  let pushing = false;
  // BokehJS signals: the selection's `indices` property changed (a tap, box or lasso, or a script)
  const selected = source.selected;
  const signal = selected.properties?.indices?.change ?? selected.change;
  signal.connect(() => {
    if (pushing) return;
    const indices = Array.from(selected.indices as ArrayLike<number>, Number);
    for (const fn of listeners) fn(indices);
  });
  return {
    select(indices) {
      const current = [...source.selected.indices].sort((a: number, b: number) => a - b);
      if (JSON.stringify(current) === JSON.stringify(indices)) return;
      pushing = true;
      try {
        source.selected.indices = indices;
      } finally {
        pushing = false;
      }
    },
    onSelect(fn) {
      listeners.push(fn);
    },
    showLayer(layer) {
      const pca = part.pca[String(layer)];
      if (!pca) return;
      const decode = (a: SavedArray) => {
        const b = binary(a);
        return Array.from(new Float32Array(b.view.buffer.slice(b.view.byteOffset, b.view.byteOffset + b.view.byteLength)));
      };
      source.data = { ...source.data, x: decode(pca.x), y: decode(pca.y) };
      for (const doc of Bokeh.documents) {
        for (const root of doc.roots?.() ?? []) {
          if (root.title?.text?.startsWith?.("Patch embeddings")) root.title.text = `Patch embeddings (PCA), layer ${layer}`;
          if (root.below?.[0]?.axis_label !== undefined) root.below[0].axis_label = `PC1 (${Math.round(100 * pca.ratio[0])}% of variance)`;
          if (root.left?.[0]?.axis_label !== undefined) root.left[0].axis_label = `PC2 (${Math.round(100 * pca.ratio[1])}% of variance)`;
        }
      }
    },
  };
}
