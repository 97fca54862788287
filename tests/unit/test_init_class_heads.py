"""``train --init`` of a class-head model from class-less weights (issue 11, model/transfer.py):
the new model starts as the source model; other architectures are refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vretouch_cli.checkpoint import save_model
from vretouch_cli.classes import CLASSES
from vretouch_cli.errors import UsageError
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr
from vretouch_cli.model.transfer import add_class_heads
from vretouch_cli.train.config import TrainConfig
from vretouch_cli.train.loop import Models

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

K = len(CLASSES)
SHIPPED = Path(__file__).resolve().parents[2] / "weights" / "vretouch-tiny.safetensors"
# The shipped weights' model options (weights/vretouch-tiny.safetensors), at test sizes.
SHIPPED_OPTIONS = dict(fill="normconv", head_channels=16, head_highpass=True, delta=1)


def _cfg(size: int, **kw) -> ModelConfig:
    return ModelConfig.preset("tiny").replace(size=size, **{**SHIPPED_OPTIONS, **kw})


def _source(size: int, **kw) -> VRetouchEr:
    """A class-less model with random weights whose map is far from empty, so the test sees the
    composition and G's mask gating at work (an untrained head's map is ≈ 0.04 everywhere)."""
    torch.manual_seed(1)
    src = VRetouchEr(_cfg(size, **kw)).eval()
    with torch.no_grad():
        src.mask_head.out.weight.normal_(0.0, 0.5)
        src.mask_head.out.bias.fill_(-0.5)
        src.decoder.to_rgb.weight.normal_(0.0, 0.5)  # G's output well away from the fill
    return src


def _models(size: int, **kw) -> Models:
    mcfg = _cfg(size, classes=CLASSES, **kw)
    return Models(mcfg, TrainConfig(preset="tiny", size=size, seed=3), torch.device("cpu"), None)


def _clip(size: int, t: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, t, 3, size, size, generator=gen) * 2 - 1


@pytest.mark.parametrize("size", [32, 64])
def test_class_heads_start_as_the_class_less_source(tmp_path, size):
    src = _source(size)
    path = save_model(tmp_path / "plain.safetensors", src)
    models = _models(size)
    line = models.init_from(str(path))
    assert "\n" not in line and line.startswith(str(path))
    assert "replicated into 5 class channels" in line and "zero-initialised" in line and "tensors copied" in line
    G = models.G.eval()
    clip = _clip(size)
    with torch.no_grad():
        a = src(clip, 1)
        b = G(clip, 1)  # the default selection: acne, redness, marks
        c = models.ema.module(clip, 1)
    assert 0.05 < float(a.mask.mean()) < 0.95 and float((a.out - clip[:, 1]).abs().max()) > 0.1  # a real test
    for name in ("out", "mask", "generated", "masks", "masks_raw"):
        assert torch.allclose(getattr(b, name), getattr(a, name), atol=1e-5, rtol=0), name
    assert torch.equal(c.out, b.out)  # the EMA starts as G
    # Every class head is the merged head: every class map is the merged map (until trained).
    assert torch.allclose(b.class_maps, a.masks.expand_as(b.class_maps), atol=1e-6, rtol=0)
    assert torch.allclose(b.class_logits, a.logits.expand_as(b.class_logits), atol=1e-5, rtol=0)
    # So any selection with a class at full strength removes what the source removes, and
    # selecting nothing still leaves the input untouched.
    with torch.no_grad():
        one = G(clip, 1, select=torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]))
        none = G(clip, 1, select=torch.zeros(K))
    assert torch.allclose(one.out, a.out, atol=1e-5, rtol=0)
    assert torch.equal(none.out, clip[:, 1])


def test_what_is_derived_and_how():
    src = _source(32)
    model = VRetouchEr(_cfg(32, classes=CLASSES))
    state, info = add_class_heads(src.state_dict(), model)
    theirs = src.state_dict()
    assert set(info.replicated) == {"mask_head.out.weight", "mask_head.out.bias"}
    assert set(info.zeroed) == {"decoder.select_style.weight", "decoder.select_style.bias"}
    assert len(info.widened) == 3 * 6  # conv weight, modulation weight and bias of each G block's first conv
    assert len(info.copied) + len(info.replicated) + len(info.widened) + len(info.zeroed) == len(state) == len(model.state_dict())
    assert all(torch.equal(state[n], theirs[n]) for n in info.copied)
    assert all(torch.equal(state["mask_head.out.weight"][c], theirs["mask_head.out.weight"][0]) for c in range(K))
    for prefix in ("decoder.low.0.convs.0", "decoder.up.2.convs.0"):
        w, aw, ab = (state[f"{prefix}.{p}"] for p in ("weight", "affine.weight", "affine.bias"))
        n = theirs[f"{prefix}.weight"].shape[1]
        assert torch.equal(w[:, :n], theirs[f"{prefix}.weight"]) and not w[:, n:].any()  # the kept map: the last input
        assert torch.equal(aw[:n], theirs[f"{prefix}.affine.weight"]) and not aw[n:].any()
        assert torch.equal(ab[:n], theirs[f"{prefix}.affine.bias"]) and torch.equal(ab[n:], torch.ones(1))
    # The zero-initialised parts learn: the kept map's weights get a gradient from the first step.
    model.load_state_dict(state)
    model(_clip(32), 1).out.square().sum().backward()
    assert model.decoder.low[0].convs[0].weight.grad[:, -1].abs().sum() > 0
    assert model.decoder.select_style.weight.grad.abs().sum() > 0


def test_other_architectures_are_refused_with_one_line(tmp_path):
    other = save_model(tmp_path / "other.safetensors", VRetouchEr(_cfg(32, head_channels=8)))
    with pytest.raises(UsageError, match=r"architecture differs .*: mask_head\.inp\.conv\.weight is \[8, 4, 1, 1\] in the source but \[16, 4, 1, 1\] here") as err:
        _models(32).init_from(str(other))
    assert "\n" not in str(err.value)
    heads = save_model(tmp_path / "heads.safetensors", VRetouchEr(_cfg(32, classes=("acne", "mole"))))
    with pytest.raises(UsageError, match=r"class heads \(acne, mole\) differ from this run's \(acne, redness, marks, mole, freckle\)"):
        _models(32).init_from(str(heads))
    plain = Models(_cfg(32), TrainConfig(preset="tiny", size=32), torch.device("cpu"), None)
    with pytest.raises(UsageError, match=r"class heads \(acne, mole\) differ from this run's \(none\)"):
        plain.init_from(str(heads))
    # A narrower mask head grows (model/transfer.py grow_widths); a wider one cannot shrink.
    assert "head_channels 8 to 16" in plain.init_from(str(other))
    wider = save_model(tmp_path / "wider.safetensors", VRetouchEr(_cfg(32, head_channels=32)))
    with pytest.raises(UsageError, match=r"architecture differs .*: widths cannot shrink or change depth: head_channels 32 → 16") as err:
        plain.init_from(str(wider))
    assert "\n" not in str(err.value)
    # What --init allowed before still loads: δ and S change no weight.
    same = save_model(tmp_path / "same.safetensors", VRetouchEr(_cfg(64, delta=3)))
    assert plain.init_from(str(same)) == str(same)


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped weights are absent")
def test_shipped_weights_start_a_class_head_run():
    from vretouch_cli.checkpoint import load_model

    src = load_model(SHIPPED)
    small = VRetouchEr(src.config.replace(size=64)).eval()  # S changes no weight
    small.load_state_dict(src.state_dict())
    models = Models(small.config.replace(classes=CLASSES), TrainConfig(preset="tiny", size=64), torch.device("cpu"), None)
    line = models.init_from(str(SHIPPED))
    assert "184 tensors copied" in line and "input of 6 decoder blocks" in line
    clip = _clip(64, t=2, seed=4)
    with torch.no_grad():
        a, b = small(clip, 1), models.G.eval()(clip, 1)
    assert torch.allclose(b.out, a.out, atol=1e-5, rtol=0) and torch.allclose(b.mask, a.mask, atol=1e-6, rtol=0)
