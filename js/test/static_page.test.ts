/** Saved pages (src/static): the kernel-free model, frames decoding and tiles pooled from saved frames. */

import { describe, expect, it } from "vitest";
import { type SavedFrames, decodeFrames, pageAnswers, tileFromFrames } from "../src/static/answers";
import { StaticModel, restoreState } from "../src/static/model";
import type { TileSpec } from "../src/types";

const BINS = 5;
const FRAMES = 3000;

function codes(): Uint8Array {
  const out = new Uint8Array(BINS * FRAMES);
  for (let b = 0; b < BINS; b++) for (let f = 0; f < FRAMES; f++) out[b * FRAMES + f] = (f * 7 + b * 31 + ((f * f) % 13)) % 256;
  return out;
}

/** What static_page.py writes: each bin's codes minus the bin below (mod 256), zlib-compressed, base64. */
async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function base64(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

async function saved(values: Uint8Array, start: number, end: number): Promise<SavedFrames> {
  const n = end - start;
  const rows = new Uint8Array(BINS * n);
  for (let b = 0; b < BINS; b++) rows.set(values.subarray(b * FRAMES + start, b * FRAMES + end), b * n);
  const filtered = rows.slice();
  for (let b = BINS - 1; b >= 1; b--) for (let t = 0; t < n; t++) filtered[b * n + t] = (rows[b * n + t]! - rows[(b - 1) * n + t]! + 256) & 255;
  return {
    start_frame: start, end_frame: end, n_bins: BINS, dtype: "uint8", compression: "deflate", filter: "up",
    data: base64(await deflate(filtered)),
  };
}

const SPEC: TileSpec = { n_bins: BINS, n_frames: FRAMES, tile_columns: 256, levels: [1, 2, 4, 8], dtype: "uint8", value_range: [0, 1] };

describe("saved frames", () => {
  it("decode to the original codes", async () => {
    const values = codes();
    const frames = await decodeFrames(await saved(values, 0, FRAMES));
    expect(Array.from(frames)).toEqual(Array.from(values));
  });

  it("pool into the tiles the kernel would send (max over each column's frames)", async () => {
    const values = codes();
    const part = await saved(values, 0, FRAMES);
    const frames = await decodeFrames(part);
    for (const [level, index] of [[0, 0], [1, 3], [3, 1], [2, 2]] as const) {
      const pool = SPEC.levels[level]!;
      const tile = tileFromFrames(SPEC, part, frames, level, index);
      const first = index * SPEC.tile_columns * pool;
      const last = Math.min(FRAMES, first + SPEC.tile_columns * pool);
      const columns = Math.ceil((last - first) / pool);
      expect(tile.content).toMatchObject({ level, index, start_frame: first, frames_per_column: pool, shape: [BINS, columns] });
      const got = new Uint8Array(tile.buffers[0]!.buffer);
      for (let b = 0; b < BINS; b++) {
        for (let c = 0; c < columns; c++) {
          let m = 0;
          for (let f = first + c * pool; f < Math.min(last, first + (c + 1) * pool); f++) m = Math.max(m, values[b * FRAMES + f]!);
          expect(got[b * columns + c]).toBe(m);
        }
      }
    }
  });

  it("refuse tiles outside the saved frames (the viewer then keeps the overview)", async () => {
    const values = codes();
    const part = await saved(values, 512, 1024);
    const frames = await decodeFrames(part);
    expect(tileFromFrames(SPEC, part, frames, 0, 2).content.start_frame).toBe(512);
    expect(() => tileFromFrames(SPEC, part, frames, 0, 5)).toThrow(/frames 512-1024 only/);
    expect(() => tileFromFrames(SPEC, part, frames, 9, 0)).toThrow(/level/);
  });
});

describe("StaticModel", () => {
  it("answers requests as msg:custom with the request's id, errors included", async () => {
    const model = new StaticModel({}, pageAnswers({ audio: null, frames: null, tiles: null }));
    const replies: unknown[] = [];
    model.on("msg:custom", (msg: unknown) => replies.push(msg));
    model.send({ type: "audio", chunk: 0, id: 7 });
    model.send({ type: "nonsense", id: 8 });
    await new Promise((r) => setTimeout(r, 10));
    expect(replies).toEqual([
      { id: 7, error: "this page holds no audio" },
      { id: 8, error: 'a saved page cannot answer "nonsense" (no kernel)' },
    ]);
  });

  it("fires change events for new values only; binary arrays always count as new", () => {
    const model = new StaticModel({ selected_patches: [1, 2] }, async () => ({ content: {}, buffers: [] }));
    const seen: string[] = [];
    model.on("change:selected_patches", () => seen.push("sel"));
    model.on("change:heatmap", () => seen.push("heat"));
    model.set("selected_patches", [1, 2]);
    model.set("selected_patches", [1, 3]);
    const a = { view: new DataView(new ArrayBuffer(4)), dtype: "float32", shape: [1] };
    const b = { view: new DataView(new ArrayBuffer(4)), dtype: "float32", shape: [1] };
    model.set("heatmap", a);
    model.set("heatmap", b);
    model.set("heatmap", b);
    expect(seen).toEqual(["sel", "heat", "heat"]);
  });

  it("puts saved buffers back at their paths as DataViews", async () => {
    const state = await restoreState({ state: { heatmap: { dtype: "uint8", shape: [3] } }, buffers: [{ path: ["heatmap", "view"], data: btoa("\x01\x02\x03") }] });
    const view = (state.heatmap as { view: DataView }).view;
    expect(view).toBeInstanceOf(DataView);
    expect([view.getUint8(0), view.getUint8(1), view.getUint8(2)]).toEqual([1, 2, 3]);
    const packed = await restoreState({ state: { a: {} }, buffers: [{ path: ["a", "view"], data: base64(await deflate(new Uint8Array([9, 8, 7]))), compression: "deflate" }] });
    expect(new Uint8Array((packed.a as { view: DataView }).view.buffer)).toEqual(new Uint8Array([9, 8, 7]));
  });
});
