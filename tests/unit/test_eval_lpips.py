"""LPIPS reproduces the reference values of ../shared/weights/README.md, and says 'unavailable' without weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vretouch_cli.errors import WeightsError
from vretouch_cli.evaluate import lpips as L

REFERENCE = {"alex": 0.1453, "vgg": 0.1594}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def lpips_dir(shared_dir):
    path = shared_dir / "weights"
    if not all((path / L.FILENAMES[b]).is_file() for b in L.BACKBONES):
        pytest.skip("LPIPS weights are absent from ../shared/weights")
    return path


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("backbone", L.BACKBONES)
def test_lpips_reference_values(lpips_dir, backbone):
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()
    blurred = cv2.GaussianBlur(img, (0, 0), 1)
    lp = L.load_lpips(backbone, lpips_dir / L.FILENAMES[backbone])
    assert lp.pinned
    assert lp(img, blurred) == pytest.approx(REFERENCE[backbone], abs=1e-3)
    assert lp(img[:64, :64], img[:64, :64]) == pytest.approx(0.0, abs=1e-6)


def test_lpips_env_var_and_unavailable(tmp_path, monkeypatch):
    for b in L.BACKBONES:
        monkeypatch.delenv(L.ENV_VARS[b], raising=False)
    monkeypatch.setattr(L, "_from_resolver", lambda backbone: None)
    monkeypatch.setattr(L, "_local_dir", lambda: tmp_path)
    model, reason = L.try_load_lpips("alex")
    assert model is None and "VRETOUCH_LPIPS_ALEX" in reason
    monkeypatch.setenv("VRETOUCH_LPIPS_VGG", str(tmp_path / "missing.safetensors"))
    model, reason = L.try_load_lpips("vgg")
    assert model is None and "missing.safetensors" in reason
    with pytest.raises(WeightsError):
        L.load_lpips("vgg")


def test_lpips_rejects_wrong_layout_and_accepts_own_conversion(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"features.0.weight": torch.zeros(1, 1, 1, 1)}, str(bad))
    with pytest.raises(WeightsError, match="layout"):
        L.load_lpips("alex", bad)
    # A random AlexNet-shaped file loads (not the pinned hash) and gives a finite, zero-on-equal distance.
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*shape, generator=g) * 0.05 for k, shape in L._expected_shapes("alex").items()}
    state = {k: (v.abs() if k.startswith("lin") else v) for k, v in state.items()}
    own = tmp_path / "own.safetensors"
    save_file(state, str(own))
    lp = L.load_lpips("alex", own)
    assert not lp.pinned
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    assert lp(img, img) == pytest.approx(0.0, abs=1e-7)
    assert lp(img, 255 - img) > 0
    mask = np.zeros((64, 64), np.float32)
    assert np.isnan(lp(img, 255 - img, mask=mask))
