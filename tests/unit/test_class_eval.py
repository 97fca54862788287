"""Held-out class evaluation (issue 11, evaluate/classeval.py and benchmarks/class_eval.py) on tiny
randomly initialised models: it runs, with and without class heads, and returns finite numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _helpers import write_prepared

from vretouch_cli.classes import CLASSES
from vretouch_cli.face.align import template

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _items(n: int = 2, size: int = 64):
    from vretouch_cli.evaluate.classeval import class_item
    from vretouch_cli.train.features import FeatureParams

    big = FeatureParams(p_moles=(0.0, 0.0, 0.0, 0.0, 1.0), p_freckles=1.0, freckle_diameter_512=(8.0, 12.0), freckle_count=(20, 40))
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = np.empty((128, 128, 3), np.float32)
        img[:] = (0.78, 0.6, 0.5)
        img += rng.normal(0, 0.015, (128, 128, 1)).astype(np.float32)
        clean8 = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        out.append(class_item(clean8, template(128), rng, size, f"face{i}", f"p{i}", feature_params=big, severity=1.0))
    return out


def _model(classes=CLASSES):
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    return VRetouchEr(ModelConfig.preset("tiny").replace(size=64, delta=1, classes=classes)).eval()


def test_class_items_hold_both_targets_and_every_footprint():
    it = _items(1)[0]
    assert it.raw.shape == it.default.shape == it.all.shape == (64, 64, 3) and it.raw.dtype == np.uint8
    assert it.footprints.shape == (64, 64, len(CLASSES)) and it.footprints.max() <= 1.0
    drawn = dict(zip(CLASSES, it.footprints.reshape(-1, len(CLASSES)).max(axis=0)))
    assert drawn["acne"] > 0 and drawn["mole"] > 0 and drawn["freckle"] > 0  # together on one face
    assert not np.array_equal(it.raw, it.default) and not np.array_equal(it.default, it.all)
    # Each class's own change: where the class is, nowhere else.
    assert it.changes.shape == it.footprints.shape and 0 <= it.changes.min() and it.changes.max() <= 1
    assert (it.changes[it.footprints == 0] == 0).all() and it.changes[..., CLASSES.index("mole")].max() > 0.02


def test_class_eval_runs_with_and_without_class_heads():
    from vretouch_cli.evaluate.classeval import evaluate_classes

    items = _items(2)
    rep = evaluate_classes(_model(), items, frames=2)
    assert rep["class_heads"] == list(CLASSES) and rep["items"] == 2
    for key in ("soft_iou", "soft_iou_change", "soft_iou_change_train"):
        assert set(rep[key]) == set(CLASSES) and all(math.isfinite(v) and 0 <= v <= 1 for v in rep[key].values()), key
    for key in ("acne_region_psnr_gain", "mole_kept_share", "freckle_kept_share"):
        assert math.isfinite(rep["default"][key]), (key, rep["default"])
    assert 0 <= rep["default"]["mole_kept_share"] <= 1 and rep["default"]["mole_pixels"] > 0 and rep["default"]["freckle_pixels"] > 0
    assert math.isfinite(rep["all"]["mole_region_psnr_gain"]) and math.isfinite(rep["all"]["freckle_region_psnr_gain"])
    merged = evaluate_classes(_model(()), items, frames=2)
    assert merged["class_heads"] == [] and merged["soft_iou"] == {}
    assert math.isfinite(merged["default"]["acne_region_psnr_gain"]) and math.isfinite(merged["all"]["mole_region_psnr_gain"])


def test_class_heldout_items_take_the_held_out_people(tmp_path):
    from vretouch_cli.evaluate.classeval import class_heldout_items
    from vretouch_cli.train.data import split_by_identity

    prep = write_prepared(tmp_path / "prep", n=5, size=128)
    _, held = split_by_identity([f"p{i:03d}" for i in range(5)], 0.2)
    items = class_heldout_items(prep, 64, limit=1)
    assert len(items) == 1 and items[0].identity in held and items[0].raw.shape == (64, 64, 3)
    again = class_heldout_items(prep, 64, limit=1)
    assert np.array_equal(items[0].raw, again[0].raw) and np.array_equal(items[0].all, again[0].all)
