"""Image metrics: PSNR, SSIM (whole frame or weighted by a face mask), imperfection maps, Soft-IoU.

Images are ``np.ndarray`` H×W×C or H×W, ``uint8`` (range 255), ``uint16`` (range 65535) or float
(then ``data_range`` must be given). Masks/weights are H×W floats in [0, 1].

The definitions match scikit-image (``skimage.metrics``), which the tests check to 1e-3:

- :func:`psnr` = ``peak_signal_noise_ratio(a, b, data_range=R)`` (mean squared error over every
  pixel and channel). Identical images give ``inf``.
- :func:`ssim` with ``gaussian=True`` (the default, Wang et al. 2004: 11×11 Gaussian window,
  σ = 1.5, population covariance) = ``structural_similarity(a, b, data_range=R, channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``; with ``gaussian=False`` it is
  scikit-image's default (7×7 uniform window, sample covariance). Colour images: the mean of the
  per-channel SSIMs; a border of half a window is left out of the mean, as scikit-image does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# |raw − retouched| (channel mean, image scaled to [0, 1]) at which the ground-truth imperfection
# map saturates to 1. Retouchers change a blemish by about 5–25 levels of 255 (MODEL.md §4), so
# 0.1 (≈ 25 levels) maps a typical spot to 0.2–1 while JPEG/codec noise (1–2 levels) stays < 0.1.
GT_MAP_SCALE = 0.1


def data_range_of(image: np.ndarray) -> float:
    """The value range of an image's dtype: 255 for uint8, 65535 for uint16; floats need it given."""
    if image.dtype == np.uint8:
        return 255.0
    if image.dtype == np.uint16:
        return 65535.0
    raise ValueError(f"data_range must be given for images of dtype {image.dtype}")


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def _as_weight(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    w = np.asarray(mask, dtype=np.float64)
    if w.shape != shape[:2]:
        raise ValueError(f"mask shape {w.shape} does not match the image's {shape[:2]}")
    return np.clip(w, 0.0, 1.0)


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over pixels and channels, optionally weighted per pixel by ``mask``.

    Returns NaN when the mask is empty (no face region to measure).
    """
    _check_pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    d2 = d * d
    w = _as_weight(mask, a.shape)
    if w is None:
        return float(d2.mean())
    if d2.ndim == 3:
        d2 = d2.mean(axis=2)
    total = w.sum()
    if total <= 0:
        return float("nan")
    return float((d2 * w).sum() / total)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(R² / MSE)``; ``inf`` for identical images.

    With ``mask`` (H×W in [0, 1]) the MSE is the mask-weighted mean (the face-region PSNR);
    an empty mask gives NaN.
    """
    r = float(data_range) if data_range is not None else data_range_of(a)
    m = mse(a, b, mask)
    if math.isnan(m):
        return float("nan")
    if m == 0:
        return float("inf")
    return 10.0 * math.log10(r * r / m)


def _filter(x: np.ndarray, gaussian: bool, win_size: int, sigma: float) -> np.ndarray:
    # BORDER_REFLECT ('abc|cba') is scipy.ndimage's mode='reflect', which scikit-image uses.
    if gaussian:
        k = cv2.getGaussianKernel(win_size, sigma, cv2.CV_64F)
        return cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)
    return cv2.blur(x, (win_size, win_size), borderType=cv2.BORDER_REFLECT)


def ssim_map(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float | None = None,
    *,
    gaussian: bool = True,
    sigma: float = 1.5,
    win_size: int | None = None,
) -> tuple[np.ndarray, int]:
    """The SSIM map (H×W, averaged over channels) and the border ``pad`` excluded from its mean."""
    _check_pair(a, b)
    r = float(data_range) if data_range is not None else data_range_of(a)
    if win_size is None:
        win_size = 2 * int(3.5 * sigma + 0.5) + 1 if gaussian else 7
    if min(a.shape[:2]) < win_size:
        raise ValueError(f"images must be at least {win_size}×{win_size} for SSIM, got {a.shape[:2]}")
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    n = win_size * win_size
    cov_norm = 1.0 if gaussian else n / (n - 1)
    c1 = (0.01 * r) ** 2
    c2 = (0.03 * r) ** 2
    total = np.zeros(x.shape[:2], np.float64)
    for c in range(x.shape[2]):
        xc = np.ascontiguousarray(x[..., c])
        yc = np.ascontiguousarray(y[..., c])
        ux = _filter(xc, gaussian, win_size, sigma)
        uy = _filter(yc, gaussian, win_size, sigma)
        vx = cov_norm * (_filter(xc * xc, gaussian, win_size, sigma) - ux * ux)
        vy = cov_norm * (_filter(yc * yc, gaussian, win_size, sigma) - uy * uy)
        vxy = cov_norm * (_filter(xc * yc, gaussian, win_size, sigma) - ux * uy)
        total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return total / x.shape[2], (win_size - 1) // 2


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
    *,
    gaussian: bool = True,
    sigma: float = 1.5,
    win_size: int | None = None,
) -> float:
    """Structural similarity in [-1, 1] (see the module docstring for the exact definition).

    With ``mask`` the SSIM map is averaged with the mask as weights (the face-region SSIM); an
    empty mask gives NaN.
    """
    s, pad = ssim_map(a, b, data_range, gaussian=gaussian, sigma=sigma, win_size=win_size)
    h, w = s.shape
    inner = s[pad : h - pad, pad : w - pad]
    wt = _as_weight(mask, a.shape)
    if wt is None:
        return float(inner.mean(dtype=np.float64))
    wt = wt[pad : h - pad, pad : w - pad]
    total = wt.sum()
    if total <= 0:
        return float("nan")
    return float((inner * wt).sum() / total)


def to_unit(image: np.ndarray) -> np.ndarray:
    """An image as float32 in [0, 1] (uint8 / 255, uint16 / 65535; floats are taken as [0, 1])."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    return image.astype(np.float32)


def gt_imperfection_map(raw: np.ndarray, retouched: np.ndarray, scale: float = GT_MAP_SCALE) -> np.ndarray:
    """Ground-truth imperfection map of a pair (MODEL.md §3), H×W float32 in [0, 1].

    ``|raw − retouched|`` averaged over channels (images scaled to [0, 1]), divided by ``scale``
    and clipped to [0, 1]. Identical images give all zeros (never NaN).
    """
    _check_pair(raw, retouched)
    d = np.abs(to_unit(raw) - to_unit(retouched))
    if d.ndim == 3:
        d = d.mean(axis=2)
    return np.clip(d / float(scale), 0.0, 1.0).astype(np.float32)


def soft_iou(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Soft intersection over union of two maps in [0, 1]: ``Σ min(a, b) / Σ max(a, b)``.

    Two all-zero maps agree perfectly: 0/0 is defined as 1. ``mask`` (same shape, in [0, 1])
    weights the pixels, e.g. to restrict the comparison to the face region.
    """
    _check_pair(a, b)
    x = np.clip(np.asarray(a, np.float64), 0.0, 1.0)
    y = np.clip(np.asarray(b, np.float64), 0.0, 1.0)
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    if mask is not None:
        w = np.clip(np.asarray(mask, np.float64), 0.0, 1.0)
        lo, hi = lo * w, hi * w
    den = hi.sum()
    if den <= 0:
        return 1.0
    return float(lo.sum() / den)
