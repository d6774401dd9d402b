/**
 * Tile protocol and cache (src/tiles.ts) against a small in-test kernel that pools a known array; the
 * requests go over the real channel (src/requests.ts) of a fake widget model.
 */

import { afterEach, describe, expect, it, vi } from "vitest";
import { ArraySource } from "../src/render";
import { type Channel, channelFor } from "../src/requests";
import { LruCache, TiledSource } from "../src/tiles";
import type { TileSpec } from "../src/types";

const BINS = 4;
const FRAMES = 10_000;
const TILE_COLUMNS = 256;
const LEVELS = [1, 2, 4, 8];
const OVERVIEW_FPC = 10;

/** Values [BINS, FRAMES]: a smooth ramp plus one narrow peak per bin at a known frame. */
function makeValues(): Float32Array {
  const v = new Float32Array(BINS * FRAMES);
  for (let b = 0; b < BINS; b++) {
    for (let f = 0; f < FRAMES; f++) v[b * FRAMES + f] = Math.sin(f / 97 + b) * 10;
    v[b * FRAMES + 1234 + b * 2000] = 50;
  }
  return v;
}

const VALUES = makeValues();

/** Reference: per-bin max over frames [a, b) of the full array. */
function directMax(a: number, b: number): number[] {
  const out: number[] = [];
  for (let bin = 0; bin < BINS; bin++) {
    let m = -Infinity;
    for (let f = a; f < b; f++) m = Math.max(m, VALUES[bin * FRAMES + f]!);
    out.push(m);
  }
  return out;
}

function pooled(pool: number, first: number, last: number): Float32Array {
  const columns = Math.ceil((last - first) / pool);
  const out = new Float32Array(BINS * columns);
  for (let b = 0; b < BINS; b++) {
    for (let c = 0; c < columns; c++) {
      let m = -Infinity;
      for (let f = first + c * pool; f < Math.min(last, first + (c + 1) * pool); f++) m = Math.max(m, VALUES[b * FRAMES + f]!);
      out[b * columns + c] = m;
    }
  }
  return out;
}

const SPEC: TileSpec = {
  n_bins: BINS,
  n_frames: FRAMES,
  tile_columns: TILE_COLUMNS,
  levels: LEVELS,
  dtype: "float32",
  value_range: [-10, 50],
};

interface Sent {
  type: string;
  id: number;
  level: number;
  index: number;
}

type Listener = (c: unknown, b: DataView[]) => void;

/** Every channel made in a test, released after it (pending requests rejected, timers cleared). */
const channels: Channel[] = [];

/** One widget model shared by every view: replies reach every listener, as custom messages do. */
class FakeComm {
  sent: Sent[] = [];
  readonly listeners = new Set<Listener>();
  private readonly model = {
    send: (content: Record<string, unknown>) => void this.sent.push(content as unknown as Sent),
    on: (_name: "msg:custom", fn: Listener) => void this.listeners.add(fn),
    off: (_name: "msg:custom", fn: Listener) => void this.listeners.delete(fn),
  };

  /** One view's handle on the model's request channel. */
  channel(): Channel {
    const channel = channelFor(this.model);
    channels.push(channel);
    return channel;
  }

  broadcast(content: unknown, buffers: DataView[] = []): void {
    for (const fn of [...this.listeners]) fn(content, buffers);
  }

  /** The reply the kernel gives to request `r`, its payload at byte offset `offset` of a larger buffer. */
  reply(r: Sent, offset = 0): [Record<string, unknown>, DataView[]] {
    const pool = LEVELS[r.level]!;
    const first = r.index * TILE_COLUMNS * pool;
    const last = Math.min(FRAMES, first + TILE_COLUMNS * pool);
    const data = pooled(pool, first, last);
    const buffer = new ArrayBuffer(data.byteLength + offset + 8);
    new Uint8Array(buffer, offset).set(new Uint8Array(data.buffer));
    const content = { id: r.id, type: "tile", level: r.level, index: r.index, start_frame: first, frames_per_column: pool, dtype: "float32", shape: [BINS, data.length / BINS] };
    return [content, [new DataView(buffer, offset, data.byteLength)]];
  }

  answerAll(offset = 0): void {
    for (const r of this.sent.splice(0)) this.broadcast(...this.reply(r, offset));
  }
}

function overview(): ArraySource {
  return new ArraySource(pooled(OVERVIEW_FPC, 0, FRAMES), BINS, FRAMES, OVERVIEW_FPC);
}

function reduce(src: { reduceFrames(a: number, b: number, out: Float32Array): void }, a: number, b: number): number[] {
  const out = new Float32Array(BINS);
  src.reduceFrames(a, b, out);
  return Array.from(out);
}

/** Lets promise callbacks run (a reply reaches the tile cache one microtask after it arrives). */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

afterEach(() => {
  for (const c of channels.splice(0)) c.release();
  vi.restoreAllMocks();
});

describe("LruCache", () => {
  it("keeps at most maxBytes, evicting the least recently used first", () => {
    const c = new LruCache<string>(10);
    c.set(1, "a", 4);
    c.set(2, "b", 4);
    expect(c.touch(1)).toBe(true);
    c.set(3, "c", 4);
    expect(c.peek(2)).toBeUndefined();
    expect(c.peek(1)).toBe("a");
    expect(c.peek(3)).toBe("c");
    expect(c.bytes).toBe(8);
    expect(c.evicted).toBe(1);
    c.set(4, "huge", 50);
    expect(c.peek(4)).toBe("huge");
    expect(c.size).toBe(1);
  });
});

describe("TiledSource", () => {
  it("chooses the coarsest level not coarser than a device pixel, and the overview when it suffices", () => {
    const src = new TiledSource(overview(), SPEC, new FakeComm().channel());
    expect(src.levelFor(0.3)).toBe(0);
    expect(src.levelFor(1)).toBe(0);
    expect(src.levelFor(3.9)).toBe(1);
    expect(src.levelFor(8)).toBe(3);
    expect(src.levelFor(9.99)).toBe(3);
    expect(src.levelFor(10)).toBe(-1);
  });

  it("draws from the overview until tiles arrive, then at full resolution", async () => {
    const comm = new FakeComm();
    let redraws = 0;
    const src = new TiledSource(overview(), SPEC, comm.channel(), { onTile: () => redraws++ });
    const missing = src.want(1000, 1500, 1000);
    expect(missing).toBe(3); // frames 1000..1500 lie in tiles 3, 4, 5 (256 frames each)
    // Visible tiles first, then the neighbour to the right; the left one waits (4 in flight at most).
    expect(comm.sent.map((r) => [r.level, r.index])).toEqual([[0, 3], [0, 4], [0, 5], [0, 6]]);
    expect(new Set(comm.sent.map((r) => r.id)).size).toBe(4);
    expect(reduce(src, 1234, 1235)).toEqual(reduce(overview(), 1234, 1235));
    comm.answerAll(3);
    await settle();
    expect(redraws).toBe(4);
    for (const [a, b] of [[1234, 1235], [1100, 1101], [1020, 1030], [1279, 1281]] as const) {
      expect(reduce(src, a, b)).toEqual(directMax(a, b));
    }
    expect(src.want(1000, 1500, 1000)).toBe(0);
    expect(comm.sent.map((r) => [r.level, r.index])).toEqual([[0, 2]]); // only the left neighbour is left
  });

  it("pooled levels give the max over each pixel's frames, spanning tile boundaries", async () => {
    const comm = new FakeComm();
    const src = new TiledSource(overview(), SPEC, comm.channel(), { maxInFlight: 16 });
    src.want(0, FRAMES, FRAMES / 5); // 5 frames per pixel: level 2 (4 frames per column)
    expect(new Set(comm.sent.map((r) => r.level))).toEqual(new Set([2]));
    comm.answerAll();
    await settle();
    // [1020, 1028) straddles tiles 0 and 1 of level 2 (1024 frames each); [3232, 3236) holds a peak.
    for (const [a, b] of [[1020, 1028], [3232, 3236], [5228, 5236]] as const) {
      expect(reduce(src, a, b)).toEqual(directMax(a, b));
    }
  });

  it("keeps requests in flight bounded and retries nothing already pending", () => {
    const comm = new FakeComm();
    const src = new TiledSource(overview(), SPEC, comm.channel(), { maxInFlight: 2 });
    src.want(0, 2000, 500);
    src.want(0, 2000, 500);
    expect(comm.sent.length).toBe(2);
    expect(src.stats.inFlight).toBe(2);
  });

  it("a reply reaches only the view that asked; late replies (after a reset or a timeout) are stale", async () => {
    const comm = new FakeComm();
    let now = 0;
    const a = new TiledSource(overview(), SPEC, comm.channel(), { now: () => now, timeoutMs: 1000 });
    const b = new TiledSource(overview(), SPEC, comm.channel(), { now: () => now, timeoutMs: 1000 });
    expect(comm.listeners.size).toBe(1); // both views ask over the model's one channel
    a.want(0, 300, 1000);
    const [forA] = comm.sent.splice(0);
    b.want(5000, 5300, 1000);
    const [forB] = comm.sent.splice(0);
    expect(forA!.id).not.toBe(forB!.id);
    expect(b.stats.inFlight).toBe(4);
    comm.broadcast(...comm.reply(forA!));
    await settle();
    expect(a.stats.received).toBe(1);
    expect([b.stats.received, b.stats.stale, b.stats.inFlight]).toEqual([0, 0, 4]); // a's reply never reaches b

    comm.broadcast(...comm.reply({ ...forB!, id: 12345 })); // no request has this id
    await settle();
    expect([b.stats.received, b.stats.stale, b.stats.inFlight]).toEqual([0, 0, 4]);
    expect([a.stats.received, a.stats.stale]).toEqual([1, 0]);

    b.reset();
    comm.broadcast(...comm.reply(forB!));
    await settle();
    expect([b.stats.received, b.stats.stale]).toEqual([0, 1]);
    expect(reduce(b, 5100, 5101)).toEqual(reduce(overview(), 5100, 5101));

    b.want(5000, 5300, 1000);
    const [late] = comm.sent.splice(0);
    now = 5000;
    b.want(9000, 9300, 1000); // expires the old request, asks for new tiles
    comm.broadcast(...comm.reply(late!));
    await settle();
    expect([b.stats.received, b.stats.stale]).toEqual([0, 2]);
    expect(reduce(b, 5100, 5101)).toEqual(reduce(overview(), 5100, 5101));
  });

  it("answers with {error} are counted, warned about, and not re-asked until retryMs passes", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const comm = new FakeComm();
    let now = 0;
    const src = new TiledSource(overview(), SPEC, comm.channel(), { now: () => now, retryMs: 100 });
    src.want(0, 200, 1000);
    const [r] = comm.sent.splice(0);
    comm.sent.length = 0;
    comm.broadcast({ id: r!.id, error: "tile index must be an integer in 0..39, got 99" });
    await settle();
    expect(src.stats.errors).toBe(1);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining("tile (0, 0) failed"));
    src.want(0, 200, 1000);
    expect(comm.sent.filter((s) => s.index === 0)).toEqual([]);
    now = 200;
    src.want(0, 200, 1000);
    expect(comm.sent.filter((s) => s.index === 0).length).toBe(1);
  });

  it("drops a reply that does not fit its request (wrong tile, type or byte count)", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const comm = new FakeComm();
    const src = new TiledSource(overview(), SPEC, comm.channel());
    src.want(0, 600, 1000);
    const [r0, r1, r2] = comm.sent.splice(0);
    const [content, buffers] = comm.reply(r0!);
    comm.broadcast({ ...content, index: 7 }, buffers);
    const [content1, buffers1] = comm.reply(r1!);
    comm.broadcast(content1, [new DataView(buffers1[0]!.buffer, 0, 12)]);
    const [content2, buffers2] = comm.reply(r2!);
    comm.broadcast({ ...content2, type: "audio" }, buffers2);
    await settle();
    expect(src.stats.received).toBe(0);
    expect(src.stats.errors).toBe(3);
    expect(src.stats.inFlight).toBe(1); // the fourth request is still waiting
  });

  it("panning over the whole recording keeps the cache within its byte bound", async () => {
    const comm = new FakeComm();
    const tileBytes = BINS * TILE_COLUMNS * 4;
    const src = new TiledSource(overview(), SPEC, comm.channel(), { maxBytes: 6 * tileBytes });
    for (let f = 0; f + 300 <= FRAMES; f += 150) {
      src.want(f, f + 300, 600);
      comm.answerAll();
      await settle();
      expect(src.stats.cachedBytes).toBeLessThanOrEqual(6 * tileBytes);
      expect(reduce(src, f + 10, f + 11)).toEqual(directMax(f + 10, f + 11));
    }
    expect(src.stats.evicted).toBeGreaterThan(20);
  });

  it("decodes uint8 tiles over the shared value range", async () => {
    const comm = new FakeComm();
    const spec: TileSpec = { ...SPEC, dtype: "uint8", value_range: [-80, 0] };
    const codes = new Float32Array(BINS * FRAMES).fill(-80);
    const src = new TiledSource(new ArraySource(codes.subarray(0, BINS * 1000), BINS, FRAMES, OVERVIEW_FPC), spec, comm.channel());
    src.want(0, 100, 1000);
    const r = comm.sent[0]!;
    const data = new Uint8Array(BINS * TILE_COLUMNS);
    data[2 * TILE_COLUMNS + 7] = 255;
    data[2 * TILE_COLUMNS + 8] = 51;
    comm.broadcast(
      { id: r.id, type: "tile", level: 0, index: 0, start_frame: 0, frames_per_column: 1, dtype: "uint8", shape: [BINS, TILE_COLUMNS] },
      [new DataView(data.buffer)],
    );
    await settle();
    const out = reduce(src, 8, 9);
    expect(out[2]).toBeCloseTo(-80 + 51 * (80 / 255), 5);
    expect(reduce(src, 7, 9)[2]).toBeCloseTo(0, 5);
    expect(out[0]).toBe(-80);
  });

  it("after destroy, later replies are ignored", async () => {
    const comm = new FakeComm();
    const src = new TiledSource(overview(), SPEC, comm.channel());
    src.want(0, 200, 1000);
    src.destroy();
    comm.answerAll();
    await settle();
    expect(src.stats.received).toBe(0);
    expect(src.stats.stale).toBe(0);
  });
});
