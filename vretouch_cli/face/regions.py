"""Where the parts of an aligned face are, from its five landmarks (no model, no image).

A face-local frame (origin at the eye midpoint, x along the eye line in eye distances, y towards
the mouth in eye-to-mouth distances) and soft ellipses in it: the regions where skin problems
cluster and the features a retoucher never touches (eyes, brows, nostrils, lips). The training data
renders blemishes only outside the features, and the pipeline keeps every correction out of them
(:func:`.paste.retouch_region_mask`): by construction, not by hoping the network learnt it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .align import template

__all__ = ["BlobStats", "face_frame", "face_regions", "feature_mask", "lip_mask", "mole_mask", "skin_weight"]


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Face-local frame: origin at the eye midpoint, x along the eye line (unit: eye distance),
    y down (unit: eye-to-mouth distance)."""
    lm = np.asarray(landmarks, np.float64)
    eye_mid = (lm[0] + lm[1]) / 2.0
    mouth_mid = (lm[3] + lm[4]) / 2.0
    u = lm[1] - lm[0]
    d = float(np.linalg.norm(u)) or 1.0
    u = u / d
    v = np.array([-u[1], u[0]])
    if np.dot(mouth_mid - eye_mid, v) < 0:  # keep y pointing towards the mouth
        v = -v
    h = float(np.dot(mouth_mid - eye_mid, v)) or d
    return eye_mid, u, v, d, h


# (name, cx, cy, rx, ry) in face-local units (x: eye distance, y: eye-to-mouth distance).
_SPOT_REGIONS = (
    ("forehead", 0.0, -0.78, 0.80, 0.28),
    ("cheek_l", -0.62, 0.62, 0.30, 0.36),
    ("cheek_r", 0.62, 0.62, 0.30, 0.36),
    ("chin", 0.0, 1.52, 0.42, 0.24),
    ("face", 0.0, 0.45, 1.00, 1.45),  # anywhere on the face, sparsely
)
_EXCLUDE = (
    ("eye_l", -0.5, 0.0, 0.34, 0.20),
    ("eye_r", 0.5, 0.0, 0.34, 0.20),
    ("brow_l", -0.52, -0.33, 0.40, 0.16),
    ("brow_r", 0.52, -0.33, 0.40, 0.16),
    ("nostrils", 0.0, 0.60, 0.30, 0.16),
    ("lips", 0.0, 1.0, 0.64, 0.24),
)
# Kept out of the paste only: the grooves where the nose wings meet the cheeks. A nose wider or
# higher than the template's (a smile flares it) puts its crease outside the nostrils' ellipse,
# and its shadow and redness are anatomy, not blemishes. After the blur the paste weight on the
# groove is 0.2–0.4, so a correction there is cut to a third or less. Small on purpose: spots do
# sit beside the nose, and a 0.09 × 0.14 ellipse cost 0.10 dB of held-out gain against 0.04 for
# this one. The training data and the held-out sets still use ``_EXCLUDE`` alone, so the
# synthesiser's draws stay as they were.
_ALAE = (
    ("ala_l", -0.34, 0.55, 0.06, 0.08),
    ("ala_r", 0.34, 0.55, 0.06, 0.08),
)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, soft: float = 0.15) -> np.ndarray:
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1.0 + soft - r) / (2 * soft), 0.0, 1.0).astype(np.float32)


def _local_grid(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel of an S×S crop in the face-local frame of :func:`face_frame`: (x, y) S×S each."""
    eye_mid, u, v, d, h = face_frame(landmarks)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px, py = xs - eye_mid[0], ys - eye_mid[1]
    return (px * u[0] + py * u[1]) / d, (px * v[0] + py * v[1]) / h


def face_regions(landmarks: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Soft S×S maps of the spot regions and of the excluded features, from five landmarks."""
    lx, ly = _local_grid(landmarks, size)
    maps = {name: _ellipse(lx, ly, cx, cy, rx, ry) for name, cx, cy, rx, ry in _SPOT_REGIONS}
    exclude = np.zeros((size, size), np.float32)
    for _, cx, cy, rx, ry in _EXCLUDE:
        exclude = np.maximum(exclude, _ellipse(lx, ly, cx, cy, rx, ry, soft=0.25))
    maps["exclude"] = exclude
    return maps


@lru_cache(maxsize=8)
def _template_features(size: int) -> np.ndarray:
    import cv2

    lm = template(size).astype(np.float32)
    m = face_regions(lm, size)["exclude"]
    lx, ly = _local_grid(lm, size)
    for _, cx, cy, rx, ry in _ALAE:
        m = np.maximum(m, _ellipse(lx, ly, cx, cy, rx, ry, soft=0.25))
    # A wider, smoother edge than the training data's: no visible seam where a correction fades out.
    m = np.clip(cv2.GaussianBlur(m, (0, 0), size / 64.0) * 1.25, 0.0, 1.0).astype(np.float32)
    m.setflags(write=False)
    return m


def feature_mask(size: int) -> np.ndarray:
    """Soft map (float32 S×S in [0, 1]) of eyes, brows, nostrils with the nose wings' creases, and
    lips of a crop aligned to the FFHQ template: 1 on the features, falling to 0 around them."""
    return _template_features(int(size)).copy()


@lru_cache(maxsize=8)
def _template_cheeks(size: int) -> np.ndarray:
    r = face_regions(template(size).astype(np.float32), size)
    m = (np.maximum(r["cheek_l"], r["cheek_r"]) * (1.0 - r["exclude"])) > 0.5
    m.setflags(write=False)
    return m


# The lips' search area and seed in face-local units: the lips ellipse of ``_EXCLUDE`` widened
# (a smile or an open mouth puts the lower lip below the template's ellipse), and its core.
_LIPS_SEARCH = (0.0, 1.05, 0.80, 0.44)
_LIPS_SEED = (0.0, 1.0, 0.50, 0.20)
LIP_REDNESS_MIN = 6.0  # Δa* (CIELAB) over the cheeks below which no lip is looked for


@lru_cache(maxsize=8)
def _template_mouth(size: int) -> tuple[np.ndarray, np.ndarray]:
    lx, ly = _local_grid(template(size).astype(np.float32), size)
    inside = lambda cx, cy, rx, ry: ((lx - cx) / rx) ** 2 + ((ly - cy) / ry) ** 2 <= 1.0  # noqa: E731
    search, seed = inside(*_LIPS_SEARCH), inside(*_LIPS_SEED)
    search.setflags(write=False)
    seed.setflags(write=False)
    return search, seed


def lip_mask(lab: np.ndarray, cheek_ref: np.ndarray) -> np.ndarray:
    """The lips of an aligned crop as they are, not as the template guesses: bool S×S.

    ``lab``: the crop in CIELAB (L in 0–100; a* and b* with any offset common to both
    arguments); ``cheek_ref``: the median L*, a*, b* of its cheeks. Lips are redder than the
    cheeks: inside a widened area around the template's mouth, the pixels whose a* exceeds the
    cheeks' by half the lips' own contrast (the 90th percentile inside the lips' core) form
    regions; the regions that reach into the core are the lips, except specks under a tenth of
    the largest (spots, not lips). A smile's lower lip, which the fixed ellipse only half covers,
    is found whole; a red spot beside the mouth that does not touch the lips stays skin. Lips no
    redder than the cheeks (Δa* under ``LIP_REDNESS_MIN``) give an empty mask: the template
    alone then applies.
    """
    import cv2

    size = lab.shape[0]
    search, seed = _template_mouth(size)
    da = lab[..., 1] - cheek_ref[1]
    contrast = float(np.percentile(da[seed], 90))
    if contrast < LIP_REDNESS_MIN:
        return np.zeros((size, size), bool)
    red = ((da > 0.5 * contrast) & search).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(red, connectivity=8)
    touching = np.unique(labels[seed & (red > 0)])
    touching = touching[touching > 0]
    if n <= 1 or not touching.size:
        return np.zeros((size, size), bool)
    # the lips are one or two large regions (two with the mouth open); a speck is a spot
    area = stats[touching, cv2.CC_STAT_AREA]
    return np.isin(labels, touching[area >= 0.1 * area.max()])


class BlobStats:
    """Per-blob statistics of a connected-components labelling (``labels`` from OpenCV, ``n``
    labels, 0 the background), over the labelled pixels only: means, extremes and the
    elongation from second moments. Arrays of length ``n``; entry 0 is meaningless.
    Used to tell spots from moles, creases and shadow edges (here and in the training targets'
    cleanup, :mod:`vretouch_cli.train.cleanup`)."""

    def __init__(self, labels: np.ndarray, n: int) -> None:
        self.n = n
        self._sel = labels > 0
        idx = labels[self._sel]
        self._order = np.argsort(idx, kind="stable")  # sorted by label, for reduceat
        self._idx = idx[self._order]
        cnt = np.bincount(self._idx, minlength=n).astype(np.float64)
        cnt[cnt == 0] = 1
        self._cnt = cnt
        self._starts = np.searchsorted(self._idx, np.arange(1, n))

    def _values(self, v: np.ndarray) -> np.ndarray:
        return v[self._sel][self._order]

    def mean(self, v: np.ndarray) -> np.ndarray:
        return np.bincount(self._idx, weights=self._values(v).astype(np.float64), minlength=self.n) / self._cnt

    def min(self, v: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n)
        out[1:] = np.minimum.reduceat(self._values(v), self._starts)
        return out

    def max(self, v: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n)
        out[1:] = np.maximum.reduceat(self._values(v), self._starts)
        return out

    def elongation(self) -> np.ndarray:
        """sqrt of the ratio of the second moments' eigenvalues (each + 0.25 px², a pixel's own
        extent): 1 for a disc, large for a line."""
        yy, xx = (c.astype(np.float64) for c in np.nonzero(self._sel))
        yy, xx = yy[self._order], xx[self._order]
        mean = lambda v: np.bincount(self._idx, weights=v, minlength=self.n) / self._cnt  # noqa: E731
        my, mx = mean(yy), mean(xx)
        vyy = mean(yy * yy) - my * my
        vxx = mean(xx * xx) - mx * mx
        vxy = mean(xx * yy) - mx * my
        tr, det = vxx + vyy, vxx * vyy - vxy * vxy
        disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0.0))
        return np.sqrt((tr / 2 + disc + 0.25) / np.maximum(tr / 2 - disc + 0.25, 1e-6))


# A mole, in CIELAB against the local skin (sizes at S = 512, scaled with S): clearly darker
# (mean ΔL* under MOLE_DL_MEAN, darkest pixel under MOLE_DL_PEAK), not red for its darkness
# (mean Δa* under MOLE_RED_RATIO × |ΔL*|: brown or black, where an inflamed spot is red), round
# (not a crease or a shadow edge), 4.5–24 px across (a comedone is 1–3 px: it goes).
MOLE_DL_EDGE = -6.0
MOLE_DL_MEAN = -10.0
MOLE_DL_PEAK = -15.0
MOLE_RED_RATIO = 0.6
MOLE_DIAMETER = (4.5, 24.0)
MOLE_ELONGATION = 2.2


def mole_mask(lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Moles of an aligned crop, to be kept as they are: float32 S×S in [0, 1].

    ``lab``: the crop in CIELAB (L* in 0–100); ``skin``: bool S×S, where the crop is skin. The
    local skin colour is a normalised Gaussian of the skin pixels (σ 7 px at S = 512), taken a
    second time without what stuck out darker the first time, so a mole does not darken its own
    background. Blobs darker than it by ``MOLE_DL_EDGE`` that pass the tests above (the same
    definition of a mole as the training targets' cleanup, :mod:`vretouch_cli.train.cleanup`, with
    the redness allowed a mole's reddish brown) are grown by 4 px (at S = 512) and feathered: a
    professional retoucher keeps them, and the network, which saw few of them in training,
    sometimes takes a dark mole for a blemish. Red spots, pustules,
    small comedones, creases and the features' edges are not moles and stay the network's call.
    """
    import cv2

    size = lab.shape[0]
    s = size / 512.0
    out = np.zeros((size, size), np.float32)
    skin_f = skin.astype(np.float32)
    if skin_f.sum() < 16:
        return out
    sig = 7.0 * s

    def local(weight: np.ndarray) -> np.ndarray:
        """The skin's L* and a* around each pixel: one Gaussian of (w, w·L*, w·a*) on a copy at
        half size (the background is smooth; this is a third of the full-size cost)."""
        stack = np.dstack([weight, lab[..., 0] * weight, lab[..., 1] * weight])
        half = cv2.resize(stack, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
        half = cv2.GaussianBlur(half, (0, 0), np.sqrt(max(sig**2 - 1.0 / 3.0, 0.25)) / 2.0)
        full = cv2.resize(half, (size, size), interpolation=cv2.INTER_LINEAR)
        return full[..., 1:] / np.maximum(full[..., :1], 1e-6)

    dl = lab[..., 0] - local(skin_f)[..., 0]
    dark = cv2.dilate((dl < MOLE_DL_EDGE).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    res = lab[..., :2] - local(skin_f * (1.0 - dark))
    dl, da = res[..., 0], res[..., 1]
    cand = ((cv2.GaussianBlur(dl, (0, 0), max(0.5, 0.8 * s)) < MOLE_DL_EDGE) & skin).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return out
    # the tests on every blob at once
    blobs = BlobStats(labels, n)
    mL, mA = blobs.mean(dl), blobs.mean(da)
    ring = cv2.GaussianBlur(skin_f, (0, 0), 4.0 * s)
    diam = 2.0 * np.sqrt(stats[:, cv2.CC_STAT_AREA] / np.pi)
    keep = (
        (diam >= MOLE_DIAMETER[0] * s) & (diam <= MOLE_DIAMETER[1] * s)
        & (mL <= MOLE_DL_MEAN) & (blobs.min(dl) <= MOLE_DL_PEAK) & (mA <= MOLE_RED_RATIO * -mL)
        & (blobs.mean(ring) >= 0.75)  # not at the edge of the skin: a nostril, an eyelid, the hairline
        & (blobs.elongation() <= MOLE_ELONGATION)  # not a line: crease, wrinkle, shadow edge
    )
    keep[0] = False
    if not keep.any():
        return out
    r = max(1, int(round(2.0 * s)))
    grown = cv2.dilate(keep[labels].astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * r + 1, 4 * r + 1)))
    return cv2.GaussianBlur(grown.astype(np.float32), (0, 0), max(0.7, 1.5 * s))


def skin_weight(crop: np.ndarray, keep_moles: bool = True) -> np.ndarray:
    """Where an aligned crop (S×S×3 RGB, uint8 or float in the model's [-1, 1]) is the face's own
    skin: float32 S×S in [0, 1].

    Colour test in Lab against the median of the crop's cheeks (so it follows the person's tone
    and the light), generous enough for shading and red or brown spots; then every non-skin patch
    narrower than about S/12 (spots, pustules, moles, freckles, pores: what may be corrected or
    kept is the model's call, not this mask's) is closed back into the skin, and the edge
    is feathered. What stays out is large: background, hair, beard, clothing, hands, at the face's
    silhouette where a correction must never land; the lips as found (:func:`lip_mask`),
    which a smile puts partly outside the template's features; and, the one small thing, moles
    (:func:`mole_mask`): dark, brown, round and of a mole's size, which a retoucher keeps, unless
    ``keep_moles`` is False (the user asked for moles to be removed). A crop
    whose cheeks are not skin-like at all (the test has nothing to go on) gets all ones.
    """
    import cv2

    size = crop.shape[0]
    if crop.dtype != np.uint8:
        crop = np.clip((np.asarray(crop, np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(np.ascontiguousarray(crop[..., :3]), cv2.COLOR_RGB2Lab).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0  # uint8 Lab: L in 0–255, a and b offset by 128
    cheeks = _template_cheeks(size)
    ref = np.median(lab[cheeks], axis=0)
    dl = lab[..., 0] - ref[0]
    dc = np.hypot(lab[..., 1] - ref[1], lab[..., 2] - ref[2])
    skin = ((dl > -35.0) & (dl < 25.0) & (dc < 18.0)).astype(np.uint8)
    if skin[cheeks].mean() < 0.5:
        return np.ones((size, size), np.float32)
    k = max(3, int(round(size / 12.0)) | 1)
    skin = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # the lips pass the colour test or are closed back in like a spot: take them out as found
    skin[lip_mask(lab, ref)] = 0
    moles = mole_mask(lab, (skin > 0) & (_template_features(size) < 0.5)) if keep_moles else 0.0
    # keep a margin from the silhouette, then feather it. S/24 (since session 10; S/36 before):
    # a face's edge against a coloured backdrop picks up its tint, which the network reads as
    # discoloured skin; at S/36 the demo kept a faint line (≤ 7 levels) along the cheek's edge.
    e = max(3, int(round(size / 24.0)) | 1)
    skin = cv2.erode(skin, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (e, e)))
    return cv2.GaussianBlur(skin.astype(np.float32), (0, 0), size / 160.0) * (1.0 - moles)
