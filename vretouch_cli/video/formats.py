"""Pixel formats, colour matrices and codec choices (the FFmpeg knowledge in one place)."""

from __future__ import annotations

import logging

import av
from av.video.reformatter import Interpolation

log = logging.getLogger(__name__)

#: Codec names accepted by open_sink, with the aliases a user may type.
CODEC_ALIASES = {
    "libx264": "libx264",
    "h264": "libx264",
    "x264": "libx264",
    "avc": "libx264",
    "libx265": "libx265",
    "h265": "libx265",
    "hevc": "libx265",
    "x265": "libx265",
    "libvpx-vp9": "libvpx-vp9",
    "vp9": "libvpx-vp9",
    "ffv1": "ffv1",
}

# x264 preset name -> libvpx-vp9 cpu-used (0 slowest/best .. 8 fastest).
_VP9_CPU_USED = {
    "ultrafast": 8,
    "superfast": 7,
    "veryfast": 6,
    "faster": 5,
    "fast": 4,
    "medium": 3,
    "slow": 2,
    "slower": 1,
    "veryslow": 0,
    "placebo": 0,
}

# AVColorSpace (frame/stream tag) -> SWS_CS_* (swscale matrix) for the RGB -> YUV step.
# Unspecified and unknown tags fall back to swscale's default (BT.601), which is also
# what the decoder side used for them, so the round trip stays consistent.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}

# Scaler flags: sizes never change here, so the flags only choose how chroma is
# resampled. Decoding keeps swscale's default (bilinear upsampling); note that in
# FFmpeg 8 adding FULL_CHR_H_INT to a 10-bit -> rgb48 conversion returns garbage.
# Encoding averages chroma (AREA), the least lossy 4:4:4 -> 4:2:0 step in our tests.
DECODE_FLAGS = None
ENCODE_FLAGS = Interpolation.AREA


def bit_depth_of(pix_fmt: str) -> int:
    """Bits per component of an FFmpeg pixel format (8, 10, 12, 16...)."""
    fmt = av.VideoFormat(pix_fmt)
    bits = max((c.bits for c in fmt.components), default=8)
    return int(bits)


def sws_matrix(colorspace: int | None) -> int | None:
    """SWS_CS_* matrix for an AVColorSpace tag, None for swscale's default."""
    return _SWS_MATRIX.get(int(colorspace)) if colorspace is not None else None


def normalize_codec(codec: str | None) -> str:
    name = (codec or "libx264").strip().lower()
    if name not in CODEC_ALIASES:
        from ..errors import UsageError

        raise UsageError(f"unknown video codec {codec!r} (choose libx264, libx265, libvpx-vp9 or ffv1)")
    return CODEC_ALIASES[name]


def _supported(codec: str, pix_fmt: str) -> bool:
    try:
        return pix_fmt in {f.name for f in (av.Codec(codec, "w").video_formats or ())}
    except Exception:  # noqa: BLE001 - an encoder missing from this build
        return False


def encoder_pix_fmt(codec: str, bit_depth: int, width: int, height: int) -> str:
    """The pixel format a sink encodes with.

    - ffv1 is lossless RGB: ``bgr0`` (8-bit) or ``rgb48le`` (>8-bit), any size.
    - libx264 / libx265: 4:2:0 (``yuv420p``, ``yuv420p10le`` for >8-bit sources); odd
      widths or heights use 4:4:4 instead, because 4:2:0 needs even sizes in these
      encoders and we keep the exact frame size rather than crop or pad.
    - libvpx-vp9: this build's libvpx is 8-bit only, so >8-bit sources are written in
      8-bit with a warning; libvpx handles odd sizes in 4:2:0 itself.
    """
    high = bit_depth > 8
    if codec == "ffv1":
        return "rgb48le" if high else "bgr0"
    odd = width % 2 or height % 2
    if codec == "libvpx-vp9":
        candidates = ["yuv420p10le", "yuv420p"] if high else ["yuv420p"]
    else:
        base = "yuv444p" if odd else "yuv420p"
        candidates = [base + "10le", base] if high else [base]
    for pix_fmt in candidates:
        if _supported(codec, pix_fmt):
            if high and not pix_fmt.endswith("10le"):
                log.warning("%s in this FFmpeg build has no 10-bit mode: writing 8-bit %s", codec, pix_fmt)
            return pix_fmt
    return candidates[-1]


def encoder_options(
    codec: str, crf: int | None, preset: str | None, width: int = 1920, height: int = 1080
) -> dict[str, str]:
    """Encoder private options for a quality (CRF) and a speed preset, where supported."""
    opts: dict[str, str] = {}
    if codec in ("libx264", "libx265"):
        if crf is not None:
            opts["crf"] = str(crf)
        if preset:
            opts["preset"] = preset
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
            if min(width, height) < 64:
                # libx265 (3.x/4.x as bundled) writes out of bounds in its CU-tree
                # lookahead for frames narrower than one 64-px CTU (valgrind-confirmed,
                # heap corruption and abort). CU-tree off avoids that code path.
                opts["x265-params"] += ":cutree=0"
    elif codec == "libvpx-vp9":
        # Constant quality needs b:v 0; the preset maps onto cpu-used.
        opts["b"] = "0"
        opts["crf"] = str(31 if crf is None else crf)
        opts["row-mt"] = "1"
        opts["deadline"] = "good"
        opts["cpu-used"] = str(_VP9_CPU_USED.get((preset or "medium").lower(), 3))
    elif codec == "ffv1":
        # Lossless: CRF and preset do not apply. Level 3 allows slice threads and CRCs.
        opts["level"] = "3"
        opts["slicecrc"] = "1"
    return opts
