"""Plain data types of the video stage (no av import): what a source describes and yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

#: Suffixes read and written as still images (one frame each).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Output containers for video sinks, and the FFmpeg muxer of each.
VIDEO_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


@dataclass(frozen=True)
class VideoInfo:
    """What a source is: sizes are the upright display size (after rotation).

    ``fps`` is the average rate (for information, and to synthesise pts of images and
    folders of frames); timing of video frames comes from each frame's ``pts``.
    ``rotation`` is the counter-clockwise angle (0/90/180/270, PyAV's
    ``VideoFrame.rotation`` convention) of the source's display matrix; frames are
    already rotated by it. The colour fields are FFmpeg's integer enums (AVColorRange,
    AVColorPrimaries, AVColorTransferCharacteristic, AVColorSpace), or None for images.
    ``frame_count`` and ``duration`` describe the selected range (after start/duration)
    and are estimates for video.
    """

    path: Path
    kind: str  # 'video' | 'image' | 'frames'
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int | None
    duration: float | None
    bit_depth: int
    pix_fmt: str
    rotation: int = 0
    color_range: int | None = None
    color_primaries: int | None = None
    color_trc: int | None = None
    colorspace: int | None = None
    has_audio: bool = False
    audio_codecs: list[str] = field(default_factory=list)
    codec: str | None = None

    @property
    def dtype(self) -> type:
        """The dtype of ``Frame.image``: uint8 for 8-bit sources, uint16 (full scale) above."""
        return np.uint8 if self.bit_depth <= 8 else np.uint16


@dataclass
class Frame:
    """One decoded picture.

    ``image`` is H×W×3 RGB, upright; ``uint8`` for 8-bit sources, ``uint16`` full scale
    (0–65535, FFmpeg's rgb48) for >8-bit sources. ``pts`` and ``duration`` are in
    ``time_base`` units (the source stream's), so a sink can reproduce the timing exactly.
    """

    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray
    duration: int | None = None

    @property
    def time(self) -> float | None:
        """Presentation time in seconds (None without pts)."""
        return None if self.pts is None else float(self.pts * self.time_base)
