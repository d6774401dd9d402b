"""What the browser tests of saved pages share: an offline browser context and its recorders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before any page script: counts AudioContexts, audio buffers and source-node starts (playback began).
AUDIO_INSTRUMENT = """
(() => {
  const contexts = (window.__avAudioContexts = []);
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(...args) { super(...args); contexts.push(this); }
  };
  const audio = (window.__avAudio = { buffers: 0, starts: 0 });
  const createBuffer = BaseAudioContext.prototype.createBuffer;
  BaseAudioContext.prototype.createBuffer = function (...args) { audio.buffers++; return createBuffer.apply(this, args); };
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) {
    audio.starts++;
    // what this start plays: its buffer's first channel and rate
    if (this.buffer) audio.last = { rate: this.buffer.sampleRate, samples: Array.from(this.buffer.getChannelData(0)) };
    return start.apply(this, args);
  };
})();
"""


@dataclass
class OfflinePage:
    """A page whose every non-file request is aborted (and recorded), with its errors and console."""

    page: Any
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, path: Path, ready: str = '[data-testid="spectrogram-canvas"]', timeout: float = 20000) -> None:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector(ready, timeout=timeout)

    def screenshot(self, name: str) -> Path:
        from .harness import SCREENSHOT_DIR

        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        out = SCREENSHOT_DIR / f"{name}.png"
        self.page.screenshot(path=str(out), full_page=True)
        return out


@contextmanager
def offline_page(browser: Any, width: int = 1100, height: int = 900) -> Iterator[OfflinePage]:
    """A fresh context on ``browser`` with the network cut off: only ``file:`` requests pass."""
    context = browser.new_context(viewport={"width": width, "height": height})
    result = OfflinePage(page=None)

    def route(r: Any) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            result.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    context.add_init_script(AUDIO_INSTRUMENT)
    page = context.new_page()
    page.on("pageerror", lambda e: result.errors.append(str(e)))
    page.on("console", lambda m: result.console.append(f"{m.type}: {m.text}"))
    result.page = page
    try:
        yield result
    finally:
        context.close()
