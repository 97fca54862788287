"""Temporal fusion of the corrections along a face track: where the reference frames reach the output.

The network's output for frame t is ``X_t + M_t·(G_t − X_t)``. Its reference frames reach it only
through MMA, and the trained decoder barely uses them: δ = 3 and δ = 1 gave the same output to
five decimals (weights/README.md). The correction then changes from frame to frame with the
pixel grid and the noise of each frame, and the output flickers more than the input.

:class:`FusedRetoucher` wraps a :class:`~.inference.SlidingRetoucher` and, for a window of
``radius`` frames on each side of t (the same track), aligns the neighbours to t with dense
optical flow measured on the crops themselves (:mod:`.dis_flow`; pixels that fail its
consistency check, or where the aligned crop's luma differs from t's by more than ``MATCH_LEVELS``,
are left out, and a neighbour that matches on less than half the crop is not used at all) and
writes

    out_t = X_t + mix · C̄_t + (1 − mix) · M_t · (Ḡ_t − X_t)

- ``C̄_t``: the mean of the aligned corrections ``out_r − X_r`` (t's own included): a blemish
  corrected in one frame and half-corrected in the next gets one correction, on t's own skin
  texture;
- ``Ḡ_t``: the mean of the aligned fills G_r weighted by their maps M_r, applied under t's own
  map: the fill of a spot stops varying with the frame's sampling.

Either half alone lowers one of the two temporal errors and raises the other (the warp error
of the output, and the flicker of its difference to the clean video); the even mix lowers both
and removes a little more of the blemish (measured on the held-out sequences:
``benchmarks/heldout_eval.py``; weights/README.md). Where neither t's map nor any aligned
neighbour's correction is non-zero, the output is the input exactly.

The wrapper keeps the retoucher's interface (``push``, ``end_track``, ``flush``); a frame comes
out once ``radius`` later frames of its track have their results, or when its track ends. Memory:
``2·radius + 1`` frames of crops, corrections, fills and maps per track, plus the flows between
neighbours (each pair computed once).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from .dis_flow import FlowEstimator, sampling_maps, warp
from .inference import Result, SlidingRetoucher

DEFAULT_MIX = 0.5
MATCH_LEVELS = 10.0  # an aligned neighbour is used only where its crop's luma is within this many 8-bit levels of t's (5×5 mean)
MIN_USABLE = 0.5  # ... and not at all when that holds on less than this share of the crop


@dataclass
class _Entry:
    result: Result
    x: np.ndarray  # S×S×3 float32, the crop in [-1, 1]
    gray: np.ndarray  # S×S uint8 luma, for the flow
    luma: np.ndarray  # the same as float32, for the match test (converted once per frame)
    correction: np.ndarray  # S×S×3 float32, out − crop
    generated: np.ndarray  # S×S×3 float32, G
    mask: np.ndarray  # S×S float32, M


@dataclass
class _FusionTrack:
    entries: OrderedDict = field(default_factory=OrderedDict)  # index in the track → _Entry
    count: int = 0  # results received
    emitted: int = 0  # fused results returned
    flows: dict = field(default_factory=dict)  # (i, j) → (sampling maps of the flow on i's grid into j, validity)


class FusedRetoucher:
    """A :class:`SlidingRetoucher` whose corrections are fused over ``radius`` frames on each
    side along each track (module docstring). ``radius`` 0 returns the retoucher's results as
    they are. ``mix`` in [0, 1]: the share of the averaged correction; the rest is t's map
    applied to the averaged fill."""

    def __init__(self, retoucher: SlidingRetoucher, radius: int = 1, mix: float = DEFAULT_MIX, timer=None):
        if radius < 0:
            raise ValueError(f"radius={radius} must be ≥ 0")
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix={mix} must be in [0, 1]")
        self.retoucher = retoucher
        self.radius = int(radius)
        self.mix = float(mix)
        # DIS "fast": 1.3 ms a call at 256² against 3.7 for "medium", and the same held-out numbers
        # to 0.001 dB and 0.00002 flicker (weights/README.md)
        self._flow = FlowEstimator(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._timer = timer if timer is not None else (lambda stage: contextlib.nullcontext())
        self._inputs: dict[tuple[Hashable, Any], Tensor] = {}
        self._tracks: OrderedDict[Hashable, _FusionTrack] = OrderedDict()

    # -- the retoucher's interface ----------------------------------------------------------------
    def push(self, items: Sequence[tuple[Any, Hashable, Tensor]]) -> list[Result]:
        items = list(items)
        stored = []
        if self.radius:  # kept before the push: a result may come back at once
            for key, track_id, crop in items:
                self._inputs[(track_id, key)] = crop
                stored.append((track_id, key))
        try:
            results = self.retoucher.push(items)
        except BaseException:
            for k in stored:  # rejected items (the retoucher validates them) are not kept
                self._inputs.pop(k, None)
            raise
        return self._route(results, ended=())

    def end_track(self, track_id: Hashable) -> list[Result]:
        return self._route(self.retoucher.end_track(track_id), ended=(track_id,))

    def flush(self) -> list[Result]:
        results = self.retoucher.flush()
        return self._route(results, ended=set(self._tracks) | {r.track_id for r in results})

    @property
    def buffered_frames(self) -> int:
        """Frames held now, in the retoucher and in the fusion, over all tracks."""
        return self.retoucher.buffered_frames + sum(len(t.entries) for t in self._tracks.values()) + len(self._inputs)

    # -- internals -------------------------------------------------------------------------------
    def _route(self, results: list[Result], ended) -> list[Result]:
        if not self.radius:
            return results
        with self._timer("fuse"):
            touched: list[Hashable] = []
            for res in results:
                crop = self._inputs.pop((res.track_id, res.key))
                track = self._tracks.setdefault(res.track_id, _FusionTrack())
                track.entries[track.count] = _entry(res, crop)
                track.count += 1
                if res.track_id not in touched:
                    touched.append(res.track_id)
            touched += [t for t in ended if t not in touched and t in self._tracks]
            return self._emit(touched, ended)

    def _emit(self, touched: list[Hashable], ended) -> list[Result]:
        out: list[Result] = []
        for track_id in touched:
            track = self._tracks[track_id]
            final = track_id in ended
            while track.emitted < track.count and (final or track.emitted + self.radius < track.count):
                out.append(self._fuse(track, track.emitted))
                track.emitted += 1
            keep_from = track.emitted - self.radius
            for i in [i for i in track.entries if i < keep_from]:
                del track.entries[i]
            track.flows = {k: v for k, v in track.flows.items() if min(k) >= keep_from}
            if final:
                del self._tracks[track_id]
        return out

    def _pair(self, track: _FusionTrack, i: int, j: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """(the sampling maps of the flow on i's grid into j, its validity as float32 0/1).

        Valid: the flow passes the consistency check and the aligned crop agrees with i's own
        within :data:`MATCH_LEVELS` (a wrong flow, an occluding hand, a cut inside a track)."""
        if (i, j) not in track.flows:
            a, b = track.entries[i], track.entries[j]
            on_i, on_j = self._flow.pair(a.gray, b.gray)
            for key, (flow, valid), (cur, other) in (((i, j), on_i, (a, b)), ((j, i), on_j, (b, a))):
                maps = sampling_maps(flow)
                diff = cv2.blur(np.abs(cur.luma - warp(other.luma, maps)), (5, 5))
                usable = (valid & (diff <= MATCH_LEVELS)).astype(np.float32)
                if usable.mean() < MIN_USABLE:  # not the same view: a cut, a jump, a lost track
                    usable[:] = 0.0
                track.flows[key] = (maps, usable)
        return track.flows[(i, j)]

    def _fuse(self, track: _FusionTrack, i: int) -> Result:
        e = track.entries[i]
        c_sum, c_w = e.correction.copy(), np.ones(e.mask.shape, np.float32)
        g_sum, g_w = e.generated * e.mask[..., None], e.mask.copy()
        for j in range(i - self.radius, i + self.radius + 1):
            if j == i or j not in track.entries:
                continue
            flow, v = self._pair(track, i, j)
            n = track.entries[j]
            c_sum += warp(n.correction, flow) * v[..., None]
            c_w += v
            m = warp(n.mask, flow) * v
            g_sum += warp(n.generated, flow) * m[..., None]
            g_w += m
        c_bar = c_sum / c_w[..., None]
        g_bar = np.where((g_w > 1e-6)[..., None], g_sum / np.maximum(g_w, 1e-6)[..., None], e.generated)
        fused = e.x + self.mix * c_bar + (1.0 - self.mix) * e.mask[..., None] * (g_bar - e.x)
        out = torch.from_numpy(np.ascontiguousarray(np.clip(fused, -1.0, 1.0).transpose(2, 0, 1)))
        r = e.result
        return Result(r.key, r.track_id, out, r.mask, r.class_maps, r.generated)


def _entry(res: Result, crop: Tensor) -> _Entry:
    x = crop.detach().float().cpu().permute(1, 2, 0).numpy().astype(np.float32)
    unit8 = np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(unit8, cv2.COLOR_RGB2GRAY)
    out = res.out.permute(1, 2, 0).numpy()
    generated = res.generated.permute(1, 2, 0).numpy().astype(np.float32)
    return _Entry(res, x, gray, gray.astype(np.float32), (out - x).astype(np.float32), generated, res.mask[0].numpy().astype(np.float32))


def fused_retoucher(model, delta: int | None = None, timer=None, **kwargs) -> FusedRetoucher | SlidingRetoucher:
    """The pipeline's retoucher: a :class:`SlidingRetoucher`, fused over one frame on each side
    when its window has reference frames before the target (δ ≥ 2); δ = 1 is single-image
    retouching, as it was. ``timer``: the pipeline's stage timer (the fusion is its ``fuse``
    stage)."""
    inner = SlidingRetoucher(model, delta=delta, **kwargs)
    return FusedRetoucher(inner, radius=min(1, inner.before), timer=timer) if inner.before else inner
