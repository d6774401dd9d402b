"""Self-contained HTML pages of a viewer or an explorer: no kernel, no network, everything inlined.

A page holds the page loader (js/src/static/page.ts, bundled into audiovis/static/page.js, which contains
the viewer's own ``render``), the styles, and one JSON block: the widget's saved trait state (binary
buffers base64-encoded, at their paths, as ipywidgets saves widget state), the audio compressed in a
format the browser decodes, and for long spectrograms the full-resolution frames the loader pools into
tiles. A Content-Security-Policy forbids every fetch, so the page cannot reach the network.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import AudiovisError

if TYPE_CHECKING:
    from anywidget import AnyWidget

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE_SCRIPT = STATIC_DIR / "page.js"
PAGE_STYLES = STATIC_DIR / "page.css"
VIEWER_STYLES = STATIC_DIR / "viewer.css"

#: Version of the page's JSON layout (js/src/static/page.ts checks it).
PAGE_FORMAT = 1
#: Audio up to this long is stored losslessly (FLAC); longer audio as Ogg/Vorbis.
LOSSLESS_SECONDS = 60.0
#: Rates libopus encodes natively (``audio_format="opus"`` only).
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: Bitrate of Ogg/Opus audio (bits per second).
OPUS_BITRATE = 32000
#: libsndfile's Vorbis quality knob (0 best .. 1 smallest): ~22 kb/s at 16 kHz, 10 min of noise ~2.2 MB.
#: Vorbis, not Opus, for long audio: libsndfile's Opus encoder ran at ~8-15x real time here, Vorbis ~150x.
VORBIS_COMPRESSION = 0.9
#: Samples per write: one huge write into libsndfile's Ogg encoder crashed the process (10 min at once).
ENCODE_BLOCK_SECONDS = 10
#: Traits never saved: the bundle (the page has its own) and the pointer's transient state.
_SKIP_TRAITS = ("_esm", "_css", "_anywidget_id", "hovered_patch")

CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; media-src data: blob:; font-src data:; worker-src blob:"
)

AudioFormat = Literal["auto", "vorbis", "opus", "flac", "wav"]
AUDIO_FORMATS = ("auto", "vorbis", "opus", "flac", "wav")
_MIME = {"vorbis": "audio/ogg", "opus": "audio/ogg", "flac": "audio/flac", "wav": "audio/wav"}


@dataclass
class PageReport:
    """What a saved page holds: its path, total size and bytes per part, and what it leaves out."""

    path: Path
    size_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {_mb(n)}" for name, n in sorted(self.parts.items(), key=lambda kv: -kv[1]))
        text = f"{self.path} ({_mb(self.size_bytes)}): {parts}"
        return text + "".join(f"\n  - {note}" for note in self.notes)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} KB"


def check_output_path(path: str | Path, what: str = "save_html") -> Path:
    """``path`` as a Path whose folder exists (FileNotFoundError naming the folder otherwise)."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"{what}: path must be a file path (str or Path), got {path!r}")
    out = Path(path).expanduser()
    if out.is_dir():
        raise IsADirectoryError(f"{what}: {out} is a folder; give a file name such as {out / 'page.html'}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{what}: the folder {out.parent} does not exist (create it first, or choose another path)")
    return out


def _b64(data: bytes | memoryview) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def saved_state(widget: Any, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The widget's synced state as ipywidgets saves it: JSON values plus ``buffers`` ``[{path, data}]``."""
    from ipywidgets.widgets.widget import _remove_buffers

    state = widget.get_state()
    for key in (*_SKIP_TRAITS, *drop):
        state.pop(key, None)
    state, paths, buffers = _remove_buffers(state)
    saved = []
    for p, b in zip(paths, buffers):
        entry: dict[str, Any] = {"path": list(p), "data": _b64(b)}
        if memoryview(b).nbytes > 16_384:  # large arrays (the spectrogram) compressed when that pays
            packed = zlib.compress(bytes(b), 9)
            if len(packed) < 0.9 * memoryview(b).nbytes:
                entry = {"path": list(p), "data": _b64(packed), "compression": "deflate"}
        saved.append(entry)
    return {"state": state, "buffers": saved}


def encode_audio(samples: np.ndarray, sample_rate: int, audio_format: AudioFormat = "auto") -> tuple[dict[str, Any], list[str]]:
    """Mono float samples -> the page's audio entry (base64 of a file the browser decodes) and notes.

    ``"auto"``: FLAC (lossless) up to :data:`LOSSLESS_SECONDS`, Ogg/Vorbis beyond, 16-bit WAV when
    neither encoder is available (``"opus"`` for Ogg/Opus at 8/12/16/24/48 kHz). Samples beyond [-1, 1] are scaled into range and the
    page scales them back (``gain``).
    """
    import soundfile as sf

    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {', '.join(map(repr, AUDIO_FORMATS))}, got {audio_format!r}")
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    gain = peak if peak > 1.0 else 1.0
    data = samples / gain if gain != 1.0 else samples
    duration = len(samples) / sample_rate
    if audio_format == "auto":
        order = ["vorbis", "flac", "wav"] if duration > LOSSLESS_SECONDS else ["flac", "wav"]
    else:
        order = [audio_format] + [f for f in ("flac", "wav") if f != audio_format]
    notes: list[str] = []
    for fmt in order:
        try:
            blob = _encode(sf, data, sample_rate, fmt)
        except Exception as exc:  # an encoder missing from this libsndfile: the next format
            notes.append(f"audio: {fmt} encoding failed ({exc}); fell back")
            continue
        entry = {"format": fmt, "mime": _MIME[fmt], "sample_rate": int(sample_rate), "num_samples": int(len(samples)),
                 "gain": gain, "data": _b64(blob)}
        return entry, notes
    raise AudiovisError(f"save_html: could not encode the audio in any of {order}: {'; '.join(notes)}")


def _encode(sf: Any, data: np.ndarray, rate: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt in ("opus", "vorbis"):
        if fmt == "opus" and rate not in OPUS_RATES:
            raise ValueError(f"Opus takes rates {OPUS_RATES}, not {rate}")
        # compression_level: Opus maps 0..1 to 256..6 kb/s (linear); Vorbis to quality 1..0
        level = (256000 - OPUS_BITRATE) / (256000 - 6000) if fmt == "opus" else VORBIS_COMPRESSION
        with sf.SoundFile(buf, "w", rate, 1, format="OGG", subtype=fmt.upper(), compression_level=level) as f:
            step = rate * ENCODE_BLOCK_SECONDS
            for i in range(0, len(data), step):
                f.write(data[i : i + step])
    elif fmt == "flac":
        sf.write(buf, data, rate, format="FLAC", subtype="PCM_16")
    else:
        sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _frames_part(server: Any, start: int, end: int) -> dict[str, Any]:
    """Full-resolution frames ``[start, end)`` of a tiled spectrogram, zlib-compressed; uint8 codes as
    differences to the bin below (neighbouring bands are alike, so the differences compress better)."""
    codes = server.encode(server.values[:, start:end])
    if codes.dtype == np.uint8:
        filtered = codes.copy()
        filtered[1:] -= codes[:-1]  # uint8 wraps: mod 256, undone in the browser by a running sum
        dtype, flt = "uint8", "up"
    else:
        filtered, dtype, flt = np.ascontiguousarray(codes, dtype="<f4"), "float32", "none"
    data = zlib.compress(np.ascontiguousarray(filtered).tobytes(), 9)
    return {"start_frame": int(start), "end_frame": int(end), "n_bins": int(codes.shape[0]), "dtype": dtype,
            "compression": "deflate", "filter": flt, "data": _b64(data)}


def viewer_part(
    viewer: "AnyWidget", *, frames: Literal["all", "view"] = "all", audio_format: AudioFormat = "auto",
    extra_drop: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[str]]:
    """The page's entry for one viewer (state, audio, full-resolution frames) and notes on what it holds."""
    notes: list[str] = []
    server = viewer._tile_server
    frames_entry = None
    drop: tuple[str, ...] = ()
    if server is not None:
        n = server.num_frames
        if frames == "all":
            start, end = 0, n
        else:  # the visible window, widened to whole level-0 tiles, plus one tile each side
            spec = viewer.spectrogram
            t0, t1 = viewer.time_range
            cols = server.tile_columns
            first = max(0, int(math.floor(spec.time_to_frame(t0))) // cols - 1) * cols
            last = min(n, (int(math.ceil(spec.time_to_frame(t1))) // cols + 2) * cols)
            start, end = first, max(last, first + 1)
            if (start, end) != (0, n):
                notes.append(
                    f"full resolution saved for {spec.frame_to_time(start):.1f}-{spec.frame_to_time(end):.1f} s "
                    f"(the view at save time); elsewhere the page shows the overview "
                    f"({server.frames_per_column} frames per column)"
                )
        frames_entry = _frames_part(server, start, end)
        if (start, end) == (0, n):
            drop = ("_spectrogram",)  # the page pools the overview from the frames
    if "_windows" in viewer.keys:  # a LongViewer: what follows the zoom there is Python's work
        notes.append(
            "LongViewer page: the label strip and the patch grid are those at save time (window "
            f"{viewer.window if getattr(viewer, 'window', None) is not None else 'none'}); the grid does not "
            "follow the zoom to other windows, which needs the model"
        )
    part = saved_state(viewer, drop=drop + extra_drop)
    part["frames"] = frames_entry
    part["overview_from_frames"] = bool(drop)
    part["audio"] = None
    if viewer._pcm is not None:
        part["audio"], audio_notes = encode_audio(viewer._pcm, int(viewer._audio_rate), audio_format)
        notes.extend(audio_notes)
    elif viewer._audio_info is None:
        notes.append("no audio: the viewer was given none, so playback is off")
    return part, notes


def _inline_script(code: str) -> str:
    return code.replace("</script", "<\\/script")


def _json_block(value: Any) -> str:
    # "<" escaped, so no string inside can close the script element
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def write_page(path: Path, *, title: str, page: dict[str, Any], notes: list[str], head: str = "") -> PageReport:
    """Write one page: styles, ``head`` (e.g. BokehJS), the JSON block and the loader, all inline."""
    if not PAGE_SCRIPT.is_file():
        raise AudiovisError(
            f"the saved-page loader is not built ({PAGE_SCRIPT} is missing); run `npm install && npm run build` in js/"
        )
    styles = VIEWER_STYLES.read_text(encoding="utf-8") + "\n" + PAGE_STYLES.read_text(encoding="utf-8")
    about = (
        "Saved by audiovis " + _version() + ": zoom, pan, hover, selection and playback work in this page; "
        "what needs Python (other overlays, new analyses) does not."
    )
    data = _json_block(page)
    script = _inline_script(PAGE_SCRIPT.read_text(encoding="utf-8"))
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"audiovis {html.escape(_version())}\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{styles}\n</style>\n{head}</head>\n"
        "<body class=\"audiovis-page\">\n"
        f"<div class=\"avp-title\">{html.escape(title)}</div>\n<div id=\"audiovis-root\"></div>\n"
        f"<p class=\"avp-about\">{html.escape(about)}</p>\n"
        + "".join(f"<p class=\"avp-notes\">{html.escape(n)}</p>\n" for n in notes)
        + f"<script type=\"application/json\" id=\"audiovis-page\">{data}</script>\n"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
    encoded = text.encode("utf-8")
    path.write_bytes(encoded)
    parts = {"loader": len(script), "styles": len(styles), "head": len(head)}
    viewer = page.get("viewer", {})
    parts["audio"] = len((viewer.get("audio") or {}).get("data", ""))
    parts["spectrogram frames"] = len((viewer.get("frames") or {}).get("data", ""))
    parts["viewer state"] = sum(len(b["data"]) for b in viewer.get("buffers", [])) + len(json.dumps(viewer.get("state", {})))
    if "explorer" in page:
        ex = page["explorer"]
        parts["overlays"] = len(json.dumps(ex.get("maps", {})))
        parts["embeddings"] = len(json.dumps(ex.get("embeddings", {})))
        parts["plot"] = len(json.dumps(ex.get("plot"))) + len(json.dumps(ex.get("pca", {})))
    return PageReport(path, len(encoded), {k: v for k, v in parts.items() if v}, notes)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("audiovis")
    except Exception:
        return "(development)"


def save_viewer_page(
    viewer: "AnyWidget",
    path: str | Path,
    *,
    title: str | None = None,
    frames: Literal["all", "view"] = "all",
    audio_format: AudioFormat = "auto",
) -> PageReport:
    """Write ``viewer`` as a self-contained page (see :meth:`SpectrogramViewer.save_html`)."""
    out = check_output_path(path)
    if frames not in ("all", "view"):
        raise ValueError(f"save_html: frames must be 'all' or 'view', got {frames!r}")
    part, notes = viewer_part(viewer, frames=frames, audio_format=audio_format)
    page = {"format": PAGE_FORMAT, "kind": "viewer", "audiovis_version": _version(), "viewer": part}
    return write_page(out, title=title or "audiovis spectrogram", page=page, notes=notes)


#: Explorer pages keep every layer's embeddings (similarity in any layer) while they total at most this.
EMBEDDING_BUDGET_BYTES = 1_200_000
#: Overlay modes a saved explorer can switch among (attention from the selection needs every patch pair's
#: attention, ~N^2 values per layer, integrated gradients dozens of backward passes per class, merged
#: tokens a merging analysis: they stay in Python).
SAVED_MODES = ("none", "similarity", "cls", "rollout", "saliency", "relevance")
#: Saved modes with one map per class (the class menu picks it).
CLASS_MODES = ("saliency", "relevance")


def _saved_array(values: np.ndarray, dtype: str) -> dict[str, Any]:
    arr = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"data": _b64(arr.tobytes()), "dtype": dtype, "shape": list(arr.shape)}


def save_explorer_page(
    explorer: Any,
    path: str | Path,
    *,
    title: str | None = None,
    layers: Any = "auto",
    classes: Any = None,
    audio_format: AudioFormat = "auto",
) -> PageReport:
    """Write ``explorer`` as a self-contained page (see :meth:`Explorer.save_html`)."""
    from .. import overlays
    from ..projections import pca_2d
    from .embedding_plot import SOURCE_NAME

    out = check_output_path(path)
    analysis = explorer.analysis
    num_layers = analysis.num_layers
    n, dim = analysis.patch_embeddings(0).shape
    if isinstance(layers, str):
        if layers not in ("auto", "all", "current"):
            raise ValueError(f"save_html: layers must be 'auto', 'all', 'current' or a list of layer indices, got {layers!r}")
        fits = num_layers * n * dim * 2 <= EMBEDDING_BUDGET_BYTES
        saved_layers = list(range(num_layers)) if layers == "all" or (layers == "auto" and fits) else [explorer.layer]
    else:
        try:
            saved_layers = sorted({int(k) % num_layers for k in layers if -num_layers <= int(k) < num_layers})
        except TypeError:
            raise TypeError(f"save_html: layers must be 'auto', 'all', 'current' or a list of layer indices, got {layers!r}") from None
        if len(saved_layers) != len(set(layers)):
            raise ValueError(f"save_html: layers {list(layers)} include some outside {-num_layers}..{num_layers - 1}")
    probs = analysis.probabilities
    order = [int(i) for i in np.argsort(-probs, kind="stable")]
    if classes is None:
        saved_classes = sorted(set(order[:3]) | {int(explorer.class_index)}, key=order.index)
    else:
        saved_classes = [analysis.class_index(c) for c in ([classes] if isinstance(classes, (int, str)) else classes)]
    notes: list[str] = []

    maps: dict[str, Any] = {}

    def keep(key: str, overlay: Any) -> None:
        if overlay.values is not None:
            maps[key] = {"values": _saved_array(overlay.values, "float32"), "label": overlay.label}

    keep("rollout", overlays.rollout(analysis))
    for layer in range(num_layers):
        keep(f"cls:{layer}", overlays.cls_attention(analysis, layer, None))
    analysis.saliencies(saved_classes)  # one batched pass for every saved class (then cached)
    for c in saved_classes:
        keep(f"saliency:{c}", overlays.saliency(analysis, c))
    unavailable = set()
    for c in saved_classes:
        try:
            keep(f"relevance:{c}", overlays.relevance(analysis, c))
        except (AudiovisError, ValueError, RuntimeError) as exc:  # e.g. a pruned analysis
            unavailable.add("relevance")
            notes.append(f"Relevance not saved: {exc}")
            break
    embeddings = {str(layer): _saved_array(analysis.patch_embeddings(layer), "float16") for layer in saved_layers}
    projections = getattr(explorer.embedding_plot, "_projections", {})
    pca = {}
    for layer in range(num_layers):
        coords, ratio = projections.get(layer) or pca_2d(analysis.patch_embeddings(layer))
        pca[str(layer)] = {"x": _saved_array(coords[:, 0], "float32"), "y": _saved_array(coords[:, 1], "float32"),
                           "ratio": [float(r) for r in ratio]}

    modes = [(key, label) for key, label in overlays.MODES.items() if key in SAVED_MODES and key not in unavailable]
    overlay = explorer.overlay if explorer.overlay in SAVED_MODES else "none"
    notes.append(
        f"Overlays saved: rollout, CLS attention of every layer (mean of heads), saliency and relevance of "
        f"{', '.join(analysis.labels[c] for c in saved_classes)}, similarity (in the browser) for layer"
        f"{'s' if len(saved_layers) > 1 else ''} {', '.join(map(str, saved_layers))}. "
        "Attention from the selection, single heads, integrated gradients and merged tokens need Python."
    )
    if explorer.overlay not in SAVED_MODES:
        notes.append(f"The explorer showed '{overlays.MODES[explorer.overlay]}', which a page cannot compute; it opens with none.")
    plot = _plot_item(explorer)
    if plot is None:
        notes.append("The embedding plot could not be saved (Bokeh failed); see the log.")
    labels_box = explorer._predictions.children
    predictions = analysis.top_labels(max(1, len(labels_box) - 1))
    part, viewer_notes = viewer_part(explorer.viewer, audio_format=audio_format, extra_drop=("embeddings",))
    notes = viewer_notes + notes
    header = explorer.children[0].value if explorer.children else ""
    page = {
        "format": PAGE_FORMAT, "kind": "explorer", "audiovis_version": _version(), "viewer": part,
        "explorer": {
            "header": header,
            "predictions_title": labels_box[0].value if labels_box else "Top predictions",
            "predictions": [[name, float(p)] for name, p in predictions],
            "modes": modes, "overlay": overlay, "layer": int(explorer.layer), "num_layers": num_layers,
            "class_index": int(explorer.class_index) if int(explorer.class_index) in saved_classes else saved_classes[0],
            "classes": [[c, f"{analysis.labels[c]} ({probs[c]:.2f})"] for c in saved_classes],
            "class_modes": list(CLASS_MODES), "maps": maps, "embeddings": embeddings, "pca": pca, "plot": plot, "plot_source": SOURCE_NAME,
            "notes": [],
        },
    }
    head = _bokeh_head() if plot is not None else ""
    name = getattr(analysis, "source", None) or "audio"
    return write_page(out, title=title or f"audiovis explorer: {name}", page=page, notes=notes, head=head)


def _plot_item(explorer: Any) -> Any:
    """The embedding plot as ``bokeh.embed.json_item`` (None if Bokeh cannot serialise it)."""
    import logging

    try:
        from bokeh.embed import json_item

        # Bokeh warns that the plot's Python selection callback cannot run in a page; the page links
        # the selection in JS instead, so that warning is silenced here
        quiet = logging.getLogger("bokeh.embed.util")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            return json_item(explorer.plot)
        finally:
            quiet.setLevel(level)
    except Exception:  # the page still works without the plot
        logging.getLogger(__name__).exception("save_html: the embedding plot could not be saved")
        return None


def _bokeh_head() -> str:
    """BokehJS (core bundle only), inline."""
    from bokeh.resources import Resources

    scripts = Resources(mode="inline", components=["bokeh"]).js_raw
    return "".join(f"<script>{_inline_script(code)}</script>\n" for code in scripts)
