"""Moles and freckles on clean aligned face crops: the permanent features a retoucher keeps (issue 11).

A professional retouch removes what is temporary (:mod:`.acne`) and keeps what is the person. To
learn that difference a model must see both on the same face, so this module renders, per face:

- ``mole``: 0–4 (many faces none), round or slightly oval, 3–12 px across at S = 512, medium to
  dark brown (a large drop in lightness, a brownish a*/b* shift), a fairly sharp edge, mottled
  inside; some are raised and catch a small highlight on the lit side;
- ``freckle``: on about a third of the faces, 10–120 small flat light-brown spots (1–4 px at 512),
  low to medium contrast, one colour per face with some variation, irregular outlines, clustered
  over the nose bridge and the upper cheeks.

They are rendered like acne (:func:`.acne.shift_lab`): per-pixel shifts in CIE Lab with the
lightness change relative to the local lightness, faded out at the skin's edge, nothing off the
skin. Each class comes with its footprint and its own Lab shift, and every shift is zero where its
footprint is, so :mod:`.classpairs` can keep or remove each class exactly.

Images are float32 H×W×3 RGB in [0, 1]; maps float32 H×W in [0, 1]. Sizes are given at S = 512
and scaled with the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..classes import CLASSES, TEMPORARY
from ..face.regions import face_frame
from .acne import _irregular_radius, _patch_grid, downsample, shift_lab, supersampling
from .blemish import SkinGeometry, clustered_points, lab_to_rgb, rgb_to_lab, template_landmarks

FEATURES: tuple[str, ...] = tuple(c for c in CLASSES if c not in TEMPORARY)  # ("mole", "freckle")

# Where freckles gather (face-local units of face.regions.face_frame: x in eye distances, y from
# the eye line towards the mouth in eye-to-mouth distances): cx, cy, rx, ry, weight.
_FRECKLE_REGIONS = (
    (0.0, 0.28, 0.2, 0.36, 1.0),  # nose bridge and the top of the nose
    (-0.48, 0.42, 0.34, 0.22, 1.0),  # upper cheeks, under the eyes
    (0.48, 0.42, 0.34, 0.22, 1.0),
    (0.0, -0.62, 0.55, 0.28, 0.12),  # a few on the forehead
)

_CUT = 1e-3  # profile values below this are zero: a spot's footprint is compact and covers its shift


@dataclass(frozen=True)
class FeatureParams:
    """Knobs of the mole and freckle model (sizes at S = 512; lightness drops relative to L*)."""

    p_moles: tuple[float, ...] = (0.4, 0.25, 0.17, 0.1, 0.08)  # P(0, 1, 2, 3, 4 moles on a face)
    mole_diameter_512: tuple[float, float] = (3.0, 12.0)
    mole_darkness: tuple[float, float] = (0.25, 0.55)  # ΔL*/L* at the centre: medium to dark brown
    p_raised: float = 0.35  # moles that are raised (lighter, with a highlight)
    p_freckles: float = 0.35  # faces with freckles
    freckle_count: tuple[int, int] = (10, 120)  # log-uniform
    freckle_diameter_512: tuple[float, float] = (1.0, 4.0)
    freckle_darkness: tuple[float, float] = (0.05, 0.16)  # ΔL*/L*: low to medium contrast
    freckle_clustered: float = 0.6  # share placed around a few cluster centres


@dataclass
class FeatureResult:
    raw: np.ndarray  # H×W×3 float32 in [0, 1]: the clean crop with the features
    alpha: np.ndarray  # H×W float32 in [0, 1]: footprint of everything that was added
    classes: dict[str, np.ndarray] = field(default_factory=dict)  # "mole", "freckle" → H×W footprint
    counts: dict[str, int] = field(default_factory=dict)
    # class → H×W×3 float32 Lab shift (see .acne.shift_lab), zero wherever the footprint is zero
    shifts: dict[str, np.ndarray] = field(default_factory=dict)


def draw_counts(rng: np.random.Generator, params: FeatureParams = FeatureParams()) -> tuple[int, int]:
    """(moles, freckles) of one face: moles by ``p_moles``; freckles on a share ``p_freckles`` of
    the faces, log-uniform in ``freckle_count``."""
    p = np.asarray(params.p_moles, np.float64)
    moles = int(rng.choice(len(p), p=p / p.sum()))
    if rng.random() >= params.p_freckles:
        return moles, 0
    lo, hi = params.freckle_count
    return moles, int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def freckle_weight(geometry: SkinGeometry, landmarks: np.ndarray | None = None) -> np.ndarray:
    """Where freckles are likely (H×W float32): the nose bridge and the upper cheeks, on skin."""
    size = geometry.skin.shape[0]
    lm = template_landmarks(size) if landmarks is None else np.asarray(landmarks, np.float32)
    eye_mid, u, v, d, h = face_frame(lm)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px, py = xs - eye_mid[0], ys - eye_mid[1]
    lx = (px * u[0] + py * u[1]) / d
    ly = (px * v[0] + py * v[1]) / h
    prior = np.zeros((size, size), np.float64)
    for cx, cy, rx, ry, w in _FRECKLE_REGIONS:
        prior = np.maximum(prior, w * np.exp(-(((lx - cx) / rx) ** 2 + ((ly - cy) / ry) ** 2)))
    prior[prior < 0.02] = 0.0
    return (prior * (geometry.skin > 0.5)).astype(np.float32)


def _render_mole(diameter: float, light: np.ndarray, raised: bool, params: FeatureParams, rng: np.random.Generator):
    """One mole on a small patch: (footprint, dL_rel, da, db, half)."""
    radius = diameter / 2.0
    ss = supersampling(radius)
    gx, gy, half = _patch_grid(radius, rng, ss)
    phi = rng.uniform(0, math.pi)
    aspect = rng.uniform(0.8, 1.0)  # round or slightly oval
    x = gx * math.cos(phi) + gy * math.sin(phi)
    y = (-gx * math.sin(phi) + gy * math.cos(phi)) / aspect
    r = np.hypot(x, y) / radius
    edge = rng.uniform(0.06, 0.14)  # fairly sharp: the edge is a few per cent of the radius
    p = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / edge, -60.0, 60.0)))
    tex = cv2.GaussianBlur(rng.standard_normal(gx.shape).astype(np.float32), (0, 0), max(0.8, 0.25 * radius * ss))
    tex = 1.0 + 0.12 * tex / (tex.std() + 1e-6)  # mottled pigment
    dark = rng.uniform(*params.mole_darkness) * (rng.uniform(0.6, 0.9) if raised else 1.0)
    dL = -dark * p * tex
    da = rng.uniform(-1.0, 4.0) * p
    db = rng.uniform(0.0, 6.0) * p
    if raised:  # a dome: a small highlight on the side facing the light (acne's papules agree)
        hx, hy = 0.35 * radius * light[0], 0.35 * radius * light[1]
        spot = np.exp(-0.5 * ((gx - hx) ** 2 + (gy - hy) ** 2) / (0.3 * radius) ** 2)
        dL = dL + rng.uniform(0.08, 0.2) * spot * p
    p = np.where(p < _CUT, 0.0, p)
    dL, da, db = (np.where(p > 0, a, 0.0) for a in (dL, da, db))
    return downsample(p, ss), downsample(dL, ss), downsample(da, ss), downsample(db, ss), half


def _render_freckle(diameter: float, colour: tuple[float, float, float], rng: np.random.Generator):
    """One freckle on a small patch: (footprint, dL_rel, da, db, half)."""
    radius = diameter / 2.0
    ss = supersampling(radius)
    gx, gy, half = _patch_grid(radius, rng, ss)
    r = _irregular_radius(gx, gy, rng, 0.35) / max(radius, 0.35)
    p = np.exp(-0.5 * (r / 0.85) ** 4)  # flat, soft edge, irregular outline
    p = np.where(p < _CUT, 0.0, p)
    k = rng.uniform(0.6, 1.3)  # one colour per face, each freckle a little lighter or darker
    dL, da, db = (k * c * p for c in colour)
    return downsample(p, ss), downsample(dL, ss), downsample(da, ss), downsample(db, ss), half


def _paste(spot, cx: float, cy: float, geometry: SkinGeometry, foot: np.ndarray, shift: np.ndarray) -> bool:
    """Add one rendered spot at (cx, cy), faded by the skin mask; True when it landed on skin."""
    p, dL, da, db, half = spot
    size = foot.shape[0]
    x0, y0 = int(round(cx)) - half, int(round(cy)) - half
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(size, x0 + p.shape[1]), min(size, y0 + p.shape[0])
    if xa >= xb or ya >= yb:
        return False
    pp = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    gate = geometry.skin[ya:yb, xa:xb]
    footprint = p[pp] * gate
    if footprint.max() <= 0:
        return False
    shift[ya:yb, xa:xb] += np.stack([dL[pp], da[pp], db[pp]], axis=-1) * gate[..., None]
    foot[ya:yb, xa:xb] = np.maximum(foot[ya:yb, xa:xb], footprint)
    return True


def synthesize_features(
    clean: np.ndarray,
    rng: np.random.Generator,
    geometry: SkinGeometry,
    params: FeatureParams = FeatureParams(),
    landmarks: np.ndarray | None = None,
    moles: int | None = None,
    freckles: int | None = None,
) -> FeatureResult:
    """Add moles and freckles to a clean aligned face crop (float32 RGB in [0, 1], S×S).

    ``geometry`` comes from :func:`.blemish.skin_geometry` of the same crop; ``landmarks`` are the
    crop's five landmarks (else the template's). ``moles`` and ``freckles`` fix the counts (else
    drawn by :func:`draw_counts`). No skin, or no feature, returns the crop unchanged with zero
    footprints. The same ``rng`` state gives the same result.
    """
    clean = np.asarray(clean, np.float32)
    size = clean.shape[0]
    drawn = draw_counts(rng, params)
    n_moles = drawn[0] if moles is None else int(moles)
    n_freckles = drawn[1] if freckles is None else int(freckles)
    foot = {c: np.zeros((size, size), np.float32) for c in FEATURES}
    shifts = {c: np.zeros((size, size, 3), np.float32) for c in FEATURES}
    counts = {c: 0 for c in FEATURES}
    allowed = geometry.skin > 0.5
    if (n_moles <= 0 and n_freckles <= 0) or not allowed.any():
        return FeatureResult(clean.copy(), np.zeros((size, size), np.float32), foot, counts, shifts)
    scale = size / 512.0
    angle = rng.uniform(0, 2 * math.pi)
    light = np.array([math.cos(angle), math.sin(angle)])

    if n_moles > 0:  # anywhere on the skin
        lo, hi = params.mole_diameter_512
        for cx, cy in clustered_points(allowed.astype(np.float32), allowed, geometry.eye_dist, n_moles, 0.0, rng):
            spot = _render_mole(max(rng.uniform(lo, hi) * scale, 0.8), light, rng.random() < params.p_raised, params, rng)
            counts["mole"] += int(_paste(spot, cx, cy, geometry, foot["mole"], shifts["mole"]))

    weight = freckle_weight(geometry, landmarks) if n_freckles > 0 else None
    if weight is not None and weight.max() > 0:
        colour = (-rng.uniform(*params.freckle_darkness), rng.uniform(0.5, 3.5), rng.uniform(3.0, 8.0))  # light brown
        lo, hi = params.freckle_diameter_512
        points = clustered_points(weight, allowed, geometry.eye_dist, n_freckles, params.freckle_clustered, rng, per_cluster=30, spread=(0.08, 0.2))
        for cx, cy in points:
            diameter = math.exp(rng.uniform(math.log(lo), math.log(hi))) * scale
            spot = _render_freckle(max(diameter, 0.7), colour, rng)
            counts["freckle"] += int(_paste(spot, cx, cy, geometry, foot["freckle"], shifts["freckle"]))

    for c in FEATURES:  # float underflow at a faded edge must not leave a shift without a footprint
        shifts[c][foot[c] <= 0] = 0.0
    total = shifts["mole"] + shifts["freckle"]
    touched = (total != 0).any(axis=-1)
    raw = np.where(touched[..., None], lab_to_rgb(shift_lab(rgb_to_lab(clean), total)), clean).astype(np.float32)
    alpha = np.maximum(foot["mole"], foot["freckle"])
    return FeatureResult(raw, alpha, foot, counts, shifts)
