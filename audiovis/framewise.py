"""Short-time spectra a block of frames at a time: the engine under the front ends of ``spectrogram``.

Frames are views of the waveform (``unfold``); each block of frames is windowed into a reused buffer
(zero beyond the frame, up to the FFT size), transformed by ``rfft``, squared as ``re² + im²`` in two
elementwise passes, projected on a filterbank band by band (``filter_bands``) and taken to dB or log
while it is still in cache, straight into the output. The complex spectrogram never exists whole.

Blocks run on a pool of as many threads as torch's intra-op setting, each running torch single-threaded
(``block_workers``): one hand-off per call instead of a fork and join per operation, and no operation
waits for a thread the OS gave to another process. Short input (``pooled``: up to ~10 s of 25 ms frames)
runs on the calling thread, single-threaded as well: there the hand-off would cost more than it saves.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

#: frames transformed at once, by FFT size: a block's frames, spectrum and power stay within a core's cache
_BLOCK_BYTES = 1 << 20


def frames_per_block(fft_size: int) -> int:
    """Frames per block for ``fft_size``: about ``_BLOCK_BYTES`` of windowed frames (64 to 1024 frames)."""
    return int(min(1024, max(64, _BLOCK_BYTES // (4 * fft_size))))


def output(rows: int, columns: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``[rows, columns]`` result of ``like``'s dtype and device.

    On the CPU in float32, allocated by numpy, which advises transparent huge pages for large arrays: a
    fresh 100 MB tensor from torch's allocator spends as long in page faults on first touch as the FFT of a
    10-minute STFT takes to fill it.

    Args:
        rows: first dimension.
        columns: second dimension.
        like: the tensor whose dtype and device the result takes.
    """
    if like.device.type == "cpu" and like.dtype == torch.float32:
        return torch.from_numpy(np.empty((rows, columns), dtype=np.float32))
    return like.new_empty(rows, columns)


def centred_frames(
    wav: torch.Tensor, n_fft: int, hop: int, pad_mode: str,
) -> tuple[list[tuple[int, torch.Tensor]], int]:
    """The frames of ``torch.stft(center=True)`` as views ``[frames, n_fft]``: ``([(first frame, view)], count)``.

    Only the few frames that reach past either end are cut from a padded copy of that end; the rest are
    views of ``wav`` itself (padding a long signal whole costs a copy into freshly faulted-in memory).

    Args:
        wav: the waveform ``[samples]``.
        n_fft: frame length (frame ``i`` is centred on sample ``i * hop``).
        hop: samples between frames.
        pad_mode: how the ends are padded (``torch.nn.functional.pad``'s modes).
    """
    half, length = n_fft // 2, wav.shape[-1]
    num_frames = (length + 2 * half - n_fft) // hop + 1
    head = -(-half // hop)  # frames 0 .. head-1 start in the left padding
    tail = (length + half - n_fft) // hop + 1  # frames head .. tail-1 lie inside wav
    if pad_mode == "circular" or length < n_fft or tail <= head:  # short (or wrapping): pad it all
        padded = torch.nn.functional.pad(wav.reshape(1, 1, -1), (half, half), mode=pad_mode).reshape(-1)
        return [(0, padded.unfold(0, n_fft, hop))], num_frames
    # each end is padded from at least n_fft samples of its own (reflect reads half + 1 of them)
    left = torch.nn.functional.pad(wav[: max(n_fft, (head - 1) * hop - half + n_fft)].reshape(1, 1, -1),
                                   (half, 0), mode=pad_mode).reshape(-1)
    segments = [
        (0, left.unfold(0, n_fft, hop)[:head]),
        (head, wav[head * hop - half :].unfold(0, n_fft, hop)[: tail - head]),
    ]
    if tail < num_frames:
        cut = min(tail * hop - half, length - n_fft)
        right = torch.nn.functional.pad(wav[cut:].reshape(1, 1, -1), (0, half), mode=pad_mode).reshape(-1)
        segments.append((tail, right[tail * hop - half - cut :].unfold(0, n_fft, hop)))
    return segments, num_frames


#: filterbank product cost model (one core): a matrix product call costs about this many multiply-adds
#: besides its own, and fewer than 4 filters per product run no faster than 4 (see ``filter_bands``)
_CALL_COST_MACS = 80_000
_MIN_FILTERS = 4


_bands_cache: dict[tuple, list] = {}


def filter_bands(project: torch.Tensor, frames: int) -> list[tuple[int, int, int, int, torch.Tensor]]:
    """A filterbank ``[num_bins, k]`` as bands of adjacent filters, each with the one contiguous range of FFT
    bins its filters touch: ``(first, last, lo, hi, weights[last - first, hi - lo])``.

    A mel filter is a triangle over a few neighbouring bins (each bin feeds at most two filters), so a band
    of ``g`` filters over ``w`` bins holds its non-zeros in a ``g x w`` product. Wide bands waste work on
    zeros, narrow ones pay a call each: the bands minimise ``sum(max(g, 4) * w * frames + call cost)`` (a
    shortest path over the filter boundaries), e.g. 13 bands for 128 HTK mels of a 1024-point FFT.
    Remembered by the filterbank's values (a few recent ones).
    """
    weights = project.detach().cpu().numpy()  # numpy: a few tiny steps, no thread pool to wake
    key = (weights.shape, str(weights.dtype), frames, weights.tobytes())
    bands = _bands_cache.get(key)
    if bands is not None:
        return bands
    nonzero = weights != 0
    k = weights.shape[1]
    used = nonzero.any(axis=0)
    lows = np.where(used, nonzero.argmax(axis=0), np.iinfo(np.int64).max)
    highs = np.where(used, weights.shape[0] - nonzero[::-1].argmax(axis=0), -1)

    def span(first: int, last: int) -> tuple[int, int]:
        lo, hi = int(lows[first:last].min()), int(highs[first:last].max())
        return (lo, hi) if hi >= 0 else (0, 0)

    best = [0.0] + [float("inf")] * k
    cut = [0] * (k + 1)
    for last in range(1, k + 1):
        lo, hi = np.iinfo(np.int64).max, -1
        for first in range(last - 1, max(-1, last - 65), -1):  # bands of up to 64 filters
            lo, hi = min(lo, int(lows[first])), max(hi, int(highs[first]))
            width = hi - lo if hi >= 0 else 0
            cost = best[first] + max(last - first, _MIN_FILTERS) * width * frames + _CALL_COST_MACS
            if cost < best[last]:
                best[last], cut[last] = cost, first
    bounds, last = [], k
    while last > 0:
        bounds.append((cut[last], last))
        last = cut[last]
    bands = []
    for first, last in reversed(bounds):
        lo, hi = span(first, last)
        band = torch.from_numpy(np.ascontiguousarray(weights[lo:hi, first:last].T)).to(project)
        bands.append((first, last, lo, hi, band))
    if len(_bands_cache) >= 16:
        _bands_cache.pop(next(iter(_bands_cache)))
    _bands_cache[key] = bands
    return bands


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools() -> None:  # a forked child has none of its parent's threads
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads whose torch operations run single-threaded (torch's intra-op thread count is
    per thread; ``set_num_threads`` also sets the default other new threads start from, put back here)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="audiovis-blocks")
            started = threading.Barrier(workers)  # one task per thread

            def single_threaded() -> None:
                torch.get_num_threads()  # torch's own lazy per-thread setup first, so it cannot undo the next line
                torch.set_num_threads(1)
                started.wait()

            for future in [pool.submit(single_threaded) for _ in range(workers)]:
                future.result()
            torch.set_num_threads(threads)
            _pools[workers] = pool
        return pool


_local = threading.local()


def _thread_buffers(key: tuple, make: Callable[[], dict], bands: object) -> dict:
    """This thread's working buffers for ``key`` and the filterbank ``bands`` (made by ``make`` and kept for
    the next call: fresh memory costs page faults on first touch); the two most recent kinds are kept.
    Never part of a result."""
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = {}
    made = cache.pop(key, None)
    if made is None or made["bands"] is not bands:  # (an id can be reused by other bands)
        made = make()
    while len(cache) >= 2:
        cache.pop(next(iter(cache)))
    cache[key] = made
    return made


#: below this much work (frames x FFT size: ~10 s of Kaldi's 25 ms frames every 10 ms) a front end's blocks
#: run on the calling thread: the hand-off to the pool and back (~0.6 ms) costs more than a second worker
#: saves (a 4 s clip: 1.9 ms on the pool, 0.9 ms here)
_POOL_WORK = 1 << 19


def pooled(num_frames: int, fft_size: int) -> bool:
    """Whether ``num_frames`` frames at ``fft_size`` go to the worker pool (else they run on the calling thread)."""
    return num_frames * fft_size > _POOL_WORK and torch.get_num_threads() > 1


def block_workers(count: int, work: Callable[[int, dict], None], *, pool: bool = True) -> list[dict]:
    """Run ``work(i, scratch)`` for ``i in range(count)`` on ``torch.get_num_threads()`` single-threaded
    workers, each taking the next block when done with its last (a busy core only slows its own thread);
    ``scratch`` is one dict per worker for its buffers and partial results, all returned.

    With one intra-op thread, or ``pool=False`` (little work: see :func:`pooled`), the blocks run here, in
    order, single-threaded too (so their values never depend on the thread count). Workers keep the
    caller's inference mode and run without autograd.
    """
    threads = torch.get_num_threads()
    if threads <= 1 or not pool:
        scratch: dict = {}
        if threads > 1:
            torch.set_num_threads(1)  # this thread's own setting (and the default of new ones), put back below
        try:
            for i in range(count):
                work(i, scratch)
        finally:
            if threads > 1:
                torch.set_num_threads(threads)
        return [scratch]
    inference = torch.is_inference_mode_enabled()
    counter = itertools.count()

    def worker() -> dict:
        scratch: dict = {}
        with torch.inference_mode(inference), torch.no_grad():
            while (i := next(counter)) < count:  # next() on a count is atomic
                work(i, scratch)
        return scratch

    pool = _pool(threads)
    futures = [pool.submit(worker) for _ in range(min(threads, count))]
    return [future.result() for future in futures]


def log_(block: torch.Tensor, *, base10: bool = False) -> torch.Tensor:
    """``block`` replaced by its natural (``base10``: decimal) logarithm, in place: ``log(0) = -inf``.

    A float32 block on the CPU goes through numpy's vectorised logarithm, about four times torch's here
    (0.3 against 1.1 ns a value on AVX-512); other blocks through torch.
    """
    if block.device.type == "cpu" and block.dtype == torch.float32 and not block.requires_grad:
        values = block.numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            (np.log10 if base10 else np.log)(values, out=values)
        return block
    return block.log10_() if base10 else block.log_()


#: ``prepare(frames, first_frame, dest, scratch)``: write the windowed frames ``[n, frame_length]`` into
#: ``dest`` (``scratch``: the worker's dict, for buffers of its own)
Prepare = Callable[[torch.Tensor, int, torch.Tensor, dict], None]


def blocks_of(segments: list[tuple[int, torch.Tensor]], num_frames: int, fft_size: int, *, pool: bool = True,
              ) -> list[tuple[int, torch.Tensor]]:
    """``(first frame, frames [n, frame_length])`` blocks of ``frames_per_block(fft_size)`` frames at most,
    and, for the worker pool, at least two per intra-op thread when there are frames enough for 32-frame blocks.

    Args:
        segments: ``(first frame, frames view)`` pairs covering all frames.
        num_frames: frames in all.
        fft_size: the FFT size (sets the block size).
        pool: the blocks go to the worker pool (:func:`pooled`); else they run in order on one thread.
    """
    size = frames_per_block(fft_size)
    share = -(-num_frames // (2 * torch.get_num_threads())) if pool else num_frames
    size = max(32, min(size, share))
    return [(offset + first, frames[first : first + size])
            for offset, frames in segments for first in range(0, frames.shape[0], size)]


def block_spectra(
    segments: list[tuple[int, torch.Tensor]], num_frames: int, *, fft_size: int, prepare: Prepare,
    power: float, project: torch.Tensor | None = None, decibels: tuple[float, float | None] | None = None,
    finish: Callable[[torch.Tensor], None] | None = None, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Power (``power=2``) or magnitude spectra of framed audio, ``[fft_size // 2 + 1, frames]``, or
    ``[k, frames]`` after ``project`` ``[fft_size // 2 + 1, k]`` (a filterbank).

    Args:
        segments: ``(first frame, frames view [n, frame_length])`` covering frames ``0 .. num_frames - 1``.
        num_frames: frames in all.
        fft_size: FFT size (at least the frame length; the frames are zero-padded to it).
        prepare: writes a block of windowed frames (see :data:`Prepare`).
        power: 2 for power, 1 for magnitude.
        project: a filterbank ``[bins, k]`` to project the spectra on (None: the spectra themselves).
        decibels: ``(multiplier, top_db)``: values become ``multiplier * log10(max(x, 1e-10))``, floored at
            ``top_db`` below their maximum (as torchaudio's ``AmplitudeToDB``).
        finish: applied in place to each finished block ``[rows, n]`` (e.g. a log) before it is stored.
        out: where to write (a ``[rows, num_frames]`` view; default a new tensor).

    Returns:
        ``out``.
    """
    num_bins = fft_size // 2 + 1
    frame_length = segments[0][1].shape[-1]
    rows = num_bins if project is None else project.shape[1]
    if out is None:
        out = output(rows, num_frames, segments[0][1])
    pool = pooled(num_frames, fft_size)
    blocks = blocks_of(segments, num_frames, fft_size, pool=pool)
    block = max(frames.shape[0] for _, frames in blocks)
    bands = None if project is None else filter_bands(project, block)
    like = segments[0][1]

    def buffers() -> dict:
        """A worker's buffers, with the views a full block uses made once (a view costs microseconds)."""
        windowed = like.new_zeros(block, fft_size)  # columns past the frame stay zero: the FFT's padding
        made = {"windowed": windowed, "frames": windowed[:, :frame_length], "bands": bands}
        if bands is None and decibels is not None:
            made.update(values=like.new_empty(block, num_bins))
        if bands is not None:
            values, projected = like.new_empty(block, num_bins), like.new_empty(rows, block)
            made.update(values=values, projected=projected, products=[
                (weights, values.T[lo:hi], projected[first:last]) for first, last, lo, hi, weights in bands if hi > lo
            ], empty=[projected[first:last] for first, last, lo, hi, _ in bands if hi <= lo])
        return made

    # (buffers made in inference mode are inference tensors: outside it they refuse in-place writes)
    key = (block, fft_size, frame_length, rows, like.dtype, None if bands is None else id(bands),
           decibels is not None, torch.is_inference_mode_enabled())

    def work(i: int, scratch: dict) -> None:
        start, frames = blocks[i]
        n = frames.shape[0]
        if not scratch:
            scratch.update(top=None, buffers=_thread_buffers(key, buffers, bands))
        buf = scratch["buffers"]
        full = n == block
        windowed = buf["windowed"] if full else buf["windowed"][:n]
        prepare(frames, start, buf["frames"] if full else buf["frames"][:n], buf)
        sq = torch.view_as_real(torch.fft.rfft(windowed))  # (rfft's out= would only add a copy)
        torch.square(sq, out=sq)
        if bands is None and decibels is None:  # straight into the output, transposed
            target = dense = out[:, start : start + n]
            torch.add(sq[..., 0], sq[..., 1], out=target.T)
            if power == 1.0:
                target.sqrt_()
        elif bands is None:  # dB: in a block of its own (a log over contiguous values is faster), then one copy out
            dense = torch.add(sq[..., 0], sq[..., 1], out=buf["values"] if full else buf["values"][:n])
            if power == 1.0:
                dense.sqrt_()
            target = dense.T
        else:  # the banded product into a block of its own, then one copy out
            v = torch.add(sq[..., 0], sq[..., 1], out=buf["values"] if full else buf["values"][:n])
            if power == 1.0:
                v.sqrt_()
            if full:
                for weights, bins, dest in buf["products"]:
                    torch.mm(weights, bins, out=dest)
                target = buf["projected"]
            else:
                target = buf["projected"][:, :n]
                for first, last, lo, hi, weights in bands:
                    if hi > lo:
                        torch.mm(weights, v.T[lo:hi], out=target[first:last])
            for rows_without_bins in buf["empty"]:  # filters over no FFT bin (a block's log changed them)
                rows_without_bins.zero_()
            dense = target
        if decibels is not None:
            log_(dense, base10=True).mul_(decibels[0])
            low, high = (float(v) for v in torch.aminmax(dense))
            lowest[i] = low
            scratch["top"] = high if scratch["top"] is None else max(high, scratch["top"])
        if finish is not None:
            finish(target)
        if target is not dense or bands is not None:
            out[:, start : start + n].copy_(target)

    lowest = [0.0] * len(blocks)  # each block's lowest dB value
    scratches = block_workers(len(blocks), work, pool=pool)
    if decibels is not None:
        multiplier, top_db = decibels
        floor = multiplier * float(torch.log10(torch.tensor(1e-10)))  # where 1e-10 clamps (AmplitudeToDB's amin)
        if top_db is not None:
            floor = max(floor, max(s["top"] for s in scratches if s) - top_db)
        # a second pass over the output only where a block holds values under the floor (often none)
        below = [i for i in range(len(blocks)) if lowest[i] < floor]
        block_workers(len(below), lambda j, scratch: out[:, blocks[below[j]][0] : blocks[below[j]][0]
                                                          + blocks[below[j]][1].shape[0]].clamp_(min=floor), pool=pool)
    return out


def snipped_frames(wav: torch.Tensor, frame_length: int, hop: int, count: int | None = None,
                   ) -> list[tuple[int, torch.Tensor]]:
    """Kaldi's frames (``snip_edges=True``): frame ``i`` is ``wav[i * hop : i * hop + frame_length]``, only
    those that fit (the first ``count`` of them), as one view ``[(0, [frames, frame_length])]``.

    Args:
        wav: the waveform ``[samples]`` (at least ``frame_length`` samples).
        frame_length: samples per frame.
        hop: samples between frame starts.
        count: frames kept (None: all that fit).
    """
    frames = wav.unfold(0, frame_length, hop)
    return [(0, frames if count is None else frames[:count])]


def kaldi_prepare(window: torch.Tensor, preemphasis: float) -> Prepare:
    """Kaldi's framing steps (``remove_dc_offset``, ``preemphasis_coefficient``, the window) with the
    operations of ``torchaudio.compliance.kaldi`` in its order, without dither: each frame minus its mean,
    ``y[j] = x[j] - c * x[j - 1]`` within the frame (``x[-1] = x[0]``), times the window.

    The order matters: a frame's lowest mel bands, after the mean is gone, can hold 1e-12 of its energy,
    where a reordered sum (say ``x[j] - c * x[j - 1] - (1 - c) * mean``) changes the log by 1e-3.
    """
    window = window.to(torch.float32)

    def prepare(frames: torch.Tensor, first_frame: int, dest: torch.Tensor, scratch: dict) -> None:
        n, length = frames.shape
        if "centred" not in scratch:
            scratch["centred"] = frames.new_empty(scratch["windowed"].shape[0], length)  # a full block's rows
            scratch["scaled"] = frames.new_empty(scratch["centred"].shape)
        centred = torch.sub(frames, frames.mean(dim=1, keepdim=True), out=scratch["centred"][:n])
        scaled = torch.mul(centred, preemphasis, out=scratch["scaled"][:n])
        torch.sub(centred[:, 1:], scaled[:, :-1], out=dest[:, 1:])
        torch.sub(centred[:, :1], scaled[:, :1], out=dest[:, :1])
        dest.mul_(window)

    return prepare
