"""What the browser tests of the viewer share: the notebook cell that builds a viewer, selectors, pixels."""

from __future__ import annotations

import base64
import io

import numpy as np

VIEWER = '[data-testid="audiovis-viewer"]'
CANVAS = '[data-testid="spectrogram-canvas"]'


def viewer_setup(height: int = 320) -> str:
    """A cell building ``viewer``: a 6 s chirp with 3 kHz bursts, AST front end and grid, with audio."""
    return f"""
import json
import numpy as np, torch
import audiovis as av
sr = 16000
t = np.arange(6 * sr) / sr
wav = 0.4 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2)) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
audio = av.Audio(torch.tensor(wav, dtype=torch.float32)[None], sr)
spec = av.KaldiFbank()(audio)
grid = av.PatchGrid(input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10))
viewer = av.SpectrogramViewer(spec, grid=grid, audio=audio, height={height})
"""


def canvas_pixels(canvas, mode: str = "RGBA") -> np.ndarray:
    """The canvas's pixels as a uint8 array ``[height, width, channels]`` (read through a PNG data URL)."""
    from PIL import Image

    url = canvas.evaluate("(c) => c.toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert(mode))
