"""Alignment to the FFHQ 5-point template: similarity transform, crop warp, inverse.

``M`` is always a 2×3 float64 matrix mapping frame pixel coordinates to crop pixel coordinates
(cv2 convention, pixel centres at integers).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FFHQ_TEMPLATE", "template", "estimate_alignment", "warp_to_crop", "invert_affine"]

#: The standard FFHQ / facexlib 5-point face template for a 512×512 crop:
#: left eye, right eye, nose tip, left mouth corner, right mouth corner (image view).
FFHQ_TEMPLATE = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float64,
)
FFHQ_TEMPLATE.setflags(write=False)

_BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}


def template(size: int) -> np.ndarray:
    """The FFHQ template scaled to a size×size crop: [5, 2] float64."""
    return FFHQ_TEMPLATE * (float(size) / 512.0)


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src → dst.

    Closed form (Umeyama 1991). It depends smoothly on the landmarks, so smoothed landmarks give
    smoothly moving crops; a robust estimator that picks inlier subsets can jump between frames.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / var_s
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * r
    m[:, 2] = mu_d - scale * r @ mu_s
    return m


def estimate_alignment(landmarks: np.ndarray, size: int, method: str = "lstsq") -> np.ndarray:
    """Similarity M (2×3 float64, frame → crop) taking ``landmarks`` [5, 2] onto ``template(size)``.

    method: "lstsq" (default; least squares over all five points, temporally smooth) or "lmeds"
    (cv2.estimateAffinePartial2D with LMEDS, as facexlib does; robust to one bad point).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.all(np.isfinite(src)):
        raise ValueError("landmarks contain NaN or infinity")
    dst = template(size)
    if method == "lstsq":
        return _similarity_lstsq(src, dst)
    if method == "lmeds":
        m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if m is None:
            return _similarity_lstsq(src, dst)
        return m.astype(np.float64)
    raise ValueError(f"unknown alignment method {method!r} (use 'lstsq' or 'lmeds')")


def invert_affine(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (crop → frame when M is frame → crop), float64."""
    return cv2.invertAffineTransform(np.asarray(M, dtype=np.float64)).astype(np.float64)


def _unit_scale(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise TypeError(f"expected a uint8 or uint16 image, got {dtype}")


def warp_to_crop(image: np.ndarray, M: np.ndarray, size: int, border: str = "reflect") -> np.ndarray:
    """Aligned face crop: size×size×3 float32 in [-1, 1] (channels as in ``image``).

    ``image`` is H×W×3 uint8 or uint16. Bilinear sampling in float (no rounding to the input's
    integer grid); where the face is larger in the frame than the crop, the frame region is
    area-downsampled first (no aliasing). Only the frame region under the crop is processed, so
    the cost does not grow with the frame size; the border mode applies at the frame's edges.
    """
    unit = _unit_scale(image.dtype)
    if border not in _BORDERS:
        raise ValueError(f"unknown border {border!r} (use 'reflect' or 'replicate')")
    M = np.asarray(M, dtype=np.float64)
    h, w = image.shape[:2]
    inv = invert_affine(M)
    e = size - 1
    corners = np.array([[0, 0, 1], [e, 0, 1], [0, e, 1], [e, e, 1]], np.float64)
    pts = corners @ inv.T
    x0 = int(np.clip(np.floor(pts[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(pts[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()) + 3, y0 + 1, h))
    roi = image[y0:y1, x0:x1]
    # Frame coordinates = ROI coordinates + (x0, y0).
    m_roi = M.copy()
    m_roi[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64)
    # Anti-alias: when the face is larger in the frame than the crop (a 4K face into 512), area-
    # downsample the ROI first so that bilinear sampling does not skip frame pixels.
    frame_per_crop_px = 1.0 / float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if frame_per_crop_px > 1.25:
        rh, rw = roi.shape[:2]
        nw, nh = max(2, round(rw / frame_per_crop_px)), max(2, round(rh / frame_per_crop_px))
        roi = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
        kx, ky = nw / rw, nh / rh
        # small pixel u' ↔ ROI pixel u = (u' + .5) / k − .5 (pixel centres)
        m_roi[:, 2] += m_roi[:, 0] * (0.5 / kx - 0.5) + m_roi[:, 1] * (0.5 / ky - 0.5)
        m_roi[:, 0] /= kx
        m_roi[:, 1] /= ky
    roi = roi.astype(np.float32)
    roi *= 2.0 / unit
    roi -= 1.0
    return cv2.warpAffine(
        roi, m_roi, (size, size), flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border]
    )
