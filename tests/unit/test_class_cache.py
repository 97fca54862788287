"""The class-aware training cache (issue 11, train/classcache.py): every class's layer stored, any
selection's target rendered at load time through the variant's own camera."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from _helpers import write_prepared

from vretouch_cli.classes import CLASSES, default_vector

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ALWAYS = dict(p_moles=(0.0, 0.0, 0.0, 0.0, 1.0), p_freckles=1.0)  # four moles and freckles on every face


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """(class cache, plain cache) of three tiny faces at S = 64 from 128-px crops."""
    from vretouch_cli.train.features import FeatureParams
    from vretouch_cli.train.patches import build_cache

    tmp = tmp_path_factory.mktemp("classcache")
    prep = write_prepared(tmp / "prep", n=3, size=128)
    params = FeatureParams(**ALWAYS)
    build_cache(prep, tmp / "classes", size=64, variants=2, val_fraction=0.0, workers=1, classes=True, feature_params=params)
    build_cache(prep, tmp / "plain", size=64, variants=2, val_fraction=0.0, workers=1)
    return tmp / "classes", tmp / "plain"


def _vector(**weights: float) -> np.ndarray:
    return np.array([float(weights.get(c, 0.0)) for c in CLASSES], np.float32)


def _support(entries, names, source: int) -> np.ndarray:
    out = np.zeros(source * source, bool)
    for c in names:
        out[entries[CLASSES.index(c)][0]] = True
    return out.reshape(source, source)


def test_class_cache_keeps_the_plain_arrays_and_adds_the_layers(caches):
    from vretouch_cli.train.patches import PatchDataset, PatchParams, has_classes, load_cache

    folder, plain = caches
    meta, arrays = load_cache(folder)
    assert has_classes(folder) and not has_classes(plain)
    assert meta["classes"] == list(CLASSES) and meta["source_size"] == 128 and meta["items"] == 6
    assert arrays["clean"].shape == (3, 128, 128, 3) and arrays["clean"].dtype == np.uint8
    assert arrays["sparse_foot"].dtype == np.float16 and arrays["sparse_shift"].dtype == np.float16
    assert arrays["sparse_offsets"].shape == (6, len(CLASSES) + 1) and int(arrays["sparse_offsets"][-1, -1]) == meta["class_entries"]
    assert (np.asarray(arrays["sparse_foot"]) > 0).all()  # a stored pixel is a footprint pixel
    # Moles and freckles are on every face here; the union of every class is the crop-centring map.
    off = np.asarray(arrays["sparse_offsets"])
    assert (np.diff(off, axis=1)[:, CLASSES.index("mole")] > 0).all() and (np.diff(off, axis=1)[:, CLASSES.index("freckle")] > 0).all()
    # A model without class heads reads it like a plain cache: today's four keys, the default target.
    item = PatchDataset(folder, 2, PatchParams(patch=32))[(0, 3)]
    assert set(item) == {"raw", "target", "affines", "alpha"}
    # The plain cache also holds each pair's fixed change before the camera; a class cache renders
    # its targets per selection, so it has none (--map-target exact refuses it with one line).
    assert set(PatchDataset(plain, 2, PatchParams(patch=32))[(0, 3)]) == set(item) | {"change"}


def test_target_changes_only_the_selected_classes(caches):
    """At the stored size, exactly (render_pair pixel by pixel): the target is the input wherever no
    selected class has footprint, kept classes' pixels included; through the camera, wherever no
    JPEG block comes near a selected class."""
    from vretouch_cli.train.classcache import ClassLayersReader, render_sparse
    from vretouch_cli.train.patches import load_cache

    meta, arrays = load_cache(caches[0])
    reader = ClassLayersReader(meta, arrays)
    checked = 0
    for i in range(meta["items"]):
        entries = reader.entries(i)
        clean8 = np.asarray(arrays["clean"][i // meta["variants"]])
        for sel in (_vector(acne=1, redness=1, marks=1), _vector(acne=1), _vector(mole=1), _vector(mole=1, freckle=0.5), _vector(marks=1, freckle=1)):
            chosen = [c for c, w in zip(CLASSES, sel) if w > 0]
            kept = [c for c in CLASSES if c not in chosen]
            inp8, tgt8 = render_sparse(clean8, entries, sel)
            selected = _support(entries, chosen, 128)
            assert np.array_equal(tgt8[~selected], inp8[~selected])
            assert np.array_equal(tgt8[_support(entries, kept, 128) & ~selected], inp8[_support(entries, kept, 128) & ~selected])
            if selected.any():
                assert np.abs(tgt8.astype(int) - inp8.astype(int))[selected].max() > 0  # something was removed
            # Through the variant's camera at S = 64: equal outside the 16-px JPEG blocks that come
            # within the resampling's reach (16 px at S = 64) of a selected class.
            tgt_s = reader.target(i, sel, entries)
            near = cv2.resize(selected.astype(np.uint8), (64, 64), interpolation=cv2.INTER_AREA) > 0
            near = cv2.dilate(near.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
            blocks = near.reshape(4, 16, 4, 16).any(axis=(1, 3))
            far = ~np.kron(blocks, np.ones((16, 16), bool))
            raw_s = np.asarray(arrays["raw"][i])
            assert np.array_equal(tgt_s[far], raw_s[far])
            checked += int(far.sum())
        # Nothing selected: the input; the default: the cached target, which rendering reproduces.
        assert np.array_equal(reader.target(i, _vector(), entries), arrays["raw"][i])
        _, tgt8 = render_sparse(clean8, entries, default_vector())
        from vretouch_cli.train.photometric import apply_camera

        again = apply_camera([tgt8], np.random.default_rng(int(arrays["camera_seed"][i])), 64)[0]
        assert np.array_equal(again, arrays["target"][i])
    assert checked > 0


def test_class_items_draw_their_selection_from_the_seed(caches):
    from vretouch_cli.errors import InputError
    from vretouch_cli.train.classcache import selection_for
    from vretouch_cli.train.patches import PatchDataset, PatchParams

    folder, plain = caches
    ds = PatchDataset(folder, 3, PatchParams(patch=32), classes=CLASSES)
    a, b = ds[(1, 11)], ds[(1, 11)]
    assert set(a) == {"raw", "target", "affines", "alpha", "select", "class_maps", "class_diff"}
    assert all(torch.equal(a[k], b[k]) for k in a)  # a pure function of (index, seed): exact resume
    assert a["select"].shape == (5,) and a["select"].dtype == torch.float32
    assert a["class_maps"].shape == (3, 5, 32, 32) and a["class_maps"].dtype == torch.float32
    assert 0.0 <= float(a["class_maps"].min()) and float(a["class_maps"].max()) <= 1.0
    assert torch.equal(a["select"], torch.from_numpy(selection_for(11, CLASSES)))
    seen = {tuple(ds[(0, s)]["select"].tolist()) for s in range(40)}
    assert len(seen) > 3 and tuple(default_vector()) in seen  # mostly the default, but not only
    # A selection that removes nothing (only possible when some class has no head: the others are
    # kept) gives the input as target.
    whole = PatchDataset(folder, 1, PatchParams(patch=0), classes=("mole",))
    for s in range(40):
        item = whole[(s % len(whole), s)]
        if not item["select"].any():
            assert torch.equal(item["target"], item["raw"])
            break
    else:
        pytest.fail("no sample with an empty selection in 40 seeds")
    # Classes without a head are kept: their weight is 0, and select / class_maps follow the heads.
    two = PatchDataset(folder, 1, PatchParams(patch=32), classes=("mole", "acne"))
    for s in range(20):
        item = two[(0, s)]
        full = selection_for(s, ("mole", "acne"))
        assert item["select"].tolist() == [float(full[CLASSES.index("mole")]), float(full[CLASSES.index("acne")])]
        assert full[[CLASSES.index(c) for c in ("redness", "marks", "freckle")]].sum() == 0
        assert item["class_maps"].shape == item["class_diff"].shape == (1, 2, 32, 32)
    with pytest.raises(InputError, match="--cache-classes"):
        PatchDataset(plain, 1, PatchParams(patch=32), classes=CLASSES)


def test_class_heads_learn_each_class_own_change_not_its_footprint(caches):
    """``class_diff``: per class, mean |input − input with only that class removed|, rendered before
    the camera: zero off the class's footprint, saturating where the class changes the skin most;
    the loop divides it by --gt-scale (class_ground_truth) as the merged map's ground truth is."""
    from vretouch_cli.train.classcache import ClassLayersReader, difference_maps, footprint_maps
    from vretouch_cli.train.classpairs import render_pair
    from vretouch_cli.train.loop import class_ground_truth
    from vretouch_cli.train.patches import PatchDataset, PatchParams, load_cache

    folder, _ = caches
    meta, arrays = load_cache(folder)
    reader = ClassLayersReader(meta, arrays)
    for i in range(meta["items"]):
        entries = reader.entries(i)
        clean8 = np.asarray(arrays["clean"][i // reader.variants])
        diffs = difference_maps(clean8, entries, 128)  # at the stored size: no resampling
        feet = footprint_maps(entries, 128, 128)
        assert diffs.shape == (128, 128, len(CLASSES)) and 0 <= diffs.min() and diffs.max() <= 1
        assert (diffs[feet == 0] == 0).all()  # nothing where the class is not
        # Against a whole-image render of "only this class removed".
        clean = clean8.astype(np.float32) / 255.0
        sh = {c: np.zeros((128, 128, 3), np.float32) for c in CLASSES}
        ft = {c: np.zeros((128, 128), np.float32) for c in CLASSES}
        for c, (idx, foot, shift) in zip(CLASSES, entries):
            ft[c].reshape(-1)[idx] = foot.astype(np.float32)
            sh[c].reshape(-1, 3)[idx] = shift.astype(np.float32)
        for k, c in enumerate(CLASSES):
            only = np.eye(len(CLASSES), dtype=np.float32)[k]
            inp, tgt = render_pair(clean, sh, ft, only)
            assert np.allclose(diffs[..., k], np.abs(inp - tgt).mean(axis=-1), atol=1e-6)
            if ft[c].any():
                assert diffs[..., k].max() > 0.01  # a drawn class changes the skin
    ds = PatchDataset(folder, 2, PatchParams(patch=32), classes=CLASSES)
    item = ds[(2, 5)]
    d = item["class_diff"]
    assert d.shape == (2, 5, 32, 32) and d.dtype == torch.float32
    gt = class_ground_truth(item, 0.03)
    assert torch.equal(gt, (d / 0.03).clamp(0, 1)) and float(gt.max()) <= 1.0
