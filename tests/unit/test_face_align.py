"""FFHQ template, similarity estimation, crop warp and its inverse."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vretouch_cli.face.align import (
    FFHQ_TEMPLATE,
    estimate_alignment,
    invert_affine,
    template,
    warp_to_crop,
)


def _similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, [[tx], [ty]]])


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


def _smooth_image(h, w, dtype=np.uint8):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 0.5 + 0.2 * np.sin(xx / 23.0) + 0.2 * np.cos(yy / 17.0)
    g = 0.5 + 0.3 * np.sin((xx + yy) / 31.0)
    b = xx / w * 0.6 + 0.2
    img = np.stack([r, g, b], -1)
    unit = 255 if dtype == np.uint8 else 65535
    return np.round(np.clip(img, 0, 1) * unit).astype(dtype)


def test_template_points():
    np.testing.assert_allclose(FFHQ_TEMPLATE[0], [192.98138, 239.94708])
    np.testing.assert_allclose(FFHQ_TEMPLATE[4], [313.08905, 371.15118])
    np.testing.assert_allclose(template(512), FFHQ_TEMPLATE)
    np.testing.assert_allclose(template(256), FFHQ_TEMPLATE / 2)


@pytest.mark.parametrize("method", ["lstsq", "lmeds"])
def test_known_similarity_is_recovered(method):
    m_true = _similarity(17.0, 2.3, -310.0, 95.0)  # frame → crop
    landmarks = _apply(invert_affine(m_true), template(512))
    m = estimate_alignment(landmarks.astype(np.float32), 512, method=method)
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, m_true, atol=1e-3 if method == "lstsq" else 1e-2)
    np.testing.assert_allclose(_apply(m, landmarks), template(512), atol=1e-2)


def test_alignment_is_a_similarity_and_never_mirrors():
    rng = np.random.default_rng(0)
    lm = template(256) * 0.7 + [40, 60] + rng.normal(0, 2.0, (5, 2))
    m = estimate_alignment(lm, 256)
    a = m[:, :2]
    assert a[0, 0] == pytest.approx(a[1, 1]) and a[0, 1] == pytest.approx(-a[1, 0])
    assert np.linalg.det(a) > 0
    mirrored = lm * [-1, 1]
    assert np.linalg.det(estimate_alignment(mirrored, 256)[:, :2]) > 0


def test_degenerate_landmarks_raise():
    with pytest.raises(ValueError):
        estimate_alignment(np.ones((5, 2)), 256)
    with pytest.raises(ValueError):
        estimate_alignment(np.full((5, 2), np.nan), 256)
    with pytest.raises(ValueError):
        estimate_alignment(template(256), 256, method="magic")


def test_invert_affine_roundtrip():
    m = _similarity(-33.0, 0.6, 12.0, -7.5)
    inv = invert_affine(m)
    pts = np.array([[0.0, 0.0], [100.0, 50.0], [-3.0, 7.0]])
    np.testing.assert_allclose(_apply(inv, _apply(m, pts)), pts, atol=1e-9)


def test_warp_to_crop_samples_bilinear_in_float():
    img = _smooth_image(300, 400)
    m = _similarity(12.0, 1.3, -150.0, -80.0)
    crop = warp_to_crop(img, m, 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.float32
    assert -1.0 <= crop.min() and crop.max() <= 1.0
    inv = invert_affine(m)
    ref = img.astype(np.float64) / 127.5 - 1
    for x, y in [(10, 20), (64, 64), (100, 7), (127, 127)]:
        fx, fy = _apply(inv, np.array([[x, y]], float))[0]
        x0, y0 = int(np.floor(fx)), int(np.floor(fy))
        ax, ay = fx - x0, fy - y0
        v = (
            ref[y0, x0] * (1 - ax) * (1 - ay)
            + ref[y0, x0 + 1] * ax * (1 - ay)
            + ref[y0 + 1, x0] * (1 - ax) * ay
            + ref[y0 + 1, x0 + 1] * ax * ay
        )
        np.testing.assert_allclose(crop[y, x], v, atol=2e-3)  # cv2 quantises positions to 1/32 px


def test_warp_then_inverse_warp_roundtrips():
    img = _smooth_image(300, 400)
    m = _similarity(-20.0, 1.5, -200.0, -40.0)  # crop 256 covers a region inside the frame
    crop = warp_to_crop(img, m, 256)
    back = cv2.warpAffine(crop, invert_affine(m), (400, 300), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((256, 256), np.float32), invert_affine(m), (400, 300)) > 0.999
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert inside.sum() > 5000
    ref = img.astype(np.float32) / 127.5 - 1
    err = np.abs(back - ref)[inside]
    assert err.max() < 0.03 and err.mean() < 0.004


def test_uint16_matches_uint8():
    img8 = _smooth_image(120, 160)
    img16 = img8.astype(np.uint16) * 257
    m = _similarity(5.0, 1.1, -20.0, -10.0)
    np.testing.assert_allclose(warp_to_crop(img16, m, 64), warp_to_crop(img8, m, 64), atol=1e-5)
    with pytest.raises(TypeError):
        warp_to_crop(img8.astype(np.float32), m, 64)


def test_crop_beyond_frame_uses_border_not_black():
    img = np.full((100, 100, 3), 200, np.uint8)
    m = _similarity(0.0, 1.0, 60.0, 60.0)  # frame origin lands at crop (60, 60): crop overhangs
    for border in ("reflect", "replicate"):
        crop = warp_to_crop(img, m, 128, border=border)
        np.testing.assert_allclose(crop, 200 / 127.5 - 1, atol=1e-5)


def test_large_face_is_antialiased_into_the_crop():
    """Face 4× larger in the frame than in the crop (a 4K face into a small crop)."""
    img = np.zeros((512, 512, 3), np.uint8)
    img[::2] = 200  # one-pixel stripes: bilinear sampling alone would alias them
    m = _similarity(0.0, 0.25, 0.0, 0.0)
    crop = warp_to_crop(img, m, 128)
    np.testing.assert_allclose(crop[4:-4, 4:-4], 100 / 127.5 - 1, atol=0.02)
    # A smooth image is unaffected (within the averaging error) and positions are preserved.
    smooth = _smooth_image(512, 512)
    ref = cv2.resize(smooth, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
    got = warp_to_crop(smooth, _similarity(0.0, 0.25, -0.375, -0.375), 128)
    np.testing.assert_allclose(got[2:-2, 2:-2], ref[2:-2, 2:-2], atol=0.02)
