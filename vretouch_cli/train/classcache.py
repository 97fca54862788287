"""The class-aware training cache (issue 11): every class's layer kept, any selection rendered at load time.

``vretouch train --build-cache PREP -o CACHE --cache-classes`` (:func:`.patches.build_cache` with
``classes=True``) writes the arrays of the plain cache (``raw``, ``target``, ``alpha``,
``classes``; so a model without class heads trains on it as before) and, besides them, what it
takes to render the target of *any* selection later:

- ``clean`` [F, H, H, 3] uint8: each face's cleaned crop at the prepared size H (the base every
  class is drawn on);
- per variant and class, the class's pixels at H as sparse entries: ``sparse_index`` [E] int32
  (flat pixel index), ``sparse_foot`` [E] float16 (footprint, never rounded to 0),
  ``sparse_shift`` [E, 3] float16 (Lab shift, :func:`.acne.shift_lab`), and ``sparse_offsets``
  [n, K + 1] int64 (variant i, class k: entries ``offsets[i, k]`` to ``offsets[i, k + 1]``);
- ``camera_seed`` [n] int64: the seed of the variant's camera (:func:`.photometric.apply_camera`).

The draws are :func:`.classpairs.draw_classes` (moles and freckles, acne on top), quantised to the
stored precision *before* anything is rendered, so the build and a later load render from the same
numbers. ``raw`` is the camera applied to the input (every class present), ``target`` the camera
applied to the default selection's target (:data:`vretouch_cli.classes.TEMPORARY` removed), both
with the variant's camera; a load renders another selection's target at H from the same layers
(:func:`.classpairs.render_pair` on the class pixels only) and applies the same camera to it, so
input and target always went through one camera, as in the plain cache. ``alpha`` is the union of
every class's footprint at S (crops centre on moles and freckles too: keeping them is learnt
there), ``classes`` the three temporary classes' footprints as in the plain cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..classes import CLASSES, default_vector

ARRAYS = ("clean", "sparse_index", "sparse_foot", "sparse_shift", "sparse_offsets", "camera_seed")
_SELECT_STREAM = 0x5E1EC7  # the selection's own random stream: crops and motion draw nothing less
_FOOT_MIN = np.float16(2.0**-24)  # the smallest float16 above 0: a footprint pixel stays one

Entries = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per class of CLASSES: (index, foot, shift)


def quantise(footprints: dict[str, np.ndarray], shifts: dict[str, np.ndarray]) -> Entries:
    """Every class's pixels as stored: (flat index int32, footprint float16 > 0, shift float16 [n, 3])."""
    out: Entries = []
    for c in CLASSES:
        fp = np.asarray(footprints[c], np.float32).reshape(-1)
        idx = np.flatnonzero(fp > 0).astype(np.int32)
        foot = np.maximum(fp[idx].astype(np.float16), _FOOT_MIN)
        shift = np.asarray(shifts[c], np.float32).reshape(-1, 3)[idx].astype(np.float16)
        out.append((idx, foot, shift))
    return out


def _columns(clean8: np.ndarray, entries: Entries):
    """The pixels some class touches as a column: (their flat indices, column [n, 1, 3] float32 in
    [0, 1], footprints and shifts per class on the column), or None when no class touches any."""
    flat = clean8.reshape(-1, 3)
    touched = np.zeros(len(flat), bool)
    for idx, _, _ in entries:
        touched[idx] = True
    union = np.flatnonzero(touched)
    if union.size == 0:
        return None
    where = np.empty(len(flat), np.int64)  # pixel → row of the column
    where[union] = np.arange(union.size)
    column = (flat[union].astype(np.float32) / 255.0)[:, None, :]
    feet, shifts = {}, {}
    for c, (idx, foot, shift) in zip(CLASSES, entries):
        pos = where[idx]
        feet[c] = np.zeros((union.size, 1), np.float32)
        shifts[c] = np.zeros((union.size, 1, 3), np.float32)
        feet[c][pos, 0] = foot.astype(np.float32)
        shifts[c][pos, 0] = shift.astype(np.float32)
    return union, column, feet, shifts


def render_sparse(clean8: np.ndarray, entries: Entries, selection: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) uint8 H×W×3 of a selection over :data:`CLASSES`: :func:`.classpairs.render_pair`
    on the pixels some class touches (it works pixel by pixel), the clean crop everywhere else."""
    from .classpairs import render_pair

    cols = _columns(clean8, entries)
    if cols is None:
        return clean8.copy(), clean8.copy()
    union, column, feet, shifts = cols
    inp, tgt = render_pair(column, shifts, feet, selection)
    out = []
    for img in (inp, tgt):
        full = clean8.copy()
        full.reshape(-1, 3)[union] = np.clip(img[:, 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out.append(full)
    return out[0], out[1]


def difference_maps(clean8: np.ndarray, entries: Entries, size: int, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """[S, S, K] float32 in [0, 1]: each of ``classes``' own change (:func:`.classpairs.class_differences`,
    rendered at the stored size on the touched pixels only, before the camera) at the model's size."""
    import cv2

    from .classpairs import class_differences

    source = clean8.shape[0]
    maps = np.zeros((source * source, len(classes)), np.float32)
    cols = _columns(clean8, entries)
    if cols is not None:
        union, column, feet, shifts = cols
        diffs = class_differences(column, shifts, feet)
        for k, c in enumerate(classes):
            maps[union, k] = diffs[c][:, 0]
    maps = maps.reshape(source, source, len(classes))
    if size != source:
        maps = cv2.resize(maps, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, len(classes))
    return np.clip(maps, 0.0, 1.0)


def footprint_maps(entries: Entries, source: int, size: int, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """[S, S, K] float32 in [0, 1]: the footprints of ``classes`` (in that order) at the model's size."""
    import cv2

    maps = np.zeros((source * source, len(classes)), np.float32)
    for k, c in enumerate(classes):
        idx, foot, _ = entries[CLASSES.index(c)]
        maps[idx, k] = foot.astype(np.float32)
    maps = maps.reshape(source, source, len(classes))
    if size != source:
        maps = cv2.resize(maps, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, len(classes))
    return np.clip(maps, 0.0, 1.0)


def class_face_job(args) -> dict:
    """Everything for one face of a class cache (runs in a worker process)."""
    import cv2

    from .classpairs import draw_classes
    from .cleanup import clean_prepared_face
    from .photometric import apply_camera

    path, landmarks, stored, size, variants, seed, params, feature_params = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    lm = np.asarray(landmarks, np.float32)
    geo, cleaned8, healed = clean_prepared_face(path, lm, stored)
    clean = cleaned8.astype(np.float32) / 255.0
    out: dict = {"raw": [], "target": [], "alpha": [], "classes": [], "entries": [], "camera_seed": [], "clean": cleaned8}
    out["healed_share"] = float((healed > 0.1).mean())
    temporary = [CLASSES.index(c) for c in ("acne", "redness", "marks")]
    for _ in range(variants):
        layers = draw_classes(clean, rng, geo, lm, feature_params, params)
        entries = quantise(layers.footprints, layers.shifts)
        cam_seed = int(rng.integers(1 << 62))
        inp8, tgt8 = render_sparse(cleaned8, entries, default_vector())
        raw_s, tgt_s = apply_camera([inp8, tgt8], np.random.default_rng(cam_seed), size)
        maps = footprint_maps(entries, stored, size)
        maps8 = np.clip(maps * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out["raw"].append(raw_s)
        out["target"].append(tgt_s)
        out["alpha"].append(maps8.max(axis=-1))
        out["classes"].append(maps8[..., temporary])
        out["entries"].append(entries)
        out["camera_seed"].append(cam_seed)
    return out


class RaggedWriter:
    """Appends rows to ``NAME.npy`` of unknown final length (streamed to a part file, then saved)."""

    def __init__(self, folder: Path, name: str, dtype, tail: tuple[int, ...] = ()) -> None:
        self.folder, self.name, self.dtype, self.tail = Path(folder), name, np.dtype(dtype), tuple(tail)
        self.part = self.folder / f".{name}.part"
        self.file = open(self.part, "wb")
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, self.dtype)
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def finish(self) -> None:
        self.file.close()
        shape = (self.rows, *self.tail)
        data = np.memmap(self.part, self.dtype, "r", shape=shape) if self.rows else np.zeros(shape, self.dtype)
        np.save(self.folder / f"{self.name}.npy", data)
        del data
        self.part.unlink()


def selection_for(seed: int, classes: Sequence[str]) -> np.ndarray:
    """The selection of the sample drawn with ``seed`` (:func:`.classpairs.random_selection`, its own
    stream), over :data:`CLASSES`; classes without a head in ``classes`` are kept (weight 0), as
    weights without a head for a class leave it alone."""
    from .classpairs import random_selection

    w = random_selection(np.random.default_rng([int(seed), _SELECT_STREAM]))
    heads = np.array([c in classes for c in CLASSES], np.float32)
    return (w * heads).astype(np.float32)


class ClassLayersReader:
    """Reads a class cache's layers and renders any selection's pair of a cached variant."""

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.variants = int(meta["variants"])
        self.source = int(meta["source_size"])
        self.size = int(meta["size"])

    def entries(self, i: int) -> Entries:
        a = self.arrays
        off = np.asarray(a["sparse_offsets"][i])
        out: Entries = []
        for k in range(len(CLASSES)):
            sl = slice(int(off[k]), int(off[k + 1]))
            out.append((np.asarray(a["sparse_index"][sl]), np.asarray(a["sparse_foot"][sl]), np.asarray(a["sparse_shift"][sl])))
        return out

    def differences(self, i: int, classes: Sequence[str], entries: Entries | None = None) -> np.ndarray:
        """[S, S, K] float32: the own change of each of ``classes`` in variant ``i`` (:func:`difference_maps`)."""
        entries = self.entries(i) if entries is None else entries
        return difference_maps(np.asarray(self.arrays["clean"][i // self.variants]), entries, self.size, classes)

    def target(self, i: int, selection: np.ndarray, entries: Entries | None = None) -> np.ndarray:
        """The S×S×3 uint8 target of variant ``i`` for ``selection`` (over :data:`CLASSES`), through
        the variant's camera; the cached target for the default selection, the cached input when
        nothing is removed."""
        from .photometric import apply_camera

        w = np.asarray(selection, np.float32)
        if np.array_equal(w, np.asarray(default_vector(), np.float32)):
            return np.asarray(self.arrays["target"][i])
        if not w.any():
            return np.asarray(self.arrays["raw"][i])
        entries = self.entries(i) if entries is None else entries
        clean8 = np.asarray(self.arrays["clean"][i // self.variants])
        _, tgt8 = render_sparse(clean8, entries, w)
        cam = np.random.default_rng(int(self.arrays["camera_seed"][i]))
        return apply_camera([tgt8], cam, self.size)[0]
