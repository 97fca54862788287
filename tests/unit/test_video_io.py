"""Video sources and sinks on tiny synthetic clips: timing, rotation, bit depth, sizes, codecs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from vretouch_cli.errors import UsageError
from vretouch_cli.video import Frame, open_sink, open_source
from vretouch_cli.video.testclips import (
    decode_frames,
    make_frames,
    probe,
    transcode,
    write_test_video,
)

FAST = {"preset": "ultrafast"}


def video_stream(path):
    return next(s for s in probe(path)["streams"] if s["type"] == "video")


def timing(path):
    """Every pts and duration in exact seconds, the average rate, and the container duration."""
    info = probe(path)
    v = next(s for s in info["streams"] if s["type"] == "video")
    tb = v["time_base"]
    return {
        "pts": [p * tb for p in v["pts"]],
        "durations": [d * tb for d in v["durations"]],
        "rate": v["average_rate"],
        "duration": info["duration"],
    }


def read_all(path, **kw):
    with open_source(path, **kw) as src:
        return src.info, list(src)


def mean_error(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_constant_frame_rate_timing_is_kept(tmp_path, container):
    src = write_test_video(tmp_path / f"in.{container}", make_frames(12, 64, 48), fps=25)
    out = tmp_path / f"out.{container}"
    transcode(src, out, **FAST)
    t_in, t_out = timing(src), timing(out)
    assert len(t_out["pts"]) == 12
    assert t_out == t_in
    assert t_out["rate"] == 25
    assert video_stream(out)["time_base"] == video_stream(src)["time_base"]


def test_variable_frame_rate_timing_is_kept(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 410, 500, 600, 700, 733, 766]
    src = write_test_video(
        tmp_path / "vfr.mp4", make_frames(12, 64, 48), pts=pts, time_base=Fraction(1, 1000), last_duration=90
    )
    info, frames = read_all(src)
    assert [f.pts * f.time_base for f in frames] == [Fraction(p, 1000) for p in pts]
    out = tmp_path / "out.mp4"
    transcode(src, out, **FAST)
    t_in, t_out = timing(src), timing(out)
    assert t_out["pts"] == [Fraction(p, 1000) for p in pts]
    assert t_out == t_in  # every pts, every duration (the last one too), average rate, total duration
    assert t_out["duration"] == pytest.approx(0.766 + 0.090)


def test_frames_keep_stream_pts_and_source_info(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(10, 64, 48), fps=25)
    info, frames = read_all(src)
    assert (info.kind, info.width, info.height, info.bit_depth, info.pix_fmt) == ("video", 64, 48, 8, "yuv420p")
    assert info.fps == 25 and info.frame_count == 10 and info.duration == pytest.approx(0.4)
    assert not info.has_audio and info.audio_codecs == []
    step = round(1 / (25 * info.time_base))
    assert [f.pts for f in frames] == [i * step for i in range(10)]
    assert [f.index for f in frames] == list(range(10))
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)


@pytest.mark.parametrize(
    "rotation, corner, size",
    [(90, "bottom-left", (48, 64)), (-90, "top-right", (48, 64)), (180, "bottom-right", (64, 48))],
)
def test_rotated_clip_comes_out_upright(tmp_path, rotation, corner, size):
    """The stored frames have a red block top-left; the display matrix turns them by
    `rotation` degrees counter-clockwise (90: the top-left corner goes to the bottom-left)."""
    stored = make_frames(4, 64, 48)
    src = write_test_video(tmp_path / "rot.mp4", stored, rotation=rotation)
    info, frames = read_all(src)
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == size
    img = frames[0].image
    assert img.shape == (size[1], size[0], 3)
    h, w = img.shape[:2]
    corners = {
        "top-left": img[:8, :8],
        "top-right": img[:8, w - 8 :],
        "bottom-left": img[h - 8 :, :8],
        "bottom-right": img[h - 8 :, w - 8 :],
    }
    for name, block in corners.items():
        is_red = block[..., 0].mean() > 200 and block[..., 1:].mean() < 40
        assert is_red == (name == corner), name
    # Upright frames equal the stored ones rotated by np.rot90 (counter-clockwise).
    expected = np.rot90(decode_frames(src)[0], (rotation // 90) % 4)
    assert np.array_equal(img, expected)
    # The output is upright pixels without a display matrix, so every player shows it upright.
    out = tmp_path / "out.mp4"
    transcode(src, out, **FAST)
    v = video_stream(out)
    assert (v["width"], v["height"], v["rotation"]) == (size[0], size[1], 0)
    assert mean_error(decode_frames(out)[0], img) < 4


def test_ten_bit_in_ten_bit_out(tmp_path):
    hdr = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}
    frames16 = make_frames(6, 64, 48, dtype=np.uint16)
    src = write_test_video(tmp_path / "ten.mp4", frames16, color=hdr)
    info, frames = read_all(src)
    assert info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    assert {k: getattr(info, k) for k in hdr} == hdr
    img = frames[0].image
    assert img.dtype == np.uint16
    # Values between the 8-bit steps survive: not 8-bit data scaled up.
    assert np.count_nonzero(img % 257) > img.size // 2
    assert mean_error(img, frames16[0]) / 257 < 3
    out = tmp_path / "out.mp4"
    transcode(src, out, **FAST)
    v = video_stream(out)
    assert v["pix_fmt"] == "yuv420p10le"
    assert {k: v[k] for k in hdr} == hdr  # HDR tags kept
    _, back = read_all(out)
    assert back[0].image.dtype == np.uint16 and back[0].image.max() > 255
    assert np.count_nonzero(back[0].image % 257) > img.size // 2
    assert mean_error(back[0].image, img) / 257 < 3


def test_colour_tags_are_kept(tmp_path):
    bt709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
    src = write_test_video(tmp_path / "709.mp4", make_frames(4, 64, 48), color=bt709)
    out = tmp_path / "out.mp4"
    transcode(src, out, **FAST)
    v = video_stream(out)
    assert {k: v[k] for k in bt709} == bt709


@pytest.mark.parametrize(
    "codec, suffix", [("libx264", "mp4"), ("libx265", "mp4"), ("libvpx-vp9", "webm"), ("ffv1", "mkv")]
)
def test_odd_frame_sizes(tmp_path, codec, suffix):
    frames = make_frames(5, 33, 27)
    src = write_test_video(tmp_path / "odd.mkv", frames, codec="ffv1")
    out = tmp_path / f"out.{suffix}"
    written = transcode(src, out, codec=codec, **FAST)
    v = video_stream(out)
    assert (v["width"], v["height"]) == (33, 27)
    info, back = read_all(out)
    assert (info.width, info.height) == (33, 27) and len(back) == 5
    assert mean_error(back[2].image, written[2]) < 6


@pytest.mark.parametrize("deep", [False, True])
def test_ffv1_is_bit_exact(tmp_path, deep):
    dtype = np.uint16 if deep else np.uint8
    frames = make_frames(4, 33, 27, dtype=dtype)
    src = write_test_video(tmp_path / ("in16.mp4" if deep else "in8.mp4"), frames)
    out = tmp_path / "out.mkv"
    written = transcode(src, out, codec="ffv1")
    assert written[0].dtype == dtype
    _, back = read_all(out)
    assert len(back) == len(written)
    for a, b in zip(written, back):
        assert b.image.dtype == dtype
        assert np.array_equal(a, b.image)


def test_codecs_and_containers(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(6, 64, 48))
    for codec, name, expect in [
        ("libx265", "h265.mkv", "hevc"),
        ("vp9", "vp9.webm", "vp9"),
        ("h264", "h264.mov", "h264"),
    ]:
        written = transcode(src, tmp_path / name, codec=codec, crf=20, **FAST)
        assert video_stream(tmp_path / name)["codec"] == expect
        _, back = read_all(tmp_path / name)
        assert len(back) == 6 and mean_error(back[3].image, written[3]) < 6


def test_codec_and_container_mismatch_is_a_usage_error(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(2, 64, 48))
    with open_source(src) as s:
        with pytest.raises(UsageError, match="webm"):
            open_sink(tmp_path / "o.webm", s, codec="libx264")
        with pytest.raises(UsageError, match="codec"):
            open_sink(tmp_path / "o.mp4", s, codec="mpeg2video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_side_by_side_size(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(4, 64, 48))
    out = tmp_path / "cmp.mp4"
    with open_source(src) as s, open_sink(out, s, width=128, height=48, **FAST) as sink:
        for f in s:
            sink.write(Frame(f.index, f.pts, f.time_base, np.concatenate([f.image, f.image], axis=1), f.duration))
    v = video_stream(out)
    assert (v["width"], v["height"]) == (128, 48)
    assert timing(out)["pts"] == timing(src)["pts"]


def test_start_and_duration_select_a_range(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(25, 64, 48), fps=25)
    info, frames = read_all(src, start=0.2, duration=0.4)
    assert len(frames) == 10 and info.frame_count == 10
    assert frames[0].pts * frames[0].time_base == Fraction(1, 5)
    assert np.array_equal(frames[0].image, read_all(src)[1][5].image)
    out = tmp_path / "out.mp4"
    transcode(src, out, start=0.2, duration=0.4, **FAST)
    t = timing(out)
    assert t["pts"] == [Fraction(i, 25) for i in range(10)]  # shifted to start at 0
    assert t["duration"] == pytest.approx(0.4)


def test_still_image_round_trip(tmp_path):
    import cv2

    for deep in (False, True):
        img = make_frames(1, 33, 27, dtype=np.uint16 if deep else np.uint8)[0]
        path = tmp_path / f"still{int(deep)}.png"
        cv2.imwrite(str(path), img[..., ::-1])
        info, frames = read_all(path)
        assert (info.kind, info.width, info.height, info.bit_depth) == ("image", 33, 27, 16 if deep else 8)
        assert len(frames) == 1 and np.array_equal(frames[0].image, img)
        out = tmp_path / f"out{int(deep)}.png"
        transcode(path, out)
        assert np.array_equal(read_all(out)[1][0].image, img)
    jpg = tmp_path / "still.jpg"
    img8 = make_frames(1, 33, 27)[0]
    cv2.imwrite(str(jpg), img8[..., ::-1])
    info, frames = read_all(jpg)
    assert info.bit_depth == 8 and frames[0].image.shape == (27, 33, 3)
    assert mean_error(frames[0].image, img8) < 6


def test_folder_of_frames_round_trip(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = make_frames(5, 32, 24)
    for i, img in enumerate(frames):  # natural order: f2 before f10
        cv2.imwrite(str(folder / f"f{i * 4}.png"), img[..., ::-1])
    (folder / "notes.txt").write_text("ignored")
    info, got = read_all(folder)
    assert (info.kind, info.frame_count, info.fps, info.time_base) == ("frames", 5, 25, Fraction(1, 25))
    assert [f.pts for f in got] == list(range(5))
    assert all(np.array_equal(a, f.image) for a, f in zip(frames, got))
    out = tmp_path / "out_frames"
    transcode(folder, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"f{i * 4}.png" for i in range(5))
    assert all(np.array_equal(a, f.image) for a, f in zip(frames, read_all(out)[1]))
    # A folder can also become a video at its frame rate.
    video = tmp_path / "frames.mp4"
    transcode(folder, video, **FAST)
    assert timing(video)["pts"] == [Fraction(i, 25) for i in range(5)]


def test_image_to_video_and_video_to_image(tmp_path):
    import cv2

    from vretouch_cli.errors import OutputError

    img = make_frames(1, 64, 48)[0]
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), img[..., ::-1])
    video = tmp_path / "still.mp4"
    transcode(still, video, **FAST)
    info, frames = read_all(video)
    assert len(frames) == 1 and (info.width, info.height) == (64, 48)
    assert mean_error(frames[0].image, img) < 4
    clip = write_test_video(tmp_path / "clip.mp4", make_frames(3, 64, 48))
    with open_source(clip) as s:
        with pytest.raises(OutputError, match="one frame"):
            open_sink(tmp_path / "out.png", s)
