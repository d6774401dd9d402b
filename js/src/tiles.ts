/**
 * Level of detail for long spectrograms, browser side (the kernel side is audiovis/widgets/tiles.py).
 *
 * TiledSource draws from full-resolution (or lightly pooled) tiles when they are cached and from the
 * max-pooled overview otherwise. Tiles are asked for over the model's request channel (requests.ts), which
 * routes each reply to its request; this cache keeps its own in-flight limit, de-duplication, give-up time
 * and retry delay, and drops as stale a reply to a request it has forgotten (timed out, or sent before a
 * reset). Cached tiles are bounded in bytes, least recently used first out.
 */

import type { ColumnSource } from "./render";
import { type Channel, type Reply, ReplyError } from "./requests";
import type { TileSpec } from "./types";

export interface TileOptions {
  /** Bytes of tile data kept (LRU). */
  maxBytes?: number;
  /** Requests in flight at once. */
  maxInFlight?: number;
  /** A request not answered within this time is forgotten (its late reply is stale; its slot is free again). */
  timeoutMs?: number;
  /** After an error reply, the same tile is not asked for again for this long. */
  retryMs?: number;
  /** Called when a tile arrives (redraw). */
  onTile?: () => void;
  now?: () => number;
}

export interface TileStats {
  requested: number;
  received: number;
  stale: number;
  errors: number;
  evicted: number;
  cachedBytes: number;
  cachedTiles: number;
  inFlight: number;
  /** Milliseconds from request to reply of the last tile received. */
  lastFetchMs: number;
}

interface Tile {
  level: number;
  index: number;
  startFrame: number;
  pool: number;
  columns: number;
  codes: Uint8Array | Float32Array;
}

/** A tile asked for and not yet answered. */
interface InFlight {
  level: number;
  index: number;
  sent: number;
}

const key = (level: number, index: number): number => index * 64 + level;

/** Bytes-bounded LRU map (a Map keeps insertion order: the first entry is the least recently used). */
export class LruCache<V> {
  private readonly entries = new Map<number, { value: V; bytes: number }>();
  bytes = 0;
  evicted = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value without changing its recency (drawing reads every tile many times per frame). */
  peek(k: number): V | undefined {
    return this.entries.get(k)?.value;
  }

  /** Mark as most recently used; false if absent. */
  touch(k: number): boolean {
    const entry = this.entries.get(k);
    if (!entry) return false;
    this.entries.delete(k);
    this.entries.set(k, entry);
    return true;
  }

  set(k: number, value: V, bytes: number): void {
    const old = this.entries.get(k);
    if (old) {
      this.bytes -= old.bytes;
      this.entries.delete(k);
    }
    this.entries.set(k, { value, bytes });
    this.bytes += bytes;
    for (const [victim, entry] of this.entries) {
      if (this.bytes <= this.maxBytes || victim === k) break;
      this.entries.delete(victim);
      this.bytes -= entry.bytes;
      this.evicted++;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** Per-bin maximum of `codes` [bins, columns] over columns [c0, c1), into `acc` (max with what is there). */
function maxColumns(codes: Uint8Array | Float32Array, columns: number, c0: number, c1: number, acc: Float32Array): void {
  for (let b = 0; b < acc.length; b++) {
    const row = b * columns;
    let m = acc[b]!;
    for (let c = c0; c < c1; c++) {
      const v = codes[row + c]!;
      if (v > m) m = v;
    }
    acc[b] = m;
  }
}

/** A column source over an overview plus cached tiles; `want` asks for the tiles a view needs. */
export class TiledSource implements ColumnSource {
  readonly numBins: number;
  readonly numFrames: number;
  private readonly cache: LruCache<Tile>;
  /** Requests in flight by tile key; a reply whose entry is no longer here is stale. */
  private readonly pending = new Map<number, InFlight>();
  private readonly failed = new Map<number, number>();
  private destroyed = false;
  private readonly now: () => number;
  private readonly acc: Float32Array;
  private readonly step: number;
  private counts = { requested: 0, received: 0, stale: 0, errors: 0, lastFetchMs: NaN };

  constructor(
    private readonly overview: ColumnSource & { readonly framesPerColumn: number },
    readonly spec: TileSpec,
    private readonly channel: Pick<Channel, "request">,
    private readonly options: TileOptions = {},
  ) {
    if (overview.numBins !== spec.n_bins || overview.numFrames !== spec.n_frames) {
      throw new Error(`tiles (${spec.n_bins} x ${spec.n_frames}) do not fit the overview (${overview.numBins} x ${overview.numFrames})`);
    }
    this.numBins = spec.n_bins;
    this.numFrames = spec.n_frames;
    this.cache = new LruCache(options.maxBytes ?? 48 * 2 ** 20);
    this.now = options.now ?? (() => performance.now());
    this.acc = new Float32Array(this.numBins);
    this.step = spec.dtype === "uint8" ? (spec.value_range[1] - spec.value_range[0]) / 255 : 1;
  }

  get stats(): TileStats {
    return {
      ...this.counts,
      evicted: this.cache.evicted,
      cachedBytes: this.cache.bytes,
      cachedTiles: this.cache.size,
      inFlight: this.pending.size,
    };
  }

  /** The level whose columns pool the most frames without exceeding `framesPerPixel`; -1: the overview is enough. */
  levelFor(framesPerPixel: number): number {
    if (framesPerPixel >= this.overview.framesPerColumn) return -1;
    const levels = this.spec.levels;
    let level = 0;
    while (level + 1 < levels.length && levels[level + 1]! <= framesPerPixel) level++;
    return level;
  }

  private tileFrames(level: number): number {
    return this.spec.tile_columns * this.spec.levels[level]!;
  }

  reduceFrames(f0: number, f1: number, out: Float32Array): void {
    const a = Math.max(0, Math.floor(f0));
    const b = Math.min(this.numFrames, Math.max(a + 1, Math.ceil(f1)));
    const best = this.levelFor(b - a);
    if (best >= 0) {
      // The level for this span, then finer ones (exact too), then coarser ones, then the overview.
      for (let level = best; level >= 0; level--) if (this.reduceFromTiles(level, a, b, out)) return;
      for (let level = best + 1; level < this.spec.levels.length; level++) if (this.reduceFromTiles(level, a, b, out)) return;
    }
    this.overview.reduceFrames(f0, f1, out);
  }

  /** Max over frames [a, b) from level `level`'s tiles; false if one of them is not cached. */
  private reduceFromTiles(level: number, a: number, b: number, out: Float32Array): boolean {
    const span = this.tileFrames(level);
    const first = Math.floor(a / span);
    const last = Math.floor((b - 1) / span);
    const acc = this.acc;
    acc.fill(-Infinity);
    for (let index = first; index <= last; index++) {
      const tile = this.cache.peek(key(level, index));
      if (!tile) return false;
      const c0 = Math.max(0, Math.floor((a - tile.startFrame) / tile.pool));
      const c1 = Math.min(tile.columns, Math.ceil((b - tile.startFrame) / tile.pool));
      maxColumns(tile.codes, tile.columns, c0, c1, acc);
    }
    const lo = this.spec.value_range[0];
    const coded = this.spec.dtype === "uint8";
    for (let k = 0; k < this.numBins; k++) out[k] = coded ? lo + acc[k]! * this.step : acc[k]!;
    return true;
  }

  /**
   * Ask for the tiles that frames [f0, f1) drawn `widthPx` device pixels wide need, plus one tile either
   * side for panning; visible tiles first. Returns the number of visible tiles still missing.
   */
  want(f0: number, f1: number, widthPx: number): number {
    this.expire();
    const level = this.levelFor((f1 - f0) / Math.max(1, widthPx));
    if (level < 0) return 0;
    const span = this.tileFrames(level);
    const count = Math.ceil(Math.ceil(this.numFrames / this.spec.levels[level]!) / this.spec.tile_columns);
    const first = Math.max(0, Math.floor(f0 / span));
    const last = Math.min(count - 1, Math.floor(Math.max(f0, f1 - 1e-9) / span));
    let missing = 0;
    const order: number[] = [];
    for (let i = first; i <= last; i++) order.push(i);
    if (last + 1 < count) order.push(last + 1);
    if (first - 1 >= 0) order.push(first - 1);
    order.forEach((index, n) => {
      const k = key(level, index);
      if (this.cache.touch(k)) return;
      if (n <= last - first) missing++;
      this.request(level, index);
    });
    return missing;
  }

  private request(level: number, index: number): void {
    const k = key(level, index);
    if (this.pending.size >= (this.options.maxInFlight ?? 4) || this.pending.has(k)) return;
    const retryAfter = this.failed.get(k);
    if (retryAfter !== undefined && this.now() < retryAfter) return;
    const entry: InFlight = { level, index, sent: this.now() };
    this.pending.set(k, entry);
    this.counts.requested++;
    this.channel.request({ type: "tile", level, index }).then(
      (reply) => this.onReply(k, entry, reply),
      (err: unknown) => this.onFailure(k, entry, err),
    );
  }

  private expire(): void {
    const limit = this.options.timeoutMs ?? 10000;
    const now = this.now();
    for (const [k, p] of this.pending) if (now - p.sent > limit) this.pending.delete(k);
  }

  /** The kernel's tile: cached if its request is still pending here, else dropped as stale. */
  private onReply(k: number, entry: InFlight, reply: Reply): void {
    if (this.destroyed) return;
    if (this.pending.get(k) !== entry) {
      this.counts.stale++;
      return;
    }
    this.pending.delete(k);
    const tile = this.decode(reply.content, reply.buffers[0], entry.level, entry.index);
    if (!tile) {
      this.counts.errors++;
      return;
    }
    this.counts.received++;
    this.counts.lastFetchMs = this.now() - entry.sent;
    this.cache.set(k, tile, tile.codes.byteLength);
    this.options.onTile?.();
  }

  /** An error reply is counted and not asked again for `retryMs`; a request that got no answer is just forgotten. */
  private onFailure(k: number, entry: InFlight, err: unknown): void {
    if (this.destroyed || this.pending.get(k) !== entry) return;
    this.pending.delete(k);
    if (!(err instanceof ReplyError)) return;
    this.counts.errors++;
    this.failed.set(k, this.now() + (this.options.retryMs ?? 5000));
    console.warn(`audiovis: tile (${entry.level}, ${entry.index}) failed: ${err.message}`);
  }

  private decode(msg: Record<string, unknown>, view: DataView | undefined, level: number, index: number): Tile | null {
    const shape = msg.shape;
    const bad = (why: string) => {
      console.warn(`audiovis: dropping tile (${level}, ${index}): ${why}`);
      return null;
    };
    if (msg.type !== "tile") return bad(`the reply is of type ${String(msg.type)}`);
    if (msg.level !== level || msg.index !== index) return bad(`the reply is for tile (${String(msg.level)}, ${String(msg.index)})`);
    if (msg.dtype !== this.spec.dtype) return bad(`dtype ${String(msg.dtype)}, expected ${this.spec.dtype}`);
    if (!Array.isArray(shape) || shape.length !== 2 || shape[0] !== this.numBins) return bad(`shape ${JSON.stringify(shape)}`);
    const columns = Number(shape[1]);
    const pool = this.spec.levels[level]!;
    const start = index * this.tileFrames(level);
    if (!Number.isInteger(columns) || columns < 1 || columns > this.spec.tile_columns) return bad(`${columns} columns`);
    if (msg.start_frame !== start || msg.frames_per_column !== pool) return bad("frames do not match the request");
    const itemsize = this.spec.dtype === "uint8" ? 1 : 4;
    if (!view || view.byteLength !== this.numBins * columns * itemsize) return bad(`payload of ${view?.byteLength ?? 0} bytes`);
    // Copy: the message's buffer may be larger than the tile and is not ours to keep.
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
    const codes = itemsize === 1 ? bytes : new Float32Array(bytes.buffer);
    return { level, index, startFrame: start, pool, columns, codes };
  }

  /** Forget every tile and pending request (the spectrogram changed): later replies are stale. */
  reset(): void {
    this.pending.clear();
    this.failed.clear();
    this.cache.clear();
  }

  /** Stop: replies still on their way are ignored. */
  destroy(): void {
    this.destroyed = true;
    this.reset();
  }
}
