"""Losses (M_gt, hinge, VGG perceptual and its weight resolution), checkpoints (atomic, killable), reports."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vretouch_cli.errors import WeightsError
from vretouch_cli.train import state as state_mod
from vretouch_cli.train.losses import (
    ENV_VGG,
    PerceptualLoss,
    build_perceptual,
    d_hinge_loss,
    g_hinge_loss,
    gt_imperfection_map,
    resolve_vgg_weights,
)
from vretouch_cli.train.report import JsonlLog, contact_sheet, flow_to_rgb, plot_log
from vretouch_cli.train.state import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_gt_map_identical_pairs_are_zero_and_finite():
    x = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    m = gt_imperfection_map(x, x.clone())
    assert m.shape == (2, 3, 1, 16, 16) and torch.count_nonzero(m) == 0 and torch.isfinite(m).all()
    y = x.clone()
    y[..., 4, 4] += 0.1  # 0.05 in [0, 1] units on every channel
    m = gt_imperfection_map(x, y, scale=0.1)
    assert torch.allclose(m[..., 4, 4], torch.full_like(m[..., 4, 4], 0.5), atol=1e-5)
    assert gt_imperfection_map(-torch.ones(1, 3, 2, 2), torch.ones(1, 3, 2, 2)).max() == 1.0  # clipped


def test_hinge_losses():
    real, fake = [torch.full((1, 1, 2, 2), 2.0)], [torch.full((1, 1, 2, 2), -2.0)]
    assert float(d_hinge_loss(real, fake)) == 0.0
    assert float(d_hinge_loss([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 2)])) == 2.0
    assert float(g_hinge_loss(fake)) == 2.0


def _tiny_vgg(path: Path, torchvision_layout: bool = False, width: int = 4) -> Path:
    """A random VGG-16-shaped file (13 convs) with small widths."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    blocks = (2, 2, 3, 3, 3)
    tensors, cin, idx = {}, 3, 0
    for b, n in enumerate(blocks):
        cout = width * 2 ** min(b, 3)
        for _ in range(n):
            key = idx if not torchvision_layout else idx * 2 + b  # sparse sequential indices
            tensors[f"features.{key}.weight"] = torch.randn(cout, cin, 3, 3) * 0.3
            tensors[f"features.{key}.bias"] = torch.zeros(cout)
            cin = cout
            idx += 1
    tensors["lin0.weight"] = torch.ones(1, width, 1, 1)  # extra LPIPS heads are ignored
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize("tv", [False, True])
def test_perceptual_loss_layouts_and_gradient(tmp_path, tv):
    loss = PerceptualLoss.from_file(_tiny_vgg(tmp_path / "v.safetensors", tv))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert float(loss(x, x)) == 0.0
    y = x.clone().requires_grad_(True)
    val = loss(y, torch.rand(2, 3, 32, 32) * 2 - 1)
    val.backward()
    assert val > 0 and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())


def test_vgg_weight_resolution(tmp_path, monkeypatch):
    f = _tiny_vgg(tmp_path / "v.safetensors")
    monkeypatch.delenv(ENV_VGG, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    assert resolve_vgg_weights(str(f)) == f
    assert resolve_vgg_weights("none") is None
    monkeypatch.setenv(ENV_VGG, str(f))
    assert resolve_vgg_weights(None) == f
    monkeypatch.setenv(ENV_VGG, str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsError, match=ENV_VGG):
        resolve_vgg_weights(None)
    monkeypatch.delenv(ENV_VGG)
    with pytest.warns(UserWarning, match="perceptual loss is SKIPPED.*--vgg-weights"):
        loss, msg = build_perceptual(None, ("relu1_2",))
    assert loss is None and ENV_VGG in msg


def test_shared_vgg16_loads(shared_dir):
    path = shared_dir / "weights" / "vgg16_lpips.safetensors"
    if not path.is_file():
        pytest.skip("no shared VGG-16")
    loss = PerceptualLoss.from_file(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(loss(x, x)) == 0.0 and float(loss(x, x.flip(-1))) > 0


# ------------------------------------------------------------------------- checkpoints


def _state(v: float) -> dict:
    return {"w": torch.full((1000,), v), "rng": [capture_rng()]}


def test_checkpoint_roundtrip_keep_and_latest(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, _state(step), keep=2)
    files = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert files == ["step_00000003.pt", "step_00000004.pt"]
    st = load_checkpoint(tmp_path)
    assert st["step"] == 4 and float(st["w"][0]) == 4.0


def test_writer_failing_mid_write_keeps_latest_readable(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 10, _state(10.0))

    def broken(obj, fh):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(state_mod, "_torch_save", broken)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 20, _state(20.0))
    assert load_checkpoint(tmp_path)["step"] == 10
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))
    assert not (tmp_path / "checkpoints" / "step_00000020.pt").exists()


def test_sigkill_during_writes_never_breaks_latest(tmp_path):
    """A writer process killed at random moments always leaves a loadable ``latest``."""
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from vretouch_cli.train.state import save_checkpoint
        big = torch.randn(1_000_000)  # 4 MB per file: the kill often lands inside a write
        step = int(sys.argv[2])
        print("ready", flush=True)
        while True:
            step += 1
            save_checkpoint(sys.argv[1], step, {{"w": big + step, "n": step}}, keep=2)
        """
    )
    runner = tmp_path / "writer.py"
    runner.write_text(script)
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(runner), str(tmp_path / "run"), str(last)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if latest_checkpoint(tmp_path / "run") is None:
            continue  # killed before the first file was complete
        st = load_checkpoint(tmp_path / "run")
        assert st["step"] >= last
        assert st["w"].shape == (1_000_000,) and st["n"] == st["step"]  # complete, readable tensors
        last = st["step"]
    assert last > 0


def test_rng_capture_restore():
    import random as pyrandom

    s = capture_rng()
    a = (pyrandom.random(), np.random.rand(), torch.rand(1).item())
    restore_rng(s)
    assert (pyrandom.random(), np.random.rand(), torch.rand(1).item()) == a


# ------------------------------------------------------------------------- reports


def test_reports(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    for step in range(1, 4):
        log.write({"kind": "train", "step": step, "losses": {"l1": 1.0 / step, "d": 2.0}})
    log.write({"kind": "val", "step": 3, "metrics": {"psnr": 30.0, "psnr_raw": 29.0, "psnr_gain": 1.0, "ssim": 0.9, "soft_iou": 0.3}})
    log.truncate_after(2)
    assert [r["step"] for r in log.read()] == [1, 2]
    plot_log(log.read() + [{"kind": "val", "step": 2, "metrics": {"psnr": 30.0}}], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000
    flow = np.zeros((2, 8, 8), np.float32)
    flow[0] = 1.0
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    sheet = contact_sheet([[rgb, rgb], [rgb, rgb]], ["a", "b"], tmp_path / "s.png", tile=16)
    import cv2

    assert cv2.imread(str(sheet)).shape == (36, 36, 3)
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["kind"] == "train"
