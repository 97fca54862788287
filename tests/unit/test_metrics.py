"""PSNR / SSIM against scikit-image, Soft-IoU and GT maps, LPIPS reference values, temporal metrics."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vretouch_cli.evaluate import metrics as m

skimage = pytest.importorskip("skimage")
from skimage import data as skdata  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402


def _pairs():
    rng = np.random.default_rng(0)
    astro = cv2.resize(skdata.astronaut(), (160, 128), interpolation=cv2.INTER_AREA)  # uint8 RGB
    noisy = np.clip(astro.astype(int) + rng.integers(-25, 26, astro.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(astro, (0, 0), 1.5)
    camera = cv2.resize(skdata.camera(), (96, 120), interpolation=cv2.INTER_AREA)  # uint8 grey
    cam_dark = (camera * 0.8).astype(np.uint8)
    a16 = astro.astype(np.uint16) * 257  # uint16 RGB, full 0–65535 scale
    n16 = np.clip(a16.astype(int) + rng.integers(-3000, 3001, a16.shape), 0, 65535).astype(np.uint16)
    return [("rgb-noise", astro, noisy, 255), ("rgb-blur", astro, blurred, 255), ("grey", camera, cam_dark, 255), ("rgb16", a16, n16, 65535)]


@pytest.mark.parametrize("name,a,b,r", _pairs(), ids=[p[0] for p in _pairs()])
def test_psnr_ssim_match_skimage(name, a, b, r):
    ch = -1 if a.ndim == 3 else None
    assert m.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=r), abs=1e-3)
    ref_gauss = structural_similarity(
        a, b, data_range=r, channel_axis=ch, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert abs(m.ssim(a, b) - ref_gauss) < 1e-3
    ref_default = structural_similarity(a, b, data_range=r, channel_axis=ch)
    assert abs(m.ssim(a, b, gaussian=False) - ref_default) < 1e-3


def test_psnr_identical_and_float_range():
    a = skdata.astronaut()[:64, :64]
    assert m.psnr(a, a) == math.inf
    assert m.ssim(a, a) == pytest.approx(1.0)
    f = a.astype(np.float32) / 255
    with pytest.raises(ValueError):
        m.psnr(f, f * 0.9)
    assert m.psnr(f, f * 0.9, data_range=1.0) == pytest.approx(peak_signal_noise_ratio(f, f * 0.9, data_range=1.0), abs=1e-3)


def test_masked_metrics():
    a = skdata.astronaut()[:96, :96]
    b = a.copy()
    b[:48] = 0  # only the top half differs
    bottom = np.zeros(a.shape[:2], np.float32)
    bottom[60:] = 1
    assert m.psnr(a, b, mask=bottom) == math.inf
    assert m.ssim(a, b, mask=bottom) == pytest.approx(1.0)
    top = 1 - bottom
    top[48:] = 0
    assert m.psnr(a, b, mask=top) == pytest.approx(peak_signal_noise_ratio(a[:48], b[:48], data_range=255), abs=1e-6)
    assert math.isnan(m.psnr(a, b, mask=np.zeros_like(bottom)))
    assert math.isnan(m.ssim(a, b, mask=np.zeros_like(bottom)))


def test_soft_iou_and_gt_map():
    a = np.array([[0.0, 0.5], [1.0, 0.2]])
    b = np.array([[0.0, 1.0], [0.5, 0.2]])
    assert m.soft_iou(a, b) == pytest.approx((0 + 0.5 + 0.5 + 0.2) / (0 + 1 + 1 + 0.2))
    assert m.soft_iou(a, a) == 1.0
    z = np.zeros((4, 4))
    assert m.soft_iou(z, z) == 1.0  # 0/0 defined as 1
    assert m.soft_iou(z, np.ones((4, 4))) == 0.0
    img = np.full((8, 8, 3), 100, np.uint8)
    gt = m.gt_imperfection_map(img, img)
    assert gt.shape == (8, 8) and not gt.any() and not np.isnan(gt).any()
    spot = img.copy()
    spot[2, 2] = 100 - 13  # 13 levels ≈ 0.051 → 0.51 at the default scale 0.1
    spot[5, 5] = 0  # saturates
    gt = m.gt_imperfection_map(spot, img)
    assert gt[2, 2] == pytest.approx(13 / 255 / m.GT_MAP_SCALE, abs=1e-5)
    assert gt[5, 5] == 1.0 and gt[0, 0] == 0.0
    assert gt.dtype == np.float32


def test_temporal_meter_static_and_flicker():
    from vretouch_cli.evaluate.temporal import TemporalMeter

    base = cv2.resize(skdata.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    meter = TemporalMeter()
    region = np.zeros((128, 128), np.float32)
    region[40:90, 40:90] = 1
    results = []
    for t in range(4):
        shift = np.float32([[1, 0, 2 * t], [0, 1, t]])
        ref = cv2.warpAffine(base, shift, (128, 128), borderMode=cv2.BORDER_REFLECT)
        popping = ref.copy()
        if t % 2:
            popping[60:66, 60:66] = 255  # a correction that appears on every other frame
        results.append(meter.push(ref, {"same": ref, "pop": popping}, region))
    assert results[0] is None
    for r in results[1:]:
        assert r["same"]["flicker"] == pytest.approx(0.0, abs=1e-6)
        assert r["same"]["warp_error_gap"] == pytest.approx(0.0, abs=1e-6)
        assert r["pop"]["flicker_face"] > 1.0
        assert r["pop"]["warp_error_gap_face"] > 1.0
