"""clean_target: removes red temporary spots from a target crop, keeps moles, touches nothing else."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vretouch_cli.train.cleanup import clean_target

S = 256  # small crops keep the tests fast; sizes below are scaled from 512 with size_hint


def _lab_to_u8(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _skin_lab(seed: int = 0, size: int = S) -> np.ndarray:
    """Skin-coloured Lab image with pore-like texture and a gentle shading gradient."""
    rng = np.random.default_rng(seed)
    lab = np.empty((size, size, 3), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    tex = cv2.GaussianBlur(rng.normal(0.0, 1.0, (size, size)).astype(np.float32), (0, 0), 0.8)
    tex *= 2.0 / tex.std()
    lab[..., 0] = 66.0 + 4.0 * (xx / size - 0.5) + tex
    lab[..., 1] = 13.0 + 0.3 * cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.0)
    lab[..., 2] = 17.0
    return lab


def _disk(cy: int, cx: int, diameter: float, size: int = S, soft: float = 1.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(yy - cy, xx - cx)
    return np.clip((diameter / 2.0 - r) / soft + 0.5, 0.0, 1.0).astype(np.float32)


def _skin_mask(size: int = S) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[16:-16, 16:-16] = 1.0
    return cv2.GaussianBlur(m, (0, 0), 3.0)


def test_shape_dtype_and_outside_skin_bit_identical() -> None:
    lab = _skin_lab(1)
    lab[..., 1] += 12.0 * _disk(128, 128, 8)
    img = _lab_to_u8(lab)
    # Put a red spot outside the skin too: it must not be touched.
    outside = _lab_to_u8(lab + np.stack([0 * lab[..., 0], 12.0 * _disk(8, 8, 8), 0 * lab[..., 0]], -1))
    img[:16, :16] = outside[:16, :16]
    skin = _skin_mask()
    out, healed = clean_target(img, skin)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert healed.shape == skin.shape and healed.dtype == np.float32
    assert healed.min() >= 0.0 and healed.max() <= 1.0
    assert np.array_equal(out[skin <= 0.5], img[skin <= 0.5])
    assert np.all(healed[skin <= 0.5] == 0.0)


def test_red_spot_is_removed() -> None:
    lab = _skin_lab(2)
    clean = _lab_to_u8(lab)
    spot = _disk(120, 140, 8)
    raw = _lab_to_u8(lab + np.stack([0 * spot, 12.0 * spot, 0 * spot], -1))
    out, healed = clean_target(raw, np.ones((S, S), np.float32), size_hint=512)
    ref = cv2.cvtColor(clean.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)

    def de(x: np.ndarray) -> float:
        lx = cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        return float(np.linalg.norm(lx - ref, axis=2)[spot > 0.5].mean())

    before, after = de(raw), de(out)
    assert before > 8.0
    assert after < 0.3 * before, (before, after)
    assert healed[120, 140] > 0.5


def test_dark_mole_is_kept() -> None:
    lab = _skin_lab(3)
    mole = _disk(100, 100, 6, soft=0.7)
    lab[..., 0] -= 30.0 * mole
    img = _lab_to_u8(lab)
    out, _ = clean_target(img, np.ones((S, S), np.float32), size_hint=512)
    diff = np.abs(out.astype(int) - img.astype(int))
    assert diff[mole > 0.05].max() < 2


def test_clean_texture_barely_changes_and_healed_is_zero_where_unchanged() -> None:
    lab = _skin_lab(4)
    img = _lab_to_u8(lab)
    skin = _skin_mask()
    out, healed = clean_target(img, skin, size_hint=512)
    diff = np.abs(out.astype(int) - img.astype(int)).max(axis=2)
    assert (diff > 3).mean() < 0.005
    assert np.all(healed[diff == 0] == 0.0)


@pytest.mark.parametrize("size", [128, 512])
def test_sizes_and_empty_skin(size: int) -> None:
    img = _lab_to_u8(_skin_lab(5, size))
    out, healed = clean_target(img, np.zeros((size, size), np.float32))
    assert np.array_equal(out, img) and not healed.any()
    out, healed = clean_target(img, np.ones((size, size), np.float32))
    assert out.shape == img.shape and healed.shape == (size, size)
