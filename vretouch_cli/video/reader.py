"""Sources: a video file, a still image, or a folder of frames, each yielding upright RGB Frames."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import InputError
from .formats import DECODE_FLAGS, bit_depth_of
from .frame import IMAGE_SUFFIXES, Frame, VideoInfo

log = logging.getLogger(__name__)

DEFAULT_FPS = Fraction(25)


class Source:
    """A stream of Frames. Iterate it once; close it (or use ``with``) when done."""

    info: VideoInfo

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # The selected time range in absolute seconds of the source's clock, for the sink's
    # stream copy. ``range_start`` is set only when a start was asked for: the sink then
    # shifts all timestamps so that the first frame written starts at 0. ``range_end`` is
    # set when a duration was asked for.
    range_start: float | None = None
    range_end: float | None = None

    @property
    def trimmed(self) -> bool:
        return self.range_start is not None or self.range_end is not None


def open_source(
    path: str | Path,
    start: float | None = None,
    duration: float | None = None,
    fps: float | Fraction | None = None,
) -> Source:
    """Open a video file, a still image or a folder of frames.

    ``start`` / ``duration`` (seconds) select a time range of a video (or of a folder of
    frames, timed at ``fps``, 25 by default). Raises :class:`InputError` with one line
    naming the file and the problem when the input cannot be used.
    """
    p = Path(path).expanduser()
    if start is not None and start < 0:
        raise InputError(f"{p}: start must be >= 0 (got {start})")
    if duration is not None and duration <= 0:
        raise InputError(f"{p}: duration must be > 0 (got {duration})")
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return FramesSource(p, start=start, duration=duration, fps=fps)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror or e})") from e
    if size == 0:
        raise InputError(f"{p}: file is empty (0 bytes)")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(p, fps=fps)
    return VideoSource(p, start=start, duration=duration)


# ---------------------------------------------------------------------------------------
# Video


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate pixels counter-clockwise by ``rotation`` degrees (the display matrix's)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _snap_rotation(degrees: float, path: Path) -> int:
    snapped = int(round(degrees / 90.0)) * 90 % 360
    if abs(((degrees - snapped) + 180) % 360 - 180) > 1:
        log.warning("%s: display rotation %.1f° is not a multiple of 90°; using %d°", path, degrees, snapped)
    return snapped


def _audio_codec_name(stream) -> str:
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp"


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(text).rstrip(".")


class VideoSource(Source):
    """Decodes the first video stream with PyAV; frames keep their pts in the stream time base."""

    def __init__(self, path: Path, start: float | None = None, duration: float | None = None):
        self.path = path
        try:
            self._container = av.open(str(path), mode="r", metadata_errors="replace")
        except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
            if _looks_like_mp4(path):
                raise InputError(f"{path}: MP4/MOV file is incomplete or corrupt, truncated? ({_reason(e)})") from e
            raise InputError(f"{path}: not a readable video or image file ({_reason(e)})") from e
        try:
            self._setup(start, duration)
        except BaseException:
            self._container.close()
            raise

    def _setup(self, start: float | None, duration: float | None) -> None:
        c = self._container
        path = self.path
        if not c.streams.video:
            kinds = sorted({s.type for s in c.streams}) or ["none"]
            raise InputError(f"{path}: no video stream (streams found: {', '.join(kinds)})")
        vs = c.streams.video[0]
        self.stream = vs
        vs.thread_type = "AUTO"
        tb = vs.time_base or Fraction(1, 90000)
        self._tb = Fraction(tb)
        self._rf = VideoReformatter()

        self._check_truncated()
        # Decode the first frame now: it validates the file and tells the true pixel
        # format, display matrix and colour tags (container-level values can be missing).
        self._errors = 0
        self._last_error = ""
        self._frames = self._decode(probe=True)
        try:
            first = next(self._frames)
        except StopIteration:
            if self._errors:
                raise InputError(f"{path}: cannot decode the first video frame ({self._last_error})") from None
            raise InputError(f"{path}: the video stream has no frames") from None
        except av.FFmpegError as e:
            raise InputError(f"{path}: cannot decode the first video frame ({_reason(e)})") from e

        fmt = first.format.name
        self._bit_depth = bit_depth_of(fmt)
        self._rgb_fmt = "rgb24" if self._bit_depth <= 8 else "rgb48le"
        self.rotation = _snap_rotation(float(first.rotation or 0), path)
        w, h = first.width, first.height
        if self.rotation in (90, 270):
            w, h = h, w
        cc = vs.codec_context

        def tag(name: str, unspecified: int) -> int:
            # Prefer the frame's tag; fall back to the stream's when the frame has none.
            v = int(getattr(first, name) or 0)
            return v if v != unspecified else int(getattr(cc, name, None) or v)

        self._colors = {
            "color_range": tag("color_range", 0),
            "color_primaries": tag("color_primaries", 2),
            "color_trc": tag("color_trc", 2),
            "colorspace": tag("colorspace", 2),
        }

        fps = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = Fraction(fps) if fps else DEFAULT_FPS
        stream_start = vs.start_time if vs.start_time is not None else (first.pts or 0)
        self._stream_start = float(stream_start * self._tb)
        if vs.duration:
            total = float(vs.duration * self._tb)
        elif c.duration:
            total = c.duration / 1_000_000
        else:
            total = None

        # Time range (absolute seconds on the stream's clock).
        self._start_pts: int | None = None
        self._end_pts: int | None = None
        if start is not None or duration is not None:
            begin = self._stream_start + (start or 0.0)
            self.range_start = begin if start else None
            self.range_end = begin + duration if duration is not None else None
            self._start_pts = math.floor(begin / self._tb + 1e-6) if start else None
            self._end_pts = math.floor(self.range_end / self._tb + 1e-6) if duration is not None else None
            if start:
                try:
                    self._container.seek(int(self._start_pts), stream=vs, backward=True)
                except av.FFmpegError as e:
                    raise InputError(f"{path}: cannot seek to {start} s ({_reason(e)})") from e
                self._frames = self._decode()
                self._first = None
            else:
                self._first = first
            sel = total - (start or 0.0) if total is not None else None
            if sel is not None and duration is not None:
                sel = min(sel, duration)
            if sel is not None and sel <= 0:
                raise InputError(f"{path}: start {start} s is past the end of the video ({total:.3f} s)")
            total = sel
            count = round(total * fps) if total is not None else None
        else:
            self._first = first
            count = vs.frames or (round(total * fps) if total is not None else None)

        self.info = VideoInfo(
            path=path,
            kind="video",
            width=w,
            height=h,
            fps=fps,
            time_base=self._tb,
            frame_count=int(count) if count else None,
            duration=total,
            bit_depth=self._bit_depth if self._bit_depth <= 8 else max(self._bit_depth, 10),
            pix_fmt=fmt,
            rotation=self.rotation,
            has_audio=bool(self._container.streams.audio),
            audio_codecs=[_audio_codec_name(s) for s in self._container.streams.audio],
            codec=getattr(vs.codec_context.codec, "canonical_name", None) or vs.codec_context.name,
            **self._colors,
        )

    def _check_truncated(self) -> None:
        """Indexed containers (MP4/MOV) list where every packet lies: a file cut short
        ends before its last packet. Catch it now rather than as missing frames later."""
        try:
            size = self.path.stat().st_size
            ends = []
            for s in self._container.streams:
                entries = s.index_entries
                if len(entries):
                    last = entries[len(entries) - 1]
                    if last.size:
                        ends.append(last.pos + last.size)
        except (AttributeError, OSError, av.FFmpegError):  # no index: nothing to check
            return
        if ends and max(ends) > size:
            raise InputError(f"{self.path}: file is truncated ({size} bytes, but its index expects {max(ends)})")

    def _decode(self, probe: bool = False) -> Iterator[av.VideoFrame]:
        """Decoded frames. A damaged packet is skipped (FFmpeg recovers at the next
        keyframe); when probing for the first frame, give up after a few hundred packets."""
        packets = 0
        for packet in self._container.demux(self.stream):
            packets += 1
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                self._errors += 1
                self._last_error = _reason(e)
                if self._errors == 1 and not probe:
                    log.warning("%s: skipping undecodable video data (%s)", self.path, self._last_error)
                frames = []
            if frames:
                probe = False
            elif probe and packets > 300:
                return
            yield from frames

    def _to_image(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = self._rf.reformat(frame, format=self._rgb_fmt, interpolation=DECODE_FLAGS)
        # to_ndarray can return a view with padded rows; hand out plain C-contiguous arrays.
        return np.ascontiguousarray(_upright(rgb.to_ndarray(), self.rotation))

    def __iter__(self) -> Iterator[Frame]:
        frames = self._frames
        if self._first is not None:
            first, self._first = self._first, None
            frames = _chain(first, frames)
        index = 0
        last_pts: int | None = None
        last_dur = 0
        default_dur = max(1, round(1 / (self.info.fps * self._tb)))
        try:
            for f in frames:
                pts = f.pts
                if pts is None:  # raw streams: continue the previous frame's timing
                    pts = 0 if last_pts is None else last_pts + (last_dur or default_dur)
                if self._start_pts is not None and pts < self._start_pts:
                    continue
                if self._end_pts is not None and pts >= self._end_pts:
                    break
                dur = int(f.duration) if f.duration else None
                yield Frame(index=index, pts=int(pts), time_base=self._tb, image=self._to_image(f), duration=dur)
                index += 1
                last_pts, last_dur = int(pts), dur or 0
        except av.FFmpegError as e:
            raise InputError(f"{self.path}: decoding failed after frame {index} ({_reason(e)})") from e

    def close(self) -> None:
        self._container.close()


def _chain(first, rest):
    yield first
    yield from rest


# ---------------------------------------------------------------------------------------
# Still images and folders of frames (read with OpenCV: 16-bit PNG/TIFF, EXIF orientation)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as H×W×3 RGB uint8 or uint16 (EXIF orientation applied)."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({_reason(e)})") from e
    if data.size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise InputError(f"{path}: not a readable image (corrupt or unsupported format)")
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: unsupported image sample type {img.dtype} (use 8- or 16-bit)")
    return np.ascontiguousarray(img[..., ::-1])


class ImageSource(Source):
    """One still image: a single Frame with pts 0."""

    def __init__(self, path: Path, fps: float | Fraction | None = None):
        self.path = path
        self._image = read_image(path)
        h, w = self._image.shape[:2]
        deep = self._image.dtype == np.uint16
        rate = Fraction(fps).limit_denominator(1_000_000) if fps else DEFAULT_FPS
        self.info = VideoInfo(
            path=path,
            kind="image",
            width=w,
            height=h,
            fps=rate,
            time_base=1 / rate,
            frame_count=1,
            duration=float(1 / rate),
            bit_depth=16 if deep else 8,
            pix_fmt="rgb48le" if deep else "rgb24",
        )

    def __iter__(self) -> Iterator[Frame]:
        yield Frame(index=0, pts=0, time_base=self.info.time_base, image=self._image, duration=1)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FramesSource(Source):
    """A folder of image files, in natural sort order; frame i has pts i at ``fps`` (25)."""

    def __init__(
        self,
        path: Path,
        start: float | None = None,
        duration: float | None = None,
        fps: float | Fraction | None = None,
    ):
        self.path = path
        try:
            names = [e.name for e in path.iterdir() if e.is_file() and not e.name.startswith(".")]
        except OSError as e:
            raise InputError(f"{path}: folder cannot be listed ({_reason(e)})") from e
        self.files = [path / n for n in sorted(names, key=_natural_key) if Path(n).suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise InputError(f"{path}: folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
        rate = Fraction(fps).limit_denominator(1_000_000) if fps else DEFAULT_FPS
        total = len(self.files)
        first_i = 0 if start is None else math.ceil(start * rate - 1e-9)
        end_i = total if duration is None else min(total, math.ceil(((start or 0) + duration) * rate - 1e-9))
        if first_i >= total:
            raise InputError(f"{path}: start {start} s is past the last frame ({total} frames at {rate} fps)")
        self._range = range(first_i, end_i)
        if start:
            self.range_start = first_i / rate
        if duration is not None:
            self.range_end = end_i / rate
        first = read_image(self.files[first_i])
        self._first = first
        h, w = first.shape[:2]
        deep = first.dtype == np.uint16
        self.info = VideoInfo(
            path=path,
            kind="frames",
            width=w,
            height=h,
            fps=rate,
            time_base=1 / rate,
            frame_count=len(self._range),
            duration=float(len(self._range) / rate),
            bit_depth=16 if deep else 8,
            pix_fmt="rgb48le" if deep else "rgb24",
        )

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        for index, i in enumerate(self._range):
            if i == self._range.start and self._first is not None:
                img, self._first = self._first, None
            else:
                img = read_image(self.files[i])
            if img.shape[:2] != (self.info.height, self.info.width):
                raise InputError(
                    f"{self.files[i]}: size {img.shape[1]}x{img.shape[0]} differs from the first frame's "
                    f"{self.info.width}x{self.info.height}"
                )
            if img.dtype != self.info.dtype:
                img = _convert_depth(img, self.info.dtype)
            yield Frame(index=index, pts=i, time_base=tb, image=img, duration=1)


def _convert_depth(img: np.ndarray, dtype) -> np.ndarray:
    if dtype == np.uint16:
        return img.astype(np.uint16) * 257
    return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
