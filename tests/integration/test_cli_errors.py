"""Bad input gets one clear line, a non-zero exit and nothing at OUTPUT (issue 2, acceptance)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vretouch_cli.cli import main


def run_cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    return int(info.value.code or 0), err


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "out.mp4"


def _nothing_at(path: Path) -> None:
    assert not path.exists()
    leftovers = [p.name for p in path.parent.iterdir() if "vretouch" in p.name]
    assert not leftovers, leftovers


def test_missing_file(tmp_path, out, tiny_weights, capsys):
    code, err = run_cli(["run", tmp_path / "nope.mp4", "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "not found")
    _nothing_at(out)


def test_directory_without_frames(tmp_path, out, tiny_weights, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    code, err = run_cli(["run", folder, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "empty")
    _nothing_at(out)


def test_zero_byte_file(tmp_path, out, tiny_weights, capsys):
    bad = tmp_path / "zero.mp4"
    bad.write_bytes(b"")
    code, err = run_cli(["run", bad, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "zero.mp4")
    _nothing_at(out)


def test_truncated_mp4(tmp_path, out, tiny_weights, demo_clip, capsys):
    bad = tmp_path / "truncated.mp4"
    data = demo_clip.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    code, err = run_cli(["run", bad, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "truncated.mp4")
    _nothing_at(out)


def test_text_file_named_mp4(tmp_path, out, tiny_weights, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    code, err = run_cli(["run", bad, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "notes.mp4")
    _nothing_at(out)


def test_audio_only_file(tmp_path, out, tiny_weights, capsys):
    from vretouch_cli.video.testclips import write_test_audio

    audio = tmp_path / "audio.m4a"
    write_test_audio(audio)
    code, err = run_cli(["run", audio, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "video stream")
    _nothing_at(out)


def test_missing_output_folder(tmp_path, demo_clip, tiny_weights, capsys):
    target = tmp_path / "missing" / "out.mp4"
    code, err = run_cli(["run", demo_clip, "-o", target, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "folder")
    assert not target.parent.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unwritable_output_folder(tmp_path, demo_clip, tiny_weights, capsys):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores permission bits: use a read-only mount instead
            target = Path("/proc/vretouch-out.mp4")
        else:
            target = folder / "out.mp4"
        code, err = run_cli(["run", demo_clip, "-o", target, "--weights", tiny_weights], capsys)
        assert_one_line_error(code, err, "writ")
        assert not target.exists()
    finally:
        folder.chmod(0o700)


def test_output_equal_to_input(tmp_path, demo_clip, tiny_weights, capsys):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(demo_clip, clip)
    before = clip.read_bytes()
    code, err = run_cli(["run", clip, "-o", clip, "--weights", tiny_weights, "--overwrite"], capsys)
    assert_one_line_error(code, err, "input")
    assert clip.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path, demo_clip, out, tiny_weights, capsys):
    out.write_bytes(b"keep me")
    code, err = run_cli(["run", demo_clip, "-o", out, "--weights", tiny_weights], capsys)
    assert_one_line_error(code, err, "--overwrite")
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--strength", "2"], "--strength"),
        (["--device", "quantum"], "unknown device"),
        (["--window", "12"], "--window"),
        (["--codec", "mpeg1"], "--codec"),
    ],
)
def test_bad_option_values(demo_clip, out, tiny_weights, capsys, extra, needle):
    code, err = run_cli(["run", demo_clip, "-o", out, "--weights", tiny_weights, *extra], capsys)
    assert_one_line_error(code, err, needle)
    _nothing_at(out)


def test_cuda_without_cuda(demo_clip, out, tiny_weights, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run_cli(["run", demo_clip, "-o", out, "--weights", tiny_weights, "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "cuda")
    _nothing_at(out)


def test_missing_weights(demo_clip, out, tmp_path, capsys):
    code, err = run_cli(["run", demo_clip, "-o", out, "--weights", tmp_path / "none.safetensors"], capsys)
    assert_one_line_error(code, err, "weights")
    _nothing_at(out)


def test_no_face_image_is_copied_through_with_warning(tmp_path, tiny_weights, capsys):
    import cv2

    image = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    target = tmp_path / "wall_out.png"
    main_args = ["run", image, "-o", target, "--weights", tiny_weights, "-q"]
    main([str(a) for a in main_args])
    err = capsys.readouterr().err
    assert "no face" in err.lower()
    assert target.read_bytes() == image.read_bytes()


def test_no_face_video_is_copied_through_with_warning(tmp_path, tiny_weights, capsys):
    from vretouch_cli.video.testclips import write_test_video

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    clip = tmp_path / "noface.mp4"
    write_test_video(clip, frames, fps=10)
    target = tmp_path / "noface_out.mp4"
    main([str(a) for a in ["run", clip, "-o", target, "--weights", tiny_weights, "-q"]])
    assert "no face" in capsys.readouterr().err.lower()
    assert target.read_bytes() == clip.read_bytes()


def test_subprocess_error_has_no_traceback(tmp_path):
    """The installed entry point itself: one line on stderr, exit code 2, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "vretouch_cli", "run", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
