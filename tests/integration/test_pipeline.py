"""End-to-end pipeline on the shipped demo clip with a seeded tiny model (issue 2)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vretouch_cli.pipeline import open_stream, retouch_video
from vretouch_cli.video import open_source


def decode(path):
    with open_source(path) as src:
        frames = list(src)
        return src.info, frames


def test_run_keeps_frames_and_timing(demo_clip, tiny_weights, tmp_path):
    out = tmp_path / "out.mp4"
    report = retouch_video(demo_clip, out, weights=tiny_weights, device="cpu")
    assert out.is_file()
    info_in, frames_in = decode(demo_clip)
    info_out, frames_out = decode(out)
    assert report.frames == len(frames_in) == len(frames_out) == 48
    assert [f.pts for f in frames_in] == [f.pts for f in frames_out]
    assert info_out.fps == info_in.fps
    assert report.face_frames >= 47  # a face on (nearly) every frame
    assert report.tracks == 1
    assert set(report.stage_seconds) >= {"decode", "detect", "align", "model", "paste", "encode"}


def test_lossless_output_is_bit_identical_outside_faces(demo_clip, tiny_weights, tmp_path):
    """With ffv1, every pixel outside the faces' paste footprint equals the decoded input."""
    from vretouch_cli.face.paste import face_region_mask, warp_mask_to_frame

    out = tmp_path / "out.mkv"
    retouch_video(demo_clip, out, weights=tiny_weights, device="cpu", codec="ffv1")
    _, frames_in = decode(demo_clip)
    _, frames_out = decode(out)
    stream = open_stream(demo_clip, weights=tiny_weights, device="cpu")
    changed_somewhere = False
    for result, fin, fout in zip(stream, frames_in, frames_out):
        footprint = np.zeros(fin.image.shape[:2], np.float32)
        for face in result.faces:
            region = face_region_mask(face.mask_crop.shape[0])
            footprint = np.maximum(footprint, warp_mask_to_frame(region, face.affine, footprint.shape))
        outside = footprint == 0
        assert outside.mean() > 0.3
        assert np.array_equal(fin.image[outside], fout.image[outside])
        assert np.array_equal(fout.image, result.retouched)
        changed_somewhere |= not np.array_equal(fin.image, fout.image)
    stream.source.close()
    assert changed_somewhere  # the model did edit something inside the face


def test_strength_zero_changes_nothing(demo_clip, tiny_weights, tmp_path):
    stream = open_stream(demo_clip, weights=tiny_weights, device="cpu", strength=0.0)
    for result in stream:
        assert np.array_equal(result.frame.image, result.retouched)
    stream.source.close()


@pytest.mark.parametrize("window", [1, 3])
def test_buffer_stays_bounded(demo_clip, tiny_weights, window):
    stream = open_stream(demo_clip, weights=tiny_weights, device="cpu", window=window)
    peak = 0
    count = 0
    for _ in stream:
        peak = max(peak, stream.buffered)
        count += 1
    stream.source.close()
    assert count == 48
    assert peak <= stream.tracker.lag + window + 3


def test_compare_writes_side_by_side(demo_clip, tiny_weights, tmp_path):
    out = tmp_path / "cmp.mp4"
    retouch_video(demo_clip, out, weights=tiny_weights, device="cpu", compare=True, start=0.4, duration=0.8)
    info, frames = decode(out)
    assert info.width == 1024 and info.height == 512
    assert 18 <= len(frames) <= 22  # 0.8 s at 25 fps


def test_image_input(demo_clip, tiny_weights, tmp_path):
    import cv2

    _, frames = decode(demo_clip)
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(frames[0].image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "face_out.png"
    report = retouch_video(image, out, weights=tiny_weights, device="cpu")
    assert report.frames == 1 and report.face_frames == 1
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_audio_is_copied_packet_for_packet(demo_clip, tiny_weights, tmp_path):
    """A real face clip with an AAC track: every audio packet's payload survives a run."""
    from vretouch_cli.video.testclips import audio_packet_hashes, write_test_video

    _, frames = decode(demo_clip)
    clip = tmp_path / "with_audio.mp4"
    write_test_video(clip, [f.image for f in frames[:12]], fps=25, audio="aac")
    out = tmp_path / "out.mp4"
    retouch_video(clip, out, weights=tiny_weights, device="cpu")
    assert audio_packet_hashes(out) == audio_packet_hashes(clip)
    assert audio_packet_hashes(clip)
