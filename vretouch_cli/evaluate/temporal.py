"""Temporal stability: flow-warped frame differences and a flicker index.

The motion is measured once, on the REFERENCE video (the ground-truth retouched clip), with
OpenCV's DIS optical flow, and the same flow judges every method, so a method is not rewarded
for its own motion. For frame t ≥ 1:

- ``flow_t`` maps frame t's pixel grid to frame t−1: ``ref_t(x) ≈ ref_{t−1}(x + flow_t(x))``
  (backward warping, the project's flow convention); ``W(img_{t−1})`` is img_{t−1} warped onto t.
- ``valid_t``: pixels whose flow passes the forward–backward consistency check (Sundaram et al.
  2010) and stays inside the frame; occluded pixels are left out of every temporal metric.
- **warp error** of a video v: mean over valid pixels of ``|v_t − W(v_{t−1})|`` (8-bit levels,
  whatever the bit depth). ``warp_error_ref`` is that of the reference itself (what real motion
  and lighting leave); ``warp_error_gap`` = warp error of the output − that of the reference:
  ≈ 0 for an output as stable as the ground truth, > 0 when it adds temporal noise.
- **flicker index**: mean over valid pixels of ``|e_t − W(e_{t−1})|`` with ``e = output −
  reference`` (levels): how much the output's deviation from the reference changes from frame to
  frame along the motion. A constant error (a blemish consistently kept or removed) scores 0; a
  correction that pops in and out scores its amplitude.

Each is also computed inside a region (the face mask) as ``*_face``; NaN when the region is empty.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..dis_flow import FlowEstimator, warp
from .metrics import to_unit


def to_gray8(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB (uint8/uint16/float [0,1]) → H×W uint8 luma for the flow estimator."""
    unit = to_unit(image)
    if unit.ndim == 3:
        unit = cv2.cvtColor(unit, cv2.COLOR_RGB2GRAY)
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _levels(image: np.ndarray) -> np.ndarray:
    return to_unit(image) * 255.0


def _weighted_mean(err: np.ndarray, weight: np.ndarray) -> float:
    total = float(weight.sum())
    if total <= 0:
        return float("nan")
    return float((err * weight).sum() / total)


class TemporalMeter:
    """Streams a reference video and any number of outputs; yields per-frame temporal metrics.

    ``push(reference, outputs, region)`` once per frame in order: ``reference`` H×W×3, ``outputs``
    a dict name → H×W×3 (same size), ``region`` an optional H×W face mask in [0, 1]. Returns None
    for the first frame, then ``{name: {metric: value}}`` (see the module docstring). Holds only
    the previous frame of each video: memory does not grow with the clip.
    """

    METRICS = (
        "warp_error",
        "warp_error_ref",
        "warp_error_gap",
        "flicker",
        "warp_error_face",
        "warp_error_ref_face",
        "warp_error_gap_face",
        "flicker_face",
    )

    def __init__(self) -> None:
        self._flow = FlowEstimator()
        self._prev_gray: np.ndarray | None = None
        self._prev_ref: np.ndarray | None = None
        self._prev_out: dict[str, np.ndarray] = {}

    def push(
        self, reference: np.ndarray, outputs: dict[str, np.ndarray], region: np.ndarray | None = None
    ) -> dict[str, dict[str, float]] | None:
        gray = to_gray8(reference)
        ref = _levels(reference)
        outs = {name: _levels(img) for name, img in outputs.items()}
        for name, img in outs.items():
            if img.shape != ref.shape:
                raise ValueError(f"output {name!r} has shape {img.shape}, the reference {ref.shape}")
        result = None
        if self._prev_gray is not None:
            flow, valid = self._flow.backward(gray, self._prev_gray)
            whole = valid.astype(np.float64)
            face = whole * np.clip(region, 0, 1) if region is not None else np.zeros_like(whole)

            def err(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
                return np.abs(cur - warp(prev, flow)).mean(axis=2)

            ref_err = err(ref, self._prev_ref)
            ref_w, ref_f = _weighted_mean(ref_err, whole), _weighted_mean(ref_err, face)
            result = {}
            for name, out in outs.items():
                prev = self._prev_out.get(name)
                if prev is None:
                    continue
                out_err = err(out, prev)
                flick = err(out - ref, prev - self._prev_ref)
                ow, of = _weighted_mean(out_err, whole), _weighted_mean(out_err, face)
                result[name] = {
                    "warp_error": ow,
                    "warp_error_ref": ref_w,
                    "warp_error_gap": ow - ref_w,
                    "flicker": _weighted_mean(flick, whole),
                    "warp_error_face": of,
                    "warp_error_ref_face": ref_f,
                    "warp_error_gap_face": of - ref_f,
                    "flicker_face": _weighted_mean(flick, face),
                }
        self._prev_gray, self._prev_ref, self._prev_out = gray, ref, outs
        return result
