"""Held-out evaluation of what a model removes and what it keeps (issue 11).

Each held-out person's cleaned crop (as in :mod:`.heldout`) gets moles, freckles and acne together
(:func:`vretouch_cli.train.classpairs.draw_classes` with :data:`EVAL_FEATURES`: at least one mole
and freckles on every face, acne severity 0.3–1), one seeded camera for the input and both targets
(the default selection's: acne, redness and marks removed; ``all``'s: everything removed), and the
per-class footprints at the model's size. :func:`evaluate_classes` moves each item as a
smooth-motion sequence, runs the model as the video pipeline does (SlidingRetoucher, the model's
δ), pastes the correction with the pipeline's weight (retouch region × the crop's skin weight) and
reports, over the face region:

- ``soft_iou``: per class head, Soft-IoU of the model's class map against the class's footprint
  (the unpasted map: where the model thinks the class is), ΣMin / ΣMax over the set;
- ``soft_iou_change`` / ``soft_iou_change_train``: the same against the class's own change (mean
  |input − input with only that class removed| over R, G, B, before the camera,
  :func:`vretouch_cli.train.classpairs.class_differences`) divided by the evaluator's M_gt scale
  (0.1) / by the training recipe's ``--gt-scale`` (0.03), the map the heads are trained on;
- ``default`` (the temporary classes removed): the PSNR gain against the default target inside the
  region of acne, redness and marks (their footprints > 0.1, grown by 2 px), and the share of mole
  and freckle pixels (footprint ≥ 0.25, away from any temporary class) the output leaves within 2
  levels of the input;
- ``all`` (every class removed): the PSNR gain against that target inside the moles' region, and
  inside the freckles'.

Weights without class heads run once (they ignore the selection): no ``soft_iou``, and the numbers
show what a merged model does to moles and freckles. PSNR is pooled over all frames of the set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import CLASSES, TEMPORARY, default_vector
from .heldout import heldout_faces, paste_weighted, run_clip


def _eval_features():
    from ..train.features import FeatureParams

    return FeatureParams(p_moles=(0.0, 0.4, 0.3, 0.2, 0.1), p_freckles=1.0)


@dataclass
class ClassItem:
    name: str
    identity: str
    raw: np.ndarray  # S×S×3 uint8: clean + moles + freckles + acne
    default: np.ndarray  # S×S×3 uint8: the raw with acne, redness and marks removed
    all: np.ndarray  # S×S×3 uint8: everything removed (the cleaned crop)
    footprints: np.ndarray  # S×S×K float32 in [0, 1], K = len(CLASSES), CLASSES order
    ita: float = float("nan")
    changes: np.ndarray | None = None  # S×S×K float32 in [0, 1]: each class's own change (unit range), CLASSES order


def class_item(
    clean8: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, size: int, name: str = "", identity: str = "",
    camera: bool = True, feature_params=None, severity: float | None = None,
) -> ClassItem:
    """One evaluation item from a cleaned aligned crop (uint8 H×W×3) and its five landmarks."""
    import cv2

    from ..train.blemish import skin_geometry
    from ..train.classpairs import class_differences, draw_classes, render_pair
    from ..train.photometric import apply_camera
    from .heldout import ita_of

    lm = np.asarray(landmarks, np.float32)
    clean = clean8.astype(np.float32) / 255.0
    geo = skin_geometry(clean, lm).compact()
    sev = float(rng.uniform(0.3, 1.0)) if severity is None else float(severity)
    layers = draw_classes(clean, rng, geo, lm, feature_params or _eval_features(), severity=sev)
    inp, default = render_pair(clean, layers.shifts, layers.footprints, default_vector())
    _, everything = render_pair(clean, layers.shifts, layers.footprints, [1.0] * len(CLASSES))
    images = [np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8) for x in (inp, default, everything)]
    if camera:
        images = apply_camera(images, rng, size)
    else:
        images = [cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in images]
    feet = np.stack([layers.footprints[c] for c in CLASSES], axis=-1).astype(np.float32)
    diffs = class_differences(clean, layers.shifts, layers.footprints)
    changes = np.stack([diffs[c] for c in CLASSES], axis=-1).astype(np.float32)
    if feet.shape[0] != size:
        feet = cv2.resize(feet, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, len(CLASSES))
        changes = cv2.resize(changes, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, len(CLASSES))
    return ClassItem(
        name, identity, images[0], images[1], images[2], np.clip(feet, 0.0, 1.0), ita_of(clean8, geo.skin), np.clip(changes, 0.0, 1.0)
    )


def class_heldout_items(prepared: str | Path, size: int, seed: int = 1234, limit: int = 0, val_fraction: float = 0.2, camera: bool = True) -> list[ClassItem]:
    """One item per held-out photo (the identity split of training; ``limit`` > 0: at most that
    many), deterministic in ``seed``."""
    from ..train.cleanup import clean_prepared_face

    faces = heldout_faces(prepared, val_fraction, limit)
    items = []
    for i, f in enumerate(faces):
        rng = np.random.default_rng([seed, i, 11])
        _, clean8, _ = clean_prepared_face(f.file, f.landmarks, f.size)
        items.append(class_item(clean8, f.landmarks, rng, size, f.file.stem, f.identity, camera))
    return items


class _Gain:
    """Pooled squared errors of the output and of the raw input against a target in a region."""

    def __init__(self) -> None:
        self.out = self.raw = 0.0
        self.n = 0

    def add(self, out8: np.ndarray, raw8: np.ndarray, tgt8: np.ndarray, region: np.ndarray) -> None:
        if not region.any():
            return
        t = tgt8[region].astype(np.float64)
        self.out += float(((out8[region].astype(np.float64) - t) ** 2).sum())
        self.raw += float(((raw8[region].astype(np.float64) - t) ** 2).sum())
        self.n += int(region.sum()) * 3

    def psnr(self, se: float) -> float:
        return 10.0 * math.log10(255.0**2 / max(se / self.n, 1e-10)) if self.n else float("nan")

    def report(self, name: str) -> dict[str, float]:
        return {
            f"{name}_psnr_gain": self.psnr(self.out) - self.psnr(self.raw),
            f"{name}_psnr_raw": self.psnr(self.raw),
            f"{name}_pixels": self.n // 3,
        }


def evaluate_classes(
    model, items: list[ClassItem], frames: int = 8, seed: int = 1234, delta: int | None = None, on_item=None, train_gt_scale: float = 0.03,
) -> dict:
    """The numbers of the module docstring for ``model`` (a VRetouchEr, eval mode, CPU) over ``items``."""
    import cv2
    import torch

    from ..face.paste import face_region_mask, retouch_region_mask
    from ..face.regions import skin_weight
    from ..train.data import to_model_range
    from ..train.motion import random_motion, warp_frames

    cfg = model.config
    S = int(cfg.size)
    delta = cfg.delta if delta is None else int(delta)
    heads = tuple(cfg.classes)
    face = face_region_mask(S) > 0.5
    paste_w = retouch_region_mask(S)
    grow = np.ones((5, 5), np.uint8)
    temp_idx = [CLASSES.index(c) for c in TEMPORARY]
    mole, freckle = CLASSES.index("mole"), CLASSES.index("freckle")
    from ..evaluate.metrics import GT_MAP_SCALE

    scales = {"soft_iou": None, "soft_iou_change": GT_MAP_SCALE, "soft_iou_change_train": float(train_gt_scale)}
    inter = {key: np.zeros(len(heads)) for key in scales}
    union = {key: np.zeros(len(heads)) for key in scales}
    acne_gain, mole_gain, freckle_gain = _Gain(), _Gain(), _Gain()
    kept = {"mole": [0, 0], "freckle": [0, 0]}  # [within 2 levels, pixels]

    def grown(m: np.ndarray) -> np.ndarray:
        return (cv2.dilate(m.astype(np.uint8), grow) > 0) & face

    with torch.inference_mode():
        for i, it in enumerate(items):
            rng = np.random.default_rng([seed, i, 99])
            affines = random_motion(frames, S, rng)
            raw8 = warp_frames(it.raw, affines, S)
            tgt_default = warp_frames(it.default, affines, S)
            tgt_all = warp_frames(it.all, affines, S)
            feet = warp_frames(it.footprints, affines, S).reshape(frames, S, S, len(CLASSES))
            changes = None if it.changes is None else warp_frames(it.changes, affines, S).reshape(frames, S, S, len(CLASSES))
            raw = to_model_range(torch.from_numpy(np.ascontiguousarray(raw8.transpose(0, 3, 1, 2))))
            if heads:
                out_d, _, maps = run_clip(model, raw, delta, default_vector(heads))
                out_a, _, _ = run_clip(model, raw, delta, [1.0] * len(heads))
            else:
                out_d, _, maps = run_clip(model, raw, delta, None)
                out_a = out_d
            for t in range(frames):
                w = paste_w * skin_weight(raw8[t])  # the default selection keeps moles
                w_all = paste_w * skin_weight(raw8[t], keep_moles=False)  # --remove all does not
                od, oa = paste_weighted(raw8[t], out_d[t], w), paste_weighted(raw8[t], out_a[t], w_all)
                f = feet[t]
                temp = f[..., temp_idx].max(axis=-1)
                if heads:
                    for k, c in enumerate(heads):
                        p = maps[t][k][face]
                        for key, scale in scales.items():
                            if scale is None:
                                g = f[..., CLASSES.index(c)][face]
                            elif changes is not None:
                                g = np.clip(changes[t][..., CLASSES.index(c)][face] / scale, 0.0, 1.0)
                            else:
                                continue
                            inter[key][k] += float(np.minimum(p, g).sum())
                            union[key][k] += float(np.maximum(p, g).sum())
                acne_gain.add(od, raw8[t], tgt_default[t], grown(temp > 0.1))
                mole_gain.add(oa, raw8[t], tgt_all[t], grown(f[..., mole] > 0.1))
                freckle_gain.add(oa, raw8[t], tgt_all[t], grown(f[..., freckle] > 0.1))
                change = np.abs(od.astype(np.int16) - raw8[t].astype(np.int16)).max(axis=-1)
                for name, k in (("mole", mole), ("freckle", freckle)):
                    sel = (f[..., k] >= 0.25) & (temp < 0.02) & face
                    kept[name][0] += int((change[sel] <= 2).sum())
                    kept[name][1] += int(sel.sum())
            if on_item:
                on_item(i, it)

    default = acne_gain.report("acne_region")
    for name, (ok, n) in kept.items():
        default[f"{name}_kept_share"] = ok / n if n else float("nan")
        default[f"{name}_pixels"] = n
    return {
        "items": len(items),
        "frames_per_sequence": frames,
        "delta": delta,
        "class_heads": list(heads),
        **{
            key: {c: float(inter[key][k] / union[key][k]) if union[key][k] > 0 else float("nan") for k, c in enumerate(heads)}
            for key in scales
        },
        "train_gt_scale": float(train_gt_scale),
        "default": default,
        "all": {**mole_gain.report("mole_region"), **freckle_gain.report("freckle_region")},
    }
