"""``vretouch eval --ffhqr DIR``: the FFHQR test split, as still images and as FFHQR-Seq clips.

FFHQR images are already aligned faces, so the model runs directly on them (no detection or
paste-back), at its crop size S (images are resized to S×S; metrics are computed at S).

- **ffhqr-test** (one row per method): every test pair ``source → target`` as a still:
  ``vretouch`` runs the model on a window of δ + 1 copies of the image (what the pipeline's
  replicate padding gives a still), ``single_frame`` with δ = 1 (2 copies), ``raw`` is the
  source. No temporal metrics.
- **ffhqr-seq**: every pair becomes a ``seq_frames``-frame clip by the training data's smooth
  random motion (:func:`vretouch_cli.train.motion.random_motion`, seeded by ``seed`` and the
  pair's index, applied identically to source and target), quantised to 8 bits. Each frame is
  retouched with the centred window of δ + 1 frames (``δ//2`` before, the rest after,
  replicate-padded at the clip ends: the same windows as the pipeline's
  :class:`~vretouch_cli.inference.SlidingRetoucher`); δ = 1 for ``single_frame``. Temporal
  metrics use DIS flow on the target clip, reset at each new clip.

The face region is the pipeline's feathered face ellipse in the aligned crop
(:func:`vretouch_cli.face.paste.face_region_mask`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .data import find_ffhqr_pairs, read_image, resize_square
from .report import EvalReport
from .scoring import ClipScorer

Progress = Callable[[str, int, int | None], None]


def window_indices(t: int, length: int, delta: int) -> tuple[list[int], int]:
    """Frame indices of the centred window of δ + 1 frames around ``t`` (clamped to the clip) and
    the target's position in it: ``floor(δ/2)`` frames before, ``ceil(δ/2)`` after."""
    before = delta // 2
    idx = [min(max(t + k, 0), length - 1) for k in range(-before, delta - before + 1)]
    return idx, before


def _to_tensor(frames: list[np.ndarray]):
    import torch

    arr = np.stack(frames).astype(np.float32) / 127.5 - 1.0  # [T, S, S, 3] uint8 → [-1, 1]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).unsqueeze(0)


def _to_uint8(t) -> np.ndarray:
    x = t.detach().float().cpu().numpy().transpose(1, 2, 0)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


class _Runner:
    """Runs the model on windows of aligned uint8 crops; returns (output uint8 S×S×3, map S×S)."""

    def __init__(self, model, device):
        import torch

        self.model = model
        self.device = device
        self.torch = torch

    def __call__(self, frames: list[np.ndarray], target_index: int) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            res = self.model(_to_tensor(frames).to(self.device), target_index, return_raw=False)
        return _to_uint8(res.out[0]), res.mask[0, 0].detach().float().cpu().numpy()


def _sequence(source: np.ndarray, target: np.ndarray, frames: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from ..train.motion import random_motion, warp_frames

    size = source.shape[0]
    affines = random_motion(frames, size, np.random.default_rng(seed))

    def move(img: np.ndarray) -> list[np.ndarray]:
        warped = warp_frames(img.astype(np.float32) / 255.0, affines, size)
        return [np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8) for f in warped]

    return move(source), move(target)


def evaluate_ffhqr(
    root: str | Path,
    *,
    weights=None,
    device: str = "auto",
    window: int | None = None,
    model=None,
    lpips: dict[str, object] | None = None,
    limit: int | None = None,
    seq_frames: int = 8,
    seed: int = 0,
    single_frame: bool = True,
    progress: Progress | None = None,
) -> EvalReport:
    """Evaluate the FFHQR test split (see the module docstring) and return the report."""
    from ..device import resolve_device
    from ..face.paste import face_region_mask

    pairs = find_ffhqr_pairs(root, "test", limit)
    if model is None:
        from ..pipeline import load_pipeline_model

        model, dev = load_pipeline_model(weights, device)
    else:
        dev = resolve_device(device)
        model = model.to(dev).eval()
    size = int(model.config.size)
    delta = int(window) if window is not None else int(model.config.delta)
    if not 1 <= delta <= 8:
        from ..errors import UsageError

        raise UsageError(f"--window must be between 1 and 8, got {window}")
    run = _Runner(model, dev)
    region = face_region_mask(size)
    methods = ("raw", "single_frame", "vretouch") if single_frame else ("raw", "vretouch")

    images = ClipScorer("ffhqr-test", methods, lpips=lpips, temporal=False)
    seqs = ClipScorer("ffhqr-seq", methods, lpips=lpips) if seq_frames >= 2 else None
    for i, pair in enumerate(pairs):
        src = resize_square(read_image(pair.source), size)
        tgt = resize_square(read_image(pair.target), size)
        if src.dtype != np.uint8 or tgt.dtype != np.uint8:
            src, tgt = (x if x.dtype == np.uint8 else (x >> 8).astype(np.uint8) for x in (src, tgt))
        outputs, maps = {"raw": src}, {"raw": None}
        outputs["vretouch"], maps["vretouch"] = run([src] * (delta + 1), delta // 2)
        if single_frame:
            outputs["single_frame"], maps["single_frame"] = run([src] * 2, 0)
        images.push(src, tgt, outputs, maps, region)
        if seqs is not None:
            raw_seq, tgt_seq = _sequence(src, tgt, seq_frames, seed * 1_000_003 + i)
            seqs.new_sequence()
            for t in range(seq_frames):
                outputs, maps = {"raw": raw_seq[t]}, {"raw": None}
                idx, pos = window_indices(t, seq_frames, delta)
                outputs["vretouch"], maps["vretouch"] = run([raw_seq[j] for j in idx], pos)
                if single_frame:
                    idx, pos = window_indices(t, seq_frames, 1)
                    outputs["single_frame"], maps["single_frame"] = run([raw_seq[j] for j in idx], pos)
                seqs.push(raw_seq[t], tgt_seq[t], outputs, maps, region)
        if progress is not None:
            progress("ffhqr", i + 1, len(pairs))
    clips = [images.finish({"images": len(pairs), "size": size})]
    if seqs is not None:
        clips.append(seqs.finish({"sequences": len(pairs), "frames_per_sequence": seq_frames, "seed": seed, "size": size}))
    report = EvalReport("ffhqr", str(root), methods, clips)
    report.settings.update({"window": delta, "size": size, "seq_frames": seq_frames, "seed": seed, "pairs": len(pairs)})
    report.method_labels["vretouch"] = f"VRetouchEr (δ={delta})"
    return report
