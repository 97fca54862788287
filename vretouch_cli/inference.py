"""Sliding-window inference over face tracks, with the per-frame parts computed once per frame.

Each pushed crop goes once through the per-frame parts of the model (E, N, the flow from the
track's previous frame, one FIR step, I, the MMA keys/values), batched across the tracks present
in that video frame. A per-track ring buffer keeps those parts for the last ≈δ+1 frames; when
the centred window of a frame is complete (``before = δ//2`` frames before it, ``after = δ −
before`` after it, replicate-padded at the track's start and end) the window part (MMA, G,
composition) runs, batched across tracks. Results of one track come out in push order.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import torch
from torch import Tensor

from .errors import UsageError
from .model.config import MAX_DELTA


@dataclass
class Result:
    """One retouched crop: ``out`` [3, S, S] float32 CPU in [-1, 1], ``mask`` [1, S, S] float32 CPU in
    [0, 1] (the map the model composed with); with class heads ``class_maps`` [K, S, S] float32
    CPU in [0, 1], one map per class of the model's ``config.classes`` (else None); ``generated``
    [3, S, S] float32 CPU, G's output before the composition (``out = crop + mask·(generated −
    crop)``), for the temporal fusion (:mod:`.fusion`)."""

    key: Any
    track_id: Hashable
    out: Tensor
    mask: Tensor
    class_maps: Tensor | None = None
    generated: Tensor | None = None


@dataclass
class _Frame:
    key: Any
    image: Tensor | None  # [3, S, S] on device; dropped once emitted
    skips: list[Tensor] | None  # encoder features; dropped once emitted
    mask: Tensor  # M̂ [C_m, h, w]
    mask_pix: Tensor  # [1, S, S]
    kv: list[tuple[Tensor, Tensor]]  # per block, [h, w, C]
    class_maps: Tensor | None = None  # [K, S, S] (class heads only); dropped once emitted
    keep_pix: Tensor | None = None  # [1, S, S] (class heads only); dropped once emitted


@dataclass
class _Track:
    frames: OrderedDict = field(default_factory=OrderedDict)  # frame index in track → _Frame
    count: int = 0  # frames pushed
    emitted: int = 0  # frames whose result was returned
    last_image: Tensor | None = None  # [3, S, S], for the flow to the next frame
    last_mask: Tensor | None = None  # M̂ [C_m, h, w], for FIR on the next frame


class SlidingRetoucher:
    """Streams face crops of many tracks through a :class:`~vretouch_cli.model.network.VRetouchEr`.

    ``push(items)`` takes the crops of one video frame, ``[(key, track_id, crop [3, S, S] in
    [-1, 1])]``, at most one per track, and returns the :class:`Result`\\ s whose windows became
    complete; ``end_track(track_id)`` and ``flush()`` emit what remains. Memory per track: the
    per-frame parts of about δ+1 frames. ``select`` (models with class heads only): one weight in
    [0, 1] per class of ``model.config.classes``, the classes to remove at their strengths, for
    every track (None: the model's default, the temporary classes).
    """

    def __init__(
        self, model, delta: int | None = None, device: torch.device | str = torch.device("cpu"), dtype: torch.dtype | None = None,
        max_batch: int = 8, select: Sequence[float] | None = None,
    ):
        cfg = model.config
        classes = tuple(cfg.classes)
        if select is not None and len(select) != len(classes):
            raise UsageError(f"select has {len(select)} weight(s) but the model has {len(classes)} class head(s)")
        delta = cfg.delta if delta is None else int(delta)
        if not 1 <= delta <= MAX_DELTA:
            raise UsageError(f"window δ={delta} is out of range: choose 1 to {MAX_DELTA} reference frames")
        if max_batch < 1:
            raise UsageError(f"max_batch={max_batch} must be at least 1")
        self.model = model
        self.delta = delta
        self.before = delta // 2
        self.after = delta - self.before
        self.device = torch.device(device)
        self.dtype = None if dtype in (None, torch.float32) else dtype
        self.max_batch = int(max_batch)
        self.size = int(cfg.size)
        self.select = None if select is None else [float(v) for v in select]
        self._select = None if select is None else torch.tensor(self.select, dtype=torch.float32, device=self.device)
        self._tracks: OrderedDict[Hashable, _Track] = OrderedDict()

    # -- public --------------------------------------------------------------------------------
    def push(self, items: Sequence[tuple[Any, Hashable, Tensor]]) -> list[Result]:
        """Add the crops of one video frame (at most one per track); return the completed results."""
        items = list(items)
        if not items:
            return []
        seen = set()
        for _, track_id, crop in items:
            if track_id in seen:
                raise UsageError(f"track {track_id!r} appears twice in one push; give one crop per track per frame")
            seen.add(track_id)
            if crop.dim() != 3 or crop.shape[0] != 3:
                raise UsageError(f"a crop must be a [3, S, S] tensor, got {list(crop.shape)}")
        for start in range(0, len(items), self.max_batch):
            self._frame_parts(items[start : start + self.max_batch])
        ready = []
        for _, track_id, _ in items:
            track = self._tracks[track_id]
            while track.emitted + self.after < track.count:
                ready.append((track_id, track.emitted))
                track.emitted += 1
        return self._emit(ready)

    def end_track(self, track_id: Hashable) -> list[Result]:
        """The track ended: emit its remaining frames (replicate-padded at the end) and forget it."""
        track = self._tracks.get(track_id)
        if track is None:
            return []
        ready = [(track_id, i) for i in range(track.emitted, track.count)]
        track.emitted = track.count
        results = self._emit(ready, final=True)
        del self._tracks[track_id]
        return results

    def flush(self) -> list[Result]:
        """End every track."""
        results: list[Result] = []
        for track_id in list(self._tracks):
            results.extend(self.end_track(track_id))
        return results

    @property
    def buffered_frames(self) -> int:
        """Frames of per-frame state held now, over all tracks."""
        return sum(len(t.frames) for t in self._tracks.values())

    # -- internals -------------------------------------------------------------------------------
    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _frame_parts(self, items) -> None:
        dev = self.device
        images = torch.stack([crop.to(device=dev, dtype=torch.float32) for _, _, crop in items])
        tracks = [self._tracks.setdefault(track_id, _Track()) for _, track_id, _ in items]
        has_prev = [t.last_image is not None for t in tracks]
        extra = {} if self._select is None else {"select": self._select}
        with torch.inference_mode(), self._autocast():
            if not any(has_prev):
                state = self.model.frame_step(images, **extra)
            else:
                ref = next(t for t in tracks if t.last_mask is not None).last_mask
                prev_image = torch.stack([t.last_image if t.last_image is not None else images[i] for i, t in enumerate(tracks)])
                prev_mask = torch.stack([t.last_mask if t.last_mask is not None else torch.zeros_like(ref) for t in tracks])
                flags = torch.tensor(has_prev, device=dev)
                state = self.model.frame_step(images, prev_image, prev_mask, None if all(has_prev) else flags, **extra)
        for i, ((key, _, _), track) in enumerate(zip(items, tracks)):
            track.frames[track.count] = _Frame(
                key=key,
                image=images[i],
                skips=[s[i] for s in state.skips],
                mask=state.mask[i],
                mask_pix=state.mask_pix[i],
                kv=[(k[i], v[i]) for k, v in state.kv],
                class_maps=None if state.class_maps is None else state.class_maps[i],
                keep_pix=None if state.keep_pix is None else state.keep_pix[i],
            )
            track.count += 1
            track.last_image = images[i]
            track.last_mask = state.mask[i]

    def _window(self, track: _Track, index: int, final: bool) -> list[_Frame]:
        last = track.count - 1
        idx = [min(max(j, 0), last) for j in range(index - self.before, index + self.after + 1)]
        if not final and idx[-1] != index + self.after:
            raise RuntimeError("window emitted before it was complete")
        return [track.frames[j] for j in idx]

    def _emit(self, ready: list[tuple[Hashable, int]], final: bool = False) -> list[Result]:
        results: list[Result] = []
        for start in range(0, len(ready), self.max_batch):
            chunk = ready[start : start + self.max_batch]
            windows = [self._window(self._tracks[tid], i, final) for tid, i in chunk]
            targets = [w[self.before] for w in windows]
            n_blocks = len(targets[0].kv)
            kv = [
                (
                    torch.stack([torch.stack([f.kv[b][0] for f in w]) for w in windows]),
                    torch.stack([torch.stack([f.kv[b][1] for f in w]) for w in windows]),
                )
                for b in range(n_blocks)
            ]
            image = torch.stack([t.image for t in targets])
            skips = [torch.stack([t.skips[s] for t in targets]) for s in range(len(targets[0].skips))]
            mask = torch.stack([t.mask for t in targets])
            mask_pix = torch.stack([t.mask_pix for t in targets])
            extra = {}
            class_cpu = None
            if targets[0].class_maps is not None:
                extra = {"select": self._select, "keep_pix": torch.stack([t.keep_pix for t in targets])}
                class_cpu = torch.stack([t.class_maps for t in targets]).float().cpu()
            with torch.inference_mode(), self._autocast():
                out, generated = self.model.synthesize(image, skips, mask, mask_pix, kv, **extra)
            out = out.float().cpu()
            generated = generated.float().cpu()
            mask_cpu = mask_pix.float().cpu()
            for j, ((tid, i), target) in enumerate(zip(chunk, targets)):
                classes = None if class_cpu is None else class_cpu[j].clone()
                results.append(Result(target.key, tid, out[j].clone(), mask_cpu[j].clone(), classes, generated[j].clone()))
        for tid, i in ready:
            self._trim(self._tracks[tid])
        return results

    def _trim(self, track: _Track) -> None:
        """Drop what no future window needs: frames before ``emitted − before``; skips and images
        of frames already emitted."""
        keep_from = track.emitted - self.before
        for j in list(track.frames):
            if j < keep_from:
                del track.frames[j]
            elif j < track.emitted:
                track.frames[j].skips = None
                track.frames[j].image = None
                track.frames[j].class_maps = None
                track.frames[j].keep_pix = None
