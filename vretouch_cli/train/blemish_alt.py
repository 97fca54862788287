"""Independent, validation-only acne appearance model: optical-density modulation of linear RGB.

Why this module exists
----------------------
The training data's blemishes come from the generators in ``blemish.py`` / ``acne.py``. A model
that is validated only on blemishes from the same generator can score well by learning that
generator's quirks (its colour shift, its blob profile) instead of acne. This module is a second,
*independently written* appearance model, used only for validation: it shares no code, no
parameters and no rendering approach with the training generators, so a validation score on it
measures generalisation to a different-looking (but still plausible) family of spots.

Model
-----
**Optics.** The clean crop is converted to linear RGB and every change is a per-pixel,
per-channel *transmittance* ``10 ** -ΔOD`` (Beer–Lambert): extra haemoglobin (erythema), extra
melanin (post-inflammatory marks, comedones) or, for pustule heads, a *negative* optical density
(scattering pus reflects more light, yellowish). Raised lesions also get a Lambertian shading
factor from a height field under one directional light (highlight on the light-facing side,
shadow on the other). Since everything is a multiplication of the clean linear radiance, the
skin's own pores and texture stay visible through each spot — nothing is painted over.
Haemoglobin absorbs green and blue far more than red, so redness appears mostly in the red/green
balance, as measured on real before/after retouching pairs.

**Shapes.** Each spot is a rotated superellipse (exponent 1.6–3, aspect 0.6–1) whose normalised
radius is warped by smooth value noise, rendered with analytic anti-aliased pixel coverage
(sub-pixel spots keep their integrated optical density). Lesion types (diameters for a 512 crop):
micro red dots (0.7–2.2 px), open comedones (tiny, melanin-dark), papules (3–10 px, dome,
redness halo, shaded), pustules (red raised base plus an off-centre yellow-white head) and
post-inflammatory marks (2.5–10 px, flat, irregular, brownish-red, mottled inside). Diffuse
blotchy redness is thresholded low-frequency noise weighted towards the nose sides, inner cheeks
and chin.

**Placement.** Spot centres come from a Hawkes-like cluster cascade: immigrants are drawn from a
face-region prior (cheeks, chin, forehead, jawline, nose sides; built from the FFHQ 5-point
template) times the skin mask, and every spot begets Poisson(η) offspring nearby, generation
after generation, which gives the clustered look of real acne. A Matérn type-II hard-core
thinning (a vectorised Poisson-disc) then removes overlapping spots.

**Speed.** All spots of one type are evaluated at once on a stack of K×K patches and scattered
into the maps with ``np.bincount``; colour conversion runs only on the changed pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..face.align import template

__all__ = ["render_alt_blemishes"]

# Relative optical density per unit concentration in (R, G, B). Oxy/deoxy-haemoglobin absorb
# strongly at 540–580 nm (green) and in the blue, weakly beyond 600 nm (red): redness shows up in
# R−G. Melanin absorption falls monotonically with wavelength (~λ^-3), so it darkens blue most:
# brown. The scattering "negative OD" of pus brightens red/green more than blue: yellow-white.
_EPS_HB = np.array([0.16, 1.0, 0.74], np.float32)
_EPS_MEL = np.array([0.52, 0.72, 1.0], np.float32)
_EPS_SCAT = np.array([0.85, 0.80, 0.42], np.float32)

_LN10 = math.log(10.0)

# sRGB → linear for every uint8 level (exact IEC 61966-2-1 curve; a LUT is cheaper than pow).
_LEVELS = np.arange(256, dtype=np.float64) / 255.0
_SRGB_TO_LINEAR = np.where(
    _LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4
).astype(np.float32)


def _linear_to_srgb255(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


# Lesion types. Sizes are radii in pixels of a 512 crop (scaled with the crop size); "count" is the
# expected number at severity 1 on a typical face; od_* are peak optical-density concentrations.
_KINDS: dict[str, dict] = {
    "micro": dict(count=150, r=(0.35, 1.1), aspect=(0.7, 1.0), p=(1.8, 2.6), amp=0.10,
                  hb=(0.05, 0.18), mel=(0.0, 0.015), halo=0.0, height=0.0),
    "comedone": dict(count=22, r=(0.35, 0.9), aspect=(0.75, 1.0), p=(1.8, 2.4), amp=0.10,
                     hb=(0.0, 0.03), mel=(0.12, 0.30), halo=0.0, height=0.0),
    "papule": dict(count=30, r=(1.5, 5.0), aspect=(0.65, 1.0), p=(1.7, 2.6), amp=0.16,
                   hb=(0.07, 0.18), mel=(0.0, 0.03), halo=2.3, height=0.22),
    "pustule": dict(count=5, r=(2.0, 5.5), aspect=(0.7, 1.0), p=(1.8, 2.4), amp=0.12,
                    hb=(0.06, 0.14), mel=(0.0, 0.02), halo=2.2, height=0.28),
    "mark": dict(count=28, r=(1.25, 5.0), aspect=(0.5, 1.0), p=(1.5, 3.0), amp=0.32,
                 hb=(0.04, 0.11), mel=(0.02, 0.09), halo=0.0, height=0.0),
}
_KIND_NAMES = tuple(_KINDS)

def _template_regions() -> tuple[tuple, tuple]:
    """Face-region priors as Gaussians (x, y, σx, σy, weight) in 512-crop pixels.

    Placed relative to the five FFHQ template landmarks (in units of the inter-ocular distance),
    so they follow the alignment rather than hard-coded pixels. Spots: acne clusters on the
    cheeks, chin, forehead and jawline (and some on the nose sides). Diffuse redness: nose
    sides, inner cheeks, chin.
    """
    le, re_, nose, ml, mr = template(512)
    iod = float(np.linalg.norm(re_ - le))
    eye_c, mouth_c = (le + re_) / 2, (ml + mr) / 2
    spots = (
        (eye_c[0], eye_c[1] - 0.85 * iod, 0.62 * iod, 0.24 * iod, 0.8),  # forehead
        (le[0] - 0.17 * iod, nose[1] + 0.03 * iod, 0.24 * iod, 0.27 * iod, 1.0),  # cheeks
        (re_[0] + 0.17 * iod, nose[1] + 0.03 * iod, 0.24 * iod, 0.27 * iod, 1.0),
        (mouth_c[0], mouth_c[1] + 0.55 * iod, 0.30 * iod, 0.17 * iod, 0.9),  # chin
        (ml[0] - 0.33 * iod, mouth_c[1] + 0.27 * iod, 0.16 * iod, 0.29 * iod, 0.6),  # jawline
        (mr[0] + 0.33 * iod, mouth_c[1] + 0.27 * iod, 0.16 * iod, 0.29 * iod, 0.6),
        (nose[0] - 0.24 * iod, nose[1] - 0.11 * iod, 0.10 * iod, 0.13 * iod, 0.4),  # nose sides
        (nose[0] + 0.24 * iod, nose[1] - 0.11 * iod, 0.10 * iod, 0.13 * iod, 0.4),
    )
    red = (
        (nose[0] - 0.26 * iod, nose[1] - 0.07 * iod, 0.13 * iod, 0.16 * iod, 1.0),
        (nose[0] + 0.26 * iod, nose[1] - 0.07 * iod, 0.13 * iod, 0.16 * iod, 1.0),
        (nose[0] - 0.48 * iod, nose[1] + 0.13 * iod, 0.21 * iod, 0.21 * iod, 0.7),
        (nose[0] + 0.48 * iod, nose[1] + 0.13 * iod, 0.21 * iod, 0.21 * iod, 0.7),
        (mouth_c[0], mouth_c[1] + 0.48 * iod, 0.27 * iod, 0.16 * iod, 0.6),
    )
    return spots, red


_SPOT_REGIONS, _RED_REGIONS = _template_regions()
_PRIOR_GRID = 64  # the region prior is evaluated on a coarse grid, then sampled/upsampled


def _region_prior(regions: tuple, size_hw: tuple[int, int], grid: int) -> np.ndarray:
    """Sum of axis-aligned Gaussians on a grid×grid map covering an H×W crop (max-normalised)."""
    h, w = size_hw
    # The template is square; for non-square crops scale x and y separately (best effort).
    sx, sy = w / 512.0, h / 512.0
    ys = (np.arange(grid, dtype=np.float32) + 0.5) * (h / grid)
    xs = (np.arange(grid, dtype=np.float32) + 0.5) * (w / grid)
    out = np.zeros((grid, grid), np.float32)
    for x, y, gx, gy, wgt in regions:
        ey = np.exp(-0.5 * ((ys - y * sy) / (gy * sy)) ** 2)
        ex = np.exp(-0.5 * ((xs - x * sx) / (gx * sx)) ** 2)
        out += wgt * np.outer(ey, ex)
    return out / max(float(out.max()), 1e-6)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Value noise with feature size ≈ ``cell`` px, unit standard deviation, float32 H×W."""
    gh, gw = max(2, int(math.ceil(h / cell)) + 2), max(2, int(math.ceil(w / cell)) + 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (big - big.mean()) / max(float(big.std()), 1e-6)


def _cluster_points(
    rng: np.random.Generator,
    prior: np.ndarray,
    size_hw: tuple[int, int],
    n_target: float,
    eta: float,
    sigma: float,
) -> np.ndarray:
    """Hawkes-like cascade: immigrants ~ prior; each point has Poisson(η) children near it.

    Returns [N, 2] float (x, y) in crop pixels. Expected total ≈ n_target.
    """
    h, w = size_hw
    g = prior.shape[0]
    p = prior.ravel().astype(np.float64)
    if p.sum() <= 0:
        return np.zeros((0, 2))
    p /= p.sum()
    n0 = rng.poisson(n_target * (1.0 - eta))
    cells = rng.choice(p.size, size=n0, p=p)
    pts = np.stack(
        [(cells % g + rng.random(n0)) * (w / g), (cells // g + rng.random(n0)) * (h / g)], 1
    )
    out = [pts]
    gen = pts
    for _ in range(6):  # a few generations are plenty for η < 0.7
        kids = rng.poisson(eta, len(gen))
        if kids.sum() == 0:
            break
        parents = np.repeat(gen, kids, axis=0)
        # Heavy-ish tail: σ per child scaled by a lognormal so clusters have loose outliers.
        s = sigma * np.exp(0.4 * rng.standard_normal(len(parents)))[:, None]
        gen = parents + s * rng.standard_normal(parents.shape)
        out.append(gen)
    return np.concatenate(out, 0)


def _matern_thin(rng: np.random.Generator, pts: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Matérn type-II hard core: drop a point if an *older* (lower mark) one is too close."""
    n = len(pts)
    if n < 2:
        return np.ones(n, bool)
    marks = rng.random(n)
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    rmin = 0.75 * (radii[:, None] + radii[None, :]) + 0.6
    conflict = (d < rmin) & (marks[None, :] < marks[:, None])
    return ~conflict.any(1)


def _coverage(d: np.ndarray, r_px: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Anti-aliased inside-ness of normalised distance d for a shape of radius r_px pixels."""
    return np.clip((1.0 - d) * r_px / soft + 0.5, 0.0, 1.0)


def render_alt_blemishes(
    clean: np.ndarray,
    rng: np.random.Generator,
    skin: np.ndarray,
    severity: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """clean: H×W×3 uint8 RGB aligned face crop (FFHQ template alignment, any size, typically 256 or 512);
    skin: H×W float32 in [0,1], where blemishes may go (already excludes eyes, brows, lips, nostrils, hair, background);
    severity in [0,1] (None: random). Returns (raw uint8 H×W×3 with blemishes, alpha float32 H×W in [0,1] = footprint)."""
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3 or clean.dtype != np.uint8:
        raise ValueError(f"clean must be H×W×3 uint8, got {clean.shape} {clean.dtype}")
    h, w = clean.shape[:2]
    skin = np.asarray(skin, dtype=np.float32)
    if skin.shape != (h, w):
        raise ValueError(f"skin must be {h}×{w}, got {skin.shape}")
    skin = np.clip(skin, 0.0, 1.0)
    if severity is None:
        severity = float(rng.uniform(0.1, 1.0))
    severity = float(np.clip(severity, 0.0, 1.0))
    raw = clean.copy()
    alpha = np.zeros((h, w), np.float32)
    if severity <= 0.0 or not np.any(skin > 0):
        return raw, alpha

    scale = math.sqrt(h * w) / 512.0  # sizes are specified for a 512 crop
    grid = _PRIOR_GRID
    skin_small = cv2.resize(skin, (grid, grid), interpolation=cv2.INTER_AREA)
    # Counts scale with the skin area actually available (≈ 28 % of a typical crop).
    area_factor = float(np.clip(skin.mean() / 0.28, 0.05, 2.0))

    # Per-face character: how many of each lesion type, cluster tightness, light direction.
    sev_n = severity**1.3
    # The type mix varies a lot between faces, the total less (severity already sets it).
    base = np.array([k["count"] for k in _KINDS.values()], np.float64)
    expected = base * np.exp(0.5 * rng.standard_normal(len(_KINDS)))
    total = base.sum() * math.exp(0.2 * rng.standard_normal())
    n_target = total * sev_n * area_factor
    eta = float(rng.uniform(0.35, 0.65))
    sigma = float(rng.uniform(6.0, 16.0)) * scale
    spot_prior = (_region_prior(_SPOT_REGIONS, (h, w), grid) + 0.08) * skin_small

    pts = _cluster_points(rng, spot_prior, (h, w), n_target, eta, sigma)
    kind_idx = rng.choice(len(_KINDS), size=len(pts), p=expected / expected.sum())
    # Darker skin: post-inflammatory marks are browner (more melanin relative to haemoglobin).
    lum = float((clean.astype(np.float32).mean(2) * skin).sum() / max(skin.sum(), 1.0)) / 255.0
    mel_boost = float(np.clip(1.6 - 1.2 * lum, 0.7, 1.4))

    # Keep spots whose centre is on skin; then hard-core thinning by spot radius.
    if len(pts):
        ix = np.clip(np.rint(pts[:, 0]).astype(int), 0, w - 1)
        iy = np.clip(np.rint(pts[:, 1]).astype(int), 0, h - 1)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        inside &= skin[iy, ix] >= 0.5
        pts, kind_idx = pts[inside], kind_idx[inside]
    radii = np.empty(len(pts))
    for k, name in enumerate(_KIND_NAMES):
        sel = kind_idx == k
        lo, hi = _KINDS[name]["r"]
        # Log-uniform: most spots are small, a few are large.
        radii[sel] = np.exp(rng.uniform(math.log(lo), math.log(hi), sel.sum())) * scale
    keep = _matern_thin(rng, pts, radii)
    pts, kind_idx, radii = pts[keep], kind_idx[keep], radii[keep]

    # Shape noise: medium + fine value noise shared by all spots (each spot sees its own patch).
    n_shape = 0.75 * _smooth_noise(rng, h, w, 3.5 * scale) + 0.66 * _smooth_noise(
        rng, h, w, 1.6 * scale + 0.4
    )
    n_shape = np.clip(n_shape, -2.5, 2.5)
    n_fine = _smooth_noise(rng, h, w, 1.4 * scale + 0.3)

    idx_parts: list[np.ndarray] = []
    w_parts: dict[str, list[np.ndarray]] = {"hb": [], "mel": [], "sc": [], "ht": [], "a": []}
    contrast = 0.6 + 0.4 * severity  # worse acne is also more inflamed

    for k, name in enumerate(_KIND_NAMES):
        sel = np.flatnonzero(kind_idx == k)
        n = len(sel)
        if n == 0:
            continue
        P = _KINDS[name]
        cx, cy, r = pts[sel, 0], pts[sel, 1], radii[sel]
        aspect = rng.uniform(*P["aspect"], n)
        expo = rng.uniform(*P["p"], n)
        theta = rng.uniform(0.0, math.pi, n)
        # Sub-pixel spots are drawn at ≥ 0.55 px radius with their density scaled down by the area
        # ratio, so the integrated optical density (what a camera would record) is kept.
        r_draw = np.maximum(r, 0.55)
        area_gain = (r / r_draw) ** 2
        a = r_draw / np.sqrt(aspect)
        b = r_draw * np.sqrt(aspect)
        reach = max(1.0, P["halo"]) * (1.0 + 2.5 * P["amp"])
        half = int(math.ceil(float(a.max()) * reach + 1.5))
        off = np.arange(-half, half + 1, dtype=np.float32)
        x0 = np.floor(cx).astype(np.int64)
        y0 = np.floor(cy).astype(np.int64)
        gx = x0[:, None, None] + off.astype(np.int64)[None, None, :]  # N×1×K
        gy = y0[:, None, None] + off.astype(np.int64)[None, :, None]  # N×K×1
        dx = (gx - cx[:, None, None]).astype(np.float32)
        dy = (gy - cy[:, None, None]).astype(np.float32)
        c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
        u = dx * c + dy * s
        v = -dx * s + dy * c
        pe = expo[:, None, None]
        d = (np.abs(u / a[:, None, None]) ** pe + np.abs(v / b[:, None, None]) ** pe) ** (1.0 / pe)
        valid = (gx >= 0) & (gx < w) & (gy >= 0) & (gy < h)
        gxc, gyc = np.clip(gx, 0, w - 1), np.clip(gy, 0, h - 1)
        d = d * (1.0 + P["amp"] * n_shape[gyc, gxc])  # irregular outline
        r3 = r_draw[:, None, None]
        cov = _coverage(d, r3)
        dome = np.clip(1.0 - d * d, 0.0, 1.0)

        hb0 = rng.uniform(*P["hb"], n)[:, None, None] * contrast * area_gain[:, None, None]
        mel0 = rng.uniform(*P["mel"], n)[:, None, None] * contrast * area_gain[:, None, None]
        sc = np.zeros_like(d)
        ht = np.zeros_like(d)
        if name in ("micro", "comedone"):
            hb = hb0 * cov
            mel = mel0 * mel_boost * cov * (0.7 + 0.3 * dome)
            al = cov
        elif name == "mark":
            mott = np.clip(0.72 + 0.28 * n_fine[gyc, gxc], 0.3, 1.2)  # blotchy interior
            hb = hb0 * cov * mott
            mel = mel0 * mel_boost * cov * mott
            al = cov
        else:  # papule, pustule: inflamed, raised
            halo_r = P["halo"] * rng.uniform(0.8, 1.2, n)[:, None, None]
            halo = np.clip(1.0 - d / halo_r, 0.0, 1.0) ** 2
            hb = hb0 * (cov * (0.55 + 0.45 * dome) + 0.35 * halo)
            mel = mel0 * cov
            ht = (P["height"] * r3 * area_gain[:, None, None]) * dome**1.5 * cov
            al = np.clip(cov + 0.5 * halo, 0.0, 1.0)
            if name == "pustule":
                # Off-centre round head, 30–45 % of the base radius.
                rh = r_draw * rng.uniform(0.3, 0.45, n)
                ang = rng.uniform(0.0, 2 * math.pi, n)
                shift = r_draw * rng.uniform(0.0, 0.3, n)
                hx = (np.cos(ang) * shift)[:, None, None]
                hy = (np.sin(ang) * shift)[:, None, None]
                dh = np.sqrt((dx - hx) ** 2 + (dy - hy) ** 2) / rh[:, None, None]
                head = _coverage(dh, rh[:, None, None], soft=0.8) * np.clip(1.2 - dh * dh, 0, 1)
                sc = rng.uniform(0.08, 0.16, n)[:, None, None] * contrast * head
                hb = hb * (1.0 - 0.6 * head)  # pus sits above the inflamed dermis
                ht = ht + 0.15 * rh[:, None, None] * head
        flat = (gyc * w + gxc).ravel()
        vmask = np.broadcast_to(valid, d.shape).ravel()
        idx_parts.append(flat[vmask])
        for key, arr in (("hb", hb), ("mel", mel), ("sc", sc), ("ht", ht), ("a", al)):
            w_parts[key].append(np.broadcast_to(arr, d.shape).ravel()[vmask])

    npx = h * w
    if idx_parts:
        flat_idx = np.concatenate(idx_parts)

        def acc(key: str) -> np.ndarray:
            return np.bincount(flat_idx, np.concatenate(w_parts[key]), npx).reshape(h, w)

        hb_map, mel_map, sc_map = acc("hb"), acc("mel"), acc("sc")
        ht_map, a_map = acc("ht").astype(np.float32), acc("a")
    else:
        hb_map = np.zeros((h, w))
        mel_map, sc_map, a_map = hb_map.copy(), hb_map.copy(), hb_map.copy()
        ht_map = np.zeros((h, w), np.float32)

    # Diffuse blotchy redness: thresholded low-frequency noise, weighted to nose sides/cheeks/chin.
    if rng.random() < 0.35 + 0.6 * severity:
        red_prior = cv2.resize(
            _region_prior(_RED_REGIONS, (h, w), grid), (w, h), interpolation=cv2.INTER_LINEAR
        )
        blot = 0.8 * _smooth_noise(rng, h, w, 14.0 * scale) + 0.45 * _smooth_noise(
            rng, h, w, 5.0 * scale
        )
        t = blot + 2.2 * red_prior - 2.0 + 0.6 * severity
        foot = np.clip(t / 0.9, 0.0, 1.0)
        foot = foot * foot * (3.0 - 2.0 * foot)  # smoothstep edge
        c_diff = float(rng.uniform(0.015, 0.045)) * (0.5 + 0.5 * severity)
        hb_map = hb_map + c_diff * foot * np.clip(0.8 + 0.25 * n_fine, 0.4, 1.3)
        a_map = np.maximum(np.clip(a_map, 0.0, 1.0), foot)

    # Lambertian shading of the height field under one light, mostly from above (random azimuth).
    az = rng.uniform(-0.6, 0.6) * math.pi - math.pi / 2  # −90° = up in image coordinates
    tan_elev = float(rng.uniform(0.7, 1.3))
    lx, ly = math.cos(az), math.sin(az)
    gxh = cv2.Sobel(ht_map, cv2.CV_32F, 1, 0, ksize=3) * 0.125
    gyh = cv2.Sobel(ht_map, cv2.CV_32F, 0, 1, ksize=3) * 0.125
    shade_dev = -(gxh * lx + gyh * ly) * tan_elev

    # Nothing may change off skin: every effect is weighted by the (soft) skin mask.
    hb_map *= skin
    mel_map *= skin
    sc_map *= skin
    shade_dev *= skin
    alpha = (np.clip(a_map, 0.0, 1.0) * skin).astype(np.float32)
    alpha[skin <= 0] = 0.0

    changed = (hb_map > 0) | (mel_map > 0) | (sc_map > 0) | (shade_dev != 0)
    changed &= skin > 0
    m = np.flatnonzero(changed)
    if m.size == 0:
        return raw, alpha
    od = (
        hb_map.ravel()[m, None].astype(np.float32) * _EPS_HB
        + mel_map.ravel()[m, None].astype(np.float32) * _EPS_MEL
        - sc_map.ravel()[m, None].astype(np.float32) * _EPS_SCAT
    )
    shade = np.clip(1.0 + shade_dev.ravel()[m], 0.6, 1.4)[:, None]
    lin = _SRGB_TO_LINEAR[clean.reshape(-1, 3)[m]]
    out = lin * np.exp(-_LN10 * od) * shade
    raw.reshape(-1, 3)[m] = _linear_to_srgb255(out)
    return raw, alpha
