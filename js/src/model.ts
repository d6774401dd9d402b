/**
 * Model sync: one table says, for every trait, which decoded fields read it (and so are decoded again
 * when it changes) and what else its change means for the view. The codecs turn raw trait values into
 * what the view draws from: binary payloads into typed arrays, untrusted index lists into validated sets,
 * the spectrogram and its tiles into one ColumnSource. Writes to the model go through ModelWriter.
 */

import type { AnyModel } from "@anywidget/types";
import { toFloat32 } from "./codecs";
import { type Axes, isValidPatch, numPatches } from "./geometry";
import { checkGroups } from "./groups";
import { ArraySource, type ColumnSource } from "./render";
import type { Channel } from "./requests";
import { PatchEmbeddings } from "./similarity";
import { TiledSource } from "./tiles";
import type { BinaryArray, GridSpec, SpectrogramMeta, ViewerModel } from "./types";
import { type LongViewerTraits, type WindowLabel, parseWindows } from "./view/strip";

/** Every trait a view reads: the viewer's, and the LongViewer's own. */
export type Traits = ViewerModel & LongViewerTraits;
export type Trait = keyof Traits;
export type ViewModel = AnyModel<Traits>;

/**
 * Writes this view's changes to the model and sends them at once. ipywidgets itself holds messages back
 * (merged) while one is unacknowledged, and ignores kernel echoes of values it has yet to send; a local
 * delay before `save_changes` would open a window in which such an echo reverts a newer, unsent value.
 */
export class ModelWriter {
  constructor(private readonly model: ViewModel) {}

  set<K extends Trait>(key: K, value: Traits[K]): void {
    this.model.set(key, value);
    this.model.save_changes();
  }
}

/**
 * What a trait's change does to the view once the fields reading it are decoded again: `image` repaints
 * the spectrogram (and the chrome), `chrome` redraws axes, colour bars and strip, `strip` shows or hides
 * the strip, `buttons` updates the play buttons, `tooltip` rewrites the tooltip, `range` follows
 * `time_range`, `playhead` follows the model's playhead, `size` lays the canvases out again.
 */
export type Effect = "image" | "chrome" | "strip" | "buttons" | "tooltip" | "range" | "playhead" | "size";

/** A trait's entry: its effects, in order; `redraw` draws once more afterwards (and logs, not throws, errors). */
export interface OnChange {
  effects: readonly Effect[];
  redraw: boolean;
}

const redraw = (...effects: Effect[]): OnChange => ({ effects, redraw: true });
const only = (...effects: Effect[]): OnChange => ({ effects, redraw: false });

/** Every trait the view follows (a Record, so a trait added to Traits must be listed here). */
export const ON_CHANGE: Readonly<Record<Trait, OnChange>> = {
  _spectrogram: redraw("image"),
  _tiles: redraw("image"),
  _meta: redraw("image", "range"),
  _grid: redraw("buttons"),
  _grid_offset: redraw("buttons"),
  _windows: redraw("strip", "chrome"),
  window: redraw("chrome"),
  _audio_info: only("buttons"),
  selected_patches: redraw("buttons"),
  masked_patches: redraw(),
  patch_groups: redraw(),
  hovered_patch: redraw("tooltip"),
  heatmap: redraw(),
  embeddings: redraw(),
  heatmap_opacity: redraw("chrome"),
  heatmap_colormap: redraw("chrome"),
  heatmap_range: redraw("chrome"),
  heatmap_label: redraw("chrome"),
  hover_mode: redraw("chrome"),
  show_grid: redraw("chrome"),
  colormap: redraw("image"),
  vmin: redraw("image"),
  vmax: redraw("image"),
  time_range: only("range"),
  playhead: only("playhead"),
  height: only("size"),
};

/** Patch indices from an untrusted list: the valid ones for `grid`; every other entry is warned about. */
function patchSet(values: unknown, grid: GridSpec | null, trait: string): Set<number> {
  const out = new Set<number>();
  if (!grid || !Array.isArray(values)) return out;
  for (const v of values) {
    if (isValidPatch(grid, v)) out.add(v);
    else console.warn(`audiovis: ignoring ${trait} entry ${JSON.stringify(v)} outside 0..${numPatches(grid) - 1}`);
  }
  return out;
}

/** One value per patch, or null (none, no grid, or the wrong length, with a warning). */
function heatmapValues(payload: BinaryArray | null, grid: GridSpec | null): Float32Array | null {
  if (!payload || !grid) return null;
  const values = toFloat32(payload);
  if (values.length !== numPatches(grid)) {
    console.warn(`audiovis: heatmap has ${values.length} values for ${numPatches(grid)} patches; not drawn`);
    return null;
  }
  return values;
}

/** One embedding per patch, or null (none, no grid, or a shape that does not fit, with a warning). */
function patchEmbeddings(payload: BinaryArray | null, grid: GridSpec | null): PatchEmbeddings | null {
  if (!payload || !grid) return null;
  const count = numPatches(grid);
  if (payload.shape.length !== 2 || payload.shape[0] !== count) {
    console.warn(`audiovis: embeddings of shape ${payload.shape.join("x")} do not fit ${count} patches; ignored`);
    return null;
  }
  return PatchEmbeddings.fromBinary(payload);
}

/** The decoded fields, each with the traits it reads and its codec; decoded in this order (grid first). */
const FIELDS: ReadonlyArray<{ traits: readonly Trait[]; decode: (d: ModelData, m: ViewModel) => void }> = [
  { traits: ["_meta", "_spectrogram", "_tiles"], decode: (d) => d.decodeSpectrogram() },
  {
    traits: ["_grid", "_grid_offset"],
    decode: (d, m) => {
      d.grid = m.get("_grid") ?? null;
      const offset = m.get("_grid_offset");
      d.gridOffset = typeof offset === "number" && Number.isFinite(offset) ? offset : 0;
    },
  },
  { traits: ["_windows"], decode: (d, m) => void (d.windows = parseWindows(m.get("_windows"))) },
  {
    traits: ["selected_patches", "_grid", "_grid_offset"],
    decode: (d, m) => void (d.selection = patchSet(m.get("selected_patches"), d.grid, "selected_patches")),
  },
  { traits: ["masked_patches", "_grid"], decode: (d, m) => void (d.masked = patchSet(m.get("masked_patches"), d.grid, "masked_patches")) },
  { traits: ["patch_groups", "_grid"], decode: (d, m) => void (d.groups = checkGroups(m.get("patch_groups"), d.grid ? numPatches(d.grid) : 0)) },
  {
    traits: ["heatmap", "_grid"],
    decode: (d, m) => {
      d.heatmap = null; // stays null when the payload cannot be decoded
      d.heatmap = heatmapValues(m.get("heatmap"), d.grid);
    },
  },
  {
    traits: ["embeddings", "_grid"],
    decode: (d, m) => {
      d.embeddings = null;
      d.similarity = null;
      d.embeddings = patchEmbeddings(m.get("embeddings"), d.grid);
    },
  },
];

/** The model's traits decoded into what one view draws from. */
export class ModelData {
  meta!: SpectrogramMeta;
  axes!: Axes;
  source!: ColumnSource;
  /** Level of detail for long recordings (null when the whole spectrogram came in one payload). */
  tiles: TiledSource | null = null;
  grid: GridSpec | null = null;
  /** Frame of the recording where the grid's frame 0 lies (LongViewer: the window under view). */
  gridOffset = 0;
  windows: WindowLabel[] = [];
  selection = new Set<number>();
  masked = new Set<number>();
  groups: Int32Array | null = null;
  heatmap: Float32Array | null = null;
  embeddings: PatchEmbeddings | null = null;
  /** The last similarity map computed from the embeddings (for the hovered patch). */
  similarity: { index: number; values: Float32Array } | null = null;

  /**
   * @param model the widget model read from
   * @param channel the model's request channel, which the tile cache asks for tiles over
   * @param onTile called when a tile arrives (redraw)
   */
  constructor(
    private readonly model: ViewModel,
    private readonly channel: Channel,
    private readonly onTile: () => void,
  ) {}

  /** Decodes every field (the view's first load). */
  decodeAll(): void {
    for (const field of FIELDS) field.decode(this, this.model);
  }

  /** Decodes again every field that reads `trait`, in order. */
  update(trait: Trait): void {
    for (const field of FIELDS) if (field.traits.includes(trait)) field.decode(this, this.model);
  }

  /** The spectrogram's values (overview plus tiles when the kernel tiles it) and axes. */
  decodeSpectrogram(): void {
    const meta = (this.meta = this.model.get("_meta"));
    const values = toFloat32(this.model.get("_spectrogram"), meta.value_range);
    const overview = new ArraySource(values, meta.n_bins, meta.n_frames, meta.frames_per_column);
    this.tiles?.destroy();
    const spec = this.model.get("_tiles");
    this.tiles = spec ? new TiledSource(overview, spec, this.channel, { onTile: this.onTile }) : null;
    this.source = this.tiles ?? overview;
    this.axes = { timeOffset: meta.time_offset, hopSeconds: meta.hop_seconds, edges: meta.frequency_edges };
  }

  /** Cosine similarity of every patch to `index` (cached for the hovered patch); needs embeddings. */
  similarityTo(embeddings: PatchEmbeddings, index: number): Float32Array {
    if (this.similarity?.index === index) return this.similarity.values;
    const values = embeddings.similarity([index]);
    this.similarity = { index, values };
    return values;
  }

  destroy(): void {
    this.tiles?.destroy();
    this.tiles = null;
  }
}
