"""The video pipeline: decode → detect → track → align → model → paste → encode, as a bounded stream.

Frames wait in an ordered buffer only until every face on them has its correction: the
tracker's look-ahead (landmark smoothing, gap filling) plus the model's centred window of δ
references, a few frames in all, whatever the length of the video. The model's correction
(not the face) is warped back and added to the decoded frame, so pixels the model did not
change stay bit-identical.
"""

from __future__ import annotations

import shutil
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

from .errors import InputError, NoFaceError, UsageError

if TYPE_CHECKING:
    from .classes import Selection

STAGES = ("decode", "detect", "align", "model", "fuse", "paste", "encode")
CODECS = ("libx264", "libx265", "libvpx-vp9", "ffv1")
# The codecs each output container holds; the first is the default for that suffix.
CONTAINER_CODECS = {
    ".mp4": ("libx264", "libx265", "libvpx-vp9"),
    ".mov": ("libx264", "libx265"),
    ".mkv": ("libx264", "libx265", "libvpx-vp9", "ffv1"),
    ".webm": ("libvpx-vp9",),
}
# x264/x265 speed presets (libvpx-vp9 maps them onto cpu-used).
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
FACE_CHOICES = ("all", "largest")


class StageTimer:
    """Accumulates wall time per pipeline stage. A stage timed inside another (the temporal fusion
    inside the model's calls) is counted in its own stage only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {name: 0.0 for name in STAGES}
        self._open: list[list] = []  # [stage, since] of the stages entered and not left, innermost last

    @contextmanager
    def __call__(self, stage: str):
        now = time.perf_counter()
        if self._open:
            outer = self._open[-1]
            self.seconds[outer[0]] = self.seconds.get(outer[0], 0.0) + now - outer[1]
        self._open.append([stage, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            name, since = self._open.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + now - since
            if self._open:
                self._open[-1][1] = now

    def ms_per_frame(self, frames: int) -> dict[str, float]:
        n = max(frames, 1)
        return {name: 1000.0 * s / n for name, s in self.seconds.items()}


@dataclass
class FaceResult:
    """One retouched face on one frame."""

    track_id: int
    affine: np.ndarray  # 2×3, frame → crop
    mask_crop: np.ndarray  # S×S float32 in [0, 1]: the imperfection map the model composed with
    frame_shape: tuple[int, int]
    skin_crop: np.ndarray | None = None  # S×S float32 in [0, 1]: the skin weight the paste applied
    class_crops: np.ndarray | None = None  # K×S×S float32 in [0, 1]: per-class maps (weights with class heads only)

    @property
    def mask_frame(self) -> np.ndarray:
        """The imperfection map warped to frame coordinates (H×W float32 in [0, 1])."""
        from .face.paste import warp_mask_to_frame

        mask = self.mask_crop if self.skin_crop is None else self.mask_crop * self.skin_crop
        return warp_mask_to_frame(mask, self.affine, self.frame_shape)

    def class_frames(self) -> np.ndarray | None:
        """The per-class maps in frame coordinates, K×H×W float32 in [0, 1], weighted by the skin and
        the retouch region like :attr:`mask_frame` (None for weights without class heads)."""
        from .face.paste import warp_mask_to_frame

        if self.class_crops is None:
            return None
        skin = 1.0 if self.skin_crop is None else self.skin_crop
        return np.stack([warp_mask_to_frame(m * skin, self.affine, self.frame_shape) for m in self.class_crops])


@dataclass
class FrameResult:
    """A decoded frame, its retouched version and the faces that were retouched on it."""

    frame: object  # vretouch_cli.video.Frame
    retouched: np.ndarray
    faces: list[FaceResult]


@dataclass
class RunReport:
    """What a run did, for the CLI's summary and for API users."""

    output: Path | None
    frames: int = 0
    face_frames: int = 0
    tracks: int = 0
    seconds: float = 0.0  # wall time of the whole call, start-up included
    startup_seconds: float = 0.0  # opening the input, loading the model and detector, opening the output
    stage_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. the weights cannot apply the class selection as asked
    copied_through: bool = False

    @property
    def fps(self) -> float:
        """Frames per second of the whole call (start-up included)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def processing_seconds(self) -> float:
        return max(self.seconds - self.startup_seconds, 0.0)

    @property
    def processing_fps(self) -> float:
        """Frames per second from the first frame to the last (start-up left out)."""
        t = self.processing_seconds
        return self.frames / t if t > 0 else 0.0

    def ms_per_frame(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.stage_seconds.items()}


@dataclass
class _Pending:
    frame: object
    finalized: bool = False
    affines: dict[int, np.ndarray] = field(default_factory=dict)
    crops: dict[int, object] = field(default_factory=dict)  # track id → crop tensor 3×S×S
    results: dict[int, object] = field(default_factory=dict)  # track id → inference Result

    @property
    def complete(self) -> bool:
        return self.finalized and len(self.results) == len(self.affines)


def validate_options(
    *,
    window: int | None,
    strength: float | str | Mapping[str, float],
    faces: str,
    codec: str | None,
    crf: int | None,
    start: float | None = None,
    duration: float | None = None,
    preset: str | None = None,
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
) -> "Selection":
    """Reject out-of-range options before any work is done (one line each); returns the checked
    class selection (``remove``, ``keep`` and ``strength``, see :mod:`vretouch_cli.classes`)."""
    from .classes import resolve_selection

    if window is not None and not 1 <= int(window) <= 8:
        raise UsageError(f"--window must be between 1 and 8, got {window}")
    selection = resolve_selection(remove, keep, strength)
    if faces not in FACE_CHOICES:
        raise UsageError(f"--faces must be one of {', '.join(FACE_CHOICES)}, got {faces!r}")
    if codec is not None and codec not in CODECS:
        raise UsageError(f"--codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if crf is not None and not 0 <= int(crf) <= 63:
        raise UsageError(f"--crf must be between 0 and 63, got {crf}")
    if start is not None and not (start >= 0 and start < float("inf")):
        raise UsageError(f"--start must be a time ≥ 0 in seconds, got {start}")
    if duration is not None and not (duration > 0 and duration < float("inf")):
        raise UsageError(f"--duration must be a time > 0 in seconds, got {duration}")
    if preset is not None and preset not in ENCODER_PRESETS:
        import difflib

        close = difflib.get_close_matches(preset, ENCODER_PRESETS, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (choose one of {', '.join(ENCODER_PRESETS)})"
        raise UsageError(f"--preset {preset!r} is not an encoder preset{hint}")
    return selection


def resolve_codec(output: str | Path, codec: str | None) -> str | None:
    """The video codec for ``output``: ``codec`` when given (checked against the container), else
    the container's usual one (VP9 for ``.webm``, H.264 otherwise). ``None`` for image and frame
    outputs, which have no codec. Raises :class:`UsageError` or :class:`OutputError`."""
    from .errors import OutputError
    from .video.frame import IMAGE_SUFFIXES, VIDEO_CONTAINERS

    out = Path(output)
    suffix = out.suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix == "" or (out.is_dir() and suffix not in VIDEO_CONTAINERS):
        return None
    if suffix not in VIDEO_CONTAINERS:
        known = ", ".join(list(VIDEO_CONTAINERS) + list(IMAGE_SUFFIXES))
        raise OutputError(f"{out}: unsupported output type {out.suffix!r} (use {known}, or a folder name without suffix)")
    allowed = CONTAINER_CODECS[suffix]
    if codec is None:
        return allowed[0]
    if codec not in allowed:
        where = [s for s, codecs in CONTAINER_CODECS.items() if codec in codecs]
        raise UsageError(f"-o {out.name}: {suffix} cannot hold {codec} video (use {' or '.join(where)}, or --codec {' | '.join(allowed)})")
    return codec


class FaceStream:
    """Iterates :class:`FrameResult` over a source, in frame order, with bounded buffering.

    Use :func:`open_stream` to build one. ``info`` describes the source; ``timer`` holds the
    per-stage times; ``face_frames`` and ``tracks`` count what was retouched so far.
    """

    def __init__(
        self, source, model, *, device, dtype, window: int | None, strength: float | str | Mapping[str, float], faces: str,
        timer: StageTimer | None = None, remove: str | Sequence[str] | None = None, keep: str | Sequence[str] | None = None,
    ):
        import torch

        from .classes import resolve_selection

        from .face.detect import FaceDetector
        from .face.track import TRACKING_DETECTION_THRESHOLD, FaceTracker
        from .fusion import fused_retoucher

        self.source = source
        self.info = source.info
        self.model = model
        self.size = int(model.config.size)
        # The selection reaches the model as one weight per class head (strengths included, and
        # the paste then applies the model's correction as it is); weights without class heads
        # retouch every class at once, so the paste applies the one merged strength, as before.
        self.selection = resolve_selection(remove, keep, strength)
        self.classes = tuple(model.config.classes)
        self.select = self.selection.vector(self.classes) if self.classes else None
        self.strength = 1.0 if self.classes else float(self.selection.merged_strength)
        # The paste keeps moles as found (face/regions.py mole_mask) unless moles are to be removed.
        self.keep_moles = "mole" not in self.selection.classes or self.selection.strengths["mole"] <= 0
        note = self.selection.note(self.classes)
        self.notes: list[str] = [note] if note else []
        self.faces = faces
        self.timer = timer or StageTimer()
        # Weak detections may extend a track (a face turning away) but never start one.
        self.detector = FaceDetector(score_threshold=TRACKING_DETECTION_THRESHOLD)
        # A single image cannot confirm a track over two frames.
        single = self.info.kind == "image" or self.info.frame_count == 1
        self.tracker = FaceTracker(min_hits=1) if single else FaceTracker()
        self.retoucher = fused_retoucher(model, delta=window, device=device, dtype=dtype, select=self.select, timer=self.timer)
        self.face_frames = 0
        self.track_ids: set[int] = set()
        self._active: set[int] = set()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._torch = torch

    # -- stages -------------------------------------------------------------------------
    def _decoded(self) -> Iterator[object]:
        iterator = iter(self.source)
        while True:
            with self.timer("decode"):
                frame = next(iterator, None)
            if frame is None:
                return
            yield frame

    def _take(self, results) -> None:
        for res in results:
            index, track_id = res.key
            self._pending[index].results[track_id] = res

    def _finalize(self, frame_faces) -> None:
        from .face.align import estimate_alignment, warp_to_crop

        pending = self._pending[frame_faces.frame_index]
        faces = list(frame_faces.faces)
        if self.faces == "largest" and len(faces) > 1:
            faces = [max(faces, key=lambda f: float(np.linalg.norm(f.landmarks[1] - f.landmarks[0])))]
        present = {f.track_id for f in faces}
        with self.timer("model"):
            for ended in sorted(self._active - present):
                self._take(self.retoucher.end_track(ended))
        self._active = present
        items = []
        image = pending.frame.image
        with self.timer("align"):
            for face in faces:
                affine = estimate_alignment(face.landmarks, self.size)
                crop = warp_to_crop(image, affine, self.size)
                tensor = self._torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
                pending.affines[face.track_id] = affine
                pending.crops[face.track_id] = tensor
                items.append(((frame_faces.frame_index, face.track_id), face.track_id, tensor))
                self.track_ids.add(face.track_id)
        pending.finalized = True
        if items:
            with self.timer("model"):
                self._take(self.retoucher.push(items))

    def _paste(self, pending: _Pending) -> FrameResult:
        from .face.paste import noise_gate, paste_correction
        from .face.regions import skin_weight

        frame = pending.frame
        image = frame.image
        faces: list[FaceResult] = []
        if pending.affines:
            with self.timer("paste"):
                image = image.copy()
                for track_id, affine in pending.affines.items():
                    res = pending.results[track_id]
                    crop = pending.crops[track_id]
                    # out − crop is already M_pix·(G − crop): paste it with a unit weight.
                    correction = (res.out.float() - crop).permute(1, 2, 0).numpy()
                    crop_hwc = crop.permute(1, 2, 0).numpy()  # the model's range, [-1, 1]
                    # Not the edits of a noisy crop's own noise (in levels: the model range × 127.5).
                    correction *= noise_gate((crop_hwc + 1.0) * 127.5, correction * 127.5)[..., None]
                    mask = res.mask[0].float().numpy()
                    # Only on the face's own skin: never on the silhouette against background or hair.
                    skin = skin_weight(crop_hwc, keep_moles=self.keep_moles)
                    paste_correction(image, correction, skin, affine, strength=self.strength)
                    classes = None if res.class_maps is None else res.class_maps.float().numpy()
                    faces.append(FaceResult(track_id, affine, mask, image.shape[:2], skin, classes))
            self.face_frames += 1
        return FrameResult(frame, image, faces)

    def _drain(self) -> Iterator[FrameResult]:
        while self._pending:
            index, pending = next(iter(self._pending.items()))
            if not pending.complete:
                return
            del self._pending[index]
            yield self._paste(pending)

    def __iter__(self) -> Iterator[FrameResult]:
        from .face.track import is_shot_cut, thumbnail

        prev_thumb = None
        for frame in self._decoded():
            with self.timer("detect"):
                detections = self.detector.detect(frame.image)
                thumb = thumbnail(frame.image)
                cut = prev_thumb is not None and is_shot_cut(prev_thumb, thumb)
                prev_thumb = thumb
            self._pending[frame.index] = _Pending(frame)
            for frame_faces in self.tracker.push(frame.index, detections, cut):
                self._finalize(frame_faces)
            yield from self._drain()
        for frame_faces in self.tracker.flush():
            self._finalize(frame_faces)
        with self.timer("model"):
            self._take(self.retoucher.flush())
        self._active = set()
        yield from self._drain()
        if self._pending:  # every frame is finalized and every track flushed by now
            raise RuntimeError(f"pipeline left {len(self._pending)} frame(s) unfinished")

    @property
    def buffered(self) -> int:
        """Frames waiting in the buffer now (bounded by the look-ahead and the window)."""
        return len(self._pending)


def load_pipeline_model(weights=None, device: str = "auto"):
    """Resolve the device and the weights, and load the model in eval mode on that device."""
    from .checkpoint import load_model
    from .device import resolve_device
    from .weights import resolve_weights, verify_default

    dev = resolve_device(device)
    path = resolve_weights(weights)
    verify_default(path)
    model = load_model(path, device=dev)
    return model, dev


def open_stream(
    input,
    *,
    weights=None,
    device: str = "auto",
    window: int | None = None,
    strength: float | str | Mapping[str, float] = 1.0,
    faces: str = "all",
    start: float | None = None,
    duration: float | None = None,
    model=None,
    precision: str = "auto",
    timer: StageTimer | None = None,
    source=None,
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
) -> FaceStream:
    """Open ``input`` and return a :class:`FaceStream` of retouched frames (no output written).

    The input is opened (and its first frame decoded) before the model is loaded, so that a bad
    input fails at once. ``source`` is an input opened already (its ``start``/``duration`` apply).
    ``remove``, ``keep`` and ``strength`` choose what is removed (:mod:`vretouch_cli.classes`);
    the stream's ``notes`` say when the weights cannot do that as asked.
    """
    from .device import autocast_dtype, resolve_device
    from .video import open_source

    validate_options(window=window, strength=strength, faces=faces, codec=None, crf=None, start=start, duration=duration, remove=remove, keep=keep)
    if source is None:
        source = open_source(input, start=start, duration=duration)
    try:
        if model is None:
            model, dev = load_pipeline_model(weights, device)
        else:
            dev = resolve_device(device)
            model = model.to(dev).eval()
        return FaceStream(
            source, model, device=dev, dtype=autocast_dtype(dev, precision), window=window, strength=strength, faces=faces,
            timer=timer, remove=remove, keep=keep,
        )
    except BaseException:
        source.close()
        raise


def stream_faces(input, **kwargs) -> Iterator[FrameResult]:
    """Generator form of :func:`open_stream` (closes the source when exhausted)."""
    stream = open_stream(input, **kwargs)
    try:
        yield from stream
    finally:
        stream.source.close()


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=1)


def retouch_video(
    input,
    output,
    *,
    weights=None,
    device: str = "auto",
    window: int | None = None,
    strength: float | str | Mapping[str, float] = 1.0,
    faces: str = "all",
    codec: str | None = None,
    crf: int | None = 18,
    preset: str | None = "medium",
    start: float | None = None,
    duration: float | None = None,
    compare: bool = False,
    overwrite: bool = False,
    precision: str = "auto",
    model=None,
    progress: Callable[[int, int | None], None] | None = None,
    require_faces: bool = False,
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
) -> RunReport:
    """Retouch every face of ``input`` (a video, an image or a folder of frames) into ``output``.

    What is removed: ``remove`` (a class list such as ``"acne,redness"`` or ``"all"``; default
    the temporary classes acne, redness and marks), minus ``keep``, each class at its
    ``strength`` (``0.7`` for all, or ``"acne=1,redness=0.5"``); see :mod:`vretouch_cli.classes`.
    Weights without class heads apply any selection as a whole and say so in ``report.notes``.
    ``codec`` defaults to the output container's usual one (VP9 for ``.webm``, H.264 otherwise).
    The output is written to a hidden temporary file beside ``output`` and renamed only when
    the whole run succeeded; on any error (or Ctrl-C) nothing is left at ``output``. When no
    face is found anywhere, the input is copied through unchanged and a warning is recorded
    (or :class:`NoFaceError` is raised with ``require_faces``).
    """
    from .video import Frame, open_sink

    in_path, out_path = Path(input), Path(output)
    timer = StageTimer()
    started = time.perf_counter()
    codec, source = _open_checked(
        in_path, out_path, window=window, strength=strength, faces=faces, codec=codec, crf=crf, preset=preset,
        start=start, duration=duration, overwrite=overwrite, remove=remove, keep=keep,
    )
    stream = open_stream(
        in_path, weights=weights, device=device, window=window, strength=strength, faces=faces,
        start=start, duration=duration, model=model, precision=precision, timer=timer, source=source,
        remove=remove, keep=keep,
    )
    info = stream.info
    report = RunReport(output=out_path, notes=list(stream.notes))
    width = info.width * (2 if compare else 1)
    try:
        sink = open_sink(out_path, stream.source, codec=codec, crf=crf, preset=preset, width=width, height=info.height)
    except BaseException:
        stream.source.close()
        raise
    report.startup_seconds = time.perf_counter() - started
    try:
        for result in stream:
            image = _side_by_side(result.frame.image, result.retouched) if compare else result.retouched
            with timer("encode"):
                sink.write(Frame(result.frame.index, result.frame.pts, result.frame.time_base, image, duration=result.frame.duration))
            report.frames += 1
            if progress is not None:
                progress(report.frames, info.frame_count)
        if report.frames == 0:
            raise InputError(f"{in_path}: no frame could be decoded")
        report.face_frames = stream.face_frames
        report.tracks = len(stream.track_ids)
        if report.face_frames == 0:
            if require_faces:
                raise NoFaceError(f"no face found in {in_path}")
            report.warnings.append(f"no face found in {in_path.name}; the output is the input unchanged")
            plain_copy = not compare and start is None and duration is None and in_path.is_file() and in_path.suffix.lower() == out_path.suffix.lower()
            if plain_copy:
                sink.abort()
                _atomic_copy(in_path, out_path)
                report.copied_through = True
        if not report.copied_through:
            with timer("encode"):
                sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        stream.source.close()
    report.seconds = time.perf_counter() - started
    report.stage_seconds = dict(timer.seconds)
    return report


def _open_checked(in_path: Path, out_path: Path, *, window, strength, faces, codec, crf, preset, start, duration, overwrite, remove=None, keep=None):
    """Every check of a run that does not need the model, in the order a user would fix them;
    returns (the codec, the opened source). The model and detector take seconds to load, so
    options, the output's type, codec and folder, and the input itself are checked first."""
    from .video import check_output_path, open_source

    validate_options(
        window=window, strength=strength, faces=faces, codec=codec, crf=crf, start=start, duration=duration, preset=preset,
        remove=remove, keep=keep,
    )
    if not in_path.exists():
        raise InputError(f"input not found: {in_path}")
    codec = resolve_codec(out_path, codec) or "libx264"
    check_output_path(in_path, out_path, overwrite)
    source = open_source(in_path, start=start, duration=duration)
    try:
        _check_image_output(out_path, source)
    except BaseException:
        source.close()
        raise
    return codec, source


def check_run(
    input,
    output,
    *,
    window: int | None = None,
    strength: float | str | Mapping[str, float] = 1.0,
    faces: str = "all",
    codec: str | None = None,
    crf: int | None = 18,
    preset: str | None = "medium",
    start: float | None = None,
    duration: float | None = None,
    overwrite: bool = False,
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
) -> str:
    """Check a :func:`retouch_video` job without loading the model (a batch checks every input
    first); returns the codec the output will use. Raises the error the run would raise."""
    codec, source = _open_checked(
        Path(input), Path(output), window=window, strength=strength, faces=faces, codec=codec, crf=crf,
        preset=preset, start=start, duration=duration, overwrite=overwrite, remove=remove, keep=keep,
    )
    source.close()
    return codec


# Files a ``--batch`` folder contributes (videos only: a folder of frames is one input of its own).
CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


def batch_jobs(inputs, out_dir, *, folders_of_clips: bool = False) -> list[tuple[Path, Path]]:
    """(input, output) pairs for retouching several inputs into the folder ``out_dir``.

    Each output keeps its input's name (a video whose container cannot be written, e.g. ``.avi``,
    becomes ``.mp4``; a folder of frames gives a folder of frames). With ``folders_of_clips`` an
    input folder stands for every video file directly in it, sorted by name, never for a folder
    of frames. Raises :class:`UsageError` when two inputs would write the same output.
    """
    from .video.frame import VIDEO_CONTAINERS

    out_dir = Path(out_dir)
    expanded: list[Path] = []
    for item in map(Path, inputs):
        if folders_of_clips and item.is_dir():
            clips = sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in CLIP_SUFFIXES)
            if not clips:
                raise UsageError(f"--batch {item}: no video files ({', '.join(CLIP_SUFFIXES)}) in this folder")
            expanded.extend(clips)
        else:
            expanded.append(item)
    jobs, seen = [], {}
    for item in expanded:
        name = item.name
        if item.suffix and item.suffix.lower() not in VIDEO_CONTAINERS and item.suffix.lower() in CLIP_SUFFIXES:
            name = item.stem + ".mp4"
        target = out_dir / name
        if target in seen:
            raise UsageError(f"{seen[target]} and {item} would both be written to {target}; retouch them into different folders")
        seen[target] = item
        jobs.append((item, target))
    return jobs


def _check_image_output(out_path: Path, source) -> None:
    from .errors import OutputError
    from .video.frame import IMAGE_SUFFIXES

    frames = source.info.frame_count or 0
    if out_path.suffix.lower() in IMAGE_SUFFIXES and source.info.kind != "image" and frames > 1:
        raise OutputError(
            f"{out_path}: an image output holds one frame but the input has {frames}; "
            "use a video suffix (.mp4) or a folder name"
        )


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.vretouch-copy")
    try:
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
