"""``train --init`` of a model with a wider G (``dec_channels``) or map path (``loc_channels``,
``head_channels``) from narrower weights (model/transfer.py ``grow_widths``): the new model starts
as the source model, its new channels learn, and other differences are still refused with one line."""

from __future__ import annotations

import pytest
import torch

from vretouch_cli.checkpoint import save_model
from vretouch_cli.classes import CLASSES
from vretouch_cli.errors import UsageError
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr
from vretouch_cli.model.transfer import grow_widths
from vretouch_cli.train.config import TrainConfig
from vretouch_cli.train.loop import Models

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SHIPPED_OPTIONS = dict(fill="normconv", head_channels=16, head_highpass=True, delta=1)
WIDE = (96, 48, 32, 16)  # the tiny preset's G is (96, 32, 16, 8)


def _cfg(size: int, **kw) -> ModelConfig:
    return ModelConfig.preset("tiny").replace(size=size, **{**SHIPPED_OPTIONS, **kw})


def _source(cfg: ModelConfig) -> VRetouchEr:
    """Random weights whose map is far from empty and whose G is far from its fill, so that the
    comparison sees the gated skips, the composition and G's residual at work."""
    torch.manual_seed(1)
    src = VRetouchEr(cfg).eval()
    with torch.no_grad():
        src.mask_head.out.weight.normal_(0.0, 0.5)
        src.mask_head.out.bias.fill_(-0.5)
        src.decoder.to_rgb.weight.normal_(0.0, 0.5)
    return src


def _clip(size: int, t: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, t, 3, size, size, generator=gen) * 2 - 1


@pytest.mark.parametrize("classes", [(), CLASSES])
def test_a_wider_g_starts_as_the_source(classes):
    cfg = _cfg(32, classes=classes)
    src = _source(cfg)
    wide = VRetouchEr(cfg.replace(dec_channels=WIDE)).eval()
    state, info = grow_widths(src.state_dict(), cfg, wide)
    wide.load_state_dict(state)
    assert info.before == {"dec_channels": (96, 32, 16, 8)} and info.after == {"dec_channels": WIDE}
    # Only G's widened convs changed shape: up.0 … up.2 (both convs) and to_rgb, weight/bias/modulation.
    assert all(n.startswith(("decoder.up.", "decoder.to_rgb")) for n in info.widened) and len(info.widened) > 0
    clip = _clip(32)
    with torch.no_grad():
        a, b = src(clip, 1), wide(clip, 1)
    assert float((a.out - clip[:, 1]).abs().max()) > 0.1 and float((a.generated - clip[:, 1]).abs().mean()) > 0.1  # a real test
    for name in ("out", "generated", "mask"):
        assert torch.allclose(getattr(b, name), getattr(a, name), atol=1e-5, rtol=0), name


def test_old_channels_are_copied_and_ignore_the_new_ones():
    cfg = _cfg(32)
    src = _source(cfg)
    wide = VRetouchEr(cfg.replace(dec_channels=WIDE))
    state, _ = grow_widths(src.state_dict(), cfg, wide)
    theirs = src.state_dict()
    # up.1's first conv reads [x (32 → 48 channels), skip (16), m (1)]: x's new channels sit after x's old ones.
    w, old = state["decoder.up.1.convs.0.weight"], theirs["decoder.up.1.convs.0.weight"]
    assert list(w.shape) == [32, 48 + 16 + 1, 3, 3] and list(old.shape) == [16, 32 + 16 + 1, 3, 3]
    assert torch.equal(w[:16, :32], old[:, :32]) and torch.equal(w[:16, 48:], old[:, 32:])
    assert not w[:16, 32:48].any()  # old outputs ignore the new inputs
    assert w[16:].abs().sum() > 0  # new outputs read everything with a fresh initialisation
    aff, old_aff = state["decoder.up.1.convs.0.affine.bias"], theirs["decoder.up.1.convs.0.affine.bias"]
    assert torch.equal(aff[:32], old_aff[:32]) and torch.equal(aff[48:], old_aff[32:]) and torch.equal(aff[32:48], torch.ones(16))
    rgb = state["decoder.to_rgb.weight"]
    assert torch.equal(rgb[:, :8], theirs["decoder.to_rgb.weight"]) and not rgb[:, 8:].any()
    # Every tensor that kept its shape is the source's.
    assert all(torch.equal(state[n], t) for n, t in theirs.items() if t.shape == state[n].shape)
    # The zero weights learn: they get a gradient from the first step.
    wide.load_state_dict(state)
    wide(_clip(32), 1).out.square().sum().backward()
    assert wide.decoder.up[1].convs[0].weight.grad[:16, 32:48].abs().sum() > 0
    assert wide.decoder.to_rgb.weight.grad[:, 8:].abs().sum() > 0


def test_init_widens_through_the_training_run_and_refuses_the_rest(tmp_path):
    cfg = _cfg(32)
    path = save_model(tmp_path / "narrow.safetensors", _source(cfg))
    models = Models(cfg.replace(dec_channels=WIDE), TrainConfig(preset="tiny", size=32), torch.device("cpu"), None)
    line = models.init_from(str(path))
    assert "\n" not in line and line.startswith(str(path)) and "widened dec_channels [96, 32, 16, 8] to [96, 48, 32, 16]" in line
    clip = _clip(32, seed=2)
    with torch.no_grad():
        a = _source(cfg)(clip, 1).out
        b = models.G.eval()(clip, 1).out
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    # G cannot shrink, and nothing else may differ besides dec_channels.
    narrow = Models(_cfg(32, dec_channels=(96, 32, 16, 4)), TrainConfig(preset="tiny", size=32), torch.device("cpu"), None)
    with pytest.raises(UsageError, match=r"architecture differs .*widths cannot shrink") as err:
        narrow.init_from(str(path))
    assert "\n" not in str(err.value)
    other = Models(_cfg(32, dec_channels=WIDE, mask_channels=8), TrainConfig(preset="tiny", size=32), torch.device("cpu"), None)
    with pytest.raises(UsageError, match=r"architecture differs .*only dec_channels, loc_channels, head_channels may differ"):
        other.init_from(str(path))


@pytest.mark.parametrize("classes", [(), CLASSES])
def test_a_wider_map_path_starts_as_the_source_and_learns(classes):
    cfg = _cfg(32, classes=classes)
    src = _source(cfg)
    wide_cfg = cfg.replace(loc_channels=(8, 16, 32, 64), head_channels=32)
    wide = VRetouchEr(wide_cfg).eval()
    state, info = grow_widths(src.state_dict(), cfg, wide)
    assert info.before == {"loc_channels": (4, 8, 16, 32), "head_channels": 16}
    assert info.after == {"loc_channels": (8, 16, 32, 64), "head_channels": 32}
    assert all(n.startswith(("localizer.", "mask_head.")) for n in info.widened) and len(info.widened) == 2 * 11 - 2  # 11 convs; the two outputs keep their bias
    wide.load_state_dict(state)
    clip = _clip(32, seed=3)
    with torch.no_grad():
        a, b = src(clip, 1), wide(clip, 1)
    assert 0.05 < float(a.mask.mean()) < 0.95  # a real map, not a flat one
    for name in ("out", "generated", "mask"):
        assert torch.allclose(getattr(b, name), getattr(a, name), atol=1e-5, rtol=0), name
    # I's second upsampling conv reads [x (16 → 32), the encoder's S/2 skip]: old outputs ignore x's new channels.
    w, old = state["mask_head.ups.1.conv.weight"], src.state_dict()["mask_head.ups.1.conv.weight"]
    assert torch.equal(w[:16, :16], old[:, :16]) and torch.equal(w[:16, 32:], old[:, 16:]) and not w[:16, 16:32].any()
    wide.train()
    wide(clip, 1).out.square().sum().backward()
    assert wide.mask_head.ups[1].conv.weight.grad[:16, 16:32].abs().sum() > 0
    assert wide.localizer.fuse.conv.weight.grad[:32, 32:64].abs().sum() > 0
