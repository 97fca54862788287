"""Acne-like skin problems on clean aligned face crops: the training data's appearance model.

What a professional retouch of an acne-prone face changes, measured on real before/after pairs
(issue 10): > 5 levels on about 2.5 % of a 1024² portrait, mostly dozens of tiny red dots and small
papules, blotchy redness around the nose and chin; pores, hair and eyes untouched. The first
synthesiser (:mod:`.blemish`) changed 0.1 % of a face and left half the samples nearly clean, so a
model could score well by changing nothing. This one renders, per face:

- ``dot``: tiny red dots (1–3 px at 512), many of them;
- ``papule``: raised red bumps (3–10 px) with a darker core and shading from a light direction
  (a highlight on the lit flank, a shadow on the other);
- ``pustule``: a papule with a pale yellow-white head;
- ``mark``: post-inflammatory marks, flat, irregular, red-brown, low contrast (4–14 px);
- ``comedone``: small dark open comedones (1–3 px);
- ``redness``: diffuse blotchy redness patches (tens of px) on the nose sides, cheeks and chin.

Spots cluster (cheeks > chin, forehead > elsewhere) and are rendered as per-pixel shifts in CIE Lab
with the lightness change proportional to the local lightness, so the skin's own texture stays
visible under them. Every kind is reported as a class map (``acne`` = dot + papule + pustule,
``marks`` = mark + comedone, ``redness``) so later models can learn per-class maps, and with its
own Lab shift (:attr:`AcneResult.shifts`) so a training pair can remove some classes and keep the
others exactly (:mod:`.classpairs`). The class names are :data:`vretouch_cli.classes.TEMPORARY`.

Images are float32 H×W×3 RGB in [0, 1]; maps float32 H×W in [0, 1]. Sizes are given at S = 512
and scaled with the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..classes import TEMPORARY
from .blemish import SkinGeometry, clustered_points, face_regions, lab_to_rgb, rgb_to_lab, template_landmarks

SPOT_KINDS = ("dot", "papule", "pustule", "mark", "comedone")
CLASS_OF = {"dot": "acne", "papule": "acne", "pustule": "acne", "mark": "marks", "comedone": "marks", "redness": "redness"}
CLASSES = TEMPORARY  # the temporary classes of vretouch_cli.classes: one source of truth


@dataclass(frozen=True)
class AcneParams:
    """Knobs of the acne model. ``severity`` sets how many spots a face gets, ``strength`` how
    strong they are; both are drawn per face from their ranges (curricula narrow the ranges)."""

    p_clean: float = 0.2  # faces without any blemish (teach "change nothing"); ≥ 70 % carry some
    max_spots: int = 80
    severity_range: tuple[float, float] = (0.0, 1.0)
    strength_range: tuple[float, float] = (0.8, 1.6)
    p_kind: tuple[float, ...] = (0.38, 0.24, 0.08, 0.16, 0.14)  # dot, papule, pustule, mark, comedone
    p_redness: float = 0.55  # faces with diffuse redness patches
    clustered: float = 0.7
    # Darker skin shows inflamed spots and their marks darker and browner, and their redness less,
    # than light skin does (hyperpigmentation). With this probability per face the spots' Lab
    # shifts are turned that way by an amount that grows with the skin's darkness
    # (:func:`tone_shift`; nothing happens on light skin). 0 = every face as before, to the bit:
    # the held-out sets keep this default.
    dark_tone: float = 0.0


@dataclass
class AcneResult:
    raw: np.ndarray  # H×W×3 float32 in [0, 1]
    alpha: np.ndarray  # H×W float32 in [0, 1]: footprint of everything that was added
    classes: dict[str, np.ndarray] = field(default_factory=dict)  # class → H×W footprint
    counts: dict[str, int] = field(default_factory=dict)
    # class → H×W×3 float32 Lab shift with the strength applied (see :func:`shift_lab`); their sum
    # is what ``raw`` renders (up to float rounding), each one alone is that class's change.
    shifts: dict[str, np.ndarray] = field(default_factory=dict)


def shift_lab(lab: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Apply a Lab shift in place and return ``lab``: L* += shift[..., 0]·L* (lightness change
    relative to the local lightness, so the skin's texture stays visible), a* += shift[..., 1],
    b* += shift[..., 2]. ``shift`` is H×W×3 float32, ``lab`` H×W×3 from :func:`.blemish.rgb_to_lab`."""
    lab[..., 0] += shift[..., 0] * lab[..., 0]
    lab[..., 1] += shift[..., 1]
    lab[..., 2] += shift[..., 2]
    return lab


def supersampling(radius: float) -> int:
    """Supersampling factor of a spot patch: small spots are anti-aliased, big ones are smooth."""
    return 3 if radius < 1.5 else 2 if radius < 3.5 else 1


def downsample(a: np.ndarray, ss: int) -> np.ndarray:
    """Box-average an (n·ss)² supersampled patch to n² float32."""
    n = a.shape[0] // ss
    return a.reshape(n, ss, n, ss).mean(axis=(1, 3)).astype(np.float32)


_DIAMETER_512 = {"dot": (1.0, 3.0), "papule": (3.0, 10.0), "pustule": (4.0, 11.0), "mark": (4.0, 14.0), "comedone": (1.0, 3.0)}

# Redness prior (face-local units, see blemish._face_frame): nose sides, cheeks, chin.
_REDNESS_REGIONS = (
    (-0.28, 0.55, 0.22, 0.22, 1.0),
    (0.28, 0.55, 0.22, 0.22, 1.0),
    (-0.6, 0.7, 0.3, 0.35, 0.7),
    (0.6, 0.7, 0.3, 0.35, 0.7),
    (0.0, 1.5, 0.38, 0.22, 0.8),
    (0.0, -0.75, 0.6, 0.25, 0.35),
)


def _patch_grid(radius: float, rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray, int]:
    half = int(math.ceil(2.6 * radius + 2))
    n = 2 * half + 1
    off = (np.arange(n * ss) + 0.5) / ss - 0.5 - half
    gx, gy = np.meshgrid(off + rng.uniform(-0.5, 0.5), off + rng.uniform(-0.5, 0.5))
    return gx, gy, half


def _irregular_radius(gx: np.ndarray, gy: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Distance from the centre in units of a wobbly, elongated outline (not a perfect disc)."""
    phi = rng.uniform(0, math.pi)
    aspect = rng.uniform(0.65, 1.0)
    x = gx * math.cos(phi) + gy * math.sin(phi)
    y = (-gx * math.sin(phi) + gy * math.cos(phi)) / aspect
    theta = np.arctan2(y, x)
    wobble = 1.0
    for k in (2, 3, 4, 6):
        wobble = wobble + rng.uniform(0.0, amount / math.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    return np.hypot(x, y) / np.maximum(wobble, 0.4)


def _render_spot(kind: str, diameter: float, light: np.ndarray, rng: np.random.Generator):
    """One spot on a small patch: (footprint, dL_rel, da, db, half). dL_rel is relative to the
    skin's lightness (×L*/100 later), da, db in Lab units."""
    radius = diameter / 2.0
    ss = supersampling(radius)
    gx, gy, half = _patch_grid(radius, rng, ss)
    r = _irregular_radius(gx, gy, rng, 0.35 if kind == "mark" else 0.18) / max(radius, 0.35)
    tex = rng.standard_normal(gx.shape).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), max(0.7, 0.6 * ss))
    tex = 1.0 + 0.25 * tex / (tex.std() + 1e-6)
    if kind == "mark":
        p = np.exp(-0.5 * (r / 0.85) ** 4)  # flat top, soft edge
    else:
        p = np.exp(-0.5 * (r / 0.7) ** 2)
    p = np.clip(p * tex, 0.0, 1.0)
    core = p**3
    dL = np.zeros_like(p)
    da = np.zeros_like(p)
    db = np.zeros_like(p)
    if kind == "dot":
        dL = -rng.uniform(0.06, 0.16) * p
        da = rng.uniform(6.0, 14.0) * p
        db = rng.uniform(0.0, 3.0) * p
    elif kind in ("papule", "pustule"):
        # Raised bump: a height map lit from ``light`` gives a highlight and a shadow flank.
        height = np.exp(-0.5 * (r / 0.8) ** 2)
        gy_h, gx_h = np.gradient(height)
        shade = -(gx_h * light[0] + gy_h * light[1]) * ss * max(radius, 1.0)
        dL = -rng.uniform(0.05, 0.12) * (0.5 * p + 0.5 * core) + rng.uniform(0.03, 0.08) * np.clip(shade, -1, 1)
        da = rng.uniform(7.0, 16.0) * p**0.8
        db = rng.uniform(0.5, 3.0) * p
        if kind == "pustule":
            head = np.exp(-0.5 * (r / rng.uniform(0.22, 0.35)) ** 2)
            dL = dL + rng.uniform(0.08, 0.18) * head
            da = da * (1.0 - 0.8 * head)
            db = db + rng.uniform(4.0, 10.0) * head
    elif kind == "mark":
        dL = -rng.uniform(0.04, 0.10) * p
        da = rng.uniform(3.0, 8.0) * p
        db = rng.uniform(2.0, 6.0) * p
    else:  # comedone: small, dark, grey-brown
        dL = -rng.uniform(0.15, 0.35) * (0.4 * p + 0.6 * core)
        da = rng.uniform(0.0, 2.0) * p
        db = rng.uniform(1.0, 4.0) * p

    return downsample(p, ss), downsample(dL, ss), downsample(da, ss), downsample(db, ss), half


def skin_darkness(skin_l: float) -> float:
    """0 for skin at L* ≥ 62 (light), rising linearly to 1 at L* ≤ 32 (the darkest FRLL skin)."""
    return float(np.clip((62.0 - skin_l) / 30.0, 0.0, 1.0))


def tone_shift(shift: np.ndarray, darkness: float, darken: float, brown: float) -> np.ndarray:
    """Turn a blemish's Lab shift [..., 3] (dL relative to L*, da, db) into how it shows on skin of
    this ``darkness`` (0–1): of every 10 units of added redness, ``darken`` more relative lightness
    is lost and ``brown`` units of b* are gained, and the redness itself falls to 30 % on the
    darkest skin. Linear, so the per-class parts still add up to the total."""
    out = shift.astype(np.float32).copy()
    red = shift[..., 1] / 10.0
    out[..., 0] = shift[..., 0] - darken * darkness * red
    out[..., 1] = shift[..., 1] * (1.0 - 0.7 * darkness)
    out[..., 2] = shift[..., 2] + brown * darkness * red
    return out


def _redness_field(geo: SkinGeometry, size: int, rng: np.random.Generator, landmarks: np.ndarray | None) -> np.ndarray:
    """Blotchy low-frequency redness in [0, 1], concentrated on the nose sides, cheeks and chin."""
    lm = template_landmarks(size) if landmarks is None else landmarks
    regions = face_regions(lm, size)
    # Face-local coordinates via the same ellipse helper: reuse the "face" frame by sampling prior
    # ellipses relative to the landmarks.
    eye_mid = (lm[0] + lm[1]) / 2.0
    u = (lm[1] - lm[0]) / (np.linalg.norm(lm[1] - lm[0]) + 1e-6)
    v = np.array([-u[1], u[0]])
    d = float(np.linalg.norm(lm[1] - lm[0]))
    h = float(np.dot((lm[3] + lm[4]) / 2.0 - eye_mid, v)) or d
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    lx = ((xs - eye_mid[0]) * u[0] + (ys - eye_mid[1]) * u[1]) / d
    ly = ((xs - eye_mid[0]) * v[0] + (ys - eye_mid[1]) * v[1]) / h
    prior = np.zeros((size, size), np.float32)
    for cx, cy, rx, ry, w in _REDNESS_REGIONS:
        if rng.random() < 0.75:
            q = ((lx - cx) / rx) ** 2 + ((ly - cy) / ry) ** 2
            prior = np.maximum(prior, w * rng.uniform(0.5, 1.0) * np.exp(-q))
    noise = rng.standard_normal((size // 8 + 1, size // 8 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(noise, (0, 0), size / 512.0 * rng.uniform(6.0, 14.0))
    noise = (noise - noise.mean()) / (noise.std() + 1e-6)
    blotch = np.clip((noise + rng.uniform(-0.2, 0.6)) * 0.8, 0.0, 1.0)
    return (prior * blotch * (geo.skin > 0.5) * (1.0 - regions["exclude"])).astype(np.float32)


def synthesize_acne(
    clean: np.ndarray,
    rng: np.random.Generator,
    geometry: SkinGeometry,
    params: AcneParams = AcneParams(),
    landmarks: np.ndarray | None = None,
    severity: float | None = None,
    strength: float | None = None,
) -> AcneResult:
    """Add acne-like blemishes to a clean aligned face crop (float32 RGB in [0, 1], S×S).

    ``geometry`` comes from :func:`.blemish.skin_geometry` of the same crop. ``severity`` (0–1)
    and ``strength`` fix the draw (else random from ``params``); severity 0 returns the clean crop.
    Besides the class footprints, each class's own Lab shift is returned (``shifts``).
    """
    size = clean.shape[0]
    scale = size / 512.0
    zeros = np.zeros((size, size), np.float32)
    counts = {k: 0 for k in (*SPOT_KINDS, "redness")}
    no_shift = np.zeros((size, size, 3), np.float32)
    empty = AcneResult(clean.astype(np.float32).copy(), zeros.copy(), {c: zeros.copy() for c in CLASSES}, counts, {c: no_shift.copy() for c in CLASSES})
    if severity is None:
        severity = 0.0 if rng.random() < params.p_clean else rng.uniform(*params.severity_range)
    if strength is None:
        strength = rng.uniform(*params.strength_range)
    if severity <= 0 or geometry.skin.max() <= 0.5:
        return empty
    allowed = geometry.skin > 0.5
    n_spots = int(round(params.max_spots * severity ** 1.3 * rng.uniform(0.7, 1.0)))
    n_spots = max(n_spots, 1)

    # Positions: clusters on the weighted regions, the rest scattered.
    points = clustered_points(geometry.weight, allowed, geometry.eye_dist, n_spots, params.clustered, rng, per_cluster=10, spread=(0.06, 0.2), tries=6)

    dL_rel = zeros.copy()
    da = zeros.copy()
    db = zeros.copy()
    foot = {c: zeros.copy() for c in CLASSES}
    # Per class too (the totals above stay as they were, so ``raw`` is unchanged to the bit).
    parts = {c: np.zeros((size, size, 3), np.float32) for c in CLASSES}
    angle = rng.uniform(0, 2 * math.pi)
    light = np.array([math.cos(angle), math.sin(angle)])
    kinds_p = np.asarray(params.p_kind, np.float64)
    kinds_p /= kinds_p.sum()
    for cx, cy in points:
        kind = SPOT_KINDS[rng.choice(len(SPOT_KINDS), p=kinds_p)]
        lo, hi = _DIAMETER_512[kind]
        diameter = math.exp(rng.uniform(math.log(lo), math.log(hi))) * scale
        p, sl, sa, sb, half = _render_spot(kind, max(diameter, 0.7), light, rng)
        xi, yi = int(round(cx)), int(round(cy))
        x0, y0 = xi - half, yi - half
        px0, py0 = max(0, -x0), max(0, -y0)
        x0c, y0c = max(0, x0), max(0, y0)
        x1c, y1c = min(size, x0 + p.shape[1]), min(size, y0 + p.shape[0])
        if x1c <= x0c or y1c <= y0c:
            continue
        sl_ = (slice(y0c, y1c), slice(x0c, x1c))
        pp = (slice(py0, py0 + y1c - y0c), slice(px0, px0 + x1c - x0c))
        gate = geometry.skin[sl_]
        dL_rel[sl_] += sl[pp] * gate
        da[sl_] += sa[pp] * gate
        db[sl_] += sb[pp] * gate
        c = CLASS_OF[kind]
        parts[c][sl_] += np.stack([sl[pp], sa[pp], sb[pp]], axis=-1) * gate[..., None]
        foot[c][sl_] = np.maximum(foot[c][sl_], p[pp] * gate)
        counts[kind] += 1

    if rng.random() < params.p_redness * (0.5 + severity):
        red = _redness_field(geometry, size, rng, landmarks)
        if red.max() > 0.05:
            amount = rng.uniform(3.0, 8.0)
            red_shift = np.stack([-rng.uniform(0.01, 0.04) * red, amount * red, rng.uniform(0.0, 1.5) * red], axis=-1)
            dL_rel += red_shift[..., 0]
            da += red_shift[..., 1]
            db += red_shift[..., 2]
            parts["redness"] += red_shift
            foot["redness"] = np.clip(red * amount / 4.0, 0.0, 1.0)
            counts["redness"] = 1

    total = np.stack([dL_rel, da, db], axis=-1)
    if params.dark_tone > 0 and rng.random() < params.dark_tone:
        darkness = skin_darkness(geometry.skin_l)
        darken, brown = rng.uniform(0.2, 0.45), rng.uniform(0.0, 2.0)
        total = tone_shift(total, darkness, darken, brown)
        parts = {c: tone_shift(v, darkness, darken, brown) for c, v in parts.items()}
        dL_rel, da, db = total[..., 0], total[..., 1], total[..., 2]
    raw = lab_to_rgb(shift_lab(rgb_to_lab(clean), strength * total))
    touched = (np.abs(dL_rel) + np.abs(da) + np.abs(db)) > 0
    raw = np.where(touched[..., None], raw, clean).astype(np.float32)
    alpha = np.maximum.reduce([foot[c] for c in CLASSES])
    shifts = {c: (strength * parts[c]).astype(np.float32) for c in CLASSES}
    return AcneResult(raw, alpha.astype(np.float32), foot, counts, shifts)
