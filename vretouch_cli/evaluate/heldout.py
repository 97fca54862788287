"""Held-out evaluation pairs on clean faces of people never trained on (issue 10's acceptance set).

For every validation person (the identity split of :func:`..train.data.split_by_identity`) the
prepared 512 crop is cleaned exactly as the training targets are (:mod:`..train.cleanup`), then one
of three inputs is made from it:

- ``acne``: the training appearance model (:mod:`..train.acne`) — "your synthetic blemishes";
- ``alt``: the independently written appearance model (:mod:`..train.blemish_alt`), so validation
  is not the generator's twin;
- ``clean``: no blemish at all (input == target): what a model changes there is damage.

A seeded random camera (:mod:`..train.photometric`) takes each pair to the model's size, as in
training. Each item also keeps the pair's exact change before the camera (``change``: mean |raw −
target| over R, G, B at the prepared size, area-resampled to the model's): the camera's JPEG turns
a spot's difference into whole 8×8 blocks of 1–3-level differences, which no map should follow.
Each item also carries the individual typology angle (ITA°) of the person's clean skin,
``atan((L* − 50) / b*)``, for per-skin-tone reporting (groups: > 41° light, 10–41° intermediate /
tan, < 10° brown / dark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

APPEARANCES = ("acne", "alt", "clean")
ITA_GROUPS = (("light (ITA > 41°)", 41.0, 90.0), ("intermediate/tan (10–41°)", 10.0, 41.0), ("brown/dark (ITA < 10°)", -90.0, 10.0))


@dataclass
class HeldoutItem:
    name: str
    identity: str
    raw: np.ndarray  # S×S×3 uint8
    target: np.ndarray  # S×S×3 uint8
    ita: float
    change: np.ndarray | None = None  # S×S float32 in [0, 1]: mean |raw − target| before the camera (unit range)


def ita_of(clean_rgb8: np.ndarray, skin: np.ndarray) -> float:
    """Individual typology angle (degrees) of the median skin colour."""
    import cv2

    lab = cv2.cvtColor(clean_rgb8.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    inside = skin > 0.5
    if not inside.any():
        return float("nan")
    L = float(np.median(lab[..., 0][inside]))
    b = float(np.median(lab[..., 2][inside]))
    return math.degrees(math.atan2(L - 50.0, b))


def ita_group(ita: float) -> str:
    for name, lo, hi in ITA_GROUPS:
        if lo <= ita < hi:
            return name
    return ITA_GROUPS[0][0] if ita >= 90 else ITA_GROUPS[-1][0]


def heldout_items(prepared: str | Path, size: int, appearance: str, seed: int = 1234, limit: int = 0, val_fraction: float = 0.2, camera: bool = True) -> list[HeldoutItem]:
    """One pair per held-out photo (``limit`` > 0: at most that many), deterministic in ``seed``."""
    import cv2

    from ..train.acne import synthesize_acne
    from ..train.blemish_alt import render_alt_blemishes
    from ..train.cleanup import clean_prepared_face
    from ..train.patches import exact_change
    from ..train.photometric import apply_camera

    if appearance not in APPEARANCES:
        raise ValueError(f"appearance must be one of {APPEARANCES}")
    faces = heldout_faces(prepared, val_fraction, limit)
    items = []
    for i, f in enumerate(faces):
        rng = np.random.default_rng([seed, i, APPEARANCES.index(appearance)])
        geo, clean8, _ = clean_prepared_face(f.file, f.landmarks, f.size)
        if appearance == "acne":
            res = synthesize_acne(clean8.astype(np.float32) / 255.0, rng, geo, landmarks=f.landmarks, severity=float(rng.uniform(0.3, 1.0)))
            raw8 = np.clip(res.raw * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif appearance == "alt":
            raw8, _ = render_alt_blemishes(clean8, rng, geo.skin, severity=float(rng.uniform(0.3, 1.0)))
        else:
            raw8 = clean8.copy()
        if camera:
            raw_s, tgt_s = apply_camera([raw8, clean8], rng, size)
        else:
            raw_s, tgt_s = (cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in (raw8, clean8))
        change = exact_change(raw8, clean8, size).astype(np.float32)
        items.append(HeldoutItem(f.file.stem, f.identity, raw_s, tgt_s, ita_of(clean8, geo.skin), change))
    return items


def run_clip(model, raw, delta: int, select=None) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | None]]:
    """Run a held-out sequence as the video pipeline does (SlidingRetoucher, per-frame parts cached,
    the corrections fused along the track for δ ≥ 2: :func:`..fusion.fused_retoucher`).

    raw [T, 3, S, S] in [-1, 1] → per frame: outputs uint8 S×S×3, composition maps S×S float,
    class maps [K, S, S] (None without class heads). ``select``: the class weights (class heads only).
    """
    from ..fusion import fused_retoucher

    runner = fused_retoucher(model, delta=delta, select=select)
    results = []
    for t in range(raw.shape[0]):
        results += runner.push([(t, 0, raw[t])])
    results += runner.flush()
    results.sort(key=lambda r: r.key)
    outs = [((r.out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy() for r in results]
    maps = [r.mask[0].numpy() for r in results]
    classes = [None if r.class_maps is None else r.class_maps.numpy() for r in results]
    return outs, maps, classes


def paste_weighted(raw8: np.ndarray, out8: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """What the pipeline writes for an aligned crop: raw + weight·gate·(out − raw), rounded
    (gate: :func:`vretouch_cli.face.paste.noise_gate`)."""
    from ..face.paste import noise_gate

    d = out8.astype(np.float32) - raw8.astype(np.float32)
    d *= noise_gate(raw8, d)[..., None]
    return np.clip(np.rint(raw8.astype(np.float32) + d * weight[..., None]), 0, 255).astype(np.uint8)


def heldout_faces(prepared: str | Path, val_fraction: float = 0.2, limit: int = 0) -> list:
    """The prepared faces of the people training holds out (its identity split), in order;
    ``limit`` > 0: at most that many."""
    from ..train.data import split_by_identity
    from ..train.prepare import load_prepared

    faces = load_prepared(prepared)
    _, held = split_by_identity([f.identity for f in faces], val_fraction)
    faces = [f for f in faces if f.identity in held]
    return faces[:limit] if limit else faces
