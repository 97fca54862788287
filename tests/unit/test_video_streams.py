"""Audio and subtitle streams are remuxed packet for packet, with their metadata."""

from __future__ import annotations

import logging

import pytest

from vretouch_cli.video import open_source
from vretouch_cli.video.testclips import (
    audio_packet_hashes,
    make_frames,
    probe,
    transcode,
    write_test_video,
)

FAST = {"preset": "ultrafast"}


def subtitle_cues(path):
    import av  # tests of video/ may use PyAV directly

    with av.open(str(path)) as c:
        s = c.streams.subtitles[0]
        return [
            (round(float(p.pts * p.time_base), 3), round(float(p.duration * p.time_base), 3), bytes(p))
            for p in c.demux(s)
            if p.size > 2
        ]


def streams_of(path, kind):
    return [s for s in probe(path)["streams"] if s["type"] == kind]


@pytest.mark.parametrize("audio, codecs", [("aac", ["aac"]), ("mp3", ["mp3"]), ("aac2", ["aac", "aac"])])
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_every_audio_packet_is_copied(tmp_path, audio, codecs, container):
    src = write_test_video(tmp_path / "in.mp4", make_frames(15, 64, 48), audio=audio)
    with open_source(src) as s:
        assert s.info.has_audio and s.info.audio_codecs == codecs
    out = tmp_path / f"out.{container}"
    transcode(src, out, **FAST)
    hashes_in, hashes_out = audio_packet_hashes(src), audio_packet_hashes(out)
    assert len(hashes_in) == len(codecs) and all(len(h) > 10 for h in hashes_in)
    assert hashes_out == hashes_in  # sha256 of every payload, per stream, in order
    assert [s["codec"] for s in streams_of(out, "audio")] == codecs


def test_audio_stream_metadata_is_kept(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(5, 64, 48), audio="aac2")
    for container in ("mp4", "mkv"):
        out = tmp_path / f"out.{container}"
        transcode(src, out, **FAST)
        langs = [s["language"] for s in streams_of(out, "audio")]
        titles = [s["metadata"].get("title") or s["metadata"].get("name") for s in streams_of(out, "audio")]
        assert langs == ["eng", "fra"]
        assert titles == ["English", "Français"]


def test_subtitles_are_copied_where_the_container_allows(tmp_path, caplog):
    src = write_test_video(tmp_path / "in.mp4", make_frames(10, 64, 48), audio="aac", subtitles=[(0.05, 0.3, "Hello")])
    out = tmp_path / "out.mp4"
    transcode(src, out, **FAST)
    subs = streams_of(out, "subtitle")
    assert [(s["codec"], s["language"]) for s in subs] == [("mov_text", "eng")]
    # Same cues (payload and time); the muxer re-creates the empty gap samples itself.
    assert subtitle_cues(out) == subtitle_cues(src) == [(0.05, 0.25, b"\x00\x05Hello")]
    # Matroska cannot hold mov_text: the stream is left out with a warning, audio still copied.
    with caplog.at_level(logging.WARNING, logger="vretouch_cli.video"):
        transcode(src, tmp_path / "out.mkv", **FAST)
    assert "subtitle stream" in caplog.text and "left out" in caplog.text
    assert streams_of(tmp_path / "out.mkv", "subtitle") == []
    assert audio_packet_hashes(tmp_path / "out.mkv") == audio_packet_hashes(src)


def test_webm_leaves_out_aac_with_a_warning(tmp_path, caplog):
    src = write_test_video(tmp_path / "in.mp4", make_frames(5, 64, 48), audio="aac")
    with caplog.at_level(logging.WARNING, logger="vretouch_cli.video"):
        transcode(src, tmp_path / "out.webm", codec="libvpx-vp9", **FAST)
    assert "cannot be stored in webm" in caplog.text
    assert [s["type"] for s in probe(tmp_path / "out.webm")["streams"]] == ["video"]


def test_trimmed_audio_is_a_contiguous_run_of_the_input_packets(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(50, 64, 48), fps=25, audio="mp3")
    out = tmp_path / "out.mp4"
    transcode(src, out, start=0.5, duration=0.8, **FAST)
    full, cut = audio_packet_hashes(src)[0], audio_packet_hashes(out)[0]
    assert 0.7 * 0.8 * 44100 / 1152 < len(cut) < 1.3 * 0.8 * 44100 / 1152 + 2
    i = full.index(cut[0])
    assert full[i : i + len(cut)] == cut
    assert 0.4 * 44100 / 1152 < i < 0.6 * 44100 / 1152 + 2  # starts near 0.5 s
    # Audio starts with the video at 0 in the output, not 0.5 s late.
    info = probe(out)
    assert info["duration"] == pytest.approx(0.8, abs=0.06)


def test_duration_only_keeps_the_audio_from_the_start(tmp_path):
    src = write_test_video(tmp_path / "in.mp4", make_frames(25, 64, 48), fps=25, audio="aac")
    out = tmp_path / "out.mp4"
    transcode(src, out, duration=0.5, **FAST)
    full, cut = audio_packet_hashes(src)[0], audio_packet_hashes(out)[0]
    assert cut == full[: len(cut)] and len(cut) >= 0.5 * 48000 / 1024 - 1
