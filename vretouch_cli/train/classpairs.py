"""Per-class training pairs: remove the selected classes, keep the rest (issue 11).

A model that takes the user's selection (:func:`vretouch_cli.classes.selection_vector`) learns it
from pairs whose target depends on that selection. From one clean aligned crop :func:`class_pair`
draws the permanent features (:mod:`.features`: moles, freckles) and the temporary blemishes
(:mod:`.acne`: acne, redness, marks) and renders

- ``input``: the clean skin with the features and, on top of them, the blemishes;
- ``target``: the input with exactly the selected classes removed. A removed class leaves the
  skin beneath it (the clean skin, or a kept feature under removed acne); a kept class stays as it
  is in the input.

Every class is its own Lab shift (:func:`.acne.shift_lab`), so the input is the clean crop's Lab
plus the features' shifts, then the blemishes' shifts on top (their relative lightness change
follows the featured skin), and the target is the same sum with each class's shift scaled by
``1 − w`` for its selection weight ``w``. ``w`` = 1 removes the class, 0 keeps it, and a weight
in between moves the target along the straight Lab line between keeping and removing that class
(linear in L*, a*, b*; where blemishes lie on a partly removed feature, their relative lightness
change follows the partly restored skin, still between the two ends).

Exact by construction: where no selected class (``w`` > 0) has footprint, the target is the input
to the bit, and so wherever only kept classes have footprint. Every class's shift is zero where its
footprint is zero.

:func:`random_selection` draws the selection of a training sample. Images are float32 H×W×3 RGB
in [0, 1]; maps float32 H×W in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..classes import CLASSES, TEMPORARY
from .acne import AcneParams, shift_lab, synthesize_acne
from .blemish import SkinGeometry, lab_to_rgb, rgb_to_lab
from .features import FEATURES, FeatureParams, synthesize_features


@dataclass
class ClassPair:
    input: np.ndarray  # H×W×3 float32 in [0, 1]: clean + features + blemishes
    target: np.ndarray  # H×W×3 float32 in [0, 1]: the input with the selected classes removed
    classes: dict[str, np.ndarray]  # every class of CLASSES → H×W footprint in [0, 1]
    selection: np.ndarray  # (len(CLASSES),) float32: the weights the target was made with
    counts: dict[str, int] = field(default_factory=dict)  # spots per kind (acne's) and per feature

    @property
    def removed(self) -> np.ndarray:
        """H×W float32: what the target takes out, max over classes of weight · footprint."""
        maps = [w * self.classes[c] for c, w in zip(CLASSES, self.selection)]
        return np.maximum.reduce(maps).astype(np.float32)


def check_selection(selection: Sequence[float] | np.ndarray) -> np.ndarray:
    """A selection vector over :data:`vretouch_cli.classes.CLASSES` as float32; raises ValueError
    unless it has one weight in [0, 1] per class."""
    w = np.asarray(selection, np.float64).reshape(-1)
    if w.shape != (len(CLASSES),):
        raise ValueError(f"a selection has one weight per class ({', '.join(CLASSES)}), got {w.size}")
    if not (np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()):
        raise ValueError(f"selection weights must be in [0, 1], got {w.tolist()}")
    return w.astype(np.float32)


def render_pair(
    clean: np.ndarray,
    shifts: Mapping[str, np.ndarray],
    footprints: Mapping[str, np.ndarray],
    selection: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of one clean crop and every class's Lab shift and footprint (see the module
    docstring). Deterministic; ``shifts`` should be zero where their footprint is zero."""
    w = check_selection(selection)
    clean = np.asarray(clean, np.float32)
    lab0 = rgb_to_lab(clean)
    weight = dict(zip(CLASSES, w.tolist()))

    def render(keep: Mapping[str, float]) -> np.ndarray:
        lab = lab0.copy()
        touched = np.zeros(clean.shape[:2], bool)
        for group in (FEATURES, TEMPORARY):  # features first, the blemishes on top of them
            total = np.zeros(clean.shape, np.float32)
            for c in group:
                total += np.float32(keep[c]) * shifts[c]
            shift_lab(lab, total)
            touched |= (total != 0).any(axis=-1)
        return np.where(touched[..., None], lab_to_rgb(lab), clean).astype(np.float32)

    inp = render({c: 1.0 for c in CLASSES})
    selected = np.zeros(clean.shape[:2], bool)
    for c in CLASSES:
        if weight[c] > 0:
            selected |= footprints[c] > 0
    if not selected.any():
        return inp, inp.copy()
    target = render({c: 1.0 - weight[c] for c in CLASSES})
    return inp, np.where(selected[..., None], target, inp).astype(np.float32)


def class_differences(
    clean: np.ndarray, shifts: Mapping[str, np.ndarray], footprints: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every class's own change, the map its head learns: class → H×W float32 in [0, 1], the mean
    over R, G, B of |input − the target with only that class removed| (:func:`render_pair`).

    Unlike the footprint (the class's soft opacity), this says how much each pixel must change to
    remove the class, as the merged model's ground truth (``|raw − target|`` divided by
    ``--gt-scale``, :func:`vretouch_cli.evaluate.metrics.gt_imperfection_map`) does for all of them.
    """
    clean = np.asarray(clean, np.float32)
    shape = clean.shape[:2]
    out: dict[str, np.ndarray] = {}
    for k, c in enumerate(CLASSES):
        diff = np.zeros(int(np.prod(shape)), np.float32)
        idx = np.flatnonzero(np.asarray(footprints[c]).reshape(-1) > 0)
        if idx.size:  # render_pair works pixel by pixel: render only the pixels this class touches
            only = np.zeros(len(CLASSES), np.float32)
            only[k] = 1.0
            sub_clean = clean.reshape(-1, 3)[idx][:, None]
            sub_shifts = {n: np.asarray(shifts[n]).reshape(-1, 3)[idx][:, None] for n in CLASSES}
            sub_feet = {n: np.asarray(footprints[n]).reshape(-1)[idx][:, None] for n in CLASSES}
            inp, tgt = render_pair(sub_clean, sub_shifts, sub_feet, only)
            diff[idx] = np.abs(inp - tgt).mean(axis=-1)[:, 0]
        out[c] = diff.reshape(shape)
    return out


def class_pair(
    clean: np.ndarray,
    rng: np.random.Generator,
    geometry: SkinGeometry,
    selection: Sequence[float] | np.ndarray,
    landmarks: np.ndarray | None = None,
    feature_params: FeatureParams = FeatureParams(),
    acne_params: AcneParams = AcneParams(),
    severity: float | None = None,
    strength: float | None = None,
) -> ClassPair:
    """A training pair for ``selection`` (one weight in [0, 1] per class of
    :data:`vretouch_cli.classes.CLASSES`: 1 removes, 0 keeps) from a clean aligned crop.

    ``geometry`` is :func:`.blemish.skin_geometry` of the crop, ``landmarks`` its five landmarks
    (else the template's); ``severity`` and ``strength`` fix the acne draw (:func:`.acne.synthesize_acne`).
    The draws depend on ``rng`` only, not on the selection: one seed with two selections gives two
    targets of the same input.
    """
    w = check_selection(selection)
    layers = draw_classes(clean, rng, geometry, landmarks, feature_params, acne_params, severity, strength)
    inp, target = render_pair(clean, layers.shifts, layers.footprints, w)
    return ClassPair(inp, target, layers.footprints, w, layers.counts)


@dataclass
class ClassLayers:
    """Every class's draw on one clean crop, before any selection (see :func:`draw_classes`)."""

    footprints: dict[str, np.ndarray]  # every class of CLASSES → H×W float32 footprint in [0, 1]
    shifts: dict[str, np.ndarray]  # every class of CLASSES → H×W×3 float32 Lab shift, zero off its footprint
    counts: dict[str, int] = field(default_factory=dict)


def draw_classes(
    clean: np.ndarray,
    rng: np.random.Generator,
    geometry: SkinGeometry,
    landmarks: np.ndarray | None = None,
    feature_params: FeatureParams = FeatureParams(),
    acne_params: AcneParams = AcneParams(),
    severity: float | None = None,
    strength: float | None = None,
) -> ClassLayers:
    """The draws of :func:`class_pair` (same ``rng`` use): moles and freckles on ``clean``, acne on
    top of them, as per-class footprints and Lab shifts. :func:`render_pair` turns them into the
    pair of any selection, so one draw serves every selection (the class cache stores these)."""
    feats = synthesize_features(clean, rng, geometry, feature_params, landmarks)
    acne = synthesize_acne(feats.raw, rng, geometry, acne_params, landmarks, severity, strength)
    footprints = {**feats.classes, **acne.classes}
    shifts = dict(feats.shifts)
    for c in TEMPORARY:  # acne leaves a few ~1e-35 shifts outside its footprints (float underflow)
        shifts[c] = np.where(acne.classes[c][..., None] > 0, acne.shifts[c], 0.0).astype(np.float32)
    return ClassLayers({c: footprints[c] for c in CLASSES}, {c: shifts[c] for c in CLASSES}, {**acne.counts, **feats.counts})


def random_selection(
    rng: np.random.Generator,
    p_default: float = 0.6,
    p_all: float = 0.15,
    p_partial: float = 0.2,
    partial_range: tuple[float, float] = (0.3, 1.0),
) -> np.ndarray:
    """The selection of one training sample, float32 over :data:`vretouch_cli.classes.CLASSES`.

    With probability ``p_default`` the default (:data:`vretouch_cli.classes.TEMPORARY`), with
    ``p_all`` every class, otherwise a non-empty subset drawn uniformly from all 31 (so the
    default and ``all`` also turn up there, 1/31 each). Then, with probability ``p_partial``, each
    selected class gets its own weight drawn uniformly from ``partial_range`` (a ``--strength``
    below 1); else the weights are 1.
    """
    u = rng.random()
    if u < p_default:
        chosen = set(TEMPORARY)
    elif u < p_default + p_all:
        chosen = set(CLASSES)
    else:
        bits = int(rng.integers(1, 2 ** len(CLASSES)))
        chosen = {c for i, c in enumerate(CLASSES) if bits >> i & 1}
    w = np.array([1.0 if c in chosen else 0.0 for c in CLASSES], np.float32)
    if rng.random() < p_partial:
        w *= rng.uniform(*partial_range, len(CLASSES)).astype(np.float32)
    return w
