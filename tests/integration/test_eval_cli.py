"""``vretouch eval --mrfv`` end to end on a small MRFV-layout folder (issue 5, acceptance).

The folder holds two clips: ``face`` (the first frames of the shipped demo clip as PNG folders,
raw = retouched + synthetic dark spots on the face, so nothing is lost to a codec) and
``noface`` (synthetic frames as two H.264 videos, no face: the face metrics are undefined there).
The model is a seeded ``tiny`` model at S = 64, so the whole pipeline runs in seconds on a CPU.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from _helpers import cli
from vretouch_cli.evaluate.report import SUMMARY_METRICS

METHODS = ("raw", "single_frame", "vretouch")
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread: the test machine's cores are shared, and oversubscription is 10× slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    for name in ("VRETOUCH_LPIPS_ALEX", "VRETOUCH_LPIPS_VGG", "VRETOUCH_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(before)


def _spots(image: np.ndarray, centre: tuple[int, int], radius: int, n: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = image.copy()
    for _ in range(n):
        x = int(centre[0] + rng.integers(-radius, radius))
        y = int(centre[1] + rng.integers(-radius, radius))
        cv2.circle(out, (x, y), 3, (120, 60, 60), -1)
    return out


def _write_png(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def mrfv_dir(tmp_path_factory, demo_clip) -> Path:
    from vretouch_cli.video import open_source
    from vretouch_cli.video.testclips import make_frames, write_test_video

    root = tmp_path_factory.mktemp("mrfv")
    face = root / "face"
    (face / "raw").mkdir(parents=True)
    (face / "retouched").mkdir()
    with open_source(demo_clip) as src:
        for frame in src:
            if frame.index == 4:
                break
            _write_png(face / "retouched" / f"{frame.index:04d}.png", frame.image)
            _write_png(face / "raw" / f"{frame.index:04d}.png", _spots(frame.image, (256, 330), 60))
    frames = make_frames(4, 96, 64)
    noface = root / "noface"
    noface.mkdir()
    write_test_video(noface / "retouched.mp4", frames)
    write_test_video(noface / "raw.mp4", [_spots(f, (48, 32), 20) for f in frames])
    return root


def _decode(path: Path) -> list[np.ndarray]:
    from vretouch_cli.video import open_source

    with open_source(path) as src:
        return [f.image for f in src]


@pytest.mark.slow
def test_eval_mrfv_writes_every_metric_table_csv_plots(mrfv_dir, micro_weights, tmp_path, capsys):
    alex = SHARED / "weights" / "lpips_alex.safetensors"  # LPIPS-alex is scored when ../shared has it
    args = [
        "eval", "--mrfv", mrfv_dir, "--weights", micro_weights, "--device", "cpu",
        "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--plots", tmp_path / "plots",
    ]
    if alex.is_file():
        args += ["--lpips-alex", alex]
    assert cli(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "PSNR" in out and "Soft-IoU" in out and "raw input" in out

    data = json.loads((tmp_path / "r.json").read_text())
    assert data["dataset"] == "mrfv" and set(data["methods"]) == set(METHODS)
    assert [c["name"] for c in data["clips"]] == ["face", "noface"]
    for clip in data["clips"]:
        assert clip["frames"] == 4
        for method in METHODS:
            assert set(SUMMARY_METRICS) <= set(clip["summary"][method]), method
            assert len(clip["per_frame"][method]["psnr"]) == 4
    assert data["unavailable"]["vfid"] and data["clips"][0]["summary"]["vretouch"]["vfid"] == "unavailable"
    assert data["clips"][0]["summary"]["raw"]["lpips_vgg"] == "unavailable"
    if alex.is_file():
        assert 0 < data["clips"][0]["summary"]["raw"]["lpips_alex"] < 1
        assert data["settings"]["lpips_alex"]["pinned"] is True

    # The raw baseline's PSNR equals a direct computation (clip PSNR = 10·log10(255² / mean MSE)).
    for clip in data["clips"]:
        folder = mrfv_dir / clip["name"]
        side = (lambda s: folder / s) if clip["name"] == "face" else (lambda s: folder / f"{s}.mp4")
        raw, ref = _decode(side("raw")), _decode(side("retouched"))
        mses = [np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) for a, b in zip(raw, ref)]
        assert clip["summary"]["raw"]["psnr"] == pytest.approx(10 * math.log10(255**2 / np.mean(mses)), abs=1e-6)
        assert clip["per_frame"]["raw"]["psnr"][0] == pytest.approx(10 * math.log10(255**2 / mses[0]), abs=1e-6)

    face, noface = data["clips"]
    assert face["info"]["face_frames"] == 4 and noface["info"]["face_frames"] == 0
    assert face["summary"]["raw"]["psnr_face"] < face["summary"]["raw"]["psnr"]  # the spots are on the face
    assert noface["summary"]["raw"]["psnr_face"] is None  # no face: undefined, written as null
    assert face["summary"]["raw"]["soft_iou"] == 0.0  # no edit predicts nothing
    assert 0 < face["summary"]["vretouch"]["soft_iou"] < 1

    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 3 * 3 and {r["clip"] for r in rows} == {"face", "noface", "ALL"}
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == ["face.psnr.png", "face.soft_iou.png", "noface.psnr.png", "noface.soft_iou.png"]


def test_eval_usage_and_layout_errors(tmp_path, micro_weights, capsys):
    assert cli(["eval", "--weights", micro_weights]) == 2
    assert "exactly one of --mrfv" in capsys.readouterr().err
    assert cli(["eval", "--mrfv", tmp_path, "--ffhqr", tmp_path]) == 2
    capsys.readouterr()
    assert cli(["eval", "--mrfv", tmp_path / "nope", "--weights", micro_weights, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder" in err[0]
    assert cli(["eval", "--mrfv", tmp_path, "--lpips-vgg", tmp_path / "missing.safetensors"]) == 5
    assert "missing.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_frame_count_mismatch_is_one_line(tmp_path, demo_clip, micro_weights, capsys):
    from vretouch_cli.video import open_source

    clip = tmp_path / "mrfv" / "c"
    (clip / "raw").mkdir(parents=True)
    (clip / "retouched").mkdir()
    with open_source(demo_clip) as src:
        for frame in src:
            if frame.index == 3:
                break
            _write_png(clip / "raw" / f"{frame.index:04d}.png", frame.image)
            if frame.index < 2:
                _write_png(clip / "retouched" / f"{frame.index:04d}.png", frame.image)
    code = cli(["eval", "--mrfv", tmp_path / "mrfv", "--weights", micro_weights, "--device", "cpu", "--json", tmp_path / "r.json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "same frame count" in err[0], err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_eval_ffhqr_cli(tmp_path, micro_weights, capsys):
    rng = np.random.default_rng(0)
    for sub in ("source", "target"):
        (tmp_path / "ffhqr" / "test" / sub).mkdir(parents=True)
    for i in range(2):
        target = cv2.normalize(cv2.GaussianBlur((rng.random((96, 96, 3)) * 255).astype(np.uint8), (0, 0), 4), None, 60, 200, cv2.NORM_MINMAX)
        _write_png(tmp_path / "ffhqr" / "test" / "target" / f"{i:05d}.png", target)
        _write_png(tmp_path / "ffhqr" / "test" / "source" / f"{i:05d}.png", _spots(target, (48, 48), 25, seed=i))
    args = ["eval", "--ffhqr", tmp_path / "ffhqr", "--weights", micro_weights, "--device", "cpu", "--limit", "1",
            "--seq-frames", "3", "--json", tmp_path / "r.json", "--plots", tmp_path / "plots"]
    assert cli(args) == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["dataset"] == "ffhqr" and data["settings"]["pairs"] == 1
    assert [(c["name"], c["frames"]) for c in data["clips"]] == [("ffhqr-test", 1), ("ffhqr-seq", 3)]
    assert data["clips"][0]["summary"]["raw"]["psnr"] < 60 and data["clips"][1]["summary"]["vretouch"]["flicker"] is not None
    assert len(list((tmp_path / "plots").iterdir())) == 4
