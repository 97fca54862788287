"""Training data: FFHQR pairs or clean faces with synthetic blemishes, as smooth-motion clips.

Both kinds of data become the same item (MODEL.md §4): T = δ + 1 frames of a still pair moved by
a smooth random walk (:mod:`.motion`), with the exact ground-truth flow between frames.

- **ffhqr**: ``ROOT/{train,test}/{source,target}/NAME.png`` (same names in both). ``test/`` is
  the validation split when present; otherwise names are split by identity.
- **synthetic**: a folder of clean face photos. Either a prepared folder (``prepared.json``
  written by ``vretouch train --prepare-faces``) or raw photos, which are detected and aligned
  once with the project's face stage and cached. Blemishes (:mod:`.blemish`) are rendered on the
  clean crop before the motion, so they stay attached to the face.

Every item is a pure function of ``(index, seed)``: :class:`StepSampler` hands out those keys in
a fixed order that depends only on the step, the rank and the seed. Resuming at step s therefore
reproduces exactly the data the uninterrupted run would have seen, with any number of workers.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import InputError
from .blemish import BlemishParams, SkinGeometry, skin_geometry, synthesize_blemishes
from .motion import MotionParams, random_motion, warp_frames
from .prepare import IMAGE_EXTS, identity_of, is_prepared, list_images, load_prepared, prepared_cache, read_rgb

log = logging.getLogger(__name__)

__all__ = [
    "Still", "DataSplit", "discover", "split_by_identity", "ClipDataset", "StepSampler", "detect_mode",
    "to_model_range", "flows_from_affines_torch",
]


@dataclass(frozen=True)
class Still:
    """One training still: a pair (``raw`` set) or a clean face (``raw`` None, blemishes synthesised)."""

    target: Path
    identity: str
    raw: Path | None = None
    landmarks: tuple | None = None  # clean faces: five crop-space points at ``stored_size``
    stored_size: int | None = None


@dataclass(frozen=True)
class DataSplit:
    mode: str  # "ffhqr" | "synthetic"
    train: tuple[Still, ...]
    val: tuple[Still, ...]
    note: str = ""


def detect_mode(root: Path) -> str:
    from .patches import is_cache

    if is_cache(root):
        return "patches"
    if (root / "train" / "source").is_dir() and (root / "train" / "target").is_dir():
        return "ffhqr"
    return "synthetic"


def _pairs(folder: Path) -> list[Still]:
    src, tgt = folder / "source", folder / "target"
    if not src.is_dir() or not tgt.is_dir():
        return []
    out = []
    for p in sorted(src.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        t = tgt / p.name
        if not t.is_file():
            cands = [c for c in tgt.glob(p.stem + ".*") if c.suffix.lower() in IMAGE_EXTS]
            if not cands:
                continue
            t = cands[0]
        out.append(Still(target=t, raw=p, identity=identity_of(p.name)))
    return out


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2.0**64


def split_by_identity(identities: list[str], val_fraction: float) -> tuple[set[str], set[str]]:
    """Deterministic person-level split (stable across runs, seeds and file order).

    Each identity goes to validation when a hash of its name falls below ``val_fraction``; with two
    or more identities neither side is left empty (unless ``val_fraction`` is 0).
    """
    ids = sorted(set(identities))
    u = {i: _unit_hash("vretouch-split:" + i) for i in ids}
    val = {i for i in ids if u[i] < val_fraction}
    if val_fraction > 0 and len(ids) >= 2:
        if not val:
            val = {min(ids, key=u.get)}
        if len(val) == len(ids):
            val.discard(max(ids, key=u.get))
    return set(ids) - val, val


def discover(data: str | Path, mode: str = "auto", val_fraction: float = 0.2, size: int = 512, cache_root: Path | None = None) -> DataSplit:
    """Find the training stills under ``data`` and split them into train / validation."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"--data {root}: not a folder")
    if mode == "auto":
        mode = detect_mode(root)
    if mode == "ffhqr":
        train = _pairs(root / "train")
        if not train:
            raise InputError(f"{root}: no pairs in train/source + train/target (FFHQR layout ROOT/train/{{source,target}}/NAME.png)")
        test = _pairs(root / "test")
        if test:
            return DataSplit("ffhqr", tuple(train), tuple(test), f"{len(train)} train pairs, {len(test)} test pairs (test/ is the validation split)")
        keep, held = split_by_identity([s.identity for s in train], val_fraction)
        tr = tuple(s for s in train if s.identity in keep)
        va = tuple(s for s in train if s.identity in held)
        return DataSplit("ffhqr", tr, va, f"{len(tr)} train / {len(va)} validation pairs, split by name")
    if mode != "synthetic":
        raise InputError(f"unknown data mode {mode!r}")
    if is_prepared(root):
        folder = root
    else:
        if not list_images(root):
            raise InputError(f"--data {root}: no images, no prepared.json and no FFHQR train/ folder")
        folder = prepared_cache(root, cache_root or (root / ".vretouch_cache"), size=max(size, 256))
    faces = load_prepared(folder)
    stills = [Still(target=f.file, identity=f.identity, landmarks=tuple(map(tuple, f.landmarks.tolist())), stored_size=f.size) for f in faces]
    keep, held = split_by_identity([s.identity for s in stills], val_fraction)
    tr = tuple(s for s in stills if s.identity in keep)
    va = tuple(s for s in stills if s.identity in held)
    return DataSplit(
        "synthetic", tr, va, f"{len(tr)} train / {len(va)} validation clean faces ({len(keep)} / {len(held)} people), synthetic blemishes"
    )


def _load(path: Path, size: int) -> np.ndarray:
    img = read_rgb(path)
    if img.shape[:2] != (size, size):
        h, w = img.shape[:2]
        interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def _quantise(image: np.ndarray) -> np.ndarray:
    """float [0, 1] → uint8 (round half up)."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """[T, S, S, C] uint8 → [T, C, S, S] uint8 tensor.

    Clips travel from the loader workers as uint8 (4× less to copy than float32);
    :func:`to_model_range` makes them model inputs on the device.
    """
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def to_model_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (any shape) → float32 in [-1, 1] (the model's input range)."""
    return frames.float() / 127.5 - 1.0


def flows_from_affines_torch(affines: torch.Tensor, size: int) -> torch.Tensor:
    """Batched, on-device twin of :func:`.motion.flows_from_affines`.

    affines [B, T, 2, 3] (base crop → frame, float64 preferred) → flows [B, T−1, 2, S, S] float32.
    """
    a = affines.double()
    b, t = a.shape[:2]
    h = torch.zeros(b, t, 3, 3, dtype=a.dtype, device=a.device)
    h[..., :2, :] = a
    h[..., 2, 2] = 1.0
    rel = (h[:, :-1] @ torch.linalg.inv(h[:, 1:])).float()  # A_k · A_{k+1}^{-1}, [B, T−1, 3, 3]
    ys, xs = torch.meshgrid(
        torch.arange(size, device=a.device, dtype=torch.float32), torch.arange(size, device=a.device, dtype=torch.float32), indexing="ij"
    )
    m = rel[..., :2, :].reshape(b, t - 1, 2, 3, 1, 1)
    fx = m[:, :, 0, 0] * xs + m[:, :, 0, 1] * ys + m[:, :, 0, 2] - xs
    fy = m[:, :, 1, 0] * xs + m[:, :, 1, 1] * ys + m[:, :, 1, 2] - ys
    return torch.stack([fx, fy], dim=2)


class ClipDataset(Dataset):
    """Clips of T frames from stills. ``dataset[(index, seed)]`` (or ``dataset[index]``, seed = index) →

    - ``raw``     [T, 3, S, S] uint8, the input frames (with imperfections)
    - ``target``  [T, 3, S, S] uint8, the retouched / clean frames
    - ``affines`` [T, 2, 3] float64, each frame's warp of the still; the exact flow (ARCHITECTURE.md
      convention) is :func:`flows_from_affines_torch` of them, computed on the device
    - ``alpha``   [T, 1, S, S] uint8, the synthetic spots' footprint ×255 (zeros for pairs)

    :func:`to_model_range` turns the uint8 frames into the model's [-1, 1].
    """

    def __init__(
        self,
        stills: tuple[Still, ...] | list[Still],
        size: int,
        frames: int,
        motion: MotionParams = MotionParams(),
        blemish: BlemishParams = BlemishParams(),
        cache_images: bool = True,
    ) -> None:
        if not stills:
            raise InputError("no training images")
        self.stills = list(stills)
        self.size = int(size)
        self.frames = int(frames)
        self.motion = motion
        self.blemish = blemish
        self.cache_images = cache_images
        self._cache: dict[Path, np.ndarray] = {}  # per worker process; uint8 at S (≤ 0.8 MB per image at 512)
        self._geometry: dict[Path, SkinGeometry] = {}  # per worker; skin masks of clean faces

    def __len__(self) -> int:
        return len(self.stills)

    def _image(self, path: Path) -> np.ndarray:
        img = self._cache.get(path)
        if img is None:
            img = _load(path, self.size)
            if self.cache_images:
                self._cache[path] = img
        return img

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), int(key))
        rng = np.random.default_rng(seed)
        s = self.stills[index]
        S = self.size
        target8 = self._image(s.target)
        if s.raw is not None:
            raw8 = self._image(s.raw)
            alpha8 = np.zeros((S, S), np.uint8)
        else:
            target = target8.astype(np.float32) / 255.0
            lm = None
            if s.landmarks is not None:
                lm = np.asarray(s.landmarks, np.float32) * (S / float(s.stored_size or S))
            geo = self._geometry.get(s.target)
            if geo is None:
                # Always the 8-bit compact form, cached or not, so an item never depends on the cache.
                geo = skin_geometry(target, lm).compact()
                if self.cache_images:
                    self._geometry[s.target] = geo
            res = synthesize_blemishes(target, rng, lm, self.blemish, geometry=geo)
            raw8, alpha8 = _quantise(res.raw), _quantise(res.alpha)
        affines = random_motion(self.frames, S, rng, self.motion)
        # Warped as 8-bit images (the stills are 8-bit photos): equal pixels of raw and target stay
        # equal, so M_gt is exactly zero wherever nothing was retouched.
        return {
            "raw": _frames_tensor(warp_frames(raw8, affines, S)),
            "target": _frames_tensor(warp_frames(target8, affines, S)),
            "affines": torch.from_numpy(affines),
            "alpha": _frames_tensor(warp_frames(alpha8, affines, S)),
        }


def worker_init(_worker_id: int) -> None:
    """DataLoader worker setup: one OpenCV thread per worker (the workers are the parallelism), and
    Ctrl-C left to the trainer (a terminal sends SIGINT to the whole process group; the trainer
    checkpoints and stops its workers itself).

    Only safe in a fresh process (see :func:`worker_context`): in a plain fork of a parent whose
    OpenCV thread pool has run, ``cv2.setNumThreads`` deadlocks.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def worker_context() -> str | None:
    """Start workers with ``forkserver``: clean processes that inherit no thread pools (OpenCV's,
    OpenMP's) and no CUDA state from the trainer, whatever ran in it before the loader started."""
    import multiprocessing as mp

    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def sample_seed(seed: int, counter: int) -> int:
    """A 63-bit seed for the ``counter``-th sample of a run (independent streams per sample)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(counter)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class StepSampler(Sampler):
    """Infinite, resumable, per-rank keys ``(index, seed)`` for map-style :class:`ClipDataset`.

    Sample number ``g = (step · world + rank) · batch + b`` takes position ``g mod N`` of the
    permutation of epoch ``g // N`` (a permutation seeded by the run seed and the epoch), so the
    ranks read disjoint shards and a run resumed at ``start_step`` continues the same sequence.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1) -> None:
        self.n = int(n_items)
        self.batch = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.rank, self.world = int(rank), int(world)

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, 7919, epoch]).permutation(self.n)

    def keys_for_step(self, step: int) -> list[tuple[int, int]]:
        out = []
        for b in range(self.batch):
            g = (step * self.world + self.rank) * self.batch + b
            epoch, pos = divmod(g, self.n)
            out.append((int(self._perm(epoch)[pos]), sample_seed(self.seed, g)))
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        cache: dict[int, np.ndarray] = {}
        step = self.start_step
        while True:
            for b in range(self.batch):
                g = (step * self.world + self.rank) * self.batch + b
                epoch, pos = divmod(g, self.n)
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._perm(epoch)
                yield (int(cache[epoch][pos]), sample_seed(self.seed, g))
            step += 1
