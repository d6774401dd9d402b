/**
 * The widget's synced fields, typed once: mirrors the traits of audiovis.widgets.viewer.SpectrogramViewer.
 * Wire names (snake_case keys) are kept as Python sends them. Imports nothing from the project, so every
 * module may depend on it. LongViewer-only traits live with the strip (view/strip.ts, LongViewerTraits).
 */

/** A binary array as the Python serializer sends it: raw bytes (little-endian), dtype name and shape. */
export interface BinaryArray {
  view: DataView;
  dtype: string;
  shape: number[];
}

/** The spectrogram's axes and how its values are coded (see serializers.py). */
export interface SpectrogramMeta {
  n_bins: number;
  n_frames: number;
  /** Frames folded into one stored column (1 unless a long recording was max-pooled to fit a message). */
  frames_per_column: number;
  /** For uint8 payloads: code 0 is value_range[0], code 255 is value_range[1]. */
  value_range: [number, number];
  /** Seconds of the left edge of frame 0, and seconds per frame. */
  time_offset: number;
  hop_seconds: number;
  /** n_bins + 1 band edges in Hz, bottom edge of bin 0 first. */
  frequency_edges: number[];
  scale: string;
  units: string;
  valid_frames: number;
}

/** PatchGrid.to_dict(): shapes are (freq, time) pairs. */
export interface GridSpec {
  input_shape: [number, number];
  patch_size: [number, number];
  stride: [number, number];
  grid_shape: [number, number];
}

export interface AudioInfo {
  sample_rate: number;
  num_samples: number;
  duration: number;
  /** Where sample 0 plays on the spectrogram's clock (s): Audio.start (absent: 0). */
  start?: number;
  dtype: string;
  chunks: number;
}

/** The `_tiles` trait: how the kernel cuts a long spectrogram into tiles (audiovis/widgets/tiles.py). */
export interface TileSpec {
  n_bins: number;
  n_frames: number;
  tile_columns: number;
  /** Frames per column of each level (1, 2, 4, ...); level 0 is full resolution. */
  levels: number[];
  dtype: "uint8" | "float32";
  value_range: [number, number];
}

export type HoverMode = "none" | "similarity";

export interface ViewerModel {
  _spectrogram: BinaryArray;
  _meta: SpectrogramMeta;
  _grid: GridSpec | null;
  _audio_info: AudioInfo | null;
  /** Level-of-detail tiles of a long spectrogram (audiovis/widgets/tiles.py), or null. */
  _tiles: TileSpec | null;
  selected_patches: number[];
  hovered_patch: number | null;
  masked_patches: number[];
  /** One group id per patch (token merging), or null; -1 = in no group. */
  patch_groups: number[] | null;
  heatmap: BinaryArray | null;
  heatmap_opacity: number;
  heatmap_colormap: string;
  heatmap_range: [number, number] | null;
  heatmap_label: string;
  embeddings: BinaryArray | null;
  hover_mode: HoverMode;
  colormap: string;
  vmin: number;
  vmax: number;
  show_grid: boolean;
  time_range: [number, number];
  playhead: number;
  height: number;
}
