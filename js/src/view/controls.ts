/**
 * Playback controls: the play, play-selection and play-patches buttons, seeking on the time axis, and the
 * playhead shared with the model. The clip's audio (in chunks) and the selected patches' sound come from
 * the kernel over the model's request channel; playback itself is playback.ts's Player.
 */

import { pcmToFloat32 } from "../codecs";
import { frameToTime, patchBounds, timeToFrame, xToFrame } from "../geometry";
import type { ModelData, ModelWriter, ViewModel } from "../model";
import { Player } from "../playback";
import type { Channel } from "../requests";
import { type Dom, listen } from "./dom";
import type { Viewport } from "./viewport";

type Pcm = { samples: Float32Array; sampleRate: number };

/** Where the playhead is drawn now: `time` on the spectrogram's clock (s), and whether it shows. */
export interface Playhead {
  time: number;
  show: boolean;
}

export class Controls {
  private readonly player: Player;
  /** Plays the sound of just the selected patches ("▶ patches"), which the kernel computes. */
  private readonly patchPlayer: Player;
  /** Clock time (s) of the first sample of the patches' sound being played. */
  private patchStart = 0;
  /** The playhead while a player runs (or loads), ahead of the model's; null otherwise. */
  private localPlayhead: number | null = null;
  private lastSentPlayhead = NaN;
  private readonly removers: Array<() => void>;

  /**
   * @param model the widget model (_audio_info, playhead)
   * @param writer where the playhead is written
   * @param channel the model's request channel (audio chunks, patch audio)
   * @param data the decoded traits (grid, selection, axes)
   * @param viewport the visible range, which follows the playhead
   * @param dom the buttons, readout and time axis
   * @param draw asks for a redraw
   */
  constructor(
    private readonly model: ViewModel,
    private readonly writer: ModelWriter,
    private readonly channel: Channel,
    private readonly data: ModelData,
    private readonly viewport: Viewport,
    private readonly dom: Dom,
    private readonly draw: () => void,
  ) {
    this.player = new Player(
      { load: () => this.loadAudio() },
      {
        // the player counts from the audio's first sample; the view's clock starts that many seconds earlier
        onFrame: (t) => this.onPlayFrame(t + this.audioStart()),
        onStop: (t) => this.onPlayStop(t + this.audioStart()),
      },
    );
    this.patchPlayer = new Player(
      { load: () => this.loadPatchAudio() },
      {
        onFrame: (t) => this.onPlayFrame(t + this.patchStart),
        onStop: (t) => this.onPlayStop(t + this.patchStart),
      },
    );
    this.removers = [
      listen(dom.playButton, "click", () => this.togglePlay()),
      listen(dom.playSelectionButton, "click", () => this.playSelection()),
      listen(dom.playPatchesButton, "click", () => this.playPatches()),
      listen(dom.timeAxis, "click", (e) => {
        const r = dom.timeAxis.getBoundingClientRect();
        this.seek(frameToTime(this.data.axes, xToFrame(this.viewport.view(), e.clientX - r.left)));
      }),
    ];
  }

  private async loadAudio(): Promise<Pcm> {
    const info = this.model.get("_audio_info");
    if (!info) throw new Error("this viewer has no audio");
    const samples = new Float32Array(info.num_samples);
    let filled = 0;
    for (let chunk = 0; chunk < info.chunks; chunk++) {
      const reply = await this.channel.request({ type: "audio", chunk });
      const c = reply.content;
      const view = reply.buffers[0];
      if (!view) throw new Error(`audio chunk ${chunk} arrived without data`);
      const part = pcmToFloat32({ view, dtype: String(c.dtype), shape: c.shape as number[] });
      samples.set(part.subarray(0, samples.length - filled), filled);
      filled += part.length;
    }
    return { samples, sampleRate: info.sample_rate };
  }

  private async loadPatchAudio(): Promise<Pcm> {
    const patches = [...this.data.selection].sort((a, b) => a - b);
    const reply = await this.channel.request({ type: "patch_audio", patches });
    const c = reply.content;
    const view = reply.buffers[0];
    if (!view) throw new Error("the patches' sound arrived without data");
    this.patchStart = Number(c.start);
    const samples = pcmToFloat32({ view, dtype: String(c.dtype), shape: c.shape as number[] });
    return { samples, sampleRate: Number(c.sample_rate) };
  }

  /** Where the audio's first sample plays on the spectrogram's clock (s): Audio.start, 0 for a whole file. */
  audioStart(): number {
    return this.model.get("_audio_info")?.start ?? 0;
  }

  /** Where the audio ends on the spectrogram's clock (s); without audio, where the spectrogram ends. */
  private audioEnd(): number {
    const info = this.model.get("_audio_info");
    return info ? this.audioStart() + info.duration : frameToTime(this.data.axes, this.data.meta.n_frames);
  }

  /** The play button and space: pause what plays (or is loading), else play from the playhead. */
  togglePlay(): void {
    if (!this.model.get("_audio_info")) return;
    if (this.patchPlayer.active) {
      this.patchPlayer.stop(true);
      return;
    }
    if (this.player.active) {
      // playing, or still waiting for the audio: either way this press pauses (a pending start is cancelled)
      this.player.stop(true);
      return;
    }
    let start = this.model.get("playhead") || 0;
    if (start < this.audioStart() || start >= this.audioEnd() - 1e-3) start = this.audioStart();
    this.startPlayback(start);
  }

  /** The selection's time span on the spectrogram's clock (s), or null without a selection. */
  private selectionSpan(): [number, number] | null {
    const { grid, selection, axes, gridOffset } = this.data;
    if (!grid || !selection.size) return null;
    let a = Infinity;
    let b = -Infinity;
    for (const i of selection) {
      const box = patchBounds(grid, i);
      a = Math.min(a, box.timeStart);
      b = Math.max(b, box.timeEnd);
    }
    return [Math.max(0, frameToTime(axes, a + gridOffset)), frameToTime(axes, b + gridOffset)];
  }

  /** The selection's time span when some of it lies within the audio, else null (nothing to play). */
  private playableSelectionSpan(): [number, number] | null {
    const span = this.selectionSpan();
    if (!span || !this.model.get("_audio_info")) return null;
    return span[0] < this.audioEnd() && span[1] > Math.max(span[0], this.audioStart()) ? span : null;
  }

  private playSelection(): void {
    const span = this.playableSelectionSpan();
    if (span) this.startPlayback(span[0], span[1]);
  }

  /** "▶ patches": only the selected patches' sound (their frames and bands), computed by the kernel. */
  private playPatches(): void {
    if (!this.data.grid || !this.data.selection.size || !this.model.get("_audio_info")) return;
    this.player.stop(false);
    this.patchPlayer.forget();
    this.localPlayhead = this.selectionSpan()?.[0] ?? null;
    this.watch(this.patchPlayer.play(0), "playing the patches failed");
  }

  private startPlayback(start: number, end?: number): void {
    this.patchPlayer.stop(false);
    this.localPlayhead = start;
    const audioStart = this.audioStart();
    this.watch(this.player.play(start - audioStart, end === undefined ? undefined : end - audioStart), "playback failed");
  }

  /** Shows a start at once (buttons, the playhead while the audio loads) and reports its failure in the readout. */
  private watch(started: Promise<void>, failure: string): void {
    this.updateButtons();
    this.draw();
    started.catch((err: unknown) => {
      console.warn(`audiovis: ${failure}:`, err);
      this.dom.readout.textContent = `${failure}: ${err instanceof Error ? err.message : String(err)}`;
      this.localPlayhead = null;
      this.updateButtons();
    });
  }

  private seek(t: number): void {
    const time = Math.min(Math.max(this.audioStart(), t), this.audioEnd());
    this.lastSentPlayhead = time;
    this.writer.set("playhead", time);
    if (this.player.active) this.startPlayback(time);
    this.draw();
  }

  private onPlayFrame(t: number): void {
    this.localPlayhead = t;
    if (!(Math.abs(t - this.lastSentPlayhead) < 0.1)) { // NaN (nothing sent yet) sends too
      this.lastSentPlayhead = t;
      this.writer.set("playhead", t);
    }
    const frame = timeToFrame(this.data.axes, t);
    const { f0, f1 } = this.viewport;
    if (frame > f1 && f1 < this.data.meta.n_frames) {
      const span = f1 - f0;
      this.viewport.setRange(frame - 0.1 * span, frame + 0.9 * span, true);
    }
    this.draw();
  }

  private onPlayStop(t: number): void {
    this.localPlayhead = null;
    this.lastSentPlayhead = t;
    this.writer.set("playhead", t);
    this.updateButtons();
    this.draw();
  }

  /** The model's playhead moved (another view, or Python): a running playback jumps there. */
  onModelPlayhead(): void {
    const t = this.model.get("playhead");
    if (this.player.active && Number.isFinite(t) && Math.abs(t - this.lastSentPlayhead) > 1e-6) {
      this.startPlayback(t);
    }
    this.draw();
  }

  /** Where to draw the playhead: this view's while it plays, else the model's once past the audio's start. */
  playhead(): Playhead {
    const playing = this.localPlayhead !== null;
    const time = playing ? this.localPlayhead! : this.model.get("playhead");
    return { time, show: playing || (!!this.model.get("_audio_info") && time > this.audioStart()) };
  }

  updateButtons(): void {
    const dom = this.dom;
    const hasAudio = !!this.model.get("_audio_info");
    const playing = this.player.active || this.patchPlayer.active; // also while the audio is still loading
    dom.playButton.textContent = playing ? "⏸ Pause" : "▶ Play";
    dom.playButton.dataset.state = playing ? "playing" : "paused";
    dom.playButton.disabled = !hasAudio;
    dom.playButton.title = hasAudio ? "Play / pause (space)" : "No audio was given to this viewer";
    const playable = hasAudio && this.playableSelectionSpan() !== null;
    dom.playSelectionButton.disabled = !playable;
    dom.playPatchesButton.disabled = !playable || !this.data.grid;
    const title = (what: string) => !hasAudio
      ? "No audio was given to this viewer"
      : playable || !this.data.selection.size
        ? what
        : "The selected patches lie beyond the end of the audio";
    dom.playPatchesButton.title = title("Play only the selected patches' sound: their frames and frequency bands");
    dom.playSelectionButton.title = title("Play the time span of the selected patches");
  }

  destroy(): void {
    for (const remove of this.removers.splice(0)) remove();
    this.player.destroy();
    this.patchPlayer.destroy();
  }
}
