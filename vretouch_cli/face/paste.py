"""Paste-back of a face correction into the full-resolution frame.

We paste the *correction* (model output − crop), never the face: the correction, weighted by
the model's soft mask and a feathered face-region mask, is inverse-warped into the frame and
added to the decoded pixels. Pixels where the warped correction rounds to zero stay bit-identical
to the input, so the frame keeps its own resolution and texture everywhere the model did not act,
and there is no box, seam or colour shift.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["face_region_mask", "noise_gate", "retouch_region_mask", "paste_correction", "warp_mask_to_frame"]

# Face-region ellipse in FFHQ-512 template coordinates: forehead (y≈105) to chin (y≈470),
# cheek to cheek (x≈116..396); eyes are at y≈240 and the mouth at y≈371.
_ELLIPSE_CENTRE = (256.0, 288.0)
_ELLIPSE_AXES = (140.0, 182.0)
# Normalised elliptic radius where the feather starts (1 inside) and ends (0 outside).
_FEATHER = (0.72, 1.0)


@lru_cache(maxsize=8)
def _face_region_mask_cached(size: int) -> np.ndarray:
    # Crop pixel i is at i·512/size in template-512 units, as in ``align.template``.
    c = np.arange(size, dtype=np.float64) * (512.0 / size)
    x = (c[None, :] - _ELLIPSE_CENTRE[0]) / _ELLIPSE_AXES[0]
    y = (c[:, None] - _ELLIPSE_CENTRE[1]) / _ELLIPSE_AXES[1]
    r = np.sqrt(x * x + y * y)
    t = np.clip((_FEATHER[1] - r) / (_FEATHER[1] - _FEATHER[0]), 0.0, 1.0)
    m = (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no visible edge
    m.setflags(write=False)
    return m


def face_region_mask(size: int) -> np.ndarray:
    """Soft feathered ellipse over the face of an aligned size×size crop: float32 in [0, 1].

    1 over the face (forehead to chin, cheek to cheek in the FFHQ template), falling smoothly to
    0 at the ellipse edge, which stays well inside the crop border (≥ 40 px at 512).
    """
    return _face_region_mask_cached(int(size)).copy()


@lru_cache(maxsize=8)
def _retouch_region_cached(size: int) -> np.ndarray:
    from .regions import feature_mask

    m = (_face_region_mask_cached(size) * (1.0 - feature_mask(size))).astype(np.float32)
    m.setflags(write=False)
    return m


def retouch_region_mask(size: int) -> np.ndarray:
    """Where a correction may land in an aligned crop: :func:`face_region_mask` without the eyes,
    brows, nostrils and lips (:func:`.regions.feature_mask`), float32 in [0, 1]."""
    return _retouch_region_cached(int(size)).copy()


# The noise gate: sensor noise (levels of 255) up to NOISE_FREE passes untouched; beyond it, a
# correction is damped where it is no larger than NOISE_GATE × the excess.
NOISE_FREE = 2.0
NOISE_GATE = 0.5


def crop_noise(crop: np.ndarray) -> float:
    """The sensor noise of an aligned crop (S×S×3, levels 0–255): a robust standard deviation
    (1.4826 × median absolute value) of the grey image minus its Gaussian (σ 1 px), over the
    face region."""
    g = np.asarray(crop, np.float32).mean(axis=-1)
    high = g - cv2.GaussianBlur(g, (0, 0), 1.0)
    return float(1.4826 * np.median(np.abs(high[_face_region_mask_cached(g.shape[0]) > 0.5])))


def noise_gate(crop: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """Per-pixel factor in [0, 1] for a crop's correction (both S×S×3 in levels 0–255).

    On a noisy crop the network also edits the noise, and such an edit is as large as the noise
    itself: where the correction's local RMS c (Gaussian σ 0.7 px) is not well above the noise
    in excess of ``NOISE_FREE`` (n = ``NOISE_GATE`` × (σ_noise − ``NOISE_FREE``)), it is damped
    by c² / (c² + n²) (a Wiener-like shrink). A correction of a spot, many levels deep, passes;
    a crop with clean sensor data (σ_noise ≤ 2 levels: studio photos, most video) gets 1 everywhere.
    """
    n = NOISE_GATE * max(0.0, crop_noise(crop) - NOISE_FREE)
    if n <= 0.0:
        return np.ones(correction.shape[:2], np.float32)
    c2 = cv2.GaussianBlur(np.square(np.asarray(correction, np.float32)).mean(axis=-1), (0, 0), 0.7)
    return (c2 / (c2 + n * n)).astype(np.float32)


def _crop_to_frame(
    src: np.ndarray, M: np.ndarray, frame_hw: tuple[int, int], support: np.ndarray
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Inverse-warp crop-space ``src`` (S×S or S×S×C float32) into the frame's ROI.

    Returns ((rows, cols) slices of the frame, warped values for that ROI), or None when the
    support (a boolean S×S mask of where ``src`` may be non-zero) misses the frame.
    """
    size = src.shape[0]
    M = np.asarray(M, dtype=np.float64)
    rows = np.flatnonzero(support.any(axis=1))
    cols = np.flatnonzero(support.any(axis=0))
    if rows.size == 0:
        return None
    # Anti-alias: when the face is smaller in the frame than in the crop, area-downsample the
    # crop first so that bilinear sampling does not skip crop pixels.
    crop_per_frame_px = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if crop_per_frame_px > 1.25:
        small = max(8, round(size / crop_per_frame_px))
        k = small / size
        src = cv2.resize(src, (small, small), interpolation=cv2.INTER_AREA)
        M = M * k
        M[:, 2] += 0.5 * k - 0.5  # pixel centres: x' = (x + .5) k − .5
        c0, c1 = (cols[0] + 0.5) * k - 0.5, (cols[-1] + 0.5) * k - 0.5
        r0, r1 = (rows[0] + 0.5) * k - 0.5, (rows[-1] + 0.5) * k - 0.5
    else:
        c0, c1, r0, r1 = cols[0], cols[-1], rows[0], rows[-1]
    c0, c1, r0, r1 = c0 - 1, c1 + 1, r0 - 1, r1 + 1  # bilinear footprint
    corners = np.array([[c0, r0, 1], [c1, r0, 1], [c0, r1, 1], [c1, r1, 1]], np.float64)
    inv = cv2.invertAffineTransform(M)
    pts = corners @ inv.T
    h, w = frame_hw
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    m_roi = M.copy()
    m_roi[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64)
    warped = cv2.warpAffine(
        src,
        m_roi,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return (slice(y0, y1), slice(x0, x1)), warped


def _check_crop(mask: np.ndarray) -> int:
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be S×S, got shape {mask.shape}")
    return mask.shape[0]


def warp_mask_to_frame(
    mask: np.ndarray, M: np.ndarray, frame_shape: tuple[int, ...], region: bool = True
) -> np.ndarray:
    """The crop mask (S×S in [0, 1]) in frame coordinates: H×W float32, 0 outside the face.

    With ``region`` (default) the mask is multiplied by ``retouch_region_mask`` first, so this is
    exactly the weight ``paste_correction`` gives the correction at each frame pixel.
    """
    size = _check_crop(mask)
    weight = np.asarray(mask, dtype=np.float32)
    if region:
        weight = weight * _retouch_region_cached(size)
    h, w = frame_shape[:2]
    out = np.zeros((h, w), dtype=np.float32)
    res = _crop_to_frame(np.ascontiguousarray(weight), M, (h, w), weight > 0)
    if res is not None:
        sl, warped = res
        out[sl] = warped
    return out


def paste_correction(
    frame: np.ndarray,
    correction: np.ndarray,
    mask: np.ndarray,
    M: np.ndarray,
    strength: float = 1.0,
) -> None:
    """Add a crop-space correction to ``frame`` in place.

    frame: H×W×3 uint8 or uint16. correction: S×S×3 float32 in crop units (model output − crop,
    both in [-1, 1], so in [-2, 2]). mask: S×S float32 in [0, 1]. M: 2×3 frame → crop.
    The weight is mask · retouch_region_mask(S) · strength; the weighted correction is warped into
    the frame (only over the bounding box of its support), scaled to frame units (×127.5 for
    uint8, ×32767.5 for uint16), rounded, added and clipped. Pixels whose rounded change is 0
    keep their exact input values.
    """
    if frame.dtype == np.uint8:
        unit, depth = 127.5, cv2.CV_8U
    elif frame.dtype == np.uint16:
        unit, depth = 32767.5, cv2.CV_16U
    else:
        raise TypeError(f"expected a uint8 or uint16 frame, got {frame.dtype}")
    size = _check_crop(mask)
    if correction.ndim != 3 or correction.shape != (size, size, frame.shape[2]):
        raise ValueError(
            f"correction shape {correction.shape} does not match mask {mask.shape} "
            f"and frame {frame.shape}"
        )
    weight = np.asarray(mask, dtype=np.float32) * _retouch_region_cached(size)
    if strength != 1.0:
        weight = weight * np.float32(strength)
    weighted = np.asarray(correction, dtype=np.float32) * weight[..., None]
    if not np.isfinite(weighted).all():
        raise ValueError("correction contains NaN or infinity")
    res = _crop_to_frame(weighted, M, frame.shape[:2], (weight != 0) & np.any(weighted != 0, axis=2))
    if res is None:
        return
    sl, delta = res
    delta *= np.float32(unit)
    np.rint(delta, out=delta)
    if not delta.any():
        return
    # frame + integer-valued delta, saturated: exact, so where delta == 0 the pixel keeps its
    # decoded value bit for bit (cv2.add is ~4× faster than the numpy int32 round trip).
    frame[sl] = cv2.add(frame[sl], delta, dtype=depth)
