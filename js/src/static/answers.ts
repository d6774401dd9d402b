/**
 * What a saved page answers in place of the kernel: audio chunks decoded from the embedded compressed
 * audio, and spectrogram tiles max-pooled from the embedded full-resolution frames (the same rule as
 * audiovis/widgets/tiles.py: pooling uint8 codes by max equals quantising the pooled values, since the
 * quantisation is monotone).
 */

import { binToHz, frameToTime, numPatches, patchBounds } from "../geometry";
import type { GridSpec, SpectrogramMeta, TileSpec } from "../types";
import { regionAudio } from "./patchaudio";
import type { Answerer, SavedState } from "./model";
import { base64ToBytes, inflate } from "./model";

/** The embedded audio (audiovis/widgets/static_page.py `_audio_part`). */
export interface SavedAudio {
  format: "vorbis" | "opus" | "flac" | "wav";
  mime: string;
  sample_rate: number;
  num_samples: number;
  /** Samples were divided by this before encoding (peaks above 1); multiplied back here. */
  gain?: number;
  data: string;
}

/** Full-resolution frames [start_frame, end_frame) of every bin, [bins, frames] row-major. */
export interface SavedFrames {
  start_frame: number;
  end_frame: number;
  n_bins: number;
  dtype: "uint8" | "float32";
  /** "deflate": zlib stream; uint8 codes are stored as differences to the bin below (mod 256). */
  compression: "deflate" | "none";
  filter: "up" | "none";
  data: string;
}

/** Samples per audio chunk, as the viewer's kernel side cuts them (viewer.py AUDIO_CHUNK_SAMPLES). */
export const AUDIO_CHUNK_SAMPLES = 1 << 20;

/** Decodes the embedded frames into a typed array [bins, frames]. */
export async function decodeFrames(saved: SavedFrames): Promise<Uint8Array | Float32Array> {
  let bytes = base64ToBytes(saved.data);
  if (saved.compression === "deflate") bytes = await inflate(bytes);
  const n = saved.end_frame - saved.start_frame;
  if (saved.dtype === "float32") {
    if (bytes.byteLength !== saved.n_bins * n * 4) throw new Error("saved frames have the wrong size");
    return new Float32Array(bytes.buffer, bytes.byteOffset, saved.n_bins * n);
  }
  if (bytes.byteLength !== saved.n_bins * n) throw new Error("saved frames have the wrong size");
  if (saved.filter === "up") {
    for (let b = 1; b < saved.n_bins; b++) {
      const row = b * n;
      const below = row - n;
      for (let t = 0; t < n; t++) bytes[row + t] = (bytes[row + t]! + bytes[below + t]!) & 255;
    }
  }
  return bytes;
}

/** Tile (level, index) pooled from the saved frames, or an error when the page holds no frames for it. */
export function tileFromFrames(spec: TileSpec, saved: SavedFrames, frames: Uint8Array | Float32Array, level: number, index: number) {
  const pool = spec.levels[level];
  if (!Number.isInteger(level) || pool === undefined) throw new Error(`tile level must be in 0..${spec.levels.length - 1}`);
  const first = index * spec.tile_columns * pool;
  const last = Math.min(spec.n_frames, first + spec.tile_columns * pool);
  if (!Number.isInteger(index) || index < 0 || first >= spec.n_frames) throw new Error(`no tile ${index} at level ${level}`);
  if (first < saved.start_frame || last > saved.end_frame) {
    throw new Error(`this page holds full-resolution frames ${saved.start_frame}-${saved.end_frame} only (saved view)`);
  }
  const bins = saved.n_bins;
  const width = saved.end_frame - saved.start_frame;
  const columns = Math.ceil((last - first) / pool);
  const out = frames instanceof Float32Array ? new Float32Array(bins * columns) : new Uint8Array(bins * columns);
  for (let b = 0; b < bins; b++) {
    const row = b * width - saved.start_frame;
    for (let c = 0; c < columns; c++) {
      const f0 = first + c * pool;
      const f1 = Math.min(last, f0 + pool);
      let m = frames[row + f0]!;
      for (let f = f0 + 1; f < f1; f++) if (frames[row + f]! > m) m = frames[row + f]!;
      out[b * columns + c] = m;
    }
  }
  return {
    content: { type: "tile", level, index, start_frame: first, frames_per_column: pool, dtype: spec.dtype, shape: [bins, columns] },
    buffers: [new DataView(out.buffer)],
  };
}

/** Mono samples of the embedded audio at its own rate (the browser's decoder; WAV parsed directly if that fails). */
export async function decodeAudio(saved: SavedAudio): Promise<Float32Array> {
  const bytes = base64ToBytes(saved.data);
  let samples: Float32Array;
  try {
    const ctx = new OfflineAudioContext(1, Math.max(1, saved.num_samples), saved.sample_rate);
    const buffer = await ctx.decodeAudioData(bytes.slice().buffer);
    samples = buffer.getChannelData(0);
  } catch (err) {
    if (saved.format !== "wav") throw new Error(`this browser cannot decode the page's ${saved.format} audio: ${String(err)}`);
    samples = parseWav16(bytes);
  }
  const out = new Float32Array(saved.num_samples); // a codec's padding: trim or pad to the saved length
  out.set(samples.subarray(0, saved.num_samples));
  const gain = saved.gain ?? 1;
  if (gain !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * gain;
  return out;
}

/** Mono 16-bit PCM WAV -> float samples (the fallback when the browser's decoder refuses the file). */
function parseWav16(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 12;
  while (pos + 8 <= view.byteLength) {
    const id = String.fromCharCode(...bytes.subarray(pos, pos + 4));
    const size = view.getUint32(pos + 4, true);
    if (id === "data") {
      const n = Math.floor(Math.min(size, view.byteLength - pos - 8) / 2);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(pos + 8 + 2 * i, true) / 32768;
      return out;
    }
    pos += 8 + size + (size & 1);
  }
  throw new Error("the page's WAV audio has no data chunk");
}

/** One viewer's entry in a saved page: its widget state, sound and full-resolution frames. */
export interface ViewerPart extends SavedState {
  audio: SavedAudio | null;
  frames: SavedFrames | null;
  /** True when `_spectrogram` was left out: the overview is pooled here from the full frames. */
  overview_from_frames: boolean;
}

/** Where the viewer's patches lie (read from its model when a request comes). */
export interface PatchGeometry {
  grid: GridSpec | null;
  meta: SpectrogramMeta;
  /** Frame of the spectrogram where the grid's frame 0 lies. */
  gridOffset: number;
  /** Clock time (s) of the audio's first sample. */
  audioStart: number;
}

/** The answering function of a saved viewer: audio chunks, tiles and the sound of patches from the page's own data. */
export function pageAnswers(options: {
  audio: SavedAudio | null;
  frames: SavedFrames | null;
  tiles: TileSpec | null;
  geometry?: () => PatchGeometry;
}): Answerer {
  let samples: Promise<Float32Array> | null = null;
  let frames: Promise<Uint8Array | Float32Array> | null = null;
  return async (request) => {
    if (request.type === "audio") {
      if (!options.audio) throw new Error("this page holds no audio");
      samples ??= decodeAudio(options.audio);
      const all = await samples;
      const chunk = Number(request.chunk);
      const chunks = Math.max(1, Math.ceil(all.length / AUDIO_CHUNK_SAMPLES));
      if (!Number.isInteger(chunk) || chunk < 0 || chunk >= chunks) throw new Error(`audio chunk must be in 0..${chunks - 1}`);
      const part = all.slice(chunk * AUDIO_CHUNK_SAMPLES, (chunk + 1) * AUDIO_CHUNK_SAMPLES);
      return {
        content: { type: "audio", chunk, chunks, dtype: "float32", shape: [part.length] },
        buffers: [new DataView(part.buffer)],
      };
    }
    if (request.type === "tile") {
      if (!options.tiles || !options.frames) throw new Error("this page holds no tiles");
      frames ??= decodeFrames(options.frames);
      return tileFromFrames(options.tiles, options.frames, await frames, Number(request.level), Number(request.index));
    }
    if (request.type === "patch_audio") {
      const geometry = options.geometry?.();
      if (!options.audio) throw new Error("this page holds no audio");
      if (!geometry?.grid) throw new Error("this viewer has no patch grid");
      const grid = geometry.grid;
      const patches = request.patches;
      const n = numPatches(grid);
      if (!Array.isArray(patches) || !patches.length || !patches.every((p) => Number.isInteger(p) && p >= 0 && p < n)) {
        throw new Error(`patches must be a non-empty list of patch indices in 0..${n - 1}`);
      }
      const axes = { timeOffset: geometry.meta.time_offset, hopSeconds: geometry.meta.hop_seconds, edges: geometry.meta.frequency_edges };
      const regions = [...new Set(patches as number[])].map((p) => {
        const b = patchBounds(grid, p);
        return {
          t0: frameToTime(axes, b.timeStart + geometry.gridOffset),
          t1: frameToTime(axes, b.timeEnd + geometry.gridOffset),
          f0: binToHz(axes, b.freqStart),
          f1: binToHz(axes, b.freqEnd),
        };
      });
      samples ??= decodeAudio(options.audio);
      const all = await samples;
      const out = regionAudio(all, options.audio.sample_rate, geometry.audioStart, regions);
      return {
        content: { type: "patch_audio", sample_rate: options.audio.sample_rate, start: out.start, dtype: "float32", shape: [out.samples.length] },
        buffers: [new DataView(out.samples.buffer)],
      };
    }
    throw new Error(`a saved page cannot answer ${JSON.stringify(request.type)} (no kernel)`);
  };
}
