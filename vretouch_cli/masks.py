"""``vretouch masks INPUT -o DIR``: show what the model will change, frame by frame.

Runs the same pipeline as ``vretouch run`` (detect → track → align → model) and writes, into DIR:

- ``maps/frame_NNNNNN_face_TTT.png``: for every frame ``NNNNNN`` (0-based decode index) and
  every face track ``TTT`` on it, the imperfection map in frame coordinates (8-bit grey, the
  frame's size; 255 = fully corrected). It is the weight the correction is pasted with (the
  model's map times the feathered face region), warped back to the frame.
- ``mask.mp4``: the union (max) of the faces' maps of each frame, as a grey video;
- ``overlay.mp4``: the frame with the map as a heat map on top (transparent where the map is 0).

With weights that have class heads (issue 11), also:

- ``maps/<class>/frame_NNNNNN_face_TTT.png``: each class's own map (every class the weights
  know, selected or kept, at full scale: the selection and strengths shape only the maps above),
  weighted by the face's skin and region like the combined map;
- ``overlay_classes.mp4``: the frame with each pixel's strongest class in that class's fixed
  colour (:data:`CLASS_COLOURS`), and a legend (kept classes marked so).

Weights without class heads write exactly the outputs above and nothing else.

The videos have the input's frame count and timing (each frame keeps its pts and time base;
variable frame rate stays variable). Frames without a face give no PNG and a black mask frame.
For an image input (one frame) the videos are replaced by ``mask.png``, ``overlay.png`` (and
``overlay_classes.png``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from .errors import InputError, OutputError

MAP_NAME = "frame_{index:06d}_face_{track:03d}.png"
_MAP_RE = re.compile(r"^frame_\d{6,}_face_\d{3,}\.png$")
OUTPUT_NAMES = ("maps", "mask.mp4", "overlay.mp4", "mask.png", "overlay.png", "overlay_classes.mp4", "overlay_classes.png")
OVERLAY_OPACITY = 0.65
# One fixed colour per class (RGB; ColorBrewer Set1, told apart by most colour-blind viewers
# except red/orange, which the legend names).
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "acne": (228, 26, 28),
    "redness": (255, 127, 0),
    "marks": (152, 78, 163),
    "mole": (55, 126, 184),
    "freckle": (77, 175, 74),
}


@dataclass
class MasksReport:
    """What ``export_masks`` wrote."""

    folder: Path
    frames: int = 0
    face_frames: int = 0
    maps: int = 0
    tracks: set[int] = field(default_factory=set)
    videos: list[Path] = field(default_factory=list)
    classes: tuple[str, ...] = ()  # the weights' class heads: one maps/<class>/ folder each
    notes: list[str] = field(default_factory=list)  # e.g. the weights cannot apply the class selection as asked


def map_to_uint8(mask: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as uint8 0–255 (rounded)."""
    return np.clip(np.rint(np.asarray(mask, np.float32) * 255.0), 0, 255).astype(np.uint8)


def mask_image(mask: np.ndarray, dtype) -> np.ndarray:
    """The grey mask frame (H×W×3 of ``dtype``) for the mask video."""
    m8 = map_to_uint8(mask)
    grey = np.repeat(m8[..., None], 3, axis=2)
    return grey.astype(np.uint16) * 257 if dtype == np.uint16 else grey


def overlay_image(frame: np.ndarray, mask: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """``frame`` (H×W×3 RGB uint8/uint16) with ``mask`` (H×W in [0,1]) as a JET heat map on top.

    The heat map's opacity is ``opacity · mask``, so pixels the model leaves alone are unchanged.
    """
    m = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    heat = cv2.cvtColor(cv2.applyColorMap(map_to_uint8(m), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB).astype(np.float32)
    scale = 257.0 if frame.dtype == np.uint16 else 1.0
    alpha = (opacity * m)[..., None]
    out = frame.astype(np.float32) * (1.0 - alpha) + heat * scale * alpha
    vmax = 65535 if frame.dtype == np.uint16 else 255
    return np.clip(np.rint(out), 0, vmax).astype(frame.dtype)


def class_overlay_image(
    frame: np.ndarray, class_maps: np.ndarray, classes: tuple[str, ...] | list[str], kept: tuple[str, ...] | list[str] = (),
    opacity: float = OVERLAY_OPACITY,
) -> np.ndarray:
    """``frame`` (H×W×3 RGB uint8/uint16) with every pixel's strongest class in its colour, at
    opacity ``opacity · max_c m_c`` (pixels no class touches are unchanged outside the legend),
    and a legend in the top-left corner: one swatch and name per class, ``(kept)`` after the
    classes in ``kept``. class_maps: K×H×W in [0, 1], in the order of ``classes``.
    """
    maps = np.clip(np.asarray(class_maps, np.float32), 0.0, 1.0)
    if maps.ndim != 3 or maps.shape[0] != len(classes) or maps.shape[1:] != frame.shape[:2]:
        raise ValueError(f"class maps {maps.shape} do not match {len(classes)} classes and frame {frame.shape}")
    scale = 257.0 if frame.dtype == np.uint16 else 1.0
    vmax = 65535 if frame.dtype == np.uint16 else 255
    palette = np.array([CLASS_COLOURS[c] for c in classes], np.float32) * scale
    out = frame.astype(np.float32)
    if len(classes):
        strongest = maps.argmax(axis=0)
        alpha = (opacity * maps.max(axis=0))[..., None]
        out = out * (1.0 - alpha) + palette[strongest] * alpha
    out = np.clip(np.rint(out), 0, vmax).astype(frame.dtype)
    _draw_legend(out, classes, set(kept), scale)
    return out


def _draw_legend(image: np.ndarray, classes, kept: set[str], scale: float) -> None:
    """The legend, in place: on a darkened box in the top-left corner, sized to the frame.

    The text is drawn into an 8-bit coverage mask (OpenCV draws text on 8-bit images only) and
    blended in, so uint16 frames get the same legend."""
    h, w = image.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.3, min(h, w) / 720.0 * 0.6)
    thick = max(1, int(round(font_scale * 1.6)))
    labels = [f"{c} (kept)" if c in kept else c for c in classes]
    sizes = [cv2.getTextSize(t, font, font_scale, thick)[0] for t in labels]
    line = max([s[1] for s in sizes] + [1])
    pad = max(2, line // 2)
    row = line + pad
    box_w = min(w, pad * 3 + line + max([s[0] for s in sizes] + [0]))
    box_h = min(h, pad + row * len(labels))
    if box_w <= 0 or box_h <= 0 or not labels:
        return
    text = np.zeros((box_h, box_w), np.uint8)
    for i, label in enumerate(labels):
        cv2.putText(text, label, (pad * 2 + line, pad + i * row + line), font, font_scale, 255, thick, cv2.LINE_AA)
    alpha = (text.astype(np.float32) / 255.0)[..., None]
    region = image[:box_h, :box_w].astype(np.float32) * 0.35
    region = region * (1.0 - alpha) + 255.0 * scale * alpha
    vmax = 65535 if image.dtype == np.uint16 else 255
    image[:box_h, :box_w] = np.clip(np.rint(region), 0, vmax).astype(image.dtype)
    for i, name in enumerate(classes):
        top = pad + i * row
        image[top : min(top + line, h), pad : min(pad + line, w)] = np.rint(np.array(CLASS_COLOURS[name], np.float32) * scale).astype(image.dtype)


def check_masks_output(folder: str | Path, overwrite: bool = False) -> Path:
    """Check that ``folder`` can take mask output, before any work (no side effects).

    Raises :class:`OutputError` when it is a file or named like one (``x.png``), when its parent
    folder is missing or read-only, or when it holds mask output already and ``overwrite`` is False.
    """
    import os
    import tempfile

    from .video.frame import IMAGE_SUFFIXES, VIDEO_CONTAINERS

    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"-o {folder}: exists and is not a folder")
    if not folder.exists() and folder.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_CONTAINERS):
        raise OutputError(f"-o {folder}: masks writes a folder (maps/, mask and overlay); give a folder name, not a {folder.suffix} file")
    existing = [folder / n for n in OUTPUT_NAMES if (folder / n).exists()]
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing)
        raise OutputError(f"-o {folder} already holds mask output ({names}); pass --overwrite to replace it")
    target = folder if folder.is_dir() else (folder.parent if str(folder.parent) else Path("."))
    if not target.is_dir():
        raise OutputError(f"-o {folder}: output folder {target} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vretouch-write-test-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"-o {folder}: {target} is not writable ({exc.strerror or exc})") from exc
    return folder


def _prepare_folder(folder: Path) -> tuple[Path, bool]:
    """Create ``folder`` if needed and a hidden staging folder in it; returns (staging, created)."""
    import secrets

    created = not folder.exists()
    try:
        folder.mkdir(exist_ok=True)
        staging = folder / f".maps.{secrets.token_hex(4)}.vretouch-tmp"
        (staging / "maps").mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from exc
    return staging, created


def _clear_maps(maps: Path) -> None:
    """Remove our own map files from ``maps`` and its per-class folders (left when empty), so a
    rerun with fewer frames, or with weights without class heads, leaves no stale maps."""
    from .classes import CLASSES

    for p in maps.iterdir():
        if p.is_file() and _MAP_RE.match(p.name):
            p.unlink()
        elif p.is_dir() and p.name in CLASSES:
            for q in p.iterdir():
                if q.is_file() and _MAP_RE.match(q.name):
                    q.unlink()
            try:
                p.rmdir()
            except OSError:
                pass  # something else lives there: leave it


def _publish(folder: Path, staging: Path, still: bool, classes: bool = False) -> None:
    """Move the staged maps (and still images) into place, replacing earlier mask output."""
    import os

    maps = folder / "maps"
    if maps.is_dir():
        _clear_maps(maps)
        for p in (staging / "maps").iterdir():
            if p.is_dir():  # maps/<class>/
                (maps / p.name).mkdir(exist_ok=True)
                for q in p.iterdir():
                    os.replace(q, maps / p.name / q.name)
            else:
                os.replace(p, maps / p.name)
    else:
        os.replace(staging / "maps", maps)
    for n in ("mask.png", "overlay.png", "overlay_classes.png"):
        if still and (n != "overlay_classes.png" or classes):
            os.replace(staging / n, folder / n)
        else:
            (folder / n).unlink(missing_ok=True)
    if not classes:
        (folder / "overlay_classes.mp4").unlink(missing_ok=True)  # from an earlier run with class heads
    _discard(staging)  # the videos were renamed into place by their sinks


def _discard(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _write_png(path: Path, rgb_or_grey: np.ndarray) -> None:
    img = rgb_or_grey if rgb_or_grey.ndim == 2 else cv2.cvtColor(rgb_or_grey, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), img):
        raise OutputError(f"cannot write {path}")


def export_masks(
    input: str | Path,
    output: str | Path,
    *,
    weights=None,
    device: str = "auto",
    window: int | None = None,
    faces: str = "all",
    start: float | None = None,
    duration: float | None = None,
    codec: str = "libx264",
    crf: int | None = 18,
    preset: str | None = "medium",
    overwrite: bool = False,
    model=None,
    progress: Callable[[int, int | None], None] | None = None,
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
    strength: float | str | Mapping[str, float] = 1.0,
) -> MasksReport:
    """Write the imperfection maps of ``input`` into the folder ``output`` (see the module docstring).

    ``remove``, ``keep`` and ``strength`` are those of :func:`~vretouch_cli.pipeline.retouch_video`:
    the maps are the weights the correction would be pasted with.

    Videos go through the project's sinks (temporary file, renamed on success) and the maps are
    written to a hidden staging folder moved into place at the end: a failed or interrupted run
    leaves neither half-written videos nor a partial ``maps/`` (earlier output stays as it was).
    """
    from .pipeline import open_stream, validate_options
    from .video import Frame, open_sink, open_source

    in_path, folder = Path(input), Path(output)
    # Everything that needs no model first (it takes seconds to load).
    validate_options(
        window=window, strength=strength, faces=faces, codec=codec, crf=crf, start=start, duration=duration, preset=preset,
        remove=remove, keep=keep,
    )
    if not in_path.exists():
        raise InputError(f"input not found: {in_path}")
    check_masks_output(folder, overwrite)
    source = open_source(in_path, start=start, duration=duration)
    stream = open_stream(
        in_path, weights=weights, device=device, window=window, faces=faces, start=start, duration=duration, model=model,
        source=source, remove=remove, keep=keep, strength=strength,
    )
    info = stream.info
    classes = tuple(stream.classes)
    kept = tuple(c for c in classes if c not in stream.selection.classes)
    report = MasksReport(folder, classes=classes, notes=list(stream.notes))
    names = ("mask", "overlay") + (("overlay_classes",) if classes else ())
    sinks: list = []
    staging: Path | None = None
    created = False
    try:
        staging, created = _prepare_folder(folder)
        for c in classes:
            (staging / "maps" / c).mkdir()
        still = info.kind == "image"
        if not still:
            for name in names:
                sinks.append(open_sink(folder / f"{name}.mp4", stream.source, codec=codec, crf=crf, preset=preset, width=info.width, height=info.height))
        for result in stream:
            frame = result.frame
            image = frame.image
            union = np.zeros(image.shape[:2], np.float32)
            class_union = np.zeros((len(classes), *image.shape[:2]), np.float32)
            for face in result.faces:
                m = np.asarray(face.mask_frame, np.float32)
                if stream.strength != 1.0:  # weights without class heads: the paste's merged strength
                    m = m * np.float32(stream.strength)
                np.maximum(union, m, out=union)
                name = MAP_NAME.format(index=frame.index, track=face.track_id)
                _write_png(staging / "maps" / name, map_to_uint8(m))
                if classes:
                    per_class = face.class_frames()
                    np.maximum(class_union, per_class, out=class_union)
                    for c, mc in zip(classes, per_class):
                        _write_png(staging / "maps" / c / name, map_to_uint8(mc))
                report.maps += 1
                report.tracks.add(int(face.track_id))
            report.face_frames += bool(result.faces)
            images = [mask_image(union, image.dtype), overlay_image(image, union)]
            if classes:
                images.append(class_overlay_image(image, class_union, classes, kept))
            if still:
                for name, img in zip(names, images):
                    _write_png(staging / f"{name}.png", img)
            else:
                for sink, img in zip(sinks, images):
                    sink.write(Frame(frame.index, frame.pts, frame.time_base, img, getattr(frame, "duration", None)))
            report.frames += 1
            if progress is not None:
                progress(report.frames, info.frame_count)
        if report.frames == 0:
            raise InputError(f"{in_path}: no frame could be decoded")
        for sink in sinks:
            sink.commit()
        _publish(folder, staging, still, classes=bool(classes))
        report.videos = [folder / f"{name}{'.png' if still else '.mp4'}" for name in names]
    except BaseException:
        for sink in sinks:
            try:
                sink.abort()
            except Exception:
                pass
        if staging is not None:
            _discard(staging)
        if created:
            try:
                folder.rmdir()  # only when empty: nothing of ours is left behind
            except OSError:
                pass
        raise
    finally:
        stream.source.close()
    return report

