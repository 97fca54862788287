"""The VRetouchEr network: shapes, gradients, building blocks, exact composition, golden outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vretouch_cli.errors import UsageError
from vretouch_cli.model.config import PRESET_NAMES, ModelConfig
from vretouch_cli.model.discriminator import PatchDiscriminator
from vretouch_cli.model.layers import PixelAdaptiveConv2d, compose, resize_flow, warp
from vretouch_cli.model.network import VRetouchEr, VROutput

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def _clip(b: int, t: int, s: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, s, s, generator=gen) * 2 - 1


# -- config ---------------------------------------------------------------------------------------
def test_presets_match_the_table():
    table = {"paper": (512, 512, 6, 5, 8, 16), "base": (256, 512, 6, 4, 8, 16), "small": (128, 256, 4, 2, 4, 8), "tiny": (64, 256, 3, 2, 4, 8)}
    for name, row in table.items():
        c = ModelConfig.preset(name)
        assert (c.channels, c.size, c.delta, c.mma_blocks, c.heads, c.window) == row


def test_config_round_trip_and_validation():
    cfg = ModelConfig.preset("small").replace(size=64, attention="linear")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(data) == cfg
    with pytest.raises(UsageError, match="unknown model preset"):
        ModelConfig.preset("huge")
    with pytest.raises(UsageError, match="delta"):
        cfg.replace(delta=9)
    with pytest.raises(UsageError, match="unknown model config field"):
        ModelConfig.from_dict({"channelz": 3})
    with pytest.raises(UsageError):
        cfg.replace(channels=100)
    with pytest.raises(UsageError):
        cfg.replace(mask_channels=3)
    with pytest.raises(UsageError):
        cfg.replace(size=100)


# -- shapes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_output_shapes_every_preset(preset):
    """Batch 2, δ ∈ {1, 3, 6}; the crop size is reduced to 64 so the big presets stay fast."""
    torch.manual_seed(0)
    s = 64
    model = VRetouchEr(ModelConfig.preset(preset).replace(size=s)).eval()
    c = model.config
    for delta in (1, 3, 6):
        t = delta + 1
        with torch.no_grad():
            o = model(_clip(2, t, s, seed=delta), delta // 2)
        assert isinstance(o, VROutput)
        assert o.out.shape == (2, 3, s, s) and o.generated.shape == (2, 3, s, s)
        assert o.mask.shape == (2, 1, s, s)
        assert o.masks.shape == (2, t, 1, s, s) and o.masks_raw.shape == (2, t, 1, s, s)
        assert o.flows.shape == (2, t - 1, 2, s, s)
        assert torch.isfinite(o.out).all() and torch.isfinite(o.flows).all()
        assert 0 <= float(o.mask.min()) and float(o.mask.max()) <= 1
        assert -1 <= float(o.generated.min()) and float(o.generated.max()) <= 1
        assert torch.equal(o.mask, o.masks[:, delta // 2])
    assert c.size == s


def test_single_frame_clip_and_negative_target_index():
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=32)).eval()
    with torch.no_grad():
        o = model(_clip(1, 1, 32), 0)
        assert o.flows.shape == (1, 0, 2, 32, 32)
        a, b = model(_clip(1, 3, 32), -1), model(_clip(1, 3, 32), 2)
    assert torch.equal(a.out, b.out)
    with pytest.raises(ValueError):
        model(_clip(1, 3, 32), 3)


def test_discriminator_multiscale_logits():
    d = PatchDiscriminator(ModelConfig.preset("tiny"))
    logits = d(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert [tuple(x.shape) for x in logits] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    assert any("parametrizations" in name for name, _ in d.named_parameters())  # spectral norm


# -- gradients ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_every_parameter_gets_a_gradient(attention):
    """S = 128 gives 2×2 attention windows, so the shifted-window path runs too."""
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny").replace(size=128, attention=attention)
    model = VRetouchEr(cfg)
    disc = PatchDiscriminator(cfg, channels=8)
    o = model(_clip(2, 4, 128), 1)
    loss = o.out.abs().mean() + o.masks.mean() + o.masks_raw.mean() + o.flows.abs().mean()
    loss = loss + sum(x.mean() for x in disc(o.out))
    loss.backward()
    for name, p in list(model.named_parameters()) + list(disc.named_parameters()):
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_initial_mask_is_small_but_alive():
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=64))
    o = model(_clip(1, 2, 64), 0)
    assert 0.005 < float(o.mask.detach().mean()) < 0.2
    o.mask.mean().backward()
    assert model.mask_head.out.weight.grad.abs().sum() > 0


# -- building blocks ------------------------------------------------------------------------------------
def _pac_naive(x, guide, weight, bias, scale, k):
    b, cin, h, w = x.shape
    pad = k // 2
    xp = F.pad(x, (pad, pad, pad, pad))
    gp = F.pad(guide, (pad, pad, pad, pad))
    out = torch.zeros(b, weight.shape[0], h, w, dtype=torch.float64)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                gc = guide[n, :, i, j]
                for di in range(k):
                    for dj in range(k):
                        gq = gp[n, :, i + di, j + dj]
                        kern = torch.exp(-0.5 * scale**2 * ((gq - gc) ** 2).sum())
                        out[n, :, i, j] += kern * (weight[:, :, di * k + dj] @ xp[n, :, i + di, j + dj])
                out[n, :, i, j] += bias
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_pixel_adaptive_conv_equals_naive_loop(k):
    torch.manual_seed(0)
    pac = PixelAdaptiveConv2d(3, 2, k).double()
    with torch.no_grad():
        pac.log_scale.fill_(0.3)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    g = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    ref = _pac_naive(x, g, pac.weight.detach(), pac.bias.detach(), float(pac.log_scale.detach().exp()), k)
    assert torch.allclose(pac(x, g), ref, atol=1e-10)


def test_warp_zero_flow_is_identity():
    x = torch.rand(2, 3, 17, 23)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 17, 23)), x, atol=1e-5)


def test_warp_integer_shift():
    x = torch.rand(1, 3, 20, 24)
    flow = torch.zeros(1, 2, 20, 24)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # out(p) = x(p + (3, -2))
    out = warp(x, flow)
    assert torch.allclose(out[..., 2:, : 24 - 3], x[..., : 20 - 2, 3:], atol=1e-5)


def test_resize_flow_rescales_vectors():
    flow = torch.ones(1, 2, 8, 8)
    assert torch.allclose(resize_flow(flow, (64, 64)), torch.full((1, 2, 64, 64), 8.0))
    assert torch.allclose(resize_flow(torch.full((1, 2, 64, 32), 8.0), (8, 8)), torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 8, 8))


def test_composition_is_exact_where_the_mask_is_zero():
    torch.manual_seed(0)
    x, g = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    m = (torch.rand(2, 1, 16, 16) > 0.5).float() * torch.rand(2, 1, 16, 16)
    out = compose(x, g, m)
    zero = (m == 0).expand_as(x)
    assert torch.equal(out[zero], x[zero])
    assert torch.allclose(compose(x, g, torch.ones_like(m)), g, atol=1e-6)


def test_model_output_equals_input_where_its_mask_is_zero():
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=64)).eval()
    clip = _clip(2, 3, 64)
    with torch.no_grad():
        model.mask_head.out.bias.fill_(-40.0)  # σ underflows the ε floor: the map is exactly 0
        o = model(clip, 1)
    assert torch.count_nonzero(o.mask) == 0
    assert torch.equal(o.out, clip[:, 1])


# -- golden ---------------------------------------------------------------------------------------------
def test_tiny_golden_outputs():
    from safetensors.torch import load_file

    sys.path.insert(0, str(GOLDEN_DIR))
    try:
        import make_golden
    finally:
        sys.path.remove(str(GOLDEN_DIR))
    expected = load_file(str(GOLDEN_DIR / "tiny_golden.safetensors"))
    model, clip = make_golden.golden_inputs()
    got = make_golden.golden_outputs(model, clip)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].shape == value.shape, key
        assert torch.allclose(got[key], value, atol=1e-4, rtol=1e-4), f"{key} differs from the golden tensor"
