/** Web Audio playback of the clip (or a span of it) and a display-rate playhead clock. */

export interface PcmSource {
  /** Mono samples in [-1, 1] and their rate; loaded on first play. */
  load(): Promise<{ samples: Float32Array; sampleRate: number }>;
}

export interface PlayerEvents {
  /** Called every animation frame while playing, with the position in seconds. */
  onFrame(seconds: number): void;
  /** Called once when playback stops (end reached or paused), with the final position. */
  onStop(seconds: number): void;
}

/** Owns one AudioContext (created on the first play, closed by destroy) and the rAF loop. */
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

  constructor(
    private readonly source: PcmSource,
    private readonly events: PlayerEvents,
  ) {}

  get playing(): boolean {
    return this.node !== null;
  }

  /** Current position (s) while playing, else null. */
  position(): number | null {
    if (!this.node || !this.ctx) return null;
    return Math.min(this.end, this.offset + (this.ctx.currentTime - this.startedAt));
  }

  private async ensureBuffer(): Promise<AudioBuffer> {
    if (this.buffer) return this.buffer;
    if (!this.loading) {
      this.loading = this.source.load().then(({ samples, sampleRate }) => {
        const ctx = this.context();
        const buf = ctx.createBuffer(1, Math.max(1, samples.length), sampleRate);
        buf.copyToChannel(samples as Float32Array<ArrayBuffer>, 0);
        this.buffer = buf;
        return buf;
      });
      this.loading.catch(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  private context(): AudioContext {
    if (!this.ctx) this.ctx = new AudioContext();
    return this.ctx;
  }

  /** Play from `start` seconds to `end` (or the clip's end). */
  async play(start: number, end?: number): Promise<void> {
    this.stop(false);
    const ctx = this.context();
    if (ctx.state === "suspended") await ctx.resume();
    const buf = await this.ensureBuffer();
    if (this.destroyed) return;
    const from = Math.min(Math.max(0, start), buf.duration);
    const to = Math.min(buf.duration, end ?? buf.duration);
    if (to - from <= 0) return;
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

  /** Stop playing; `notify` reports the final position through onStop. */
  stop(notify = true): void {
    const p = this.position();
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

  destroy(): void {
    this.destroyed = true;
    this.stop(false);
    if (this.ctx) void this.ctx.close();
    this.ctx = null;
    this.buffer = null;
  }
}
