"""Video I/O: the only part of vretouch that imports PyAV (``av``).

- :func:`open_source` reads a video file, a still image or a folder of frames and yields
  :class:`Frame` objects: upright H×W×3 RGB (uint8 for 8-bit sources, uint16 full scale
  above), each with its pts in the source stream's time base.
- :func:`open_sink` writes Frames to a video (audio and subtitles remuxed packet for
  packet), an image or a folder of PNGs, through a hidden temporary renamed on commit.
- :func:`check_output_path` validates OUTPUT before any work starts.
- :mod:`vretouch_cli.video.testclips` writes synthetic clips for tests.

What the PyAV 18 / FFmpeg 8 build does, and what we do about it:

- Rotation: the display matrix reaches each decoded frame as ``VideoFrame.rotation``
  (counter-clockwise degrees). Sources rotate the pixels with ``np.rot90`` so frames are
  upright; ``VideoInfo.rotation`` keeps the angle (0/90/180/270) and sizes are upright.
  Sinks write upright pixels with no display matrix. Flips in the matrix are ignored.
- Bit depth: >8-bit sources decode to rgb48 (uint16). libx264 and libx265 write
  yuv420p10le; this build's libvpx-vp9 has no 10-bit mode (8-bit with a warning);
  ffv1 stores RGB losslessly (bgr0 / rgb48le: decoded RGB equals the RGB written).
- Odd sizes: libx264/libx265 use 4:4:4 (yuv444p, yuv444p10le) since 4:2:0 needs even
  sizes there; vp9 and ffv1 take odd sizes as they are. libx265 gets ``cutree=0`` for
  frames under 64 px (its CU-tree writes out of bounds on them).
- Timing: pts and the time base are kept (MP4/MOV may scale the time base, e.g. 1/1000
  to 1/16000, so compare times, not ticks); Matroska/WebM round to milliseconds and
  shift all streams when audio starts before 0 (AAC priming).
- Streams: audio and subtitle packets are copied unchanged, with language and title;
  a stream the container cannot hold (AAC in WebM, mov_text in MKV) is left out with a
  warning (``VideoSink.skipped_streams``).
"""

from __future__ import annotations

from .frame import IMAGE_SUFFIXES, VIDEO_CONTAINERS, Frame, VideoInfo
from .reader import FramesSource, ImageSource, Source, VideoSource, open_source
from .writer import FramesSink, ImageSink, Sink, VideoSink, check_output_path, open_sink

__all__ = [
    "Frame",
    "VideoInfo",
    "Source",
    "Sink",
    "open_source",
    "open_sink",
    "check_output_path",
    "VideoSource",
    "ImageSource",
    "FramesSource",
    "VideoSink",
    "ImageSink",
    "FramesSink",
    "IMAGE_SUFFIXES",
    "VIDEO_CONTAINERS",
]
