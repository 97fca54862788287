"""``vretouch masks`` (issue 5, acceptance): one map per frame and face, videos with the input's timing.

Clips: a synthetic variable-frame-rate clip made from the first frames of the shipped demo clip
(a real, detectable face: random noise has none), a synthetic clip of noise (the no-face path:
zero maps, black mask video), and ``../shared/data/videos/talking_512_noaudio.mp4`` (skipped when
absent). The model is a seeded ``tiny`` model at S = 64 so that every test runs in seconds.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from _helpers import cli

MAP_RE = re.compile(r"^frame_(\d{6})_face_(\d{3})\.png$")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def video_timing(path: Path) -> tuple[list[int], Fraction, Fraction | None]:
    from vretouch_cli.video.testclips import probe

    v = [s for s in probe(path)["streams"] if s["type"] == "video"][0]
    return v["pts"], v["time_base"], v["average_rate"]


def maps_of(folder: Path) -> dict[int, list[int]]:
    """frame index → track ids of the PNG maps written."""
    out: dict[int, list[int]] = {}
    for p in sorted((folder / "maps").iterdir()):
        m = MAP_RE.match(p.name)
        assert m, p.name
        out.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return out


def check_outputs(folder: Path, source: Path, frames: int, faces_per_frame: int | None) -> dict[int, list[int]]:
    from vretouch_cli.video.testclips import decode_frames

    pts_in, tb_in, _ = video_timing(source)
    assert len(pts_in) == frames
    for name in ("mask.mp4", "overlay.mp4"):
        pts, tb, _ = video_timing(folder / name)
        assert len(pts) == frames, name
        assert [float(p * tb) for p in pts] == pytest.approx([float(p * tb_in) for p in pts_in], abs=1e-3), name
    maps = maps_of(folder)
    if faces_per_frame == 0:
        assert maps == {}
    elif faces_per_frame is not None:
        assert {i: len(t) for i, t in maps.items()} == {i: faces_per_frame for i in range(frames)}
    h, w = decode_frames(source)[0].shape[:2]
    for p in list((folder / "maps").iterdir())[:3]:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img.shape == (h, w) and img.dtype == np.uint8
    return maps


@pytest.mark.slow
def test_masks_synthetic_vfr_face_clip(tmp_path, demo_clip, micro_weights, capsys):
    from vretouch_cli.video import open_source
    from vretouch_cli.video.testclips import write_test_video

    with open_source(demo_clip) as src:
        frames = [f.image for f, _ in zip(src, range(6))]
    clip = write_test_video(tmp_path / "vfr.mp4", frames, pts=[0, 40, 90, 120, 170, 200], time_base=Fraction(1, 1000))
    out = tmp_path / "masks"
    assert cli(["masks", clip, "-o", out, "--weights", micro_weights, "--device", "cpu"]) == 0, capsys.readouterr().err
    assert "6 frames, 6 with faces, 1 face track:" in capsys.readouterr().err.replace("\n", " ")
    check_outputs(out, clip, 6, 1)
    # The mask video is the union of the maps; the overlay equals the frame where the map is 0.
    from vretouch_cli.video.testclips import decode_frames

    mask = decode_frames(out / "mask.mp4")[2]
    png = cv2.imread(str(out / "maps" / "frame_000002_face_000.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(mask[..., 0].astype(int) - png.astype(int)).mean() < 2.0  # codec noise only
    # Rerunning into the same folder needs --overwrite.
    assert cli(["masks", clip, "-o", out, "--weights", micro_weights, "--device", "cpu"]) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert cli(["masks", clip, "-o", out, "--weights", micro_weights, "--device", "cpu", "--overwrite", "-q"]) == 0
    check_outputs(out, clip, 6, 1)


def test_masks_no_face_writes_zero_maps_and_black_video(tmp_path, micro_weights, capsys):
    from vretouch_cli.video.testclips import decode_frames, make_frames, write_test_video

    clip = write_test_video(tmp_path / "noise.mp4", make_frames(5, 64, 48), fps=30)
    out = tmp_path / "masks"
    assert cli(["masks", clip, "-o", out, "--weights", micro_weights, "--device", "cpu"]) == 0
    assert "no face found" in capsys.readouterr().err
    check_outputs(out, clip, 5, 0)
    assert video_timing(out / "mask.mp4")[2] == 30
    assert max(int(f.max()) for f in decode_frames(out / "mask.mp4")) <= 2


@pytest.mark.slow
@pytest.mark.shared
def test_masks_shared_talking_clip(tmp_path, shared_videos, micro_weights, capsys):
    clip = shared_videos / "talking_512_noaudio.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    out = tmp_path / "masks"
    assert cli(["masks", clip, "-o", out, "--weights", micro_weights, "--device", "cpu", "-q"]) == 0, capsys.readouterr().err
    maps = check_outputs(out, clip, 78, None)
    assert len(maps) >= 76 and all(len(t) == 1 for t in maps.values())  # one face on (nearly) every frame
    assert video_timing(out / "overlay.mp4")[2] == 25


def _still_masks(tmp_path, demo_clip, micro_weights) -> tuple[Path, np.ndarray]:
    from vretouch_cli.video import open_source

    with open_source(demo_clip) as src:
        image = next(iter(src)).image
    still = tmp_path / "face.png"
    cv2.imwrite(str(still), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "masks"
    assert cli(["masks", still, "-o", out, "--weights", micro_weights, "--device", "cpu", "-q"]) == 0
    return out, image


def test_masks_image_input_writes_pngs(tmp_path, demo_clip, micro_weights):
    out, image = _still_masks(tmp_path, demo_clip, micro_weights)
    for name in ("mask.png", "overlay.png"):
        assert cv2.imread(str(out / name)).shape == image.shape
    assert not (out / "mask.mp4").exists()


def test_masks_image_input_finds_the_face(tmp_path, demo_clip, micro_weights):
    out, _ = _still_masks(tmp_path, demo_clip, micro_weights)
    assert maps_of(out) == {0: [0]}


def test_overlay_and_mask_images():
    from vretouch_cli.masks import mask_image, overlay_image

    frame = np.full((8, 8, 3), 100, np.uint8)
    zero = np.zeros((8, 8), np.float32)
    assert np.array_equal(overlay_image(frame, zero), frame)
    m = zero.copy()
    m[2, 2] = 1.0
    over = overlay_image(frame, m)
    assert not np.array_equal(over[2, 2], frame[2, 2]) and np.array_equal(over[0, 0], frame[0, 0])
    deep = overlay_image(frame.astype(np.uint16) * 257, m)
    assert deep.dtype == np.uint16 and np.array_equal(deep[0, 0], [25700] * 3)
    assert mask_image(m, np.uint8)[2, 2].tolist() == [255] * 3
    assert mask_image(m, np.uint16)[2, 2].tolist() == [65535] * 3
