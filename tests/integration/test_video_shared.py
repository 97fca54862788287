"""Video I/O on real clips from ../shared/data/videos (skipped when ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vretouch_cli.video import open_source
from vretouch_cli.video.testclips import audio_packet_hashes, probe, transcode

pytestmark = pytest.mark.shared

SHARED_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"


@pytest.fixture(scope="module")
def videos() -> Path:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip("../shared/data/videos is absent (development data; a user's clone does not have it)")
    return SHARED_VIDEOS


def video_timing(path):
    info = probe(path)
    v = next(s for s in info["streams"] if s["type"] == "video")
    tb = v["time_base"]
    return [p * tb for p in v["pts"]], [d * tb for d in v["durations"]], v["average_rate"]


@pytest.mark.slow
def test_hevc_vfr_mov_keeps_every_pts(videos, tmp_path):
    src = videos / "face_appears_hevc_vfr.mov"
    with open_source(src) as s:
        info = s.info
        assert (info.width, info.height, info.codec, info.bit_depth) == (960, 540, "hevc", 8)
        assert info.has_audio and info.audio_codecs == ["aac"]
    out = tmp_path / "out.mov"
    transcode(src, out, preset="ultrafast", crf=30)
    pts_in, dur_in, rate_in = video_timing(src)
    pts_out, dur_out, rate_out = video_timing(out)
    assert len(pts_out) == len(pts_in) == 169
    assert pts_out == pts_in
    assert dur_out == dur_in
    assert rate_out == rate_in
    assert audio_packet_hashes(out) == audio_packet_hashes(src)
    # BT.709 tags of the phone clip survive.
    v = next(s for s in probe(out)["streams"] if s["type"] == "video")
    assert (v["color_primaries"], v["color_trc"], v["colorspace"]) == (1, 1, 1)


def test_mp3_audio_packets_are_copied(videos, tmp_path):
    src = videos / "man_360p_mp3audio.mp4"
    with open_source(src) as s:
        assert s.info.audio_codecs == ["mp3"]
    out = tmp_path / "out.mp4"
    transcode(src, out, preset="ultrafast", crf=30)
    hashes = audio_packet_hashes(src)
    assert len(hashes[0]) == 93
    assert audio_packet_hashes(out) == hashes
    assert video_timing(out) == video_timing(src)
    assert probe(out)["duration"] == pytest.approx(probe(src)["duration"], abs=1e-3)
