"""Class heads (issue 11): per-class maps, the selection input, the combination rule, and weights
files without class heads that load and run unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vretouch_cli.checkpoint import load_model, read_metadata, save_model
from vretouch_cli.classes import CLASSES, TEMPORARY
from vretouch_cli.errors import UsageError
from vretouch_cli.inference import SlidingRetoucher
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

S = 32
K = len(CLASSES)
SHIPPED = Path(__file__).resolve().parents[2] / "weights" / "vretouch-tiny.safetensors"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cfg(**kw) -> ModelConfig:
    return ModelConfig.preset("tiny").replace(size=S, **kw)


def _clip(b: int, t: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, S, S, generator=gen) * 2 - 1


@pytest.fixture(scope="module")
def model() -> VRetouchEr:
    torch.manual_seed(0)
    m = VRetouchEr(_cfg(classes=CLASSES)).eval()
    with torch.no_grad():  # untrained heads start alike; make the classes differ, and G read the selection
        m.mask_head.out.bias.copy_(torch.linspace(-3.0, 1.0, K))
        m.decoder.select_style.weight.normal_(0.0, 0.5)
    return m


# -- config -------------------------------------------------------------------------------------------------
def test_config_classes_round_trip_and_validation():
    cfg = _cfg(classes=["acne", "mole"])  # a list becomes a tuple (the config stays hashable)
    assert cfg.classes == ("acne", "mole") and hash(cfg)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "classes" not in _cfg().to_dict()  # saved exactly as before the field existed
    assert ModelConfig.from_dict(_cfg().to_dict()).classes == ()
    with pytest.raises(UsageError, match="unknown class 'wart'; valid classes: acne, redness, marks, mole, freckle"):
        _cfg(classes=("acne", "wart"))
    with pytest.raises(UsageError, match="twice"):
        _cfg(classes=("acne", "acne"))
    with pytest.raises(UsageError, match="list of class names"):
        _cfg(classes="acne")


def test_class_less_config_keeps_its_tensors():
    plain = VRetouchEr(_cfg()).state_dict()
    heads = VRetouchEr(_cfg(classes=CLASSES)).state_dict()
    # class heads: K output maps, and G reads the selection (style bias) and the kept map (+1 input channel)
    assert set(heads) - set(plain) == {"decoder.select_style.weight", "decoder.select_style.bias"}
    assert set(plain) <= set(heads)
    assert heads["mask_head.out.weight"].shape[0] == K and plain["mask_head.out.weight"].shape[0] == 1
    changed = sorted(n for n in plain if plain[n].shape != heads[n].shape)
    assert all(n.startswith(("mask_head.out.", "decoder.")) for n in changed), changed


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped weights are absent")
def test_shipped_weights_without_class_heads_load_and_run():
    """A file written before class heads existed: same tensor names and shapes as today's class-less model."""
    from safetensors import safe_open

    meta = read_metadata(SHIPPED)
    assert "classes" not in json.loads(meta["vretouch_config"])
    m = load_model(SHIPPED)
    assert m.config.classes == ()
    with safe_open(str(SHIPPED), framework="pt") as fh:
        shapes = {n: tuple(fh.get_slice(n).get_shape()) for n in fh.keys()}
    assert shapes == {n: tuple(t.shape) for n, t in m.state_dict().items()}
    small = VRetouchEr(m.config.replace(size=S)).eval()
    small.load_state_dict(m.state_dict())  # the weights do not depend on the crop size
    with torch.no_grad():
        o = small(_clip(1, 2), 0)
    assert o.class_maps is None and o.class_logits is None and o.logits is not None
    assert torch.isfinite(o.out).all()


def test_weights_saved_without_classes_load_and_run(tmp_path):
    torch.manual_seed(0)
    plain = VRetouchEr(_cfg()).eval()
    path = save_model(tmp_path / "plain.safetensors", plain)
    assert "classes" not in json.loads(read_metadata(path)["vretouch_config"])
    loaded = load_model(path)
    clip = _clip(1, 3)
    with torch.no_grad():
        a, b = plain(clip, 1), loaded(clip, 1)
    assert torch.equal(a.out, b.out) and a.class_maps is None and b.class_maps is None
    with pytest.raises(ValueError, match="class heads"):
        loaded(clip, 1, select=torch.ones(K))


def test_weights_with_classes_round_trip(model, tmp_path):
    path = save_model(tmp_path / "heads.safetensors", model)
    loaded = load_model(path)
    assert loaded.config.classes == CLASSES
    clip = _clip(1, 3, seed=5)
    sel = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0])
    with torch.no_grad():
        a, b = model(clip, 1, select=sel), loaded(clip, 1, select=sel)
    assert torch.equal(a.out, b.out) and torch.equal(a.class_maps, b.class_maps)


# -- forward ----------------------------------------------------------------------------------------------
def test_shapes_with_class_heads(model):
    b, t = 2, 3
    with torch.no_grad():
        o = model(_clip(b, t), 1)
    assert o.out.shape == (b, 3, S, S) and o.mask.shape == (b, 1, S, S)
    assert o.masks.shape == o.masks_raw.shape == (b, t, 1, S, S)
    assert o.class_maps.shape == o.class_logits.shape == (b, t, K, S, S)
    assert o.logits is None  # a combined map has no logits of its own
    assert 0 <= float(o.class_maps.min()) and float(o.class_maps.max()) <= 1
    assert torch.equal(o.mask, o.masks[:, 1])


def test_combined_map_is_the_max_of_the_selected_weighted_maps(model):
    clip = _clip(2, 3, seed=1)
    selections = {
        "default": None,
        "per sample": torch.tensor([[1.0, 0.0, 0.5, 1.0, 0.0], [0.0, 0.3, 0.0, 0.0, 1.0]]),
        "all": torch.ones(K),
    }
    for name, sel in selections.items():
        with torch.no_grad():
            o = model(clip, 1, select=sel)
        w = torch.tensor([1.0 if c in TEMPORARY else 0.0 for c in CLASSES]) if sel is None else sel
        w = w.expand(2, K)[:, None, :, None, None]
        expected = (w * o.class_maps).amax(dim=2, keepdim=True)
        assert torch.equal(o.masks, expected), name
        assert torch.equal(o.mask, expected[:, 1]), name
    with torch.no_grad():  # one class at weight 1: exactly that class's own map
        for c in range(K):
            o = model(clip, 1, select=torch.eye(K)[c])
            assert torch.equal(o.mask, o.class_maps[:, 1, c : c + 1]), CLASSES[c]
    # the default is the temporary classes at full strength
    with torch.no_grad():
        a = model(clip, 1)
        b = model(clip, 1, select=torch.tensor([1.0 if c in TEMPORARY else 0.0 for c in CLASSES]))
    assert torch.equal(a.out, b.out)


def test_keep_veto_config_round_trip_and_validation():
    cfg = _cfg(classes=CLASSES, keep_veto=True)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert "keep_veto" not in _cfg(classes=CLASSES).to_dict()  # older class weights load as before
    assert ModelConfig.from_dict(_cfg(classes=CLASSES).to_dict()).keep_veto is False
    with pytest.raises(UsageError, match="keep_veto needs class heads"):
        _cfg(keep_veto=True)


def test_keep_veto_multiplies_the_selected_map_by_one_minus_the_kept_map(model):
    veto = VRetouchEr(model.config.replace(keep_veto=True)).eval()
    veto.load_state_dict(model.state_dict())  # same tensors: the flag changes the composition only
    clip = _clip(2, 3, seed=3)
    sel = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.5, 1.0, 0.0]])
    with torch.no_grad():
        plain, o = model(clip, 1, select=sel), veto(clip, 1, select=sel)
        w = sel[:, None, :, None, None]
        kept = ((1.0 - w) * o.class_maps).amax(dim=2, keepdim=True)
        assert torch.equal(o.class_maps, plain.class_maps)
        assert torch.allclose(o.masks, plain.masks * (1.0 - kept))
        assert float(kept.max()) > 0.1 and float((plain.masks - o.masks).max()) > 0.01  # the veto did something
        # one class selected: its own map times one minus the strongest of the others
        full = torch.zeros(K).index_fill_(0, torch.tensor([0]), 1.0)  # acne only
        o1 = veto(clip, 1, select=full)
        k1 = (o1.class_maps[:, 1, 1:]).amax(dim=1, keepdim=True)
        assert torch.allclose(o1.mask, o1.class_maps[:, 1, :1] * (1.0 - k1))
        # everything selected: nothing is kept, the veto changes nothing
        a, b = model(clip, 1, select=torch.ones(K)), veto(clip, 1, select=torch.ones(K))
    assert torch.equal(a.out, b.out)


def test_selecting_nothing_leaves_the_input_unchanged(model):
    clip = _clip(2, 3, seed=2)
    sel = torch.stack([torch.zeros(K), torch.ones(K)])  # sample 0: nothing; sample 1: everything
    with torch.no_grad():
        o = model(clip, 1, select=sel)
    assert torch.count_nonzero(o.mask[0]) == 0
    assert torch.equal(o.out[0], clip[0, 1])
    assert not torch.equal(o.out[1], clip[1, 1])


def test_the_selection_conditions_the_generator(model):
    """G sees the selection and the kept classes' map, not only the combined map it composes with."""
    clip = _clip(1, 2, seed=3)
    with torch.no_grad():
        state = model.frame_step(clip[:, 0])
        kv = [(k[:, None], v[:, None]) for k, v in state.kv]
        args = (clip[:, 0], state.skips, state.mask, state.mask_pix, kv)
        a, ga = model.synthesize(*args, select=torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]), keep_pix=state.keep_pix)
        b, gb = model.synthesize(*args, select=torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]), keep_pix=state.keep_pix)
        c, gc = model.synthesize(*args, select=torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]), keep_pix=torch.zeros_like(state.keep_pix))
    assert not torch.equal(ga, gb)  # same maps, another selection
    assert not torch.equal(ga, gc)  # same selection, another kept map
    with pytest.raises(ValueError, match="select must be"):
        model.synthesize(*args, select=torch.ones(3))


def test_every_parameter_gets_a_gradient_with_class_heads():
    torch.manual_seed(0)
    m = VRetouchEr(_cfg(classes=CLASSES))
    o = m(_clip(2, 3), 1, select=torch.tensor([1.0, 0.5, 1.0, 0.0, 0.2]))
    loss = o.out.abs().mean() + o.masks.mean() + o.masks_raw.mean() + o.flows.abs().mean() + o.class_logits.mean()
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


# -- streaming inference --------------------------------------------------------------------------------------
def test_sliding_retoucher_passes_the_selection(model):
    clip = _clip(1, 4, seed=4)[0]
    sel = [0.0, 1.0, 0.0, 1.0, 0.5]
    retoucher = SlidingRetoucher(model, delta=3, select=sel)
    results = []
    for i in range(4):
        results += retoucher.push([((i, "a"), "a", clip[i])])
    results += retoucher.flush()
    with torch.no_grad():
        ref = model(clip[None], 1, select=torch.tensor(sel))
    centre = results[1]
    assert centre.class_maps.shape == (K, S, S)
    assert torch.allclose(centre.out, ref.out[0], atol=1e-5)
    assert torch.allclose(centre.mask, ref.mask[0], atol=1e-5)
    assert torch.allclose(centre.class_maps, ref.class_maps[0, 1], atol=1e-5)
    with pytest.raises(UsageError, match="class head"):
        SlidingRetoucher(model, select=[1.0, 0.0])
    with pytest.raises(UsageError, match="class head"):
        SlidingRetoucher(VRetouchEr(_cfg()).eval(), select=[1.0] * K)
