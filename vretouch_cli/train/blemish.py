"""Synthetic skin imperfections on clean, aligned face crops (MODEL.md §4).

Clean studio photos have no retouched twin, so we make the pair the other way round: the clean
crop is the target and we *add* blemishes to get the raw input. What a retoucher removes, measured
on a real FFHQR pair, sets the numbers:

- up to ~150 separate spots per face (resolution independent), clustered on cheeks, forehead and
  chin; none on eyes, brows, lips, nostrils, hair or background;
- diameters 1–10 px at S = 512 (log-normal, median ≈ 3.5 px), scaled with S;
- on average darker (ΔL* ≈ −4) and redder (Δa* ≈ +2) than the clean skin inside the spot, with
  stronger cores; only ≈ 1 % of the image changes by more than 10 levels.

Four kinds are drawn: papules (red, soft, darker core), pustules (pale centre, red rim), flat
red-brown marks (irregular, larger, low contrast) and small dark spots. Each spot is a soft
profile with a noisy, non-circular outline and a per-pixel noise texture. It is applied as a
shift in CIE Lab, with the lightness shift proportional to the local lightness (multiplicative),
so the clean image's own texture (pores, fine hair) stays visible under the spot.

Where the skin is comes from the five aligned landmarks (face-template geometry: cheek, forehead
and chin regions minus eyes, brows, nostrils and lips) intersected with a skin-colour test that
adapts to the face's own cheek colour (so hair, glasses and background drop out for any skin tone).

Images here are ``float32`` H×W×3 RGB in [0, 1]; maps are ``float32`` H×W in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..face.align import template
from ..face.regions import face_regions

__all__ = [
    "BlemishParams",
    "BlemishResult",
    "template_landmarks",
    "face_regions",
    "skin_mask",
    "SkinGeometry",
    "skin_geometry",
    "synthesize_blemishes",
    "measure_spot_shift",
]

KINDS = ("papule", "pustule", "mark", "dark")


def template_landmarks(size: int) -> np.ndarray:
    """The FFHQ template's five landmarks in an S×S aligned crop (the face stage's template)."""
    return template(size).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB float [0, 1] → CIE Lab (L in 0–100), D65, as OpenCV computes it."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


# --------------------------------------------------------------------------- face geometry

_REGION_WEIGHT = {"forehead": 0.6, "cheek_l": 1.0, "cheek_r": 1.0, "chin": 0.6, "face": 0.08}


def skin_mask(clean: np.ndarray, landmarks: np.ndarray | None = None, regions: dict | None = None) -> np.ndarray:
    """Where spots may go: the face region minus eyes, brows, nostrils and lips, intersected with
    pixels whose colour is close to the face's own cheek colour (drops hair, glasses, background)."""
    size = clean.shape[0]
    if regions is None:
        regions = face_regions(template_landmarks(size) if landmarks is None else landmarks, size)
    geometric = regions["face"] * (1.0 - regions["exclude"])
    lab = rgb_to_lab(clean)
    cheeks = np.maximum(regions["cheek_l"], regions["cheek_r"]) * (1.0 - regions["exclude"]) > 0.5
    if cheeks.sum() < 16:
        return geometric
    ref = np.median(lab[cheeks], axis=0)
    dl = lab[..., 0] - ref[0]
    dc = np.hypot(lab[..., 1] - ref[1], lab[..., 2] - ref[2])
    colour = ((dl > -28) & (dl < 20) & (dc < 13)).astype(np.uint8)
    k = max(3, int(round(size / 128)) | 1)
    colour = cv2.morphologyEx(colour, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    colour = cv2.GaussianBlur(colour.astype(np.float32), (0, 0), max(0.5, size / 512.0))
    return (geometric * colour).astype(np.float32)


# --------------------------------------------------------------------------- spots


@dataclass(frozen=True)
class BlemishParams:
    """Knobs of the synthesiser. Defaults give mean ΔL* ≈ −4, Δa* ≈ +2 inside the spots."""

    max_spots: int = 150
    p_clean: float = 0.12  # probability of a face without any spot (teaches "change nothing")
    density_power: float = 1.6  # n = max_spots · u^power, u ~ U(0, 1): most faces mild, some severe
    median_diameter_512: float = 3.5
    diameter_log_sigma: float = 0.75
    diameter_range_512: tuple[float, float] = (1.0, 10.0)
    min_diameter_px: float = 0.8
    p_kind: tuple[float, float, float, float] = (0.40, 0.12, 0.20, 0.28)  # papule, pustule, mark, dark
    clustered: float = 0.75  # share of spots placed around cluster centres
    intensity_range: tuple[float, float] = (0.8, 1.5)  # per face
    footprint: float = 0.25  # profile level that defines a spot's extent (its diameter, its mask)


@dataclass
class BlemishResult:
    raw: np.ndarray  # H×W×3 float32 in [0, 1], the clean image with spots
    alpha: np.ndarray  # H×W float32 in [0, 1], the spots' footprint (max of their profiles)
    skin: np.ndarray  # H×W float32, where spots were allowed
    counts: dict[str, int]


def _spot_profile(kind: str, radius: float, rng: np.random.Generator, ss: int | None = None):
    """Render one spot on a small patch (supersampled ``ss``×).

    Returns (patch_alpha, dL, da, db, half) where the patch is (2·half+1)² centred on the spot,
    and dL/da/db are the Lab shifts per pixel (before the face's intensity factor).
    """
    sigma = max(radius, 0.3) / math.sqrt(2 * math.log(4.0))  # profile = 0.25 at the nominal radius
    if ss is None:  # supersample small spots (anti-aliasing); big ones are smooth at pixel rate
        ss = 3 if radius < 2.0 else 2 if radius < 4.0 else 1
    half = int(math.ceil(3.2 * sigma * (1.6 if kind == "mark" else 1.0) + 1))
    n = 2 * half + 1
    off = (np.arange(n * ss) + 0.5) / ss - 0.5 - half
    gx, gy = np.meshgrid(off, off)
    gx = gx + rng.uniform(-0.5, 0.5)
    gy = gy + rng.uniform(-0.5, 0.5)

    def blob(cx: float, cy: float, s: float, flat: bool) -> np.ndarray:
        phi = rng.uniform(0, math.pi)
        aspect = rng.uniform(0.6, 1.0)
        x = (gx - cx) * math.cos(phi) + (gy - cy) * math.sin(phi)
        y = (-(gx - cx) * math.sin(phi) + (gy - cy) * math.cos(phi)) / aspect
        r = np.hypot(x, y)
        theta = np.arctan2(y, x)
        # Noisy outline: a few random angular harmonics bend the radius (not perfect discs).
        wobble = 1.0
        for k in (2, 3, 5):
            wobble = wobble + rng.uniform(0.0, 0.22 / k**0.5) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        q = r / (s * wobble)
        return np.exp(-0.5 * q**3) if flat else np.exp(-0.5 * q**2)

    if kind == "mark":
        p = np.zeros_like(gx)
        for _ in range(rng.integers(2, 5)):
            c = rng.normal(0.0, 0.55 * sigma, 2)
            p = np.maximum(p, blob(c[0], c[1], sigma * rng.uniform(0.6, 1.0), flat=True))
    else:
        p = blob(0.0, 0.0, sigma, flat=False)
    # Per-pixel texture: low-amplitude noise so the spot is not a clean gradient.
    tex = cv2.GaussianBlur(rng.standard_normal(p.shape).astype(np.float32), (0, 0), max(0.6, ss * 0.7))
    tex = tex / (tex.std() + 1e-6)
    p = np.clip(p * (1.0 + 0.18 * tex), 0.0, 1.0)
    core = p**3

    if kind == "papule":  # red, soft, darker core
        dL = rng.uniform(-12.0, -6.0) * (0.55 * p + 0.45 * core)
        da = rng.uniform(3.0, 7.0) * p**0.8
        db = rng.uniform(0.0, 2.0) * p
    elif kind == "pustule":  # pale (yellowish-white) centre on a red rim
        centre = p**6
        dL = rng.uniform(-4.0, -2.0) * p + rng.uniform(5.0, 11.0) * centre
        da = rng.uniform(3.0, 6.0) * p * (1.0 - 0.7 * centre)
        db = rng.uniform(0.5, 2.0) * p + rng.uniform(2.0, 5.0) * centre
    elif kind == "mark":  # flat red-brown, irregular, low contrast
        dL = rng.uniform(-6.0, -3.0) * p
        da = rng.uniform(0.5, 3.0) * p
        db = rng.uniform(1.0, 3.0) * p
    else:  # small dark (brown) spot
        dL = rng.uniform(-16.0, -7.0) * (0.5 * p + 0.5 * core)
        da = rng.uniform(0.0, 1.5) * p
        db = rng.uniform(1.0, 4.0) * p

    def down(a: np.ndarray) -> np.ndarray:
        return a.reshape(n, ss, n, ss).mean(axis=(1, 3)).astype(np.float32)

    return down(p), down(dL), down(da), down(db), half


def _sample_points(weight: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    flat = weight.ravel().astype(np.float64)
    total = flat.sum()
    if total <= 0 or count <= 0:
        return np.zeros((0, 2))
    idx = rng.choice(flat.size, size=count, p=flat / total)
    ys, xs = np.divmod(idx, weight.shape[1])
    return np.stack([xs + rng.uniform(-0.5, 0.5, count), ys + rng.uniform(-0.5, 0.5, count)], axis=1)


def clustered_points(
    weight: np.ndarray, allowed: np.ndarray, eye_dist: float, n_spots: int, clustered: float, rng: np.random.Generator,
    per_cluster: float = 12, spread: tuple[float, float] = (0.05, 0.16), tries: int = 8,
) -> list:
    """Spot centres (x, y): a share ``clustered`` scattered around a few cluster centres drawn on
    ``weight`` (about one cluster per ``per_cluster`` spots, Gaussian spread of ``spread`` eye
    distances, only where ``allowed``), the rest drawn on ``weight`` directly."""
    size = weight.shape[0]
    n_clustered = int(round(n_spots * clustered))
    centres = _sample_points(weight, max(1, int(rng.poisson(1 + n_clustered / per_cluster))), rng)
    sd = rng.uniform(spread[0], spread[1], len(centres)) * eye_dist
    points = []
    for _ in range(n_clustered):
        if not len(centres):
            break
        c = rng.integers(len(centres))
        for _try in range(tries):
            p = centres[c] + rng.normal(0.0, sd[c], 2)
            xi, yi = int(round(p[0])), int(round(p[1]))
            if 0 <= xi < size and 0 <= yi < size and allowed[yi, xi]:
                points.append(p)
                break
    points.extend(_sample_points(weight, n_spots - len(points), rng))
    return points


@dataclass(frozen=True)
class SkinGeometry:
    """What the synthesiser needs to know about one face (depends only on the image, so a data
    loader can compute it once per image and reuse it)."""

    skin: np.ndarray  # H×W float32 in [0, 1]: where spots may go
    weight: np.ndarray  # H×W float32: where spot clusters are likely (cheeks > forehead, chin > face)
    skin_l: float  # median L* of the skin
    eye_dist: float  # pixels

    def compact(self) -> "SkinGeometry":
        """The same geometry quantised to 8 bits (4× smaller to cache; use it consistently)."""
        q = lambda a: (np.round(np.clip(a, 0, 1) * 255) / 255).astype(np.float32)  # noqa: E731
        return SkinGeometry(q(self.skin), q(self.weight), self.skin_l, self.eye_dist)


def skin_geometry(clean: np.ndarray, landmarks: np.ndarray | None = None) -> SkinGeometry:
    """Skin mask, cluster weights, skin lightness and eye distance of an aligned clean crop."""
    size = clean.shape[0]
    if clean.shape[:2] != (size, size):
        raise ValueError(f"expected a square crop, got {clean.shape}")
    lm = template_landmarks(size) if landmarks is None else np.asarray(landmarks, np.float32)
    regions = face_regions(lm, size)
    skin = skin_mask(clean, regions=regions)
    weight = np.zeros((size, size), np.float32)
    for name, w in _REGION_WEIGHT.items():
        weight = np.maximum(weight, w * regions[name])
    weight *= skin > 0.5
    inside = skin > 0.5
    skin_l = float(np.median(rgb_to_lab(clean)[..., 0][inside])) if inside.any() else 60.0
    return SkinGeometry(skin, weight, skin_l, float(np.linalg.norm(lm[1] - lm[0])))


def synthesize_blemishes(
    clean: np.ndarray,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    params: BlemishParams = BlemishParams(),
    n_spots: int | None = None,
    geometry: SkinGeometry | None = None,
) -> BlemishResult:
    """Add random blemishes to a clean aligned face crop.

    clean: S×S×3 float32 RGB in [0, 1], aligned to the FFHQ template (``landmarks`` in crop pixels
    when known, else the template's). ``n_spots`` fixes the count (else random, none to severe).
    ``geometry`` (from :func:`skin_geometry`) skips recomputing the skin mask.
    """
    size = clean.shape[0]
    geo = geometry if geometry is not None else skin_geometry(clean, landmarks)
    skin, weight = geo.skin, geo.weight
    counts = {k: 0 for k in KINDS}
    if n_spots is None:
        n_spots = 0 if rng.random() < params.p_clean else int(round(params.max_spots * rng.random() ** params.density_power))
    if n_spots <= 0 or skin.max() <= 0.5:
        return BlemishResult(clean.astype(np.float32).copy(), np.zeros((size, size), np.float32), skin, counts)

    scale = size / 512.0
    allowed = skin > 0.5

    # Clusters: a few centres on the weighted regions, spots scattered around them.
    points = clustered_points(weight, allowed, geo.eye_dist, n_spots, params.clustered, rng, per_cluster=12, spread=(0.05, 0.16), tries=8)

    intensity = rng.uniform(*params.intensity_range)
    shift = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    lo, hi = params.diameter_range_512
    bx0, by0, bx1, by1 = size, size, 0, 0  # bounding box of everything touched
    for cx, cy in points:
        kind = KINDS[rng.choice(len(KINDS), p=np.asarray(params.p_kind) / sum(params.p_kind))]
        counts[kind] += 1
        d512 = float(np.clip(params.median_diameter_512 * math.exp(rng.normal(0.0, params.diameter_log_sigma)), lo, hi))
        if kind == "mark":
            d512 *= rng.uniform(1.4, 2.2)
        elif kind == "dark":
            d512 *= rng.uniform(0.5, 0.9)
        diameter = max(params.min_diameter_px, d512 * scale)
        p, dL, da, db, half = _spot_profile(kind, diameter / 2.0, rng)
        x0, y0 = int(round(cx)) - half, int(round(cy)) - half
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(size, x0 + 2 * half + 1), min(size, y0 + 2 * half + 1)
        if xa >= xb or ya >= yb:
            continue
        sl = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
        gate = skin[ya:yb, xa:xb]  # fade spots out at the skin boundary (no spots on hair/eyes)
        shift[ya:yb, xa:xb, 0] += dL[sl] * gate
        shift[ya:yb, xa:xb, 1] += da[sl] * gate
        shift[ya:yb, xa:xb, 2] += db[sl] * gate
        alpha[ya:yb, xa:xb] = np.maximum(alpha[ya:yb, xa:xb], p[sl] * gate)
        bx0, by0, bx1, by1 = min(bx0, xa), min(by0, ya), max(bx1, xb), max(by1, yb)

    raw = clean.astype(np.float32).copy()
    if bx0 >= bx1 or by0 >= by1:
        return BlemishResult(raw, alpha, skin, counts)
    box = (slice(by0, by1), slice(bx0, bx1))
    sh = shift[box] * intensity
    lab = rgb_to_lab(clean[box])
    # Lightness shift proportional to local lightness: pores and texture keep their contrast.
    lab[..., 0] += sh[..., 0] * np.clip(lab[..., 0] / max(geo.skin_l, 1.0), 0.5, 1.5)
    lab[..., 1] += sh[..., 1]
    lab[..., 2] += sh[..., 2]
    touched = np.abs(sh).max(axis=2) >= 1e-4  # bit-identical elsewhere (the Lab round trip is not)
    raw[box][touched] = lab_to_rgb(lab)[touched]
    return BlemishResult(raw, alpha, skin, counts)


def measure_spot_shift(clean: np.ndarray, raw: np.ndarray, alpha: np.ndarray, threshold: float = 0.25) -> dict[str, float]:
    """Mean ΔL*, Δa*, Δb* of ``raw`` against ``clean`` inside the spots (``alpha > threshold``),
    and the share of the image that changed by more than 10 levels (of 255) in any channel.

    Accepts float [0, 1] or uint8 images. Returns NaN means when there is no spot.
    """

    def unit(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    c, r = unit(clean), unit(raw)
    inside = alpha > threshold
    changed = float((np.abs(r - c).max(axis=2) > 10.0 / 255.0).mean())
    if not inside.any():
        return {"dL": float("nan"), "da": float("nan"), "db": float("nan"), "pixels": 0, "changed_gt10": changed}
    d = rgb_to_lab(r)[inside] - rgb_to_lab(c)[inside]
    return {
        "dL": float(d[:, 0].mean()),
        "da": float(d[:, 1].mean()),
        "db": float(d[:, 2].mean()),
        "pixels": int(inside.sum()),
        "changed_gt10": changed,
    }
