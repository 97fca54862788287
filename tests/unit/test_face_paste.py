"""Correction paste-back: bit-exact where nothing changes, local where something does."""

from __future__ import annotations

import numpy as np
import pytest

from vretouch_cli.face.align import estimate_alignment, invert_affine, template, warp_to_crop
from vretouch_cli.face.paste import face_region_mask, paste_correction, retouch_region_mask, warp_mask_to_frame

S = 128


def _frame(h=240, w=320, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == np.uint8 else 65535
    return rng.integers(0, hi + 1, (h, w, 3)).astype(dtype)


def _m(scale=1.0, angle=10.0, centre=(160.0, 120.0), size=S):
    """Frame → crop similarity placing a template face of eye distance ~ 0.25·size/scale."""
    lm = (template(size) - size / 2) / scale
    a = np.deg2rad(angle)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = lm @ r.T + centre
    return estimate_alignment(lm, size)


def test_face_region_mask_shape_and_feather():
    m = face_region_mask(512)
    assert m.shape == (512, 512) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    assert m[288, 256] == 1.0 and m[240, 256] == 1.0 and m[371, 256] == 1.0  # eyes to mouth
    border = 40
    assert not m[:border].any() and not m[-border:].any()
    assert not m[:, :border].any() and not m[:, -border:].any()
    np.testing.assert_allclose(m[:, 1:], m[:, 1:][:, ::-1], atol=1e-6)  # symmetric about x=256
    assert np.abs(np.diff(m, axis=1)).max() < 0.05  # soft: no hard edge
    m2 = face_region_mask(128)
    m2[:] = 0  # a copy: the cache is not modified
    assert face_region_mask(128).max() == 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_zero_correction_is_bit_identical(dtype):
    frame = _frame(dtype=dtype)
    before = frame.copy()
    corr = np.zeros((S, S, 3), np.float32)
    paste_correction(frame, corr, np.ones((S, S), np.float32), _m())
    assert np.array_equal(frame, before)
    # A correction that rounds to zero everywhere changes nothing either.
    unit = 127.5 if dtype == np.uint8 else 32767.5
    paste_correction(frame, np.full((S, S, 3), 0.49 / unit, np.float32), np.ones((S, S), np.float32), _m())
    assert np.array_equal(frame, before)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_patch_correction_changes_only_nearby_pixels(dtype):
    frame = np.full((240, 320, 3), 100 if dtype == np.uint8 else 25700, dtype)
    before = frame.copy()
    m = _m(scale=0.8)
    corr = np.zeros((S, S, 3), np.float32)
    y0, x0 = 80, 44  # a 6×6 patch on the cheek, inside the face region and away from the features
    corr[y0 : y0 + 6, x0 : x0 + 6] = [0.4, -0.2, 0.1]
    paste_correction(frame, corr, np.ones((S, S), np.float32), m)
    changed = np.any(frame != before, axis=2)
    assert changed.any()
    # Changed pixels lie within the patch's footprint in the frame, plus the bilinear margin.
    inv = invert_affine(m)
    corners = np.array([[x0 - 1, y0 - 1], [x0 + 6, y0 - 1], [x0 - 1, y0 + 6], [x0 + 6, y0 + 6]], float)
    fc = corners @ inv[:, :2].T + inv[:, 2]
    ys, xs = np.nonzero(changed)
    assert xs.min() >= np.floor(fc[:, 0].min()) - 1 and xs.max() <= np.ceil(fc[:, 0].max()) + 1
    assert ys.min() >= np.floor(fc[:, 1].min()) - 1 and ys.max() <= np.ceil(fc[:, 1].max()) + 1
    # The patch centre gets the correction times the retouch region weight there.
    cx, cy = np.array([x0 + 2.5, y0 + 2.5]) @ inv[:, :2].T + inv[:, 2]
    unit = 127.5 if dtype == np.uint8 else 32767.5
    got = frame[int(round(cy)), int(round(cx))].astype(np.float64) - before[0, 0]
    np.testing.assert_allclose(got, np.array([0.4, -0.2, 0.1]) * unit * retouch_region_mask(S)[y0 + 2, x0 + 2], rtol=0.1, atol=1)


def test_mask_and_region_limit_the_edit():
    frame = np.full((240, 320, 3), 128, np.uint8)
    m = _m()
    corr = np.full((S, S, 3), 0.3, np.float32)
    mask = np.zeros((S, S), np.float32)
    paste_correction(frame, corr, mask, m)
    assert (frame == 128).all()
    paste_correction(frame, corr, np.ones((S, S), np.float32), m)
    weight = warp_mask_to_frame(np.ones((S, S), np.float32), m, frame.shape)
    assert weight.shape == (240, 320) and weight.dtype == np.float32
    changed = np.any(frame != 128, axis=2)
    assert changed.any() and not changed[weight == 0].any()
    expect = np.rint(128 + 0.3 * 127.5 * weight)
    np.testing.assert_allclose(frame[..., 0], expect, atol=1)
    # The edit fades out smoothly (smoothstep over the feather, blurred edges around the eyes,
    # brows, nostrils and lips): no seam. The steepest slope either can have: the smoothstep's
    # 1.5 / feather, and a unit step blurred with σ = S/64 and scaled by 1.25 (the features'
    # edge), 1.25 / (√(2π) σ); plus one level of rounding on each side.
    assert frame[..., 0].max() == 128 + round(0.3 * 127.5)
    feather_px = (1.0 - 0.72) * 140 * S / 512
    slope = max(1.5 / feather_px, 1.25 / (np.sqrt(2 * np.pi) * S / 64))
    max_step = 0.3 * 127.5 * slope + 1.5
    frame_i = frame[..., 0].astype(int)
    assert max(np.abs(np.diff(frame_i, axis=1)).max(), np.abs(np.diff(frame_i, axis=0)).max()) <= max_step


def test_region_keeps_the_nose_wings_creases_and_the_cheeks_beside_them():
    from vretouch_cli.face.regions import face_frame

    eye_mid, u, v, d, h = face_frame(template(512))
    at = lambda x, y: np.rint(eye_mid + x * d * u + y * h * v).astype(int)  # noqa: E731  (face-local → crop)
    m = retouch_region_mask(512)
    for side in (-1, 1):
        # The groove where a wide (smiling) nose wing meets the cheek: a correction there is cut
        # to a third or less.
        for x in (0.30, 0.33):
            for y in (0.55, 0.60):
                cx, cy = at(side * x, y)
                assert m[cy, cx] < 0.35
        # A spot on the cheek half an eye distance from the nose's axis: fully retouched.
        cx, cy = at(side * 0.52, 0.45)
        assert m[cy, cx] > 0.95


def test_clipping_and_strength():
    frame = np.full((240, 320, 3), 250, np.uint8)
    paste_correction(frame, np.full((S, S, 3), 0.5, np.float32), np.ones((S, S), np.float32), _m())
    assert frame.max() == 255
    frame = np.full((240, 320, 3), 100, np.uint8)
    paste_correction(frame, np.full((S, S, 3), 0.4, np.float32), np.ones((S, S), np.float32), _m(), strength=0.5)
    assert frame.max() == 100 + round(0.2 * 127.5)


def test_small_face_is_antialiased():
    """Face much smaller in the frame than the crop: the correction is area-averaged."""
    frame = np.full((240, 320, 3), 100, np.uint8)
    corr = np.zeros((S, S, 3), np.float32)
    corr[::2] = 0.4  # stripes finer than a frame pixel
    m = _m(scale=4.0)
    paste_correction(frame, corr, np.ones((S, S), np.float32), m)
    inv = invert_affine(m)
    cx, cy = np.array([S / 2 - 22, S / 2 + 14]) @ inv[:, :2].T + inv[:, 2]  # the cheek, clear of the features
    win = (slice(int(cy) - 2, int(cy) + 3), slice(int(cx) - 2, int(cx) + 3))
    centre = frame[win][..., 0].astype(float)
    weight = warp_mask_to_frame(np.ones((S, S), np.float32), m, frame.shape)[win]
    np.testing.assert_allclose(centre, 100 + 0.2 * 127.5 * weight, atol=2)


def test_face_partly_outside_frame_and_fully_outside():
    frame = _frame()
    before = frame.copy()
    corr = np.full((S, S, 3), 0.2, np.float32)
    ones = np.ones((S, S), np.float32)
    paste_correction(frame, corr, ones, _m(centre=(5.0, 230.0)))
    assert not np.array_equal(frame, before)
    frame = before.copy()
    paste_correction(frame, corr, ones, _m(centre=(-500.0, -500.0)))
    assert np.array_equal(frame, before)
    assert not warp_mask_to_frame(ones, _m(centre=(-500.0, -500.0)), frame.shape).any()


def test_roundtrip_with_warp_to_crop():
    """Pasting (target − crop) brings the face region of the frame close to the target."""
    frame = np.full((240, 320, 3), 90, np.uint8)
    m = _m(scale=1.0)
    crop = warp_to_crop(frame, m, S)
    target = crop + 0.25
    paste_correction(frame, target - crop, np.ones((S, S), np.float32), m)
    w = warp_mask_to_frame(np.ones((S, S), np.float32), m, frame.shape)
    full = w > 0.999
    assert full.sum() > 100  # cheeks, chin, forehead centre (the features are left out)
    assert np.all(frame[full] == 90 + round(0.25 * 127.5))


def test_bad_shapes_raise():
    frame = _frame()
    with pytest.raises(ValueError):
        paste_correction(frame, np.zeros((S, S, 3), np.float32), np.ones((S, S + 1), np.float32), _m())
    with pytest.raises(ValueError):
        paste_correction(frame, np.zeros((S, S, 1), np.float32), np.ones((S, S), np.float32), _m())
    with pytest.raises(TypeError):
        paste_correction(frame.astype(np.float32), np.zeros((S, S, 3), np.float32), np.ones((S, S), np.float32), _m())
    with pytest.raises(ValueError):
        paste_correction(frame, np.full((S, S, 3), np.nan, np.float32), np.ones((S, S), np.float32), _m())


def test_noise_gate_damps_noise_edits_on_noisy_crops_only():
    """A noisy crop's correction is damped where it is no larger than the noise; a spot's deep
    correction passes; a crop with clean sensor data is left alone entirely."""
    from vretouch_cli.face.paste import crop_noise, noise_gate

    rng = np.random.default_rng(0)
    size = 128
    clean = np.full((size, size, 3), (200.0, 150.0, 130.0), np.float32)
    noisy = clean + rng.normal(0, 6.0, (size, size, 1)).astype(np.float32)
    assert crop_noise(clean) < 0.5 and 4.0 < crop_noise(noisy) < 8.0
    correction = rng.normal(0, 1.5, (size, size, 3)).astype(np.float32)  # an edit of the noise
    correction[60:68, 60:68] = (0.0, 25.0, 25.0)  # and a red spot's removal
    assert (noise_gate(clean, correction) == 1.0).all()
    g = noise_gate(noisy, correction)
    assert g.shape == (size, size) and g.dtype == np.float32 and 0.0 <= g.min() and g.max() <= 1.0
    assert g[64, 64] > 0.95  # the spot's correction passes
    assert np.median(g[:40, :40]) < 0.5  # the noise edits are damped
