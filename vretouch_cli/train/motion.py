"""Smooth random motion for FFHQR-Seq style clips, with exact ground-truth flow (MODEL.md §4).

A still pair (or a clean face with synthetic blemishes) becomes a T-frame clip by a smooth random
walk of small per-frame translation, rotation and scale about the crop centre (a horizontal flip
is decided once per clip). The same affine warps move source, target and blemish map, so the flow
between consecutive frames is known exactly:

``frame_k = warp(base, A_k)`` means ``frame_k(A_k p) = base(p)``, hence
``frame_{k+1}(x) = frame_k(A_k A_{k+1}^{-1} x)`` and the flow on frame k+1's grid is
``flow_k(x) = A_k A_{k+1}^{-1} x − x`` — ARCHITECTURE.md's convention (backward warping,
(dx, dy) in pixels at S, pixel centres at integers as in cv2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MotionParams", "random_motion", "warp_frames", "flows_from_affines"]


@dataclass(frozen=True)
class MotionParams:
    """Per-frame step sizes (standard deviations) and the initial offset of the walk."""

    step_translate: float = 0.006  # of S per frame (≈ 3 px at 512)
    step_rotate_deg: float = 0.5
    step_scale: float = 0.005
    init_translate: float = 0.02  # of S: crop jitter of the first frame
    init_rotate_deg: float = 2.0
    init_scale: float = 0.03
    smoothness: float = 0.8  # AR(1) coefficient of the velocities (0 = jerky, → 1 = constant velocity)
    flip_prob: float = 0.5


def _affine(size: int, tx: float, ty: float, rot_deg: float, log_scale: float, flip: bool) -> np.ndarray:
    c = (size - 1) / 2.0
    a = math.radians(rot_deg)
    s = math.exp(log_scale)
    R = np.array([[s * math.cos(a), -s * math.sin(a)], [s * math.sin(a), s * math.cos(a)]])
    if flip:
        R = R @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    A = np.zeros((2, 3))
    A[:, :2] = R
    A[:, 2] = np.array([c + tx, c + ty]) - R @ np.array([c, c])
    return A


def random_motion(frames: int, size: int, rng: np.random.Generator, params: MotionParams = MotionParams()) -> np.ndarray:
    """Affines A_k [T, 2, 3] (base crop → frame k) of a smooth random walk."""
    flip = bool(rng.random() < params.flip_prob)
    sd_step = np.array([params.step_translate * size, params.step_translate * size, params.step_rotate_deg, params.step_scale])
    sd_init = np.array([params.init_translate * size, params.init_translate * size, params.init_rotate_deg, params.init_scale])
    pose = rng.normal(0.0, 1.0, 4) * sd_init
    vel = rng.normal(0.0, 1.0, 4) * sd_step
    rho = params.smoothness
    out = []
    for k in range(frames):
        if k:
            vel = rho * vel + math.sqrt(1 - rho * rho) * rng.normal(0.0, 1.0, 4) * sd_step
            pose = pose + vel
        out.append(_affine(size, pose[0], pose[1], pose[2], pose[3], flip))
    return np.stack(out)


def warp_frames(image: np.ndarray, affines: np.ndarray, size: int) -> np.ndarray:
    """[T, S, S, C] frames of ``image`` (H×W×C float32) moved by each affine (bilinear, reflected border)."""
    frames = []
    for A in affines:
        w = cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        frames.append(w.reshape(size, size, -1))
    return np.stack(frames)


def _h(A: np.ndarray) -> np.ndarray:
    return np.vstack([A, [0.0, 0.0, 1.0]])


def flows_from_affines(affines: np.ndarray, size: int) -> np.ndarray:
    """Exact flows [T−1, 2, S, S] float32: ``flows[k]`` on frame k+1's grid, frame_{k+1}(x) = frame_k(x + flow(x))."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((len(affines) - 1, 2, size, size), np.float32)
    for k in range(len(affines) - 1):
        B = _h(affines[k]) @ np.linalg.inv(_h(affines[k + 1]))
        out[k, 0] = B[0, 0] * xs + B[0, 1] * ys + B[0, 2] - xs
        out[k, 1] = B[1, 0] * xs + B[1, 1] * ys + B[1, 2] - ys
    return out
