"""Moles and freckles (train/features.py), per-class training pairs (train/classpairs.py) and the
acne model's per-class shifts (issue 11). Synthetic skin-coloured faces, as the acne tests use."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vretouch_cli.classes import CLASSES, TEMPORARY
from vretouch_cli.face.align import template
from vretouch_cli.train.blemish import SkinGeometry, rgb_to_lab, skin_geometry


@pytest.fixture(autouse=True)
def _one_cv2_thread():
    """One OpenCV thread: the machine's cores are shared (see the one_thread fixture)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


def _face(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = (0.78, 0.6, 0.5)
    img += rng.normal(0, 0.015, (size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 1), template(size).astype(np.float32)


def _vector(**weights: float) -> list[float]:
    return [float(weights.get(c, 0.0)) for c in CLASSES]


ALWAYS = dict(p_moles=(0.0, 0.0, 0.0, 0.0, 1.0), p_freckles=1.0)  # four moles and freckles on every face


# -- acne: one source of class names, per-class shifts, outputs unchanged ------------------------------


def test_acne_takes_its_classes_from_classes_py():
    from vretouch_cli.train import acne

    assert acne.CLASSES is TEMPORARY
    assert set(acne.CLASS_OF.values()) == set(TEMPORARY)


# Measured with the acne model as it was before the per-class shifts were added (commit f41d1c4):
# any change to the draws or the rendering moves these numbers.
_ACNE_BEFORE = {
    "s256": ({"dot": 23, "papule": 17, "pustule": 3, "mark": 10, "comedone": 5, "redness": 1}, 95.96879455447197, 522.2821380613348, {"acne": 147.54101474801743, "redness": 303.315011456382, "marks": 93.99204774092485}),
    "r128_1": ({"dot": 26, "papule": 13, "pustule": 8, "mark": 14, "comedone": 13, "redness": 1}, 23.76548632979393, 237.2056107996205, {"acne": 32.17232431042671, "redness": 202.23781677583688, "marks": 31.77551181915233}),
    "r128_2": ({"dot": 4, "papule": 4, "pustule": 1, "mark": 2, "comedone": 1, "redness": 0}, 4.670275956392288, 10.980159868478374, {"acne": 8.965140710042771, "redness": 0.0, "marks": 2.3945101487649674}),
}


@pytest.mark.parametrize("name", sorted(_ACNE_BEFORE))
def test_acne_outputs_are_unchanged_by_the_per_class_shifts(name):
    from vretouch_cli.train.acne import synthesize_acne

    size, seed = (256, 3) if name == "s256" else (128, int(name[-1]))
    clean, lm = _face(size)
    geo = skin_geometry(clean, lm)
    if name == "s256":
        res = synthesize_acne(clean, np.random.default_rng(seed), geo, landmarks=lm, severity=1.0, strength=1.2)
    else:
        res = synthesize_acne(clean, np.random.default_rng(seed), geo)
    counts, diff, alpha, classes = _ACNE_BEFORE[name]
    assert res.counts == counts
    assert float(np.abs(res.raw.astype(np.float64) - clean).sum()) == pytest.approx(diff, rel=1e-5)
    assert float(res.alpha.sum(dtype=np.float64)) == pytest.approx(alpha, rel=1e-6)
    for c, total in classes.items():
        assert float(res.classes[c].sum(dtype=np.float64)) == pytest.approx(total, rel=1e-6, abs=1e-9), c


def test_acne_class_shifts_add_up_to_its_raw_and_stay_on_their_footprints():
    from vretouch_cli.train.acne import shift_lab, synthesize_acne
    from vretouch_cli.train.blemish import lab_to_rgb

    clean, lm = _face()
    geo = skin_geometry(clean, lm)
    res = synthesize_acne(clean, np.random.default_rng(3), geo, landmarks=lm, severity=1.0, strength=1.2)
    assert set(res.shifts) == set(TEMPORARY)
    total = sum(res.shifts[c] for c in TEMPORARY)
    touched = np.abs(total).max(axis=-1) > 0
    assert np.array_equal(res.raw[~touched], clean[~touched])
    np.testing.assert_allclose(lab_to_rgb(shift_lab(rgb_to_lab(clean), total))[touched], res.raw[touched], atol=1e-5)
    for c in TEMPORARY:
        size = np.abs(res.shifts[c]).max(axis=-1)
        assert size.max() > 0.01, c
        assert size[res.classes[c] == 0].max() < 1e-20, c  # float underflow at most
    assert res.shifts["redness"][..., 1].max() > 1.0  # redness is a* up


# -- features ------------------------------------------------------------------------------------------


def test_moles_and_freckles_are_drawn_on_skin_only():
    from vretouch_cli.train.features import FEATURES, synthesize_features

    clean, lm = _face()
    geo = skin_geometry(clean, lm)
    res = synthesize_features(clean, np.random.default_rng(1), geo, landmarks=lm, moles=4, freckles=80)
    assert FEATURES == ("mole", "freckle") and set(res.classes) == set(FEATURES)
    assert res.counts == {"mole": 4, "freckle": 80}
    for c in FEATURES:
        foot = res.classes[c]
        assert foot.dtype == np.float32 and foot.min() >= 0 and foot.max() <= 1
        assert foot.max() > 0.5, c
        assert (foot[geo.skin <= 0] == 0).all(), c  # on skin only
        assert (np.abs(res.shifts[c]).max(axis=-1)[foot == 0] == 0).all(), c  # no shift without footprint
    changed = np.abs(res.raw - clean).max(axis=-1) > 0
    assert changed.any() and not changed[res.alpha == 0].any()
    assert np.array_equal(res.raw[res.alpha == 0], clean[res.alpha == 0])
    d = rgb_to_lab(res.raw) - rgb_to_lab(clean)
    mole, freckle = res.classes["mole"] > 0.5, (res.classes["freckle"] > 0.5) & (res.classes["mole"] == 0)
    assert d[..., 0][mole].mean() < -10  # medium to dark brown: a large lightness drop
    assert -12 < d[..., 0][freckle].mean() < -1  # freckles: lower contrast
    assert d[..., 2][freckle].mean() > 1  # light brown: yellower
    # Moles are 3–12 px across at 512: 1.5–6 px at 256, so each covers a few to ~40 pixels.
    n, _ = cv2.connectedComponents((res.classes["mole"] > 0.5).astype(np.uint8))
    assert 1 <= n - 1 <= 4
    assert 4 <= int(mole.sum()) <= 4 * 40


def test_freckles_gather_on_the_nose_bridge_and_upper_cheeks():
    from vretouch_cli.train.features import freckle_weight, synthesize_features

    clean, lm = _face()
    geo = skin_geometry(clean, lm)
    weight = freckle_weight(geo, lm)
    assert (weight[geo.skin <= 0.5] == 0).all() and weight.max() > 0.5
    res = synthesize_features(clean, np.random.default_rng(2), geo, landmarks=lm, moles=0, freckles=120)
    assert res.counts == {"mole": 0, "freckle": 120} and res.classes["mole"].max() == 0
    foot = res.classes["freckle"]
    ys, xs = np.nonzero(foot > 0.25)
    eye_y, mouth_y = lm[:2, 1].mean(), lm[3:, 1].mean()
    centre_x, eye_dist = lm[:2, 0].mean(), lm[1, 0] - lm[0, 0]
    assert eye_y - 0.3 * (mouth_y - eye_y) < ys.mean() < mouth_y  # between the eyes and the mouth
    assert np.median(np.abs(xs - centre_x)) < 0.8 * eye_dist
    assert (ys > mouth_y).mean() < 0.1  # hardly any on the chin


def test_feature_counts_follow_their_ranges_and_probabilities():
    from vretouch_cli.train.features import FeatureParams, draw_counts, synthesize_features

    params = FeatureParams()
    rng = np.random.default_rng(0)
    draws = np.array([draw_counts(rng, params) for _ in range(4000)])
    moles, freckles = draws[:, 0], draws[:, 1]
    assert moles.min() == 0 and moles.max() == 4
    assert abs((moles == 0).mean() - params.p_moles[0]) < 0.03  # many faces without a mole
    assert abs((freckles > 0).mean() - params.p_freckles) < 0.03
    assert freckles[freckles > 0].min() >= 10 and freckles.max() <= 120
    clean, lm = _face(128)
    geo = skin_geometry(clean, lm)
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(12):
        res = synthesize_features(clean, rng, geo, landmarks=lm)
        assert 0 <= res.counts["mole"] <= 4
        assert res.counts["freckle"] == 0 or 10 <= res.counts["freckle"] <= 120
        for c, n in res.counts.items():
            assert (res.classes[c].max() > 0) == (n > 0), c
        seen.add((res.counts["mole"] > 0, res.counts["freckle"] > 0))
    assert len(seen) >= 3  # faces with and without each kind


def test_features_are_deterministic_for_a_given_rng():
    from vretouch_cli.train.features import synthesize_features

    clean, lm = _face(128)
    geo = skin_geometry(clean, lm)
    a, b, c = (synthesize_features(clean, np.random.default_rng(s), geo, landmarks=lm, moles=3, freckles=40) for s in (7, 7, 8))
    assert np.array_equal(a.raw, b.raw) and a.counts == b.counts
    assert all(np.array_equal(a.classes[k], b.classes[k]) and np.array_equal(a.shifts[k], b.shifts[k]) for k in a.classes)
    assert not np.array_equal(a.raw, c.raw)


def test_no_skin_or_no_feature_leaves_the_crop_unchanged():
    from vretouch_cli.train.classpairs import class_pair
    from vretouch_cli.train.features import FeatureParams, synthesize_features

    clean, lm = _face(128)
    geo = skin_geometry(clean, lm)
    zeros = np.zeros(clean.shape[:2], np.float32)
    bare = SkinGeometry(zeros, zeros, 60.0, geo.eye_dist)
    for g, kw in ((bare, dict(moles=4, freckles=100)), (geo, dict(moles=0, freckles=0))):
        res = synthesize_features(clean, np.random.default_rng(0), g, landmarks=lm, **kw)
        assert np.array_equal(res.raw, clean) and res.alpha.max() == 0
        assert all(m.max() == 0 for m in res.classes.values()) and sum(res.counts.values()) == 0
    pair = class_pair(clean, np.random.default_rng(0), bare, [1.0] * len(CLASSES), lm, FeatureParams(**ALWAYS), severity=1.0)
    assert set(pair.classes) == set(CLASSES) and all(m.max() == 0 for m in pair.classes.values())
    assert np.array_equal(pair.input, clean) and np.array_equal(pair.target, clean)


# -- per-class pairs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs():
    """One face (seeded draws: features and acne), its pairs for several selections."""
    from vretouch_cli.train.classpairs import class_pair
    from vretouch_cli.train.features import FeatureParams

    clean, lm = _face(192)
    geo = skin_geometry(clean, lm)
    selections = {
        "default": _vector(acne=1, redness=1, marks=1),
        "acne": _vector(acne=1),
        "acne_redness": _vector(acne=1, redness=1),
        "mole": _vector(mole=1),
        "all": _vector(**{c: 1 for c in CLASSES}),
        "none": _vector(),
        "half": _vector(acne=0.5, mole=0.5),
    }
    made = {k: class_pair(clean, np.random.default_rng(4), geo, v, lm, FeatureParams(**ALWAYS), severity=1.0) for k, v in selections.items()}
    return clean, made


def _support(pair, names) -> np.ndarray:
    out = np.zeros(pair.input.shape[:2], bool)
    for c in names:
        out |= pair.classes[c] > 0
    return out


def test_pair_draws_do_not_depend_on_the_selection(pairs):
    clean, made = pairs
    first = made["default"]
    assert first.counts["mole"] == 4 and first.counts["freckle"] >= 10 and first.counts["redness"] == 1
    for pair in made.values():
        assert np.array_equal(pair.input, first.input)
        assert all(np.array_equal(pair.classes[c], first.classes[c]) for c in CLASSES)
        assert pair.input.dtype == pair.target.dtype == np.float32
    assert all(first.classes[c].max() > 0.5 for c in CLASSES)
    changed = np.abs(first.input - clean).max(axis=-1) > 0
    anything = _support(first, CLASSES)
    assert changed.any() and anything[changed].all()  # the input differs from clean only on footprints
    assert np.array_equal(first.input[~anything], clean[~anything])


@pytest.mark.parametrize("name", ["default", "acne", "acne_redness", "mole", "all", "half"])
def test_target_changes_only_the_selected_classes(pairs, name):
    _, made = pairs
    pair = made[name]
    chosen = [c for c, w in zip(CLASSES, pair.selection) if w > 0]
    selected = _support(pair, chosen)
    changed = np.any(pair.target != pair.input, axis=-1)
    assert changed.any()
    assert not changed[~selected].any()  # bit for bit outside the selected footprints
    assert np.array_equal(pair.target[~selected], pair.input[~selected])
    kept_only = _support(pair, [c for c in CLASSES if c not in chosen]) & ~selected
    assert kept_only.any() == (len(chosen) < len(CLASSES))
    assert np.array_equal(pair.target[kept_only], pair.input[kept_only])
    np.testing.assert_allclose(pair.removed, np.maximum.reduce([w * pair.classes[c] for c, w in zip(CLASSES, pair.selection)]))


def test_nothing_selected_gives_the_input_as_target(pairs):
    _, made = pairs
    assert np.array_equal(made["none"].target, made["none"].input) and made["none"].removed.max() == 0


def test_removing_acne_keeps_redness_exactly(pairs):
    clean, made = pairs
    acne, both = made["acne"], made["acne_redness"]
    only_acne = (acne.classes["acne"] > 0) & ~_support(acne, [c for c in CLASSES if c != "acne"])
    assert only_acne.any() and np.array_equal(acne.target[only_acne], clean[only_acne])
    # Where acne lies on redness, removing acne alone leaves the redness: redder than both removed.
    overlap = (acne.classes["acne"] > 0) & (acne.classes["redness"] > 0.1) & ~_support(acne, ["marks", "mole", "freckle"])
    assert overlap.sum() >= 20
    a_keep = rgb_to_lab(acne.target)[..., 1][overlap]
    a_gone = rgb_to_lab(both.target)[..., 1][overlap]
    assert np.array_equal(both.target[overlap], clean[overlap])
    assert (a_keep - a_gone).mean() > 0.5 and (a_keep > a_gone).mean() > 0.9
    # Redness the acne did not touch is left alone to the bit.
    red_only = (acne.classes["redness"] > 0) & (acne.classes["acne"] == 0)
    assert np.array_equal(acne.target[red_only], acne.input[red_only])


def test_moles_are_kept_by_default_and_removed_by_all(pairs):
    clean, made = pairs
    default, everything, mole = made["default"], made["all"], made["mole"]
    mole_only = (default.classes["mole"] > 0) & ~_support(default, [c for c in CLASSES if c != "mole"])
    assert mole_only.sum() >= 10
    assert np.array_equal(default.target[mole_only], default.input[mole_only])  # kept
    assert not np.array_equal(default.target[mole_only], clean[mole_only])
    assert np.array_equal(everything.target[mole_only], clean[mole_only])  # removed: the skin beneath
    assert np.array_equal(mole.target[mole_only], clean[mole_only])
    anything = _support(everything, CLASSES)
    assert np.array_equal(everything.target[anything], clean[anything])  # all removed: clean everywhere
    # Temporary blemishes on skin without moles: the default removes them, "mole" leaves them.
    temp_only = _support(default, TEMPORARY) & ~_support(default, ["mole", "freckle"])
    assert np.array_equal(default.target[temp_only], clean[temp_only])
    assert np.array_equal(mole.target[temp_only], mole.input[temp_only])


def test_a_partial_weight_lies_between_keeping_and_removing(pairs):
    clean, made = pairs
    half = made["half"]  # acne and mole at 0.5
    keep = rgb_to_lab(half.input)
    gone = rgb_to_lab(made["all"].target)
    mid = rgb_to_lab(half.target)
    for c in ("acne", "mole"):
        others = [k for k in CLASSES if k != c]
        alone = (half.classes[c] > 0.2) & ~_support(half, others)
        assert alone.sum() >= 5, c
        # OpenCV's float Lab conversion is good to about 0.3 (an RGB round trip moves it that much).
        lo, hi = np.minimum(keep, gone)[alone], np.maximum(keep, gone)[alone]
        assert ((mid[alone] >= lo - 0.35) & (mid[alone] <= hi + 0.35)).all(), c
        # Linear in Lab: the midpoint of keeping and removing.
        err = np.abs(mid[alone] - (keep[alone] + gone[alone]) / 2)
        assert err.max() < 0.4 and err.mean() < 0.1, c
        assert np.abs(keep[alone] - gone[alone]).max() > 2.0, c
        assert (np.abs(mid[alone] - keep[alone]).max(axis=-1) > 0).all() and (np.abs(mid[alone] - gone[alone]).max(axis=-1) > 0).all()


def test_selection_is_checked():
    from vretouch_cli.train.classpairs import check_selection

    assert check_selection([1, 0, 1, 0, 0.5]).dtype == np.float32
    for bad in ([1, 0, 1], [1, 0, 1, 0, 2.0], [1, 0, 1, 0, float("nan")], [-0.1, 0, 0, 0, 0]):
        with pytest.raises(ValueError):
            check_selection(bad)


def test_random_selection_is_mostly_the_default():
    from vretouch_cli.train.classpairs import random_selection

    rng = np.random.default_rng(0)
    draws = np.stack([random_selection(rng) for _ in range(4000)])
    assert draws.shape == (4000, len(CLASSES)) and draws.dtype == np.float32
    assert draws.min() >= 0 and draws.max() <= 1 and (draws.max(axis=1) > 0).all()  # never empty
    chosen = draws > 0
    default = np.array([c in TEMPORARY for c in CLASSES])
    # 0.6 + 0.25/31 of the draws select the default, 0.15 + 0.25/31 select every class.
    assert abs((chosen == default).all(axis=1).mean() - (0.6 + 0.25 / 31)) < 0.03
    assert abs(chosen.all(axis=1).mean() - (0.15 + 0.25 / 31)) < 0.02
    partial = ((draws > 0) & (draws < 1)).any(axis=1)
    assert abs(partial.mean() - 0.2) < 0.03 and draws[draws > 0].min() >= 0.3
    assert len({tuple(r) for r in chosen}) > 20  # random subsets too
    again = np.stack([random_selection(np.random.default_rng(0)) for _ in range(3)])
    assert (again == again[0]).all()
