/** Web Audio playback of the clip (or a span of it) and a display-rate playhead clock. */

export interface PcmSource {
  /** Mono samples in [-1, 1] and their rate; loaded on first play. */
  load(): Promise<{ samples: Float32Array; sampleRate: number }>;
}

export interface PlayerEvents {
  /** Called every animation frame while playing, with the position in seconds. */
  onFrame(seconds: number): void;
  /**
   * Called once when a playback stops (end reached, paused, or nothing to play), with the final position.
   * A start cancelled while the audio is still loading reports where it would have started.
   */
  onStop(seconds: number): void;
}

/**
 * Owns one AudioContext (created on the first play, closed by destroy) and the rAF loop.
 *
 * The first play waits for the audio to load. Meanwhile the player is already `active`, so a second press
 * stops instead of starting again; every `play` and `stop` bumps a generation counter, and a start whose
 * generation is no longer current gives up when its audio arrives (no second, unstoppable source node).
 */
export class Player {
  private ctx: AudioContext | null = null;
  private buffer: AudioBuffer | null = null;
  private node: AudioBufferSourceNode | null = null;
  private raf = 0;
  private startedAt = 0;
  private offset = 0;
  private end = 0;
  private destroyed = false;
  private loading: Promise<AudioBuffer> | null = null;
  /** Bumped by every play and stop: a start still waiting for the audio gives up when it changed. */
  private generation = 0;
  /** Start position (s) of a play still waiting for the context or the audio; null when none is. */
  private pendingStart: number | null = null;
  /** Bumped by forget: audio still loading for an earlier content is dropped when it arrives. */
  private loads = 0;

  constructor(
    private readonly source: PcmSource,
    private readonly events: PlayerEvents,
  ) {}

  /** A source node is playing. */
  get playing(): boolean {
    return this.node !== null;
  }

  /** Playing, or starting (waiting for the audio): what the play/pause button shows. */
  get active(): boolean {
    return this.node !== null || this.pendingStart !== null;
  }

  /** Current position (s) while playing, else null. */
  position(): number | null {
    if (!this.node || !this.ctx) return null;
    return Math.min(this.end, this.offset + (this.ctx.currentTime - this.startedAt));
  }

  private async ensureBuffer(): Promise<AudioBuffer> {
    if (this.buffer) return this.buffer;
    if (!this.loading) {
      const load = this.loads;
      this.loading = this.source.load().then(({ samples, sampleRate }) => {
        // destroyed while loading: make no new AudioContext that nothing would close
        if (this.destroyed) throw new Error("audiovis: the player was destroyed");
        if (load !== this.loads) throw new Error("audiovis: the audio changed while it loaded");
        const ctx = this.context();
        const buf = ctx.createBuffer(1, Math.max(1, samples.length), sampleRate);
        buf.copyToChannel(samples as Float32Array<ArrayBuffer>, 0);
        this.buffer = buf;
        return buf;
      });
      const loading = this.loading;
      loading.catch(() => {
        if (this.loading === loading) this.loading = null; // a later load (after forget) stays
      });
    }
    return this.loading;
  }

  private context(): AudioContext {
    if (!this.ctx) this.ctx = new AudioContext();
    return this.ctx;
  }

  /**
   * Play from `start` seconds to `end` (or the clip's end). Resolves once playback started, or when this
   * start was superseded by a later play or stop; rejects when the audio cannot be loaded.
   */
  async play(start: number, end?: number): Promise<void> {
    this.stop(false);
    if (this.destroyed) return;
    const generation = ++this.generation;
    this.pendingStart = Math.max(0, start);
    try {
      const ctx = this.context();
      if (ctx.state === "suspended") await ctx.resume();
      if (generation !== this.generation) return;
      const buf = await this.ensureBuffer();
      if (generation !== this.generation) return;
      this.pendingStart = null;
      const from = Math.min(Math.max(0, start), buf.duration);
      const to = Math.min(buf.duration, end ?? buf.duration);
      if (to - from <= 0) {
        this.events.onStop(from); // nothing to play (e.g. a span past the audio's end): stopped at once
        return;
      }
      this.startNode(ctx, buf, from, to);
    } catch (err) {
      if (generation !== this.generation) return; // superseded: the current start reports its own failure
      this.pendingStart = null;
      throw err;
    }
  }

  private startNode(ctx: AudioContext, buf: AudioBuffer, from: number, to: number): void {
    const node = ctx.createBufferSource();
    node.buffer = buf;
    node.connect(ctx.destination);
    node.onended = () => {
      if (this.node === node) this.stop(true);
    };
    this.node = node;
    this.offset = from;
    this.end = to;
    this.startedAt = ctx.currentTime;
    node.start(0, from, to - from);
    const tick = () => {
      const p = this.position();
      if (p === null) return;
      this.events.onFrame(p);
      this.raf = requestAnimationFrame(tick);
    };
    this.raf = requestAnimationFrame(tick);
  }

  /** Stop playing, or cancel a start still waiting for the audio; `notify` reports the final position through onStop. */
  stop(notify = true): void {
    this.generation++;
    const pending = this.pendingStart;
    this.pendingStart = null;
    const p = this.position() ?? pending;
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    const node = this.node;
    this.node = null;
    if (node) {
      node.onended = null;
      try {
        node.stop();
      } catch {
        // already stopped
      }
      node.disconnect();
    }
    if (notify && p !== null) this.events.onStop(p);
  }

  /** Stop, and drop the loaded audio: the next play loads it again (the source's content changed). */
  forget(): void {
    this.stop(false);
    this.loads++;
    this.buffer = null;
    this.loading = null;
  }

  destroy(): void {
    this.destroyed = true;
    this.stop(false);
    if (this.ctx) void this.ctx.close();
    this.ctx = null;
    this.buffer = null;
  }
}
