"""Held-out evaluation pairs (evaluate/heldout.py): each keeps its exact change before the camera,
the ground truth Soft-IoU is also scored against (JPEG spreads the camera-side difference)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import write_prepared

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_heldout_items_keep_the_exact_change_before_the_camera(tmp_path):
    from vretouch_cli.evaluate.heldout import heldout_items

    prep = write_prepared(tmp_path / "prep", n=5, size=128)
    clean = heldout_items(prep, 64, "clean", limit=1)[0]
    assert clean.change.shape == (64, 64) and clean.change.dtype == np.float32
    assert not clean.change.any()  # input == target: nothing to find
    for kind in ("acne", "alt"):
        a = heldout_items(prep, 64, kind, limit=1)[0]
        assert a.change.shape == (64, 64) and 0 <= a.change.min() and a.change.max() <= 1
        assert a.change.max() > 0.01, kind  # the drawn blemishes
        # Without the camera the change is exactly |raw − target| of the model-size pair (up to the
        # resampling: both are area-resampled from the same prepared size).
        b = heldout_items(prep, 64, kind, limit=1, camera=False)[0]
        direct = np.abs(b.raw.astype(np.float32) - b.target.astype(np.float32)).mean(axis=2) / 255.0
        assert np.abs(b.change - direct).max() < 3 / 255, kind
        assert np.array_equal(a.change, b.change)  # the camera does not touch it
