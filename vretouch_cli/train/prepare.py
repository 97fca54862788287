"""Detect and align clean face photos once, with the project's own face stage.

``prepare_faces(SRC, PREP, size=512)`` walks SRC for images, keeps the best face of each photo,
aligns it to the FFHQ template (the same alignment inference uses) and writes
``PREP/<subfolder>__<stem>.jpg`` (JPEG quality 92, so 244 photos at 512 px are ~15 MB) plus
``PREP/prepared.json`` listing every crop with its person id and its five landmarks in crop
pixels. Person ids come from the names: ``frll_london/001_03.jpg`` and ``001_08.jpg`` are the
same person ``frll_london__001``; a name without a ``_NN`` photo suffix is its own person.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError, NoFaceError, OutputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MANIFEST = "prepared.json"
FORMAT = "vretouch-prepared-faces/1"

_PHOTO_SUFFIX = re.compile(r"^(.+?)[_-]\d{1,3}$")


def identity_of(name: str) -> str:
    """Person id from a file stem: ``001_03`` → ``001``; ``x__001_08`` → ``x__001``; else the stem."""
    stem = Path(name).stem
    m = _PHOTO_SUFFIX.match(stem)
    return m.group(1) if m else stem


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive), sorted, hidden files skipped."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    )


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 H×W×3."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OutputError(f"cannot encode {path}")
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


@dataclass(frozen=True)
class PreparedFace:
    file: Path
    identity: str
    landmarks: np.ndarray  # [5, 2] float32 in crop pixels of the stored size
    size: int


def _flat_name(src_root: Path, path: Path) -> str:
    rel = path.relative_to(src_root).with_suffix("")
    return "__".join(rel.parts)


def source_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def prepare_faces(
    src: str | Path,
    out: str | Path,
    size: int = 512,
    quality: int = 92,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Detect, align and save every photo's best face; returns the manifest (also written to disk).

    Photos without a face are listed under ``skipped`` (and not an error unless all are).
    """
    from ..face.align import estimate_alignment, warp_to_crop
    from ..face.detect import FaceDetector

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(f"--prepare-faces: {src} is not a folder")
    files = list_images(src)
    if not files:
        raise InputError(f"no images found under {src}")
    if out.resolve() == src.resolve():
        raise OutputError("the prepared folder must differ from the source folder")
    out.mkdir(parents=True, exist_ok=True)
    detector = FaceDetector()
    items, skipped = [], []
    for i, path in enumerate(files):
        if on_progress:
            on_progress(i, len(files), path.name)
        rgb = read_rgb(path)
        faces = detector.detect(rgb)
        if not faces:
            skipped.append({"source": str(path.relative_to(src)), "reason": "no face"})
            continue
        best = max(faces, key=lambda f: f.score * max(f.eye_distance, 1.0))
        M = estimate_alignment(best.landmarks, size)
        crop = warp_to_crop(rgb, M, size)
        crop8 = np.clip(np.round((crop + 1.0) * 127.5), 0, 255).astype(np.uint8)
        lm = np.asarray(best.landmarks, np.float64) @ M[:, :2].T + M[:, 2]
        name = _flat_name(src, path) + ".jpg"
        write_jpeg(out / name, crop8, quality)
        items.append(
            {
                "file": name,
                "identity": identity_of(name),
                "source": str(path.relative_to(src)),
                "score": round(float(best.score), 4),
                "landmarks": np.round(lm, 3).tolist(),
            }
        )
    if on_progress:
        on_progress(len(files), len(files), "")
    if not items:
        raise NoFaceError(f"no face found in any of the {len(files)} images under {src}")
    manifest = {
        "format": FORMAT,
        "size": size,
        "template": "ffhq-5pt",
        "source_fingerprint": source_fingerprint(files),
        "items": items,
        "skipped": skipped,
    }
    tmp = out / f".{MANIFEST}.tmp.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
    return manifest


def is_prepared(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def load_prepared(folder: str | Path) -> list[PreparedFace]:
    """The crops of a prepared folder, with person ids and crop-space landmarks."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / MANIFEST} is missing or unreadable ({exc}); run `vretouch train --prepare-faces`") from exc
    if manifest.get("format") != FORMAT:
        raise InputError(f"{folder / MANIFEST}: unknown format {manifest.get('format')!r}")
    size = int(manifest["size"])
    faces = []
    for it in manifest["items"]:
        path = folder / it["file"]
        if path.is_file():
            faces.append(PreparedFace(path, it["identity"], np.asarray(it["landmarks"], np.float32), size))
    if not faces:
        raise InputError(f"the prepared folder {folder} lists no existing crops")
    return faces


def prepared_cache(src: Path, cache_root: Path, size: int) -> Path:
    """Prepare ``src`` into ``cache_root/<fingerprint>_<size>`` unless that is already done."""
    files = list_images(src)
    if not files:
        raise InputError(f"no images found under {src}")
    folder = Path(cache_root) / f"{source_fingerprint(files)[:12]}_{size}"
    if is_prepared(folder):
        return folder
    prepare_faces(src, folder, size=size)
    return folder
