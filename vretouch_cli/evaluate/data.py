"""Evaluation data layouts: MRFV-style clip folders and the FFHQR test split.

**MRFV layout** (``vretouch eval --mrfv DIR``): one folder per clip; in each, ``raw`` and
``retouched``, each either a video file (``raw.mp4``, ``retouched.mov`` …, any container the
video stage reads) or a folder of frames (``raw/000000.png`` …, sorted by name). Both have the
same frame count and size; ``retouched`` is the ground truth the output is compared with::

    DIR/
      clip_a/raw.mp4          clip_a/retouched.mp4
      clip_b/raw/0000.png …   clip_b/retouched/0000.png …

Folders without a ``raw`` entry are skipped only if they have no ``retouched`` either (a clip
with one side missing is an error, so a typo is not silently ignored).

**FFHQR layout** (``vretouch eval --ffhqr DIR``): the public FFHQR dataset's folders,
``DIR/{train,test}/{source,target}/NAME.png`` with the same names in ``source`` (raw) and
``target`` (retouched); only ``test`` is evaluated. Images are aligned FFHQ faces (any size; they
are resized to the model's crop size S).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class MRFVClip:
    """One evaluation clip: the raw input and its ground-truth retouched version."""

    name: str
    raw: Path
    retouched: Path


@dataclass(frozen=True)
class ImagePair:
    """One FFHQR test pair."""

    name: str
    source: Path
    target: Path


def _find_side(folder: Path, stem: str) -> Path | None:
    direct = folder / stem
    if direct.is_dir():
        return direct
    matches = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file())
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise InputError(f"clip {folder.name}: several '{stem}' files ({names}); keep one")
    return matches[0] if matches else None


def find_mrfv_clips(root: str | Path) -> list[MRFVClip]:
    """The clips of an MRFV-layout folder, sorted by name (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--mrfv: {root} is not a folder")
    clips: list[MRFVClip] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        raw, ret = _find_side(folder, "raw"), _find_side(folder, "retouched")
        if raw is None and ret is None:
            continue
        if raw is None or ret is None:
            missing = "raw" if raw is None else "retouched"
            raise InputError(f"clip {folder.name}: no '{missing}' video or frame folder in {folder}")
        clips.append(MRFVClip(folder.name, raw, ret))
    if not clips:
        raise InputError(f"--mrfv: no clip folders with 'raw' and 'retouched' in {root}")
    return clips


def find_ffhqr_pairs(root: str | Path, split: str = "test", limit: int | None = None) -> list[ImagePair]:
    """The (source, target) pairs of ``ROOT/split``, sorted by name, at most ``limit``."""
    root = Path(root)
    src_dir, tgt_dir = root / split / "source", root / split / "target"
    if not src_dir.is_dir() or not tgt_dir.is_dir():
        raise InputError(f"--ffhqr: expected {src_dir} and {tgt_dir} (FFHQR layout ROOT/{split}/{{source,target}}/NAME.png)")
    targets = {p.stem: p for p in tgt_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [
        ImagePair(p.stem, p, targets[p.stem])
        for p in sorted(src_dir.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in targets
    ]
    if not pairs:
        raise InputError(f"--ffhqr: no image with the same name in {src_dir} and {tgt_dir}")
    return pairs[:limit] if limit else pairs


def read_image(path: str | Path) -> np.ndarray:
    """An image file as H×W×3 RGB (uint8, or uint16 for 16-bit files)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read image {path}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: unsupported image type {img.dtype}")
    return img


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an aligned face image to size×size (area filter down, cubic up)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)
