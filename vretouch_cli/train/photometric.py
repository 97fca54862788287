"""The photometric range of real footage, applied identically to a training pair.

The training photos are one studio's: even light, one camera, no compression. Real input has other
cameras, light directions, colour casts, noise, blur, resampling and JPEG/H.264 artefacts. A model
that never saw those took them for blemishes (MODEL.md §5: 4.4 % of face pixels changed far from
any spot on photos from other sources). Here one random *camera* is drawn per sample and applied to
the raw input and to the clean target alike — same gains, same light ramp, same noise realisation,
same blur, same resampling, same JPEG quality — so wherever the pair was equal it stays equal
(JPEG works on independent 8×8 / 16×16 blocks: blocks without a blemish encode identically), and
"change nothing" is taught under every one of these conditions.

Images are uint8 H×W×3 RGB; the output size may differ from the input (``out_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraParams:
    p_colour: float = 0.7  # white balance / colour cast
    p_gamma: float = 0.6  # exposure and tone curve
    p_light: float = 0.6  # light from one side (a multiplicative ramp across the face)
    p_blur: float = 0.35  # defocus / motion softness
    p_resample: float = 0.6  # the face was smaller in the source frame (upscaled crop)
    p_noise: float = 0.5  # sensor noise
    p_jpeg: float = 0.7  # compression
    jpeg_quality: tuple[int, int] = (30, 95)
    p_shade: float = 0.5  # shading where the face curves away from the light (smooth elongated blobs)


def _camera(rng: np.random.Generator, p: CameraParams, size: int) -> dict:
    cam: dict = {}
    if rng.random() < p.p_colour:
        cam["gains"] = np.exp(rng.normal(0.0, 0.07, 3)).astype(np.float32)
    if rng.random() < p.p_gamma:
        cam["gamma"] = float(np.exp(rng.normal(0.0, 0.2)))
        cam["gain"] = float(np.exp(rng.normal(0.0, 0.15)))
    if rng.random() < p.p_light:
        a = rng.uniform(0, 2 * np.pi)
        cam["light"] = (float(np.cos(a)), float(np.sin(a)), float(rng.uniform(0.1, 0.45)))
    if rng.random() < p.p_blur:
        cam["blur"] = float(rng.uniform(0.4, 1.2)) * size / 256.0
    if rng.random() < p.p_resample:
        cam["resample"] = float(rng.uniform(0.35, 0.9))
    if rng.random() < p.p_noise:
        cam["noise"] = float(rng.uniform(1.0, 6.0))
        cam["noise_seed"] = int(rng.integers(1 << 31))
        cam["noise_chroma"] = float(rng.uniform(0.0, 0.6))
    if rng.random() < p.p_jpeg:
        cam["jpeg"] = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    # Drawn last, so the other elements of a given rng stay what they were before shading existed.
    if rng.random() < p.p_shade:
        blobs = []
        for _ in range(int(rng.integers(1, 4))):
            side = rng.choice([-1.0, 1.0])
            cx = 0.5 + side * rng.uniform(0.15, 0.38)  # cheeks and temples, where the face turns away
            cy = rng.uniform(0.3, 0.85)
            sx, sy = rng.uniform(0.05, 0.1), rng.uniform(0.1, 0.25)  # narrow across, long down the face
            blobs.append((float(cx), float(cy), float(sx), float(sy), float(-rng.uniform(0.05, 0.3)), float(rng.uniform(-0.35, 0.35))))
        cam["shade"] = blobs
    return cam


def _shading(h: int, w: int, blobs: list) -> np.ndarray:
    """Multiplicative field 1 + Σ amount·exp(−½ r²) of rotated, elongated Gaussian blobs (H×W)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xs / w, ys / h
    field = np.ones((h, w), np.float32)
    for cx, cy, sx, sy, amount, tilt in blobs:
        c, s_ = np.cos(tilt), np.sin(tilt)
        du, dv = u - cx, v - cy
        a, b = c * du + s_ * dv, -s_ * du + c * dv
        field += amount * np.exp(-0.5 * ((a / sx) ** 2 + (b / sy) ** 2))
    return np.clip(field, 0.3, 1.5)


def _apply(img: np.ndarray, cam: dict, out_size: int) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    if "gains" in cam:
        x = x * cam["gains"][None, None, :]
    if "gamma" in cam:
        x = np.clip(x * cam["gain"], 0.0, 1.0) ** cam["gamma"]
    if "light" in cam:
        cx, cy, amount = cam["light"]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = ((xs / w - 0.5) * cx + (ys / h - 0.5) * cy) * 2.0  # −1 … 1 across the crop
        x = x * (1.0 + amount * ramp)[..., None]
    if "shade" in cam:
        x = x * _shading(h, w, cam["shade"])[..., None]
    x = np.clip(x, 0.0, 1.0)
    if "blur" in cam:
        x = cv2.GaussianBlur(x, (0, 0), cam["blur"])
    if "resample" in cam:
        small = max(16, int(round(out_size * cam["resample"])))
        x = cv2.resize(x, (small, small), interpolation=cv2.INTER_AREA)
        x = cv2.resize(x, (out_size, out_size), interpolation=cv2.INTER_CUBIC)
    elif x.shape[0] != out_size:
        x = cv2.resize(x, (out_size, out_size), interpolation=cv2.INTER_AREA)
    if "noise" in cam:
        nrng = np.random.default_rng(cam["noise_seed"])
        lum = nrng.standard_normal((out_size, out_size, 1)).astype(np.float32)
        chroma = nrng.standard_normal((out_size, out_size, 3)).astype(np.float32)
        x = x + (cam["noise"] / 255.0) * (lum + cam["noise_chroma"] * chroma)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if "jpeg" in cam:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, cam["jpeg"]])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def apply_camera(images: list[np.ndarray], rng: np.random.Generator, out_size: int, params: CameraParams = CameraParams()) -> list[np.ndarray]:
    """The same random camera applied to every image of ``images`` (uint8 H×W×3, same size)."""
    cam = _camera(rng, params, out_size)
    return [_apply(im, cam, out_size) for im in images]
