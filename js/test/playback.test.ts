import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Player } from "../src/playback";

/** Just enough Web Audio for Player: a clock the test moves, buffers, and source nodes that record start/stop. */
class FakeNode {
  buffer: FakeBuffer | null = null;
  onended: (() => void) | null = null;
  started: [number, number, number] | null = null;
  stopped = false;
  connect(): void {}
  disconnect(): void {}
  start(when: number, offset: number, duration: number): void {
    this.started = [when, offset, duration];
  }
  stop(): void {
    this.stopped = true;
  }
}

class FakeBuffer {
  constructor(
    readonly length: number,
    readonly sampleRate: number,
  ) {}
  get duration(): number {
    return this.length / this.sampleRate;
  }
  copyToChannel(): void {}
}

class FakeAudioContext {
  static made: FakeAudioContext[] = [];
  state: "suspended" | "running" | "closed" = "running";
  currentTime = 0;
  destination = {};
  nodes: FakeNode[] = [];
  constructor() {
    FakeAudioContext.made.push(this);
  }
  async resume(): Promise<void> {
    this.state = "running";
  }
  async close(): Promise<void> {
    this.state = "closed";
  }
  createBuffer(_channels: number, length: number, rate: number): FakeBuffer {
    return new FakeBuffer(length, rate);
  }
  createBufferSource(): FakeNode {
    const node = new FakeNode();
    this.nodes.push(node);
    return node;
  }
}

/** A PCM source whose load the test resolves (or rejects) when it wants: "the chunks arrive". */
function deferredSource(seconds = 6, rate = 100) {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  let loads = 0;
  return {
    source: {
      load: () => {
        loads++;
        return new Promise<{ samples: Float32Array; sampleRate: number }>((resolve, reject) => {
          pending.push({ resolve: () => resolve({ samples: new Float32Array(seconds * rate), sampleRate: rate }), reject });
        });
      },
    },
    arrive: () => pending.shift()!.resolve(),
    fail: (message: string) => pending.shift()!.reject(new Error(message)),
    get loads() {
      return loads;
    },
  };
}

const flush = () => new Promise<void>((r) => setTimeout(r, 0));

function setup(seconds = 6) {
  const audio = deferredSource(seconds);
  const frames: number[] = [];
  const stops: number[] = [];
  const player = new Player(audio.source, { onFrame: (t) => frames.push(t), onStop: (t) => stops.push(t) });
  const nodes = () => FakeAudioContext.made.flatMap((c) => c.nodes);
  return { audio, player, frames, stops, nodes };
}

beforeEach(() => {
  FakeAudioContext.made = [];
  vi.stubGlobal("AudioContext", FakeAudioContext);
  vi.stubGlobal("requestAnimationFrame", () => 1);
  vi.stubGlobal("cancelAnimationFrame", () => {});
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("Player", () => {
  it("is active (shows Pause) while the audio loads, and plays once it arrives", async () => {
    const { audio, player, nodes } = setup();
    const started = player.play(1.5);
    expect(player.active).toBe(true);
    expect(player.playing).toBe(false);
    await flush();
    audio.arrive();
    await started;
    expect(player.playing).toBe(true);
    expect(nodes()).toHaveLength(1);
    expect(nodes()[0]!.started).toEqual([0, 1.5, 4.5]);
  });

  it("a pause pressed while the audio loads cancels the start: nothing plays when it arrives", async () => {
    const { audio, player, stops, nodes } = setup();
    const started = player.play(2);
    await flush();
    player.stop(true); // what the Pause button (or space) does while `active`
    expect(player.active).toBe(false);
    expect(stops).toEqual([2]); // the view leaves its "playing" state
    audio.arrive();
    await started;
    await flush();
    expect(nodes()).toHaveLength(0);
    expect(player.active).toBe(false);
    expect(stops).toEqual([2]);
    // the loaded audio is kept: the next play starts without another load
    await player.play(0);
    expect(audio.loads).toBe(1);
    expect(nodes()).toHaveLength(1);
  });

  it("a second start while loading replaces the first: one source node, from the later position", async () => {
    const { audio, player, stops, nodes } = setup();
    const first = player.play(1);
    const second = player.play(3); // e.g. a seek while the audio loads
    audio.arrive();
    await Promise.all([first, second]);
    expect(audio.loads).toBe(1);
    expect(nodes()).toHaveLength(1);
    expect(nodes()[0]!.started![1]).toBe(3);
    expect(stops).toEqual([]);
    player.stop(true);
    expect(nodes()[0]!.stopped).toBe(true);
    expect(stops).toHaveLength(1);
  });

  it("forget drops the audio: the next play loads again, and audio of the old content arriving late is not kept", async () => {
    const { audio, player, nodes } = setup();
    await Promise.all([player.play(0), (async () => { await flush(); audio.arrive(); })()]);
    expect(audio.loads).toBe(1);
    expect(nodes()).toHaveLength(1);
    player.forget(); // e.g. another selection of patches
    expect(player.active).toBe(false);
    expect(nodes()[0]!.stopped).toBe(true);
    const second = player.play(0);
    await flush();
    expect(audio.loads).toBe(2);
    player.forget(); // changed again while loading
    const third = player.play(0);
    await flush();
    expect(audio.loads).toBe(3);
    audio.arrive(); // the second content arrives late: dropped, nothing plays
    await second;
    await flush();
    expect(nodes()).toHaveLength(1);
    audio.arrive();
    await third;
    expect(nodes()).toHaveLength(2);
    expect(player.playing).toBe(true);
    // the third content is kept: playing again needs no load
    await player.play(1);
    expect(audio.loads).toBe(3);
  });

  it("a span entirely past the audio's end plays nothing and reports a stop", async () => {
    const { audio, player, stops, nodes } = setup(6);
    const started = player.play(7, 8);
    audio.arrive();
    await started;
    expect(nodes()).toHaveLength(0);
    expect(player.active).toBe(false);
    expect(stops).toEqual([6]);
  });

  it("a span reaching past the end plays up to the end, and the end of the audio stops it", async () => {
    const { audio, player, stops, nodes } = setup(6);
    const started = player.play(5, 8);
    audio.arrive();
    await started;
    const node = nodes()[0]!;
    expect(node.started).toEqual([0, 5, 1]);
    FakeAudioContext.made[0]!.currentTime = 1;
    node.onended!();
    expect(player.active).toBe(false);
    expect(stops).toEqual([6]);
  });

  it("a failed load rejects the start, leaves the player idle, and the next play retries", async () => {
    const { audio, player, nodes } = setup();
    const started = player.play(0);
    audio.fail("kernel gone");
    await expect(started).rejects.toThrow("kernel gone");
    expect(player.active).toBe(false);
    const again = player.play(0);
    await flush();
    audio.arrive();
    await again;
    expect(audio.loads).toBe(2);
    expect(nodes()).toHaveLength(1);
  });

  it("destroy while loading makes no AudioContext after the one it closed", async () => {
    const { audio, player, nodes } = setup();
    const started = player.play(0);
    await flush();
    player.destroy();
    audio.arrive();
    await started;
    await flush();
    expect(FakeAudioContext.made).toHaveLength(1);
    expect(FakeAudioContext.made[0]!.state).toBe("closed");
    expect(nodes()).toHaveLength(0);
  });
});
