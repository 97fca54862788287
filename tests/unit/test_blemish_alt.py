"""The independent validation-only blemish appearance model (``train/blemish_alt.py``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vretouch_cli.face.align import template
from vretouch_cli.train.blemish_alt import render_alt_blemishes


def _synthetic_face(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured face-like crop with pore-like noise and a skin mask with holes."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), (120, 120, 130), np.float32)  # background
    face = np.zeros((size, size), np.float32)
    lm = template(size)
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    centre = (int(lm[2, 0]), int(lm[2, 1] - 0.3 * iod))
    axes = (int(0.95 * iod), int(1.5 * iod))
    cv2.ellipse(face, centre, axes, 0, 0, 360, 1.0, -1)
    skin_rgb = np.array([205, 155, 130], np.float32)
    shading = np.linspace(1.05, 0.9, size, dtype=np.float32)[:, None, None]  # top-lit
    texture = rng.normal(0, 4, (size, size, 1)) + rng.normal(0, 1.5, (size, size, 3))
    img = np.where(face[..., None] > 0, skin_rgb * shading + texture, img)
    skin = face.copy()
    for x, y in lm[[0, 1]]:  # eyes
        cv2.ellipse(skin, (int(x), int(y)), (int(0.3 * iod), int(0.16 * iod)), 0, 0, 360, 0.0, -1)
    mouth = lm[3:].mean(0)
    mouth_axes = (int(0.5 * iod), int(0.18 * iod))
    cv2.ellipse(skin, (int(mouth[0]), int(mouth[1])), mouth_axes, 0, 0, 360, 0.0, -1)
    skin = cv2.GaussianBlur(skin, (0, 0), 1.5)
    skin[face == 0] = 0.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), skin.astype(np.float32)


@pytest.fixture(scope="module")
def face256() -> tuple[np.ndarray, np.ndarray]:
    return _synthetic_face(256)


@pytest.mark.parametrize("size", [256, 512])
def test_shapes_and_dtypes(size: int) -> None:
    clean, skin = _synthetic_face(size)
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(1), skin, 0.7)
    assert raw.shape == clean.shape and raw.dtype == np.uint8
    assert alpha.shape == skin.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert alpha.max() > 0.5


def test_random_severity(face256) -> None:
    clean, skin = face256
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(2), skin)
    assert raw.shape == clean.shape and alpha.max() > 0.0


def test_severity_zero_is_identity(face256) -> None:
    clean, skin = face256
    before = clean.copy()
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(3), skin, 0.0)
    assert np.array_equal(raw, clean)
    assert not np.any(alpha)
    assert raw is not clean
    assert np.array_equal(clean, before)  # input untouched


def test_empty_skin_is_identity(face256) -> None:
    clean, skin = face256
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(3), np.zeros_like(skin), 1.0)
    assert np.array_equal(raw, clean) and not np.any(alpha)


@pytest.mark.parametrize("seed", range(4))
def test_nothing_changes_off_skin(face256, seed: int) -> None:
    clean, skin = face256
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(seed), skin, 1.0)
    off = skin <= 0
    assert np.array_equal(raw[off], clean[off])
    assert not np.any(alpha[off])


@pytest.mark.parametrize("seed", range(4))
def test_severity_one_changes_a_reasonable_share(face256, seed: int) -> None:
    clean, skin = face256
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(seed), skin, 1.0)
    diff = np.abs(raw.astype(np.int16) - clean.astype(np.int16)).max(2)
    share = float((diff[skin > 0] > 5).mean())
    assert 0.01 <= share <= 0.15, share
    # Contrast stays in the range measured on real acne: mostly small changes.
    assert np.percentile(diff[diff > 0], 90) <= 40


def test_deterministic(face256) -> None:
    clean, skin = face256
    a = render_alt_blemishes(clean, np.random.default_rng(42), skin, 0.8)
    b = render_alt_blemishes(clean, np.random.default_rng(42), skin, 0.8)
    c = render_alt_blemishes(clean, np.random.default_rng(43), skin, 0.8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("seed", range(4))
def test_redness_increases_in_footprint(face256, seed: int) -> None:
    clean, skin = face256
    raw, alpha = render_alt_blemishes(clean, np.random.default_rng(seed), skin, 1.0)
    inside = alpha > 0.5
    assert inside.sum() > 20

    def a_star(rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        return lab[..., 1]

    def r_minus_g(rgb: np.ndarray) -> np.ndarray:
        return rgb[..., 0].astype(np.float32) - rgb[..., 1].astype(np.float32)

    assert a_star(raw)[inside].mean() > a_star(clean)[inside].mean() + 1.0
    assert r_minus_g(raw)[inside].mean() > r_minus_g(clean)[inside].mean() + 1.0


def test_more_severe_changes_more(face256) -> None:
    clean, skin = face256

    def changed(sev: float) -> float:
        tot = 0.0
        for seed in range(3):
            raw, _ = render_alt_blemishes(clean, np.random.default_rng(seed), skin, sev)
            tot += float((np.abs(raw.astype(np.int16) - clean).max(2) > 5).mean())
        return tot

    assert changed(0.2) < changed(1.0)


def test_rejects_bad_inputs(face256) -> None:
    clean, skin = face256
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        render_alt_blemishes(clean.astype(np.float32), rng, skin, 0.5)
    with pytest.raises(ValueError):
        render_alt_blemishes(clean, rng, skin[:-1], 0.5)
