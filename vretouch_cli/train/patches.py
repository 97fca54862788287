"""Training data made once and cached, and blemish-centred patch clips drawn from it (CPU training).

Building the cache (``vretouch train --build-cache``, :func:`build_cache`) does the expensive work
once per face: the prepared 512 crop's skin geometry, its *cleaned* target (the photo's own
pronounced temporary blemishes healed, :mod:`.cleanup`), then ``variants`` draws of acne
(:mod:`.acne`) rendered at 512 and a random camera (:mod:`.photometric`) that takes the pair to the
model's size S. The result is four uint8 arrays (memory-mapped when read): ``raw``, ``target``,
``alpha`` (blemish footprint) and ``classes`` (acne, redness, marks footprints).

:class:`PatchDataset` turns cached items into the same clip dicts :class:`.data.ClipDataset` gives
(``raw``, ``target``, ``affines``, ``alpha``): a smooth random motion over T frames, then a
``patch``×``patch`` crop centred on a blemish most of the time. The model is convolutional with
windowed attention, so patches train the same weights at the model's native scale for a fraction
of the cost. The affines are shifted into the crop's coordinates, so the ground-truth flow is exact.
Every item is a pure function of ``(index, seed)`` (exact resume).

With ``classes=True`` the cache also keeps every imperfection class's layer (:mod:`.classcache`):
faces get moles and freckles besides acne, and ``PatchDataset(..., classes=…)`` draws a selection
per sample and renders that selection's target, adding ``select`` and per-class maps to the item.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .motion import MotionParams, random_motion, warp_frames

CACHE_FORMAT = "vretouch-patch-cache-1"
META = "cache.json"


def is_cache(folder: str | Path) -> bool:
    return (Path(folder) / META).is_file()


def exact_change(raw8: np.ndarray, target8: np.ndarray, size: int) -> np.ndarray:
    """A pair's change before the camera, S×S float16 in [0, 1]: mean |raw − target| over R, G, B
    (unit range) at the prepared size, area-resampled to the model's. The camera's JPEG spreads a
    spot's difference into 8×8 blocks; this is what the spot itself changes (``--map-target exact``)."""
    import cv2

    d = np.abs(raw8.astype(np.float32) - target8.astype(np.float32)).mean(axis=2) / 255.0
    if d.shape[0] != size:
        d = cv2.resize(d, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(d, 0.0, 1.0).astype(np.float16)


def _face_job(args) -> dict:
    """Everything for one face (runs in a worker process)."""
    import cv2

    from .acne import synthesize_acne
    from .cleanup import clean_prepared_face
    from .photometric import apply_camera

    path, landmarks, stored, size, variants, seed, params = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    lm = np.asarray(landmarks, np.float32)
    geo, cleaned8, healed = clean_prepared_face(path, lm, stored)
    clean = cleaned8.astype(np.float32) / 255.0
    out = {"raw": [], "target": [], "alpha": [], "classes": [], "change": [], "healed_share": float((healed > 0.1).mean())}
    for _ in range(variants):
        res = synthesize_acne(clean, rng, geo, params, lm)
        raw8 = np.clip(res.raw * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out["change"].append(exact_change(raw8, cleaned8, size))
        maps8 = np.clip(np.stack([res.alpha, res.classes["acne"], res.classes["redness"], res.classes["marks"]], -1) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        maps_s = cv2.resize(maps8, (size, size), interpolation=cv2.INTER_AREA)
        raw_s, tgt_s = apply_camera([raw8, cleaned8], rng, size)
        out["raw"].append(raw_s)
        out["target"].append(tgt_s)
        out["alpha"].append(maps_s[..., 0])
        out["classes"].append(maps_s[..., 1:])
    return out


def build_cache(
    prepared: str | Path,
    out: str | Path,
    size: int = 256,
    variants: int = 12,
    val_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 2,
    on_progress=None,
    split: str = "train",
    classes: bool = False,
    feature_params=None,
    acne_params=None,
) -> dict:
    """Cache ``variants`` blemished pairs of every *training* person's face (validation people,
    split by identity as everywhere else, are left out) in ``out``; ``split="val"`` caches the
    validation people instead. ``classes``: also moles and freckles, and every class's layer, so
    that any selection can be trained on (:mod:`.classcache`; ``feature_params``: the moles' and
    freckles' :class:`.features.FeatureParams`, default its defaults; ``acne_params``: the
    blemishes' :class:`.acne.AcneParams`, default its defaults). Returns the metadata."""
    import multiprocessing as mp

    from .acne import AcneParams
    from .data import split_by_identity
    from .prepare import load_prepared

    faces = load_prepared(prepared)
    keep, held = split_by_identity([f.identity for f in faces], val_fraction)
    people = keep if split == "train" else held
    train = [f for f in faces if f.identity in people]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = acne_params or AcneParams()
    jobs = [(str(f.file), f.landmarks.tolist(), f.size, size, variants, (seed, i), params) for i, f in enumerate(train)]
    n = len(train) * variants
    extra = None
    if classes:
        from . import classcache
        from ..classes import CLASSES
        from .features import FeatureParams

        sizes = {f.size for f in train}
        if len(sizes) > 1:
            raise InputError(f"{prepared}: a class cache needs one crop size, the prepared faces have {sorted(sizes)}")
        source = sizes.pop() if sizes else size
        jobs = [job + (feature_params or FeatureParams(),) for job in jobs]
        extra = {
            "clean": np.lib.format.open_memmap(out / "clean.npy", "w+", np.uint8, (len(train), source, source, 3)),
            "sparse_offsets": np.lib.format.open_memmap(out / "sparse_offsets.npy", "w+", np.int64, (n, len(CLASSES) + 1)),
            "camera_seed": np.lib.format.open_memmap(out / "camera_seed.npy", "w+", np.int64, (n,)),
        }
        ragged = {
            "sparse_index": classcache.RaggedWriter(out, "sparse_index", np.int32),
            "sparse_foot": classcache.RaggedWriter(out, "sparse_foot", np.float16),
            "sparse_shift": classcache.RaggedWriter(out, "sparse_shift", np.float16, (3,)),
        }
    job_fn = _face_job if extra is None else classcache.class_face_job
    arrays = {
        "raw": np.lib.format.open_memmap(out / "raw.npy", "w+", np.uint8, (n, size, size, 3)),
        "target": np.lib.format.open_memmap(out / "target.npy", "w+", np.uint8, (n, size, size, 3)),
        "alpha": np.lib.format.open_memmap(out / "alpha.npy", "w+", np.uint8, (n, size, size)),
        "classes": np.lib.format.open_memmap(out / "classes.npy", "w+", np.uint8, (n, size, size, 3)),
    }
    if extra is None:  # a class cache renders each selection's target at load time: no fixed change
        arrays["change"] = np.lib.format.open_memmap(out / "change.npy", "w+", np.float16, (n, size, size))
    healed = []
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(max(1, workers)) as pool:
        for i, res in enumerate(pool.imap(job_fn, jobs)):
            for k, arr in arrays.items():
                arr[i * variants : (i + 1) * variants] = np.stack(res[k])
            if extra is not None:
                extra["clean"][i] = res["clean"]
                for v, entries in enumerate(res["entries"]):
                    row = i * variants + v
                    offsets = [ragged["sparse_index"].rows]
                    for idx, foot, shift in entries:
                        ragged["sparse_index"].add(idx)
                        ragged["sparse_foot"].add(foot)
                        ragged["sparse_shift"].add(shift)
                        offsets.append(ragged["sparse_index"].rows)
                    extra["sparse_offsets"][row] = offsets
                    extra["camera_seed"][row] = res["camera_seed"][v]
            healed.append(res["healed_share"])
            if on_progress:
                on_progress(i + 1, len(jobs))
    for arr in arrays.values():
        arr.flush()
    if extra is not None:
        for arr in extra.values():
            arr.flush()
        for writer in ragged.values():
            writer.finish()
    meta = {
        "format": CACHE_FORMAT,
        "size": size,
        "variants": variants,
        "items": n,
        "identities": [f.identity for f in train for _ in range(variants)],
        "val_identities": sorted(held),
        "source": str(prepared),
        "split": split,
        "seed": seed,
        "healed_share_mean": float(np.mean(healed)) if healed else 0.0,
        "dark_tone": params.dark_tone,
        # 0.0 for a split with no people (e.g. no held-out identity): nothing to average
        "blemished_share": float((arrays["alpha"].reshape(n, -1).max(axis=1) > 64).mean()) if n else 0.0,
    }
    if extra is not None:
        meta["classes"] = list(CLASSES)
        meta["source_size"] = int(source)
        meta["class_entries"] = int(ragged["sparse_index"].rows)
    tmp = out / f".{META}.tmp.{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / META)
    return meta


def load_cache(folder: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: not a training cache ({exc}); build one with `vretouch train --build-cache`") from exc
    if meta.get("format") != CACHE_FORMAT:
        raise InputError(f"{folder / META}: unknown format {meta.get('format')!r}")
    names = ("raw", "target", "alpha", "classes")
    if meta.get("classes"):
        from .classcache import ARRAYS

        names += ARRAYS
    if (folder / "change.npy").is_file():  # caches built since session 4
        names += ("change",)
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in names}
    return meta, arrays


def has_classes(folder: str | Path) -> bool:
    """True when ``folder`` is a class cache (built with ``classes=True``)."""
    try:
        return bool(json.loads((Path(folder) / META).read_text()).get("classes"))
    except (OSError, ValueError):
        return False


def cache_items(folder: str | Path) -> int:
    """How many pairs the cache in ``folder`` holds (0 when it is empty or not a cache)."""
    try:
        return int(json.loads((Path(folder) / META).read_text()).get("items", 0))
    except (OSError, ValueError, TypeError):
        return 0


@lru_cache(maxsize=4)
def _outline(size: int) -> np.ndarray:
    """The band around the face ellipse's edge in an aligned crop, where cheeks, jaw and hairline
    meet background or hair: crops centred there teach the model to leave silhouettes alone."""
    from ..face.paste import face_region_mask

    m = face_region_mask(size)
    return (m > 0.02) & (m < 0.6)


@dataclass(frozen=True)
class PatchParams:
    patch: int = 128  # crop size (0 = whole frames)
    spot_centred: float = 0.75  # share of crops centred on a blemish pixel
    edge_centred: float = 0.15  # share centred on the face outline (cheek, jaw, hairline against background or hair)
    motion: MotionParams = MotionParams()


class PatchDataset(Dataset):
    """Clips of ``frames`` frames cropped from cached pairs; same item dict as ClipDataset.

    ``classes`` (a class cache only; the class heads of the model trained, names from
    :data:`vretouch_cli.classes.CLASSES`): each item draws its own selection from its seed
    (:func:`.classcache.selection_for`; classes not in ``classes`` are kept), its ``target`` is that
    selection's, and it also holds ``select`` [K] float32 (the weights, ``classes`` order) and
    ``class_maps`` [T, K, P, P] float32 in [0, 1]: every class's footprint, whatever the selection
    (where each class is; the selection only decides what is removed), and ``class_diff`` [T, K,
    P, P] float32 in [0, 1]: every class's own change (mean |input − input with only that class
    removed| over R, G, B, :func:`.classcache.difference_maps`), what its head is trained on.
    """

    def __init__(
        self, folder: str | Path, frames: int, params: PatchParams = PatchParams(), indices: list[int] | None = None,
        classes: tuple[str, ...] | None = None,
    ) -> None:
        self.meta, self.arrays = load_cache(folder)
        self.classes = tuple(classes) if classes else None
        self.layers = None
        if self.classes:
            from .classcache import ClassLayersReader

            if not self.meta.get("classes"):
                raise InputError(f"{folder}: this training cache has no per-class layers; build one with `vretouch train --build-cache PREP -o CACHE --cache-classes`")
            self.layers = ClassLayersReader(self.meta, self.arrays)
        self.size = int(self.meta["size"])
        self.frames = int(frames)
        self.params = params
        self.indices = list(range(int(self.meta["items"]))) if indices is None else list(indices)
        if not self.indices:
            raise InputError(f"{folder}: the training cache holds no items")
        if params.patch and (params.patch > self.size or params.patch % 8):
            raise InputError(f"patch size {params.patch} must be a multiple of 8 and at most the cached size {self.size}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), int(key))
        rng = np.random.default_rng(seed)
        i = self.indices[index]
        S, T = self.size, self.frames
        raw = np.asarray(self.arrays["raw"][i])
        tgt = np.asarray(self.arrays["target"][i])
        alpha = np.asarray(self.arrays["alpha"][i])
        change = np.asarray(self.arrays["change"][i], np.float32) if "change" in self.arrays and self.layers is None else None
        maps_f = select = None
        if self.layers is not None:
            from .classcache import footprint_maps, selection_for

            select = selection_for(seed, self.classes)
            entries = self.layers.entries(i)
            tgt = self.layers.target(i, select, entries)
            maps = footprint_maps(entries, self.layers.source, S, self.classes)
            diffs = self.layers.differences(i, self.classes, entries)
        affines = random_motion(T, S, rng, self.params.motion)
        raw_f = warp_frames(raw, affines, S)
        tgt_f = warp_frames(tgt, affines, S)
        alpha_f = warp_frames(alpha, affines, S)
        change_f = None if change is None else warp_frames(change, affines, S)
        if select is not None:
            maps_f = warp_frames(maps, affines, S)
            diffs_f = warp_frames(diffs, affines, S)
        P = self.params.patch or S
        if P < S:
            ti = T // 2
            cy = cx = None
            if rng.random() < self.params.spot_centred:
                ys, xs = np.nonzero(alpha_f[ti, ..., 0] > 80)
                if len(ys):
                    j = rng.integers(len(ys))
                    cy, cx = int(ys[j]) + int(rng.integers(-P // 4, P // 4 + 1)), int(xs[j]) + int(rng.integers(-P // 4, P // 4 + 1))
            elif rng.random() < self.params.edge_centred / max(1e-6, 1.0 - self.params.spot_centred):
                ys, xs = np.nonzero(_outline(S))
                j = rng.integers(len(ys))
                cy, cx = int(ys[j]), int(xs[j])
            if cy is None:  # anywhere on the face (the central part of an aligned crop)
                cy, cx = int(rng.integers(int(0.25 * S), int(0.8 * S))), int(rng.integers(int(0.2 * S), int(0.8 * S)))
            y0 = int(np.clip(cy - P // 2, 0, S - P))
            x0 = int(np.clip(cx - P // 2, 0, S - P))
            raw_f = raw_f[:, y0 : y0 + P, x0 : x0 + P]
            tgt_f = tgt_f[:, y0 : y0 + P, x0 : x0 + P]
            alpha_f = alpha_f[:, y0 : y0 + P, x0 : x0 + P]
            if change_f is not None:
                change_f = change_f[:, y0 : y0 + P, x0 : x0 + P]
            if maps_f is not None:
                maps_f = maps_f[:, y0 : y0 + P, x0 : x0 + P]
                diffs_f = diffs_f[:, y0 : y0 + P, x0 : x0 + P]
            affines = affines.copy()
            affines[:, 0, 2] -= x0
            affines[:, 1, 2] -= y0

        def tensor(frames: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))

        item = {"raw": tensor(raw_f), "target": tensor(tgt_f), "affines": torch.from_numpy(affines), "alpha": tensor(alpha_f)}
        if change_f is not None:
            item["change"] = tensor(change_f)  # [T, 1, P, P] float32: the exact change (--map-target exact)
        if select is not None:
            from ..classes import CLASSES

            item["select"] = torch.from_numpy(select[[CLASSES.index(c) for c in self.classes]].copy())
            item["class_maps"] = tensor(maps_f)
            item["class_diff"] = tensor(diffs_f)
        return item
