"""``vretouch train`` end to end on CPU (issue 4 acceptance): checkpoints, exact resume, export,
time budget, DDP with torchrun (gloo), and the synthetic-imperfection mode on ../shared faces."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from _helpers import write_ffhqr

REPO = Path(__file__).resolve().parents[2]


def vretouch(*args) -> None:
    """``main([...])`` of the real CLI (SystemExit on errors). Command modules that other issues
    have not written yet are left out of the registration, so this file tests ``train`` alone."""
    from vretouch_cli import cli

    present = tuple(m for m in cli._COMMAND_MODULES if importlib.util.find_spec(f"vretouch_cli.cli.{m}"))
    with mock.patch.object(cli, "_COMMAND_MODULES", present):
        cli.main([str(a) for a in args])


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_vgg(path: Path) -> Path:
    """A random VGG-16-shaped safetensors (13 convs, 4–32 channels): the perceptual term, cheaply."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    tensors, cin, i = {}, 3, 0
    for b, n in enumerate((2, 2, 3, 3, 3)):
        cout = 4 * 2 ** min(b, 3)
        for _ in range(n):
            tensors[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.3
            tensors[f"features.{i}.bias"] = torch.zeros(cout)
            cin, i = cout, i + 1
    save_file(tensors, str(path))
    return path


@pytest.fixture(scope="module")
def ffhqr(tmp_path_factory) -> Path:
    return write_ffhqr(tmp_path_factory.mktemp("ffhqr") / "data")


# Tiny everything: preset tiny at S=32 with δ=1 (T=2 frames), a narrow D, batch 1, all loss terms on.
def common(data: Path, vgg: Path) -> list[str]:
    return [
        "--data", data, "--preset", "tiny", "--size", "32", "--window", "1", "--model-option", "disc_channels=16",
        "--batch-size", "1", "--val-items", "2", "--val-every", "20", "--log-every", "5", "--vgg-weights", vgg,
        "--device", "cpu", "--quiet",
    ]


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_checkpoint_and_exact_resume(tmp_path, ffhqr):
    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.train.state import load_checkpoint

    vgg = tiny_vgg(tmp_path / "vgg.safetensors")
    a, c = tmp_path / "A", tmp_path / "C"
    vretouch("train", *common(ffhqr, vgg), "--steps", "20", "--ckpt-every", "20", "--out", a)
    assert (a / "checkpoints" / "latest").read_text().strip() == "step_00000020.pt"
    for name in ("log.jsonl", "plot.png", "samples/val_latest.png", "weights_ema.safetensors"):
        assert (a / name).is_file(), name
    kinds = {r["kind"] for r in read_log(a)}
    assert {"start", "train", "val", "checkpoint", "export", "end"} <= kinds
    val = [r for r in read_log(a) if r["kind"] == "val"][-1]["metrics"]
    assert {"psnr", "psnr_raw", "psnr_gain", "ssim", "soft_iou"} <= set(val) and all(np.isfinite(list(val.values())))
    model = load_model(a / "weights_ema.safetensors")
    assert model.config.size == 32 and model.config.delta == 1
    st20 = load_checkpoint(a)
    assert st20["step"] == 20 and {"G", "G_ema", "D", "opt_G", "opt_D", "scaler", "rng"} <= set(st20)

    vretouch("train", "--out", a, "--resume", "--steps", "40", "--device", "cpu", "--quiet")
    vretouch("train", *common(ffhqr, vgg), "--steps", "40", "--ckpt-every", "20", "--out", c)
    ra, rc = load_checkpoint(a), load_checkpoint(c)
    assert ra["step"] == rc["step"] == 40
    for key in ("G", "G_ema", "D"):
        worst = max(float((ra[key][k].float() - rc[key][k].float()).abs().max()) for k in rc[key])
        assert worst <= 1e-6, (key, worst)
    for key in ("opt_G", "opt_D"):
        for pid, s in rc[key]["state"].items():
            assert torch.allclose(ra[key]["state"][pid]["exp_avg"], s["exp_avg"], atol=1e-6, rtol=0)
    # the resumed log continues the first run's (no duplicated steps)
    steps = [r["step"] for r in read_log(a) if r["kind"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 40

    # export of a run folder: self-describing inference weights equal to the EMA generator
    w = tmp_path / "exported.safetensors"
    vretouch("train", "--export", a, "-o", w)
    exported = load_model(w)
    for k, v in exported.state_dict().items():
        assert torch.equal(v, ra["G_ema"][k].to(v.dtype)), k


def test_max_minutes_stops_cleanly(tmp_path, ffhqr):
    run = tmp_path / "R"
    vretouch("train", *common(ffhqr, "none"), "--steps", "100000", "--max-minutes", "0.05", "--out", run)
    end = [r for r in read_log(run) if r["kind"] == "end"][-1]
    assert end["stopped_by_time"] and 0 < end["step"] < 100000
    assert (run / "checkpoints" / f"step_{end['step']:08d}.pt").is_file()
    assert (run / "weights_ema.safetensors").is_file()


def test_temporal_term_and_decaying_lr(tmp_path, ffhqr, capsys):
    """--w-temporal trains on δ > 1 clips with the flicker term logged (and --w-spot-l2 its squared
    blemish term); --lr-final decays the LR over --steps, and a resume may not move --steps under
    it (one line)."""
    run = tmp_path / "T"
    args = [*common(ffhqr, "none"), "--window", "2", "--objective", "balanced", "--w-adv", "0", "--w-temporal", "2",
            "--w-spot-l2", "50", "--lr-final", "0.1", "--lr", "1e-3", "--steps", "10", "--ckpt-every", "10", "--out", run]
    vretouch("train", *args)
    rows = [r for r in read_log(run) if r["kind"] == "train"]
    assert rows and all("temporal" in r["losses"] and np.isfinite(r["losses"]["temporal"]) for r in rows), rows[-1]
    assert all(np.isfinite(r["losses"]["spot_l2"]) and r["losses"]["spot_l2"] >= 0 for r in rows), rows[-1]
    lrs = [r["lr"] for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1] >= 1e-4
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        vretouch("train", "--out", run, "--resume", "--steps", "20", "--device", "cpu", "--quiet")
    err = capsys.readouterr().err.strip()
    assert info.value.code != 0 and len(err.splitlines()) == 1 and "--lr-final" in err, err


def test_usage_errors_are_one_line(tmp_path, ffhqr, capsys):
    for args, needle in (
        (["train", "--out", tmp_path / "nothing", "--resume"], "no checkpoint"),
        (["train", "--out", tmp_path / "x"], "--data"),
        (["train", "--data", ffhqr, "--out", tmp_path / "y", "--preset", "huge"], "preset"),
        (["train", "--data", ffhqr, "--out", tmp_path / "z", "--gt-scale", "0"], "--gt-scale"),
        (["train", "--data", ffhqr, "--out", tmp_path / "l", "--lr-final", "2"], "--lr-final"),
        (["train", "--data", ffhqr, "--out", tmp_path / "c", "--model-option", 'classes=["acne","mole"]'], "class heads"),
        (["train", "--data", ffhqr, "--out", tmp_path / "m", "--map-target", "exact"], "change before the camera"),
        (["train", "--data", ffhqr, "--out", tmp_path / "n", "--map-target", "sharp"], "--map-target"),
        (["train", "--export", tmp_path / "nothing", "-o", tmp_path / "w.safetensors"], "no checkpoint"),
        (["train", "--build-cache", tmp_path, "-o", tmp_path / "cc", "--cache-dark-tone", "1.5"], "--cache-dark-tone"),
        (["train", "--data", ffhqr, "--out", tmp_path / "d", "--cache-dark-tone", "0.5"], "--build-cache"),
    ):
        with pytest.raises(SystemExit) as info:
            vretouch(*args)
        err = capsys.readouterr().err.strip()
        assert info.value.code != 0 and len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.slow
def test_torchrun_two_ranks_end_identical(tmp_path, ffhqr):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    # The same command as `torchrun -m vretouch_cli train ...`, through a script so that only the
    # train command is registered (other commands may still be in the works).
    script = tmp_path / "entry.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(REPO)!r})
            import typer
            from vretouch_cli.cli import train
            app = typer.Typer()
            train.register(app)
            @app.callback()
            def _root() -> None: ...
            app(args=sys.argv[1:], prog_name="vretouch")
            """
        )
    )
    run = tmp_path / "DDP"
    args = [*common(ffhqr, "none"), "--steps", "10", "--val-every", "0", "--out", run]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), "train", *map(str, args)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    end = [r for r in read_log(run) if r["kind"] == "end"][-1]
    start = [r for r in read_log(run) if r["kind"] == "start"][-1]
    assert start["info"]["world"] == 2 and end["step"] == 10
    digests = end["param_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]


# ------------------------------------------------------------------ synthetic mode on real faces


@pytest.fixture(scope="module")
def photos(tmp_path_factory, shared_dir) -> Path:
    faces = shared_dir / "data" / "faces" / "frll_london"
    if not faces.is_dir():
        pytest.skip("../shared/data/faces is absent")
    root = tmp_path_factory.mktemp("photos") / "faces"
    (root / "frll_london").mkdir(parents=True)
    for person in ("001", "002", "003", "004"):
        for shot in ("03", "08"):
            src = faces / f"{person}_{shot}.jpg"
            if src.is_file():
                (root / "frll_london" / src.name).symlink_to(src)
    return root


def test_synthetic_preview_on_shared_faces(tmp_path, photos, capsys):
    sheet = tmp_path / "preview.png"
    vretouch("train", "--preview-data", "--data", photos, "-o", sheet, "--preset", "tiny", "--size", "192", "--preview-count", "4", "--device", "cpu")
    err = " ".join(capsys.readouterr().err.split())
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[0] >= 4 * 192
    m = re.search(r"ΔL\* = ([-+0-9.]+), Δa\* = ([-+0-9.]+)", err)
    assert m, err
    dL, da = float(m.group(1)), float(m.group(2))
    # MODEL.md §4: spots on average darker (ΔL* ≈ −4) and redder (Δa* ≈ +2) than the clean skin.
    assert -6.0 < dL < -2.5 and 1.0 < da < 3.5, (dL, da)


def test_prepare_faces_then_train_synthetic(tmp_path, photos, capsys):
    prep = tmp_path / "prep"
    vretouch("train", "--prepare-faces", photos, "-o", prep, "--size", "128")
    manifest = json.loads((prep / "prepared.json").read_text())
    assert len(manifest["items"]) == len(list(photos.rglob("*.jpg")))
    assert {it["identity"] for it in manifest["items"]} == {f"frll_london__{p}" for p in ("001", "002", "003", "004")}
    crop = cv2.imread(str(prep / manifest["items"][0]["file"]))
    assert crop.shape == (128, 128, 3)
    run = tmp_path / "S"
    # --workers 1: the loader's worker starts after the trainer ran OpenCV and torch (regression:
    # a plain fork then hung in the worker's cv2.setNumThreads; the DataLoader timeout is 300 s).
    vretouch("train", "--data", prep, "--preset", "tiny", "--size", "64", "--window", "1", "--steps", "2", "--batch-size", "1",
             "--val-items", "2", "--vgg-weights", "none", "--device", "cpu", "--workers", "1", "--out", run, "--quiet")
    start = [r for r in read_log(run) if r["kind"] == "start"][-1]
    assert start["info"]["train_items"] + start["info"]["val_items"] > 0
    msgs = " ".join(r["text"] for r in read_log(run) if r["kind"] == "message")
    assert "synthetic blemishes" in msgs and "people" in msgs
