"""Sinks: encode Frames to a video, an image or a folder of PNGs, atomically.

Every sink writes to a hidden temporary beside its destination and renames it onto the
destination in :meth:`Sink.commit`; :meth:`Sink.abort` (or any exception, Ctrl-C
included, inside ``with sink:``) deletes the temporary, so a failed run leaves nothing
at the destination and no temporary behind.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import weakref
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import OutputError, UsageError
from .formats import ENCODE_FLAGS, encoder_options, encoder_pix_fmt, normalize_codec, sws_matrix
from .frame import IMAGE_SUFFIXES, VIDEO_CONTAINERS, Frame
from .reader import FramesSource, Source, VideoSource
from .streamcopy import StreamCopier, copyable_metadata

log = logging.getLogger(__name__)

TEMP_MARK = ".vretouch-tmp"

# Tags for sources without any (images, folders of frames): sRGB content, written with
# the BT.709 matrix in limited range.
_IMAGE_TAGS = {"color_range": 1, "color_primaries": 1, "color_trc": 13, "colorspace": 1}


def _reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e or type(e).__name__).rstrip(".")


# ---------------------------------------------------------------------------------------
# Validation


def _is_folder_output(path: Path) -> bool:
    return path.suffix == "" or path.is_dir()


def check_output_path(input_path: str | Path | None, output_path: str | Path, overwrite: bool = False) -> Path:
    """Check that OUTPUT can be written, before any decoding starts.

    Raises :class:`OutputError` when the output folder is missing or not writable, when
    the output is the input, or when it exists and ``overwrite`` is False. An existing
    folder of frames is only replaced when it holds nothing but image files. Returns the
    output path.
    """
    out = Path(output_path).expanduser()
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{out}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{out}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vretouch-write-test-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{out}: output folder {parent} is not writable ({_reason(e)})") from e
    if input_path is not None:
        inp = Path(input_path).expanduser()
        same = out.resolve() == inp.resolve()
        if not same and out.exists() and inp.exists():
            try:
                same = os.path.samefile(out, inp)
            except OSError:
                same = False
        if same:
            raise OutputError(f"{out}: output is the same file as the input")
        if inp.is_dir() and out.resolve().is_relative_to(inp.resolve()):
            raise OutputError(f"{out}: output is inside the input folder of frames")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputError(f"{out}: already exists (use --overwrite to replace it)")
        if out.is_dir():
            if not _is_folder_output(out) or out.suffix.lower() in VIDEO_CONTAINERS:
                raise OutputError(f"{out}: is a folder, not a file")
            others = [e.name for e in out.iterdir() if e.suffix.lower() not in IMAGE_SUFFIXES or not e.is_file()]
            if others:
                raise OutputError(f"{out}: folder holds files other than frames ({others[0]}); not replacing it")
    return out


# ---------------------------------------------------------------------------------------
# Sinks


class Sink:
    """Receives Frames; :meth:`commit` publishes the result, :meth:`abort` discards it."""

    path: Path
    frames_written: int = 0

    def write(self, frame: Frame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def commit(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def open_sink(
    path: str | Path,
    source: Source,
    codec: str | None = "libx264",
    crf: int | None = 18,
    preset: str | None = "medium",
    width: int | None = None,
    height: int | None = None,
) -> Sink:
    """Open the sink that ``path``'s suffix asks for.

    ``.mp4 .mov .mkv .webm``: a video (other streams of a video source are copied);
    an image suffix: one still image; no suffix: a folder of PNG frames. ``width`` and
    ``height`` default to the source's upright size (e.g. 2W×H for a side-by-side).
    Frames given to :meth:`Sink.write` must have that size and the source's dtype.
    """
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    w = int(width or source.info.width)
    h = int(height or source.info.height)
    if suffix in VIDEO_CONTAINERS:
        return VideoSink(p, source, codec=codec, crf=crf, preset=preset, width=w, height=h)
    if suffix in IMAGE_SUFFIXES:
        if source.info.kind != "image" and (source.info.frame_count or 0) > 1:
            raise OutputError(
                f"{p}: an image output holds one frame but the input has {source.info.frame_count}; "
                "use a video suffix (.mp4) or a folder name"
            )
        return ImageSink(p, source, width=w, height=h)
    if suffix == "":
        return FramesSink(p, source, width=w, height=h)
    known = ", ".join(list(VIDEO_CONTAINERS) + list(IMAGE_SUFFIXES))
    raise OutputError(f"{p}: unsupported output type {p.suffix!r} (use {known}, or a folder name without suffix)")


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:  # pragma: no cover - nothing more we can do
        log.warning("could not remove temporary %s: %s", path, e)


def _temp_name(path: Path) -> str:
    return str(path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_MARK}{path.suffix}")


def _temp_file(path: Path) -> str:
    """Create a hidden, unique temporary beside ``path`` (mode from the umask, like any file)."""
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"{path}: cannot create a file in {path.parent} ({_reason(e)})") from e
    raise OutputError(f"{path}: cannot create a temporary file in {path.parent}")


def _temp_dir(path: Path) -> str:
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(f"{path}: cannot create a folder in {path.parent} ({_reason(e)})") from e
    raise OutputError(f"{path}: cannot create a temporary folder in {path.parent}")


def _to_dtype(image: np.ndarray, deep: bool) -> np.ndarray:
    if deep:
        if image.dtype == np.uint16:
            return image
        if image.dtype == np.uint8:
            return image.astype(np.uint16) * 257
    else:
        if image.dtype == np.uint8:
            return image
        if image.dtype == np.uint16:
            return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise TypeError(f"frame image must be uint8 or uint16 RGB, got {image.dtype}")


def _check_shape(image: np.ndarray, width: int, height: int, path: Path) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != (height, width):
        raise ValueError(f"{path}: frame of shape {image.shape} does not match the sink's {height}x{width}x3")


class VideoSink(Sink):
    """Encodes a video stream and remuxes the source's audio and subtitle streams."""

    def __init__(
        self,
        path: Path,
        source: Source,
        codec: str | None,
        crf: int | None,
        preset: str | None,
        width: int,
        height: int,
    ):
        info = source.info
        self.path = path
        self.source = source
        self.codec = normalize_codec(codec)
        fmt = VIDEO_CONTAINERS[path.suffix.lower()]
        if fmt == "webm" and self.codec != "libvpx-vp9":
            raise UsageError(f"{path}: .webm holds VP9 video only; use --codec libvpx-vp9 or another container")
        self.width, self.height = width, height
        self._deep = info.bit_depth > 8
        self._rgb_fmt = "rgb48le" if self._deep else "rgb24"
        self.pix_fmt = encoder_pix_fmt(self.codec, info.bit_depth, width, height)
        self._tb = Fraction(info.time_base)
        self._fps = Fraction(info.fps)
        self._rf = VideoReformatter()
        self._durations: dict[int, int] = {}
        # With a start time, timestamps shift so that the first frame written is at 0.
        self._offset: int | None = None if source.range_start is not None else 0
        self._last_pts: int | None = None
        self._last_dur = 0
        self._done = False
        self._copier: StreamCopier | None = None
        self._out = None
        self._tmp = _temp_file(path)
        self._cleanup = weakref.finalize(self, _remove, self._tmp)
        try:
            self._open(fmt, info, crf, preset)
        except BaseException as e:
            self.abort()
            if isinstance(e, ValueError) and "does not support" in str(e):
                hint = "use .mkv" if self.codec == "ffv1" else "use another container"
                raise UsageError(f"{path}: {path.suffix} cannot hold {self.codec} video ({hint})") from e
            if isinstance(e, av.FFmpegError | ValueError | OSError):
                raise OutputError(f"{path}: cannot set up the {self.codec} encoder in {fmt} ({_reason(e)})") from e
            raise

    def _open(self, fmt: str, info, crf, preset) -> None:
        # faststart: the index goes first, so the file plays while it downloads.
        muxer_options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        self._out = out = av.open(self._tmp, mode="w", format=fmt, container_options=muxer_options)
        if isinstance(self.source, VideoSource):
            out.metadata.update(copyable_metadata(dict(self.source._container.metadata), stream=False))
        options = encoder_options(self.codec, crf, preset, self.width, self.height)
        vs = out.add_stream(self.codec, rate=self._fps, options=options)
        vs.width, vs.height, vs.pix_fmt = self.width, self.height, self.pix_fmt
        vs.time_base = self._tb
        cc = vs.codec_context
        cc.time_base = self._tb
        cc.framerate = self._fps
        tags = {k: getattr(info, k) for k in _IMAGE_TAGS}
        if info.kind != "video" or all(v is None for v in tags.values()):
            tags = dict(_IMAGE_TAGS)
        if self.codec == "ffv1":
            tags["colorspace"], tags["color_range"] = 0, 2  # RGB planes, full range
        elif tags.get("colorspace") == 0:
            # An RGB source (e.g. ffv1, gbrp) written as YUV: use the BT.709 matrix in
            # limited range. (An RGB matrix tag on YUV data is wrong, and crashes x265.)
            tags["colorspace"], tags["color_range"] = 1, 1
        self._tags = {k: int(v) for k, v in tags.items() if v is not None}
        for k, v in self._tags.items():
            setattr(cc, k, v)
        self._matrix = sws_matrix(self._tags.get("colorspace"))
        # Unspecified range converts as limited (what the decoder assumed reading it).
        self._range = self._tags.get("color_range") or 1
        if isinstance(self.source, VideoSource):
            src = self.source.stream
            vs.metadata.update(
                {k: v for k, v in copyable_metadata(dict(src.metadata)).items() if k.lower() != "handler_name"}
            )
            sar = src.sample_aspect_ratio
            if sar and sar != 1 and (self.width, self.height) == (info.width, info.height):
                cc.sample_aspect_ratio = 1 / sar if info.rotation in (90, 270) else sar
            self._copier = StreamCopier(
                self.source.path, out, range_start=self.source.range_start, range_end=self.source.range_end
            )
        self.stream = vs

    # -- writing

    def _out_pts(self, frame: Frame) -> tuple[int, int | None]:
        tb = self._tb
        if frame.pts is None:
            if self._last_pts is None:
                pts = round(Fraction(frame.index) / self._fps / tb)
            else:
                pts = self._last_pts + (self._last_dur or max(1, round(1 / (self._fps * tb))))
        elif Fraction(frame.time_base) == tb:
            pts = int(frame.pts)
        else:
            pts = round(frame.pts * Fraction(frame.time_base) / tb)
        dur = frame.duration
        if dur is not None and Fraction(frame.time_base) != tb:
            dur = round(dur * Fraction(frame.time_base) / tb)
        if self._offset is None:
            self._offset = pts
            if self._copier is not None:
                self._copier.set_offset(pts * tb)
        pts -= self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            log.warning("%s: non-increasing pts %d after %d; shifted", self.path, pts, self._last_pts)
            pts = self._last_pts + 1
        if dur is None and self._last_pts is not None:
            # Unknown duration (a Frame built without one): assume the previous step, which
            # matters only for the last frame, whose duration ends the video.
            dur = pts - self._last_pts
        return pts, dur

    def _to_video_frame(self, image: np.ndarray) -> av.VideoFrame:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=self._rgb_fmt)
        if self.pix_fmt != self._rgb_fmt:
            vf = self._rf.reformat(
                vf,
                format=self.pix_fmt,
                dst_colorspace=self._matrix,
                dst_color_range=self._range,
                interpolation=ENCODE_FLAGS,
            )
        for k, v in self._tags.items():
            setattr(vf, k, v)
        return vf

    def write(self, frame: Frame) -> None:
        """Encode one frame (H×W×3 RGB, the sink's size) at its pts."""
        if self._done:
            raise RuntimeError(f"{self.path}: sink already committed or aborted")
        _check_shape(frame.image, self.width, self.height, self.path)
        image = _to_dtype(frame.image, self._deep)
        pts, dur = self._out_pts(frame)
        vf = self._to_video_frame(image)
        vf.pts = pts
        vf.time_base = self._tb
        if dur:
            vf.duration = dur
            self._durations[pts] = dur
        try:
            packets = self.stream.encode(vf)
            for pk in packets:
                self._mux_video(pk)
        except av.FFmpegError as e:
            raise OutputError(f"{self.path}: encoding frame {frame.index} failed ({_reason(e)})") from e
        self._last_pts, self._last_dur = pts, dur or 0
        self.frames_written += 1

    def _mux_video(self, pk) -> None:
        if pk.pts is not None:
            dur = self._durations.pop(pk.pts, None)
            if dur:
                pk.duration = dur
        if self._copier is not None and pk.dts is not None:
            self._copier.copy_until(pk.dts * pk.time_base)
        self._out.mux(pk)

    # -- finishing

    def commit(self) -> None:
        """Flush the encoder, copy the remaining audio, close, and rename onto the path."""
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"{self.path}: no frames were written")
            try:
                for pk in self.stream.encode(None):
                    self._mux_video(pk)
                if self._copier is not None:
                    self._copier.copy_until(None)
                    self._copier.close()
                self._out.close()
            except (av.FFmpegError, OSError) as e:
                raise OutputError(f"{self.path}: finishing the video failed ({_reason(e)})") from e
            try:
                os.replace(self._tmp, self.path)
            except OSError as e:
                raise OutputError(f"{self.path}: cannot move the finished video into place ({_reason(e)})") from e
            self._done = True
            self._cleanup.detach()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close without publishing; delete the temporary file."""
        if self._done:
            return
        self._done = True
        for closer in (getattr(self._copier, "close", None), getattr(self._out, "close", None)):
            if closer is None:
                continue
            try:
                closer()
            except Exception:  # noqa: BLE001 - we are throwing the file away
                pass
        self._cleanup()

    @property
    def skipped_streams(self) -> list[str]:
        """Why each source stream that could not be copied was left out."""
        return list(self._copier.skipped) if self._copier is not None else []


def _encode_image(image: np.ndarray, suffix: str) -> bytes:
    import cv2

    if image.dtype == np.uint16 and suffix not in (".png", ".tif", ".tiff"):
        image = _to_dtype(image, deep=False)  # JPEG, BMP and WebP are 8-bit formats
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise OutputError(f"cannot encode a {suffix} image")
    return buf.tobytes()


class ImageSink(Sink):
    """One still image (8-bit, or 16-bit for PNG/TIFF), written on commit."""

    def __init__(self, path: Path, source: Source, width: int, height: int):
        self.path = path
        self.width, self.height = width, height
        self._deep = source.info.bit_depth > 8
        self._image: np.ndarray | None = None
        self._done = False

    def write(self, frame: Frame) -> None:
        if self._done:
            raise RuntimeError(f"{self.path}: sink already committed or aborted")
        if self._image is not None:
            raise OutputError(f"{self.path}: an image output holds one frame; use a video or folder output")
        _check_shape(frame.image, self.width, self.height, self.path)
        self._image = _to_dtype(frame.image, self._deep)
        self.frames_written = 1

    def commit(self) -> None:
        if self._done:
            return
        self._done = True
        if self._image is None:
            raise OutputError(f"{self.path}: no frame was written")
        data = _encode_image(self._image, self.path.suffix.lower())
        tmp = _temp_file(self.path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except BaseException as e:
            _remove(tmp)
            if isinstance(e, OSError):
                raise OutputError(f"{self.path}: cannot write the image ({_reason(e)})") from e
            raise

    def abort(self) -> None:
        self._done = True
        self._image = None


class FramesSink(Sink):
    """A folder of PNG frames, built in a hidden temporary folder and renamed on commit.

    Frames from a folder source keep their file names (as .png); others are numbered
    ``000000.png``, ``000001.png``…
    """

    def __init__(self, path: Path, source: Source, width: int, height: int):
        self.path = path
        self.width, self.height = width, height
        self._deep = source.info.bit_depth > 8
        self._names = [f.stem for f in source.files] if isinstance(source, FramesSource) else None
        self._used: set[str] = set()
        self._done = False
        self._tmp = _temp_dir(path)
        self._cleanup = weakref.finalize(self, _remove, self._tmp)

    def _name(self, frame: Frame) -> str:
        name = None
        if self._names is not None and frame.pts is not None and 0 <= frame.pts < len(self._names):
            name = self._names[frame.pts]
        if name is None or name in self._used:
            name = f"{frame.index:06d}"
        self._used.add(name)
        return name + ".png"

    def write(self, frame: Frame) -> None:
        if self._done:
            raise RuntimeError(f"{self.path}: sink already committed or aborted")
        _check_shape(frame.image, self.width, self.height, self.path)
        data = _encode_image(_to_dtype(frame.image, self._deep), ".png")
        try:
            with open(os.path.join(self._tmp, self._name(frame)), "wb") as f:
                f.write(data)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write frame {frame.index} ({_reason(e)})") from e
        self.frames_written += 1

    def commit(self) -> None:
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"{self.path}: no frames were written")
            old = None
            if self.path.exists() or self.path.is_symlink():
                # Move the old output aside first: a folder cannot be replaced in one rename.
                old = f"{self._tmp}.old"
                os.rename(self.path, old)
            try:
                os.rename(self._tmp, self.path)
            except OSError:
                if old is not None:
                    os.rename(old, self.path)
                raise
            self._done = True
            self._cleanup.detach()
            if old is not None:
                _remove(old)
        except OSError as e:
            self.abort()
            raise OutputError(f"{self.path}: cannot move the frames into place ({_reason(e)})") from e
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._cleanup()


__all__ = ["Sink", "VideoSink", "ImageSink", "FramesSink", "open_sink", "check_output_path"]
