"""Dense optical flow between two images of the same size: OpenCV's DIS, with a validity mask.

Shared by the evaluator (which judges every output with the flow of the reference video,
:mod:`.evaluate.temporal`) and the pipeline's temporal fusion of corrections (:mod:`.fusion`).
Convention: a *backward* flow on ``cur``'s grid points into ``prev``,
``cur(x) ≈ prev(x + flow(x))``; a pixel is valid where the flow stays inside the frame and
passes the forward–backward consistency check (Sundaram et al. 2010), so occluded pixels are
left out.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


class FlowEstimator:
    """DIS optical flow (``cv2.DISOpticalFlow``, medium preset) with a consistency-based validity mask."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
        self._dis = cv2.DISOpticalFlow_create(preset)

    def pair(self, a: np.ndarray, b: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Both backward flows of two H×W uint8 grey images from two DIS runs:
        ``((flow on a's grid into b, its validity), (flow on b's grid into a, its validity))``."""
        ab = self._dis.calc(a, b, None)
        ba = self._dis.calc(b, a, None)
        return (ab, _consistent(ab, ba)), (ba, _consistent(ba, ab))

    def backward(self, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow on ``cur``'s grid pointing into ``prev`` (H×W×2 float32) and its validity (H×W bool).

        ``cur``, ``prev``: H×W uint8 grey images.
        """
        return self.pair(cur, prev)[0]


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _sq(v: np.ndarray) -> np.ndarray:
    """Squared length of an H×W×2 field (per channel: numpy's sum over a last axis of 2 is slow)."""
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def _consistent(fb: np.ndarray, ff: np.ndarray) -> np.ndarray:
    """Validity of ``fb`` (on the first image's grid) given ``ff`` (the flow the other way)."""
    h, w = fb.shape[:2]
    gx, gy = _grid(h, w)
    mx, my = gx + fb[..., 0], gy + fb[..., 1]
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    ff_at = cv2.remap(ff, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = fb + ff_at  # ≈ 0 where the point is visible in both frames
    return inside & (_sq(loop) < 0.01 * (_sq(fb) + _sq(ff_at)) + 0.5)


def sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The absolute sampling positions ``x + flow(x)`` of a backward flow, for :func:`warp` (to
    warp several images with one flow, compute them once)."""
    gx, gy = _grid(*flow.shape[:2])
    return gx + flow[..., 0], gy + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Backward-warp ``image`` (H×W[×C] float32) with ``flow`` (on the output grid): out(x) =
    image(x + flow(x)). ``flow``: H×W×2, or its :func:`sampling_maps`."""
    mx, my = sampling_maps(flow) if isinstance(flow, np.ndarray) else flow
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
