/**
 * The request channel (src/requests.ts): one per widget model, shared by its views; a reply settles
 * exactly the request with its id; releasing a view rejects its requests; the last release stops listening.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type MessageModel, ReplyError, channelFor } from "../src/requests";

type Listener = (msg: unknown, buffers: DataView[]) => void;

/** One widget model shared by several views: a custom message from the kernel reaches every listener. */
class FakeModel implements MessageModel {
  sent: Record<string, unknown>[] = [];
  readonly listeners = new Set<Listener>();

  send(content: Record<string, unknown>): void {
    this.sent.push(content);
  }

  on(_name: "msg:custom", fn: Listener): void {
    this.listeners.add(fn);
  }

  off(_name: "msg:custom", fn: Listener): void {
    this.listeners.delete(fn);
  }

  broadcast(content: Record<string, unknown>, buffers: DataView[] = []): void {
    for (const fn of [...this.listeners]) fn(content, buffers);
  }
}

/** Records how a promise settles, without awaiting it. */
function track<T>(p: Promise<T>): { state: "pending" | "resolved" | "rejected"; value?: T; error?: Error } {
  const out: { state: "pending" | "resolved" | "rejected"; value?: T; error?: Error } = { state: "pending" };
  p.then(
    (value) => Object.assign(out, { state: "resolved", value }),
    (error: Error) => Object.assign(out, { state: "rejected", error }),
  );
  return out;
}

const flush = () => Promise.resolve().then(() => undefined);

describe("request channel", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("gives two views of one widget different ids, and each view resolves only its own request", async () => {
    const model = new FakeModel();
    const a = channelFor(model);
    const b = channelFor(model);
    const got: string[] = [];
    const pa = a.request({ type: "audio", chunk: 0 }).then((r) => got.push(`a:${String(r.content.chunk)}`));
    const pb = b.request({ type: "audio", chunk: 3 }).then((r) => got.push(`b:${String(r.content.chunk)}`));
    const [ra, rb] = model.sent;
    expect(ra).toEqual({ type: "audio", chunk: 0, id: ra!.id });
    expect(typeof ra!.id).toBe("number");
    expect(ra!.id).not.toBe(rb!.id);
    expect(Number.isSafeInteger(ra!.id) && Number.isSafeInteger(rb!.id)).toBe(true);

    model.broadcast({ id: rb!.id, type: "audio", chunk: 3 });
    await pb;
    expect(got).toEqual(["b:3"]);
    model.broadcast({ id: ra!.id, type: "audio", chunk: 0 });
    await pa;
    expect(got).toEqual(["b:3", "a:0"]);
    a.release();
    b.release();
  });

  it("rejects only the asker on an error reply and ignores replies without a pending id", async () => {
    const model = new FakeModel();
    const a = channelFor(model);
    const b = channelFor(model);
    const pa = track(a.request({ type: "audio", chunk: 0 }));
    const pb = b.request({ type: "audio", chunk: 99 });
    const [ra, rb] = model.sent;
    model.broadcast({ id: "not a number", error: "junk" });
    model.broadcast({ id: -1, type: "audio" });
    model.broadcast({ id: rb!.id, error: "audio chunk must be an integer in 0..0, got 99" });
    await expect(pb).rejects.toThrow("audio chunk must be an integer in 0..0");
    await expect(pb).rejects.toBeInstanceOf(ReplyError);
    await flush();
    expect(pa.state).toBe("pending");
    model.broadcast({ id: ra!.id, type: "audio", chunk: 0 });
    await flush();
    expect(pa.state).toBe("resolved");
    expect(pa.value?.content).toMatchObject({ chunk: 0 });
    a.release();
    b.release();
  });

  it("is shared by every view of one model: one listener, ids unique across views", () => {
    const model = new FakeModel();
    const views = [channelFor(model), channelFor(model), channelFor(model)];
    expect(model.listeners.size).toBe(1);
    for (const v of views) for (let k = 0; k < 5; k++) void v.request({ type: "tile", level: 0, index: k }).catch(() => {});
    const ids = model.sent.map((m) => m.id as number);
    expect(new Set(ids).size).toBe(15);
    const other = new FakeModel();
    const elsewhere = channelFor(other);
    expect(other.listeners.size).toBe(1);
    expect(model.listeners.size).toBe(1);
    for (const v of [...views, elsewhere]) v.release();
  });

  it("a reply resolves exactly the request with that id, with its buffers, once", async () => {
    const model = new FakeModel();
    const a = channelFor(model);
    const b = channelFor(model);
    const requests = [
      track(a.request({ type: "tile", level: 0, index: 1 })),
      track(b.request({ type: "tile", level: 0, index: 2 })),
      track(a.request({ type: "patch_audio", patches: [3] })),
    ];
    const ids = model.sent.map((m) => m.id as number);
    const buffer = new DataView(new ArrayBuffer(8));
    model.broadcast({ id: ids[1], type: "tile", index: 2 }, [buffer]);
    await flush();
    expect(requests.map((r) => r.state)).toEqual(["pending", "resolved", "pending"]);
    expect(requests[1]!.value).toEqual({ content: { id: ids[1], type: "tile", index: 2 }, buffers: [buffer] });
    model.broadcast({ id: ids[1], type: "tile", index: 99 }); // a second answer to the same id changes nothing
    await flush();
    expect(requests[1]!.value!.content.index).toBe(2);
    expect(requests.map((r) => r.state)).toEqual(["pending", "resolved", "pending"]);
    a.release();
    b.release();
  });

  it("releasing a view rejects its own pending requests; releasing the last rejects the rest and stops listening", async () => {
    const model = new FakeModel();
    const a = channelFor(model);
    const b = channelFor(model);
    const pa = track(a.request({ type: "audio", chunk: 0 }));
    const pb = track(b.request({ type: "audio", chunk: 1 }));
    const [ra, rb] = model.sent;
    a.release();
    a.release(); // idempotent: b's handle still counts
    await flush();
    expect(pa.state).toBe("rejected");
    expect(pa.error?.message).toBe("viewer closed");
    expect(pb.state).toBe("pending");
    expect(model.listeners.size).toBe(1);
    model.broadcast({ id: ra!.id, type: "audio", chunk: 0 }); // too late: ignored
    await expect(a.request({ type: "audio", chunk: 0 })).rejects.toThrow("viewer closed");

    b.release();
    await flush();
    expect(pb.state).toBe("rejected");
    expect(model.listeners.size).toBe(0);
    model.broadcast({ id: rb!.id, type: "audio", chunk: 1 });
    expect(vi.getTimerCount()).toBe(0); // no timeout left behind

    const again = channelFor(model); // a view made later listens afresh
    expect(model.listeners.size).toBe(1);
    const p = track(again.request({ type: "audio", chunk: 2 }));
    model.broadcast({ id: model.sent.at(-1)!.id, type: "audio", chunk: 2 });
    await flush();
    expect(p.state).toBe("resolved");
    again.release();
  });

  it("rejects a request with no answer in time, and then ignores its late reply", async () => {
    const model = new FakeModel();
    const a = channelFor(model);
    const slow = track(a.request({ type: "tile", level: 0, index: 0 }, 1000));
    const normal = track(a.request({ type: "audio", chunk: 0 }));
    vi.advanceTimersByTime(999);
    await flush();
    expect(slow.state).toBe("pending");
    vi.advanceTimersByTime(1);
    await flush();
    expect(slow.state).toBe("rejected");
    expect(slow.error?.message).toBe("no answer from the kernel to tile within 1 s");
    expect(slow.error).not.toBeInstanceOf(ReplyError);
    model.broadcast({ id: model.sent[0]!.id, type: "tile" });
    await flush();
    expect(slow.state).toBe("rejected");
    vi.advanceTimersByTime(28_999); // the default wait is 30 s
    await flush();
    expect(normal.state).toBe("pending");
    vi.advanceTimersByTime(1);
    await flush();
    expect(normal.state).toBe("rejected");
    a.release();
  });
});
