"""``train --init`` across architectures: a model with class heads from the weights of one without
(issue 11, :func:`add_class_heads`), and a wider G from a narrower one (:func:`grow_decoder`).
Both start the new model as the source model.

Class heads change few tensors (``network.py``, ``decoder.py``, ``localize.py``):

- ``mask_head.out`` (weight, bias) has K output channels instead of one;
- the first modulated conv of each of G's six blocks reads one more input channel, the kept
  classes' map k, appended after the removal map m (``weight`` [out, in + 1, 3, 3], and its
  modulation ``affine`` [in + 1, style_dim], [in + 1]);
- ``decoder.select_style`` (the selection's bias on the style code) is new.

:func:`add_class_heads` derives these from the class-less tensors so that the new model starts
as the source model: every class head is a copy of the merged head (so every class map is the
merged map), the kept map's conv weights are zero (its modulation is 1, as in a fresh layer, so
the weights get a gradient from the first step), and the selection's style bias is zero. With
any selection that holds a class at weight 1 (the default does when ``classes`` holds a
temporary class), the combined map max_c(select_c · m_c) is the merged map, the fill's hole
max(selected, kept) is the merged map, and G computes what the source G computes, so ``out``
and ``mask`` equal the source's up to float summation order. Until trained, the class maps are
all alike: a selection removes every kind of blemish the merged map finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

HEAD = ("mask_head.out.weight", "mask_head.out.bias")


@dataclass(frozen=True)
class ClassHeadInit:
    """What :func:`add_class_heads` did, tensor by tensor (state-dict names)."""

    classes: tuple[str, ...]
    copied: tuple[str, ...]  # same shape in both: taken as they are
    replicated: tuple[str, ...]  # the merged map's output conv, one copy per class
    widened: tuple[str, ...]  # gained the kept-map input: source slice copied, new slice zero (modulation 1)
    zeroed: tuple[str, ...]  # new tensors, all zero

    def describe(self) -> str:
        """One line for the training log."""
        blocks = len([n for n in self.widened if n.endswith(".convs.0.weight")])
        zeroed = sorted({n.rsplit(".", 1)[0] for n in self.zeroed})
        return (
            f"class heads added to a class-less model: {len(self.copied)} tensors copied; "
            f"mask_head.out replicated into {len(self.classes)} class channels ({', '.join(self.classes)}); "
            f"the kept-class map input of {blocks} decoder blocks zero-initialised (modulation 1); "
            f"{', '.join(zeroed)} zero-initialised"
        )


def _widened_convs(model: nn.Module) -> list[str]:
    """State-dict prefixes of the modulated convs that read the kept map (the first conv of every G block)."""
    dec = model.decoder
    return [f"decoder.{group}.{i}.convs.0" for group in ("low", "up") for i in range(len(getattr(dec, group)))]


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def add_class_heads(source: Mapping[str, Tensor], model: nn.Module) -> tuple[dict[str, Tensor], ClassHeadInit]:
    """State dict for ``model`` (a VRetouchEr with class heads) from ``source``, the state dict of
    the same architecture without class heads (δ and S may differ: they change no weight).

    Returns (state, what was done); the state holds float32 tensors on the CPU. Raises
    ValueError naming the first tensor that cannot be derived (another preset or model option).
    """
    classes = tuple(model.config.classes)
    if not classes:
        raise ValueError("the target model has no class heads")
    k = len(classes)
    target = model.state_dict()
    widened = {}
    for prefix in _widened_convs(model):
        widened[f"{prefix}.weight"] = "conv"
        widened[f"{prefix}.affine.weight"] = "affine"
        widened[f"{prefix}.affine.bias"] = "affine"
    new = {"decoder.select_style.weight", "decoder.select_style.bias"}
    extra = sorted(set(source) - set(target))
    if extra:
        raise ValueError(f"{extra[0]} is in the source but not in a model with class heads")
    state: dict[str, Tensor] = {}
    copied, replicated, grown, zeroed = [], [], [], []
    for name, want in target.items():
        src = source.get(name)
        if src is None:
            if name not in new:
                raise ValueError(f"{name} is missing from the source")
            state[name] = torch.zeros(want.shape, dtype=torch.float32)
            zeroed.append(name)
            continue
        src = src.detach().to("cpu", torch.float32)
        if name in new:
            raise ValueError(f"the source already has {name} (it has class heads)")
        if src.shape == want.shape:
            state[name] = src.clone()
            copied.append(name)
        elif name in HEAD and src.shape[0] == 1 and src.shape[1:] == want.shape[1:]:
            state[name] = src.repeat(k, *([1] * (src.dim() - 1)))
            replicated.append(name)
        elif name in widened and _grows_by_one(src, want, dim=1 if widened[name] == "conv" else 0):
            dim = 1 if widened[name] == "conv" else 0
            out = torch.zeros(want.shape, dtype=torch.float32)
            if name.endswith(".affine.bias"):
                out.fill_(1.0)  # unit modulation of the new input (as a fresh layer): its weights then get gradients
            out.narrow(dim, 0, src.shape[dim]).copy_(src)  # the kept map is the last input channel
            state[name] = out
            grown.append(name)
        else:
            raise ValueError(f"{name} is {_shape(src)} in the source but {_shape(want)} here")
    info = ClassHeadInit(classes, tuple(copied), tuple(replicated), tuple(grown), tuple(zeroed))
    return state, info


def _grows_by_one(src: Tensor, want: Tensor, dim: int) -> bool:
    if src.dim() != want.dim():
        return False
    return all((s + 1 == w) if d == dim else s == w for d, (s, w) in enumerate(zip(src.shape, want.shape)))


# -- a wider G from a narrower one (``train --init`` across ``dec_channels``) ----------------------


@dataclass(frozen=True)
class DecoderGrowth:
    """What :func:`grow_decoder` did: G's widths before and after, and the tensors it widened."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    widened: tuple[str, ...]

    def describe(self) -> str:
        """One line for the training log."""
        return (
            f"G widened from dec_channels {list(self.before)} to {list(self.after)}: {len(self.widened)} tensors grown "
            "(old channels copied; the old channels' weights on the new ones zero, so G starts as the source's G)"
        )


def _decoder_convs(cfg) -> list[tuple[str, int, int, int | None]]:
    """(state-dict prefix, input width of the running features x, output width, kind) of every conv
    of G: kind 0 for a block's first modulated conv (its input is [x, skip·(1 − m), m(, k)]: x's
    channels come first), 1 for a later one (input = the block's own output), None for ``to_rgb``."""
    d = cfg.dec_channels
    convs = []
    for group, ins, outs in (("low", [cfg.channels, d[0], d[0]], [d[0]] * 3), ("up", list(d[:3]), list(d[1:4]))):
        for i, (cin, cout) in enumerate(zip(ins, outs)):
            convs.append((f"decoder.{group}.{i}.convs.0", cin, cout, 0))
            for j in range(1, cfg.dec_convs):
                convs.append((f"decoder.{group}.{i}.convs.{j}", cout, cout, 1))
    convs.append(("decoder.to_rgb", d[3], 3, None))
    return convs


def grow_decoder(source: Mapping[str, Tensor], source_cfg, model: nn.Module) -> tuple[dict[str, Tensor], DecoderGrowth]:
    """State dict for ``model`` from ``source``, the weights of the same architecture whose G has
    narrower (or equal) ``dec_channels`` (every other field of the config equal; δ and S may differ).

    Function-preserving (Net2Net-style): every old channel keeps its weights; the weights that old
    channels give to new input channels are zero, so the new channels change nothing at the start
    and G computes what the source's G computes. New channels read the old ones with the model's
    own fresh initialisation, so they carry signal and every new weight gets a gradient from the
    second step on. Modulated convs stay exact: their demodulation sums the squared weights over
    the inputs, to which zero weights add nothing. Returns (state of float32 CPU tensors, what was
    done); raises ValueError naming what differs otherwise.
    """
    cfg = model.config
    old_d, new_d = tuple(source_cfg.dec_channels), tuple(cfg.dec_channels)
    if len(old_d) != len(new_d) or any(o > n for o, n in zip(old_d, new_d)):
        raise ValueError(f"G cannot shrink or change depth: dec_channels {list(old_d)} → {list(new_d)}")
    if source_cfg.replace(dec_channels=new_d, delta=cfg.delta, size=cfg.size) != cfg:
        raise ValueError("only dec_channels may differ (besides δ and S)")
    fresh = model.state_dict()
    layout = {}
    for (prefix, x_old, o_old, kind), (_, x_new, _, _) in zip(_decoder_convs(source_cfg), _decoder_convs(cfg)):
        layout[prefix] = (x_old, x_new, o_old, kind)
    state: dict[str, Tensor] = {}
    widened = []
    for name, want in fresh.items():
        if name not in source:
            raise ValueError(f"{name} is missing from the source")
        src = source[name].detach().to("cpu", torch.float32)
        if src.shape == want.shape:
            state[name] = src.clone()
            continue
        prefix, _, leaf = name.rpartition(".")
        affine = prefix.endswith(".affine")
        conv = prefix.rpartition(".")[0] if affine else prefix
        if conv not in layout:
            raise ValueError(f"{name} is {_shape(src)} in the source but {_shape(want)} here")
        x_old, x_new, o_old, kind = layout[conv]
        out = want.detach().to("cpu", torch.float32).clone()
        if leaf != "bias" or affine:
            # old input channel c → its place in the wider input (x's new channels sit right after x's old ones)
            cols = torch.arange(src.shape[0] if affine else src.shape[1])
            if kind == 0:
                cols = torch.where(cols < x_old, cols, cols + (x_new - x_old))
        if affine:  # the modulation of each input channel: [in, style] / [in]
            out[cols] = src
        elif leaf == "bias":  # [out]
            out[:o_old] = src
        else:  # conv weight [out, in, k, k]
            new_cols = torch.ones(out.shape[1], dtype=torch.bool)
            new_cols[cols] = False
            out[:o_old, new_cols] = 0.0  # old channels ignore the new ones: G starts as the source's G
            out[:o_old, cols] = src
        state[name] = out
        widened.append(name)
    extra = sorted(set(source) - set(fresh))
    if extra:
        raise ValueError(f"{extra[0]} is in the source but not here")
    return state, DecoderGrowth(old_d, new_d, tuple(widened))
