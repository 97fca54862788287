"""Synthetic clips and probes for tests (so that tests outside video/ never import av).

Typical use::

    from vretouch_cli.video.testclips import make_frames, write_test_video, probe

    frames = make_frames(12, 64, 48)                      # list of H×W×3 uint8 RGB
    write_test_video(tmp_path / "a.mp4", frames, fps=25, audio="aac")
    write_test_video(tmp_path / "vfr.mp4", frames, pts=[0, 40, 90, ...], time_base=Fraction(1, 1000))
    write_test_video(tmp_path / "rot.mp4", frames, rotation=90)   # display matrix, stored pixels as given
    info = probe(tmp_path / "a.mp4")                      # streams, codecs, pix_fmt, pts, tags
    transcode(tmp_path / "a.mp4", tmp_path / "b.mp4", preset="ultrafast")  # unchanged pass
    packet_digests(tmp_path / "b.mp4")                    # sha256 per audio packet, per stream

Everything here is deliberately simple and fast (libx264 ultrafast, tiny sizes).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .formats import ENCODE_FLAGS, encoder_pix_fmt, normalize_codec, sws_matrix
from .frame import VIDEO_CONTAINERS

_ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
    "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
    "MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
).encode()


def make_frames(
    n: int = 10,
    width: int = 64,
    height: int = 48,
    dtype: Any = np.uint8,
    marker: tuple[int, int, int] | None = (255, 0, 0),
) -> list[np.ndarray]:
    """``n`` distinct H×W×3 RGB frames: a smooth gradient, a square that moves one step per
    frame, and (if ``marker``) a solid block of that colour in the top-left corner (size
    max(4, min(w, h)//4)) so that orientation can be checked. ``dtype`` uint16 gives
    full-scale values with fine steps (values > 255 and not multiples of 257)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    m = max(4, min(width, height) // 4)
    sq = max(2, min(width, height) // 6)
    for i in range(n):
        r = 0.15 + 0.5 * xx / max(1, width - 1)
        g = 0.15 + 0.5 * yy / max(1, height - 1)
        b = np.full_like(xx, 0.2 + 0.5 * (i % 7) / 6)
        img = np.stack([r, g, b], axis=-1)
        x0 = (m + 2 * i) % max(1, width - sq)
        y0 = (m + i) % max(1, height - sq)
        img[y0 : y0 + sq, x0 : x0 + sq] = (0.9, 0.9, 0.1)
        if marker is not None:
            img[:m, :m] = np.asarray(marker, dtype=np.float64) / 255.0
        if np.dtype(dtype) == np.uint16:
            frames.append(np.round(img * 65535).astype(np.uint16))
        else:
            frames.append(np.round(img * 255).astype(np.uint8))
    return frames


def _audio_stream(out, codec: str, rate: int, language: str, title: str):
    s = out.add_stream(codec, rate=rate)
    s.layout = "stereo" if codec == "aac" else "mono"
    s.metadata["language"] = language
    s.metadata["title"] = title
    return s


def _encode_audio(out, stream, seconds: float, freq: float) -> None:
    cc = stream.codec_context
    rate = cc.sample_rate
    fmt = cc.format.name
    channels = cc.layout.nb_channels
    total = int(round(seconds * rate))
    chunk = cc.frame_size or 1024
    t0 = 0
    while t0 < total:
        n = min(chunk, total - t0)
        t = (np.arange(t0, t0 + n) / rate).astype(np.float32)
        wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        planar = fmt.endswith("p")
        if fmt.startswith("s16"):
            wave = (wave * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            wave = (wave * 2147483647).astype(np.int32)
        data = np.tile(wave, (channels, 1)) if planar else np.tile(wave[:, None], (1, channels)).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=cc.layout.name)
        frame.sample_rate = rate
        frame.pts = t0
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
        t0 += n
    out.mux(stream.encode(None))


def write_test_video(
    path: str | Path,
    frames: list[np.ndarray],
    fps: float | Fraction = 25,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    rotation: int | None = None,
    audio: str | None = None,
    subtitles: list[tuple[float, float, str]] | None = None,
    crf: int = 12,
    color: dict[str, int] | None = None,
    last_duration: int | None = None,
) -> Path:
    """Write ``frames`` (H×W×3 RGB uint8, or uint16 for a 10-bit clip) as a video.

    - ``pts``: one timestamp per frame in ``time_base`` units (default ``1/fps`` and
      ``pts = 0, 1, 2…``; with explicit pts the default time base is 1/1000). Unequal
      steps make a variable-frame-rate clip. ``last_duration`` sets the last frame's
      duration (default: one 1/fps step).
    - ``codec``: libx264 (default), libx265, libvpx-vp9, ffv1; ``pix_fmt`` defaults to
      yuv420p (yuv420p10le for uint16 frames, 4:4:4 for odd sizes, RGB for ffv1).
    - ``rotation``: a display matrix rotating the stored pixels counter-clockwise by this
      many degrees for display (PyAV's convention; 90 = what a player turns left).
    - ``audio``: None, ``'aac'``, ``'mp3'`` or ``'aac2'`` (two AAC streams, eng and fra),
      a sine tone as long as the video.
    - ``subtitles``: ``[(start_s, end_s, text)]`` as a mov_text (mp4/mov) or subrip (mkv)
      stream with language 'eng' and title 'English'.
    - ``color``: codec colour tags, e.g. ``{"color_primaries": 9, "color_trc": 16,
      "colorspace": 9, "color_range": 1}`` for an HDR10-style clip.
    """
    path = Path(path)
    if not frames:
        raise ValueError("write_test_video needs at least one frame")
    h, w = frames[0].shape[:2]
    deep = frames[0].dtype == np.uint16
    fps = Fraction(fps).limit_denominator(1_000_000)
    if pts is None:
        tb = Fraction(time_base) if time_base is not None else 1 / fps
        step = max(1, round(1 / (fps * tb)))
        pts = [i * step for i in range(len(frames))]
    else:
        tb = Fraction(time_base) if time_base is not None else Fraction(1, 1000)
        if len(pts) != len(frames):
            raise ValueError("pts needs one value per frame")
    step = max(1, round(1 / (fps * tb)))
    durations = [b - a for a, b in zip(pts, pts[1:])] + [last_duration or step]
    codec = normalize_codec(codec)
    pix_fmt = pix_fmt or encoder_pix_fmt(codec, 10 if deep else 8, w, h)
    fmt = VIDEO_CONTAINERS.get(path.suffix.lower(), None)

    with av.open(str(path), "w", format=fmt) as out:
        options = {"crf": str(crf), "preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if codec == "libx265":
            options["x265-params"] = "log-level=error" + (":cutree=0" if min(w, h) < 64 else "")
        if codec == "libvpx-vp9":
            options = {"b": "0", "crf": str(max(crf, 4)), "deadline": "realtime", "cpu-used": "8"}
        vs = out.add_stream(codec, rate=fps, options=options)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        for k, v in (color or {}).items():
            setattr(vs.codec_context, k, v)
        if rotation:
            vs.set_display_rotation(rotation)
        streams = []
        if audio:
            if audio not in ("aac", "mp3", "aac2"):
                raise ValueError("audio must be None, 'aac', 'mp3' or 'aac2'")
            if audio == "mp3":
                streams.append((_audio_stream(out, "libmp3lame", 44100, "eng", "Main"), 440.0))
            else:
                streams.append((_audio_stream(out, "aac", 48000, "eng", "English"), 440.0))
            if audio == "aac2":
                streams.append((_audio_stream(out, "aac", 44100, "fra", "Français"), 660.0))
        sub = None
        if subtitles:
            sub = out.add_stream("mov_text" if fmt in ("mp4", "mov") else "subrip")
            sub.time_base = Fraction(1, 1000)
            sub.metadata["language"] = "eng"
            sub.metadata["title"] = "English"
            sub.codec_context.subtitle_header = _ASS_HEADER

        dur_of = dict(zip(pts, durations))
        rgb_fmt = "rgb48le" if deep else "rgb24"
        for img, p in zip(frames, pts):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=rgb_fmt)
            if pix_fmt != rgb_fmt:
                cs = sws_matrix((color or {}).get("colorspace"))
                rng = (color or {}).get("color_range") or 1
                vf = vf.reformat(format=pix_fmt, dst_colorspace=cs, dst_color_range=rng, interpolation=ENCODE_FLAGS)
            vf.pts = p
            vf.time_base = tb
            for pk in vs.encode(vf):
                if pk.pts in dur_of:
                    pk.duration = dur_of[pk.pts]
                out.mux(pk)
        for pk in vs.encode(None):
            if pk.pts in dur_of:
                pk.duration = dur_of[pk.pts]
            out.mux(pk)
        seconds = float((pts[-1] + durations[-1]) * tb)
        for s, freq in streams:
            _encode_audio(out, s, seconds, freq)
        if sub is not None:
            for i, (a, b, text) in enumerate(subtitles):
                start = int(round(a * 1000))
                ss = av.subtitles.subtitle.SubtitleSet.create(
                    f"{i},0,Default,,0,0,0,,{text}".encode(), 0, int(round((b - a) * 1000)), pts=start
                )
                pk = sub.codec_context.encode_subtitle(ss)
                pk.stream = sub
                pk.time_base = sub.time_base
                out.mux(pk)
    return path


def transcode(
    src: str | Path,
    dst: str | Path,
    start: float | None = None,
    duration: float | None = None,
    **sink_kwargs: Any,
) -> list[np.ndarray]:
    """Pass every frame of ``src`` unchanged through open_source -> open_sink (the
    pipeline with no retouching). Returns the images written, in order."""
    from .reader import open_source
    from .writer import open_sink

    images = []
    with open_source(src, start=start, duration=duration) as source:
        with open_sink(dst, source, **sink_kwargs) as sink:
            for frame in source:
                sink.write(frame)
                images.append(frame.image)
    return images


def write_test_audio(path: str | Path, codec: str = "aac", seconds: float = 1.0) -> Path:
    """An audio-only file (no video stream): ``codec`` 'aac' or 'mp3'."""
    path = Path(path)
    with av.open(str(path), "w", format=VIDEO_CONTAINERS.get(path.suffix.lower())) as out:
        name, rate = ("libmp3lame", 44100) if codec == "mp3" else ("aac", 48000)
        _encode_audio(out, _audio_stream(out, name, rate, "eng", "Main"), seconds, 440.0)
    return path


def probe(path: str | Path) -> dict[str, Any]:
    """Describe a media file without decoding pixels.

    Returns ``{"format", "duration", "metadata", "streams": [...]}``; each stream has
    ``index, type, codec, time_base, metadata, language``; video streams add ``width,
    height, pix_fmt, average_rate, rotation, color_range, color_primaries, color_trc,
    colorspace, pts`` (presentation order), ``durations`` (display durations, the last
    one up to the stream's end) and ``end`` (stream end, in its time base).
    """
    with av.open(str(path), metadata_errors="replace") as c:
        info: dict[str, Any] = {
            "format": c.format.name,
            "duration": c.duration / 1_000_000 if c.duration else None,
            "metadata": dict(c.metadata),
            "streams": [],
        }
        for s in c.streams:
            cc = s.codec_context
            d: dict[str, Any] = {
                "index": s.index,
                "type": s.type,
                "codec": (getattr(cc.codec, "canonical_name", None) or cc.name) if cc is not None else None,
                "time_base": Fraction(s.time_base) if s.time_base else None,
                "metadata": dict(s.metadata),
                "language": s.metadata.get("language"),
            }
            if s.type == "video":
                d.update(
                    width=cc.width,
                    height=cc.height,
                    pix_fmt=cc.pix_fmt,
                    average_rate=Fraction(s.average_rate) if s.average_rate else None,
                    color_range=int(cc.color_range),
                    color_primaries=int(cc.color_primaries),
                    color_trc=int(cc.color_trc),
                    colorspace=int(cc.colorspace),
                )
            info["streams"].append(d)
        video = [d for d in info["streams"] if d["type"] == "video"]
        if video:
            vs = c.streams.video[0]
            pkts = sorted((p.pts, p.duration) for p in c.demux(vs) if p.pts is not None and p.size)
            pts = [p for p, _ in pkts]
            # Display durations: the step to the next pts; the last one runs to the stream's
            # end (packet durations themselves follow decode order when there are B-frames).
            if vs.duration:
                end = (vs.start_time or 0) + vs.duration
            else:
                end = pts[-1] + (pkts[-1][1] or 0) if pts else 0
            video[0]["pts"] = pts
            video[0]["durations"] = [b - a for a, b in zip(pts, pts[1:] + [end])]
            video[0]["end"] = end
            c.seek(0)
            vs.codec_context.thread_type = "AUTO"
            first = next(c.decode(vs), None)
            video[0]["rotation"] = int(round(first.rotation)) if first is not None else 0
    return info


def packet_digests(path: str | Path, types: tuple[str, ...] = ("audio",)) -> list[list[str]]:
    """sha256 of every packet payload, one list per stream of the given types (file order)."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in types]
        order = [s.index for s in streams]
        out: dict[int, list[str]] = {i: [] for i in order}
        if streams:
            for pk in c.demux(*streams):
                if pk.size:
                    out[pk.stream_index].append(hashlib.sha256(bytes(pk)).hexdigest())
    return [out[i] for i in order]


def audio_packet_hashes(path: str | Path) -> list[list[str]]:
    """sha256 of every audio packet payload, one list per audio stream."""
    return packet_digests(path, ("audio",))


def decode_frames(path: str | Path) -> list[np.ndarray]:
    """All frames as stored (no rotation applied), RGB, uint8 or uint16 by bit depth."""
    from .formats import bit_depth_of

    images = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb = "rgb24" if bit_depth_of(f.format.name) <= 8 else "rgb48le"
            images.append(f.to_ndarray(format=rgb))
    return images
