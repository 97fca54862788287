"""Per-frame and per-clip scoring of several methods against a ground-truth reference.

A *method* is one way to produce the output: ``raw`` (the input, no edit), ``single_frame``
(the model with δ = 1) and ``vretouch`` (the model with its window δ). For each frame the
:class:`ClipScorer` gets the raw frame, the reference (ground truth), each method's output and
predicted imperfection map (frame coordinates, None = no edit = all zeros), and the face region
(H×W weights in [0, 1], None when no face was found on the frame).

Per-frame metrics (:data:`FRAME_METRICS`): ``psnr``, ``ssim`` (whole frame), ``psnr_face``,
``ssim_face`` (weighted by the face region), ``lpips_alex``, ``lpips_vgg`` (on the face region's
bounding box, or the whole frame with ``lpips_region='frame'``), ``soft_iou`` (predicted map vs
the ground-truth map |raw − reference| / scale, whole frame), ``soft_iou_face`` (the same,
weighted by the face region), and the temporal metrics of :mod:`.temporal` (from frame 1 on).
Face metrics are NaN on frames without a face.

Per-clip (:meth:`ClipScorer.finish`): PSNR from the mean MSE over the clip's frames (so one
identical frame does not make it infinite), every other metric the mean over the frames where it
is defined; a metric whose backbone weights are missing is the string ``"unavailable"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .metrics import GT_MAP_SCALE, data_range_of, gt_imperfection_map, mse, soft_iou, ssim_map
from .temporal import TemporalMeter

METHODS = ("raw", "single_frame", "vretouch")
METHOD_LABELS = {"raw": "raw input (no edit)", "single_frame": "single-frame (δ=1)", "vretouch": "VRetouchEr"}

IMAGE_METRICS = ("psnr", "ssim", "psnr_face", "ssim_face", "lpips_alex", "lpips_vgg", "soft_iou", "soft_iou_face")
FRAME_METRICS = IMAGE_METRICS + TemporalMeter.METRICS
# Metrics whose per-clip value is computed from the mean of another per-frame quantity.
_FROM_MSE = {"psnr": "mse", "psnr_face": "mse_face"}
UNAVAILABLE = "unavailable"


@dataclass
class ClipScore:
    """Everything measured on one clip."""

    name: str
    frames: int
    per_frame: dict[str, dict[str, list[float]]]  # method → metric → values (len = frames)
    summary: dict[str, dict[str, float | str]]  # method → metric → value or "unavailable"
    info: dict[str, object] = field(default_factory=dict)


def _ssim_pair(a: np.ndarray, b: np.ndarray, r: float, region: np.ndarray | None) -> tuple[float, float]:
    s, pad = ssim_map(a, b, r)
    h, w = s.shape
    inner = s[pad : h - pad, pad : w - pad]
    whole = float(inner.mean(dtype=np.float64))
    if region is None:
        return whole, math.nan
    wt = np.clip(region[pad : h - pad, pad : w - pad].astype(np.float64), 0, 1)
    total = wt.sum()
    return whole, float((inner * wt).sum() / total) if total > 0 else math.nan


def _psnr_from_mse(m: float, r: float) -> float:
    if math.isnan(m):
        return math.nan
    if m == 0:
        return math.inf
    return 10.0 * math.log10(r * r / m)


class ClipScorer:
    """Accumulates the metrics of one clip, one frame at a time (memory: one frame per method).

    ``lpips`` maps 'alex'/'vgg' to a loaded LPIPS callable or None (unavailable).
    """

    def __init__(
        self,
        name: str,
        methods: tuple[str, ...] = METHODS,
        *,
        lpips: dict[str, object] | None = None,
        lpips_region: str = "face",
        gt_scale: float = GT_MAP_SCALE,
        temporal: bool = True,
    ):
        if lpips_region not in ("face", "frame"):
            raise ValueError(f"lpips_region must be 'face' or 'frame', got {lpips_region!r}")
        self.name = name
        self.methods = tuple(methods)
        self.lpips = {b: (lpips or {}).get(b) for b in ("alex", "vgg")}
        self.lpips_region = lpips_region
        self.gt_scale = gt_scale
        self.meter = TemporalMeter() if temporal else None
        self.frames = 0
        self.data_range: float | None = None
        keys = FRAME_METRICS + ("mse", "mse_face")
        self.values: dict[str, dict[str, list[float]]] = {m: {k: [] for k in keys} for m in self.methods}

    def new_sequence(self) -> None:
        """Start a new, unrelated sequence: the next frame has no predecessor for temporal metrics."""
        if self.meter is not None:
            self.meter = TemporalMeter()

    def push(
        self,
        raw: np.ndarray,
        reference: np.ndarray,
        outputs: dict[str, np.ndarray],
        maps: dict[str, np.ndarray | None],
        region: np.ndarray | None,
    ) -> None:
        """Score one frame. ``outputs``/``maps`` are keyed by method (every method of the scorer)."""
        if raw.shape != reference.shape:
            raise ValueError(f"clip {self.name}: raw frame {raw.shape} and reference {reference.shape} differ in size")
        r = data_range_of(reference)
        self.data_range = r
        if region is not None and not np.any(region > 0):
            region = None
        gt = gt_imperfection_map(raw, reference, self.gt_scale)
        temporal = self.meter.push(reference, outputs, region) if self.meter is not None else None
        for method in self.methods:
            out = outputs[method]
            if out.shape != reference.shape or out.dtype != reference.dtype:
                raise ValueError(f"clip {self.name}: {method} output {out.shape}/{out.dtype} vs reference {reference.shape}/{reference.dtype}")
            v = self.values[method]
            m_all = mse(out, reference)
            m_face = mse(out, reference, region) if region is not None else math.nan
            s_all, s_face = _ssim_pair(out, reference, r, region)
            pred = maps.get(method)
            if pred is None:
                pred = np.zeros(gt.shape, np.float32)
            row = {
                "mse": m_all,
                "mse_face": m_face,
                "psnr": _psnr_from_mse(m_all, r),
                "psnr_face": _psnr_from_mse(m_face, r),
                "ssim": s_all,
                "ssim_face": s_face,
                "soft_iou": soft_iou(pred, gt),
                "soft_iou_face": soft_iou(pred, gt, region) if region is not None else math.nan,
            }
            for backbone, model in self.lpips.items():
                if model is None:
                    row[f"lpips_{backbone}"] = math.nan
                elif self.lpips_region == "face":
                    row[f"lpips_{backbone}"] = model(out, reference, mask=region) if region is not None else math.nan
                else:
                    row[f"lpips_{backbone}"] = model(out, reference)
            t = (temporal or {}).get(method, {})
            for k in TemporalMeter.METRICS:
                row[k] = t.get(k, math.nan)
            for k, val in row.items():
                v[k].append(float(val))
        self.frames += 1

    def finish(self, info: dict[str, object] | None = None) -> ClipScore:
        """The clip's per-frame lists and summary."""
        per_frame: dict[str, dict[str, list[float]]] = {}
        summary: dict[str, dict[str, float | str]] = {}
        r = self.data_range or 255.0
        for method in self.methods:
            v = self.values[method]
            per_frame[method] = {k: v[k] for k in FRAME_METRICS}
            s: dict[str, float | str] = {}
            for k in FRAME_METRICS:
                if k.startswith("lpips_") and self.lpips[k.split("_", 1)[1]] is None:
                    s[k] = UNAVAILABLE
                elif k in _FROM_MSE:
                    s[k] = _psnr_from_mse(nanmean(v[_FROM_MSE[k]]), r)
                else:
                    s[k] = nanmean(v[k])
            s["vfid"] = UNAVAILABLE
            summary[method] = s
        return ClipScore(self.name, self.frames, per_frame, summary, dict(info or {}))


def nanmean(values) -> float:
    """Mean of the finite-or-inf values, ignoring NaN; NaN when there are none."""
    arr = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=np.float64)
    if arr.size == 0:
        return math.nan
    return float(arr.mean())


def overall(clips: list[ClipScore], methods: tuple[str, ...]) -> dict[str, dict[str, float | str]]:
    """Mean over clips of each clip's summary (every clip counts once, whatever its length)."""
    result: dict[str, dict[str, float | str]] = {}
    for method in methods:
        keys: list[str] = []
        for c in clips:
            for k in c.summary.get(method, {}):
                if k not in keys:
                    keys.append(k)
        row: dict[str, float | str] = {}
        for k in keys:
            vals = [c.summary[method][k] for c in clips if method in c.summary and k in c.summary[method]]
            nums = [float(x) for x in vals if not isinstance(x, str)]
            row[k] = nanmean(nums) if nums else UNAVAILABLE
        result[method] = row
    return result
