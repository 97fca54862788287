"""``train --init`` across architectures: a model with class heads from the weights of one without
(issue 11, :func:`add_class_heads`), and a wider G or map path from a narrower one
(:func:`grow_widths`). Both start the new model as the source model.

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


# -- a wider G or map path from a narrower one (``train --init`` across widths) -------------------

# The widths that ``--init`` may grow: G's, and the map path's (N's four blocks, I's width).
GROWABLE = ("dec_channels", "loc_channels", "head_channels")


@dataclass(frozen=True)
class Growth:
    """What :func:`grow_widths` did: the widths before and after (only those that changed), and
    the tensors it widened."""

    before: dict
    after: dict
    widened: tuple[str, ...]

    def describe(self) -> str:
        """One line for the training log."""
        what = ", ".join(f"{k} {_fmt(self.before[k])} to {_fmt(self.after[k])}" for k in self.before)
        return (
            f"widened {what}: {len(self.widened)} tensors grown "
            "(old channels copied; the old channels' weights on the new ones zero, so the model starts as the source)"
        )


def _fmt(v) -> str:
    return str(list(v)) if isinstance(v, (tuple, list)) else str(v)


def _decoder_convs(cfg) -> list[tuple[str, int, int]]:
    """(state-dict prefix, lead, output width) of every conv of G. A conv's input starts with the
    running features x, ``lead`` channels wide, which grow with G; what follows them (a block's
    first modulated conv reads [x, skip·(1 − m), m(, k)]) keeps its width. A later conv of a block
    reads the block's own output, ``to_rgb`` the last block's: lead is then the whole input."""
    d = cfg.dec_channels
    convs = []
    for group, ins, outs in (("low", [cfg.channels, d[0], d[0]], [d[0]] * 3), ("up", list(d[:3]), list(d[1:4]))):
        for i, (cin, cout) in enumerate(zip(ins, outs)):
            convs.append((f"decoder.{group}.{i}.convs.0", cin, cout))
            for j in range(1, cfg.dec_convs):
                convs.append((f"decoder.{group}.{i}.convs.{j}", cout, cout))
    convs.append(("decoder.to_rgb", d[3], 3))
    return convs


def _map_convs(cfg) -> list[tuple[str, int, int]]:
    """The same for the map path: N's blocks on the image (a chain from RGB), its fusion with f
    ([x, f]) and its output (C_m maps); I's input (from C_m), its three upsampling convs
    ([x, encoder skip(, high-pass)]) and its output (one map, or one per class)."""
    w, h = cfg.loc_channels, cfg.head_channels
    return [
        ("localizer.image_blocks.0.conv", 3, w[0]),
        *[(f"localizer.image_blocks.{i}.conv", w[i - 1], w[i]) for i in (1, 2, 3)],
        ("localizer.fuse.conv", w[3], w[3]),
        ("localizer.out", w[3], cfg.mask_channels),
        ("mask_head.inp.conv", cfg.mask_channels, h),
        *[(f"mask_head.ups.{i}.conv", h, h) for i in range(3)],
        ("mask_head.out", h, len(cfg.classes) or 1),
    ]


def grow_widths(source: Mapping[str, Tensor], source_cfg, model: nn.Module) -> tuple[dict[str, Tensor], Growth]:
    """State dict for ``model`` from ``source``, the weights of the same architecture whose G
    (``dec_channels``) and map path (``loc_channels``, ``head_channels``) are narrower or equal
    (every other field of the config equal; δ and S may differ).

    Function-preserving (Net2Net-style): every old channel keeps its weights; the weights that old
    channels give to new input channels are zero, so the new channels change nothing at the start
    and the model computes what the source computes. New channels read the old ones with the
    model's own fresh initialisation, so they carry signal and every new weight gets a gradient
    from the second step on. G's modulated convs stay exact: their demodulation sums the squared
    weights over the inputs, to which zero weights add nothing. Returns (state of float32 CPU
    tensors, what was done); raises ValueError naming what differs otherwise.
    """
    cfg = model.config
    before, after = {}, {}
    for key in GROWABLE:
        old, new = getattr(source_cfg, key), getattr(cfg, key)
        olds, news = (tuple(old), tuple(new)) if isinstance(old, (tuple, list)) else ((old,), (new,))
        if len(olds) != len(news) or any(o > n for o, n in zip(olds, news)):
            raise ValueError(f"widths cannot shrink or change depth: {key} {_fmt(old)} → {_fmt(new)}")
        if olds != news:
            before[key], after[key] = old, new
    if source_cfg.replace(**{k: getattr(cfg, k) for k in GROWABLE}, delta=cfg.delta, size=cfg.size) != cfg:
        raise ValueError(f"only {', '.join(GROWABLE)} may differ (besides δ and S)")
    layout = {}
    for (prefix, lead_old, out_old), (_, lead_new, _) in zip(
        _decoder_convs(source_cfg) + _map_convs(source_cfg), _decoder_convs(cfg) + _map_convs(cfg)
    ):
        layout[prefix] = (lead_old, lead_new, out_old)
    fresh = model.state_dict()
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
        lead_old, lead_new, out_old = layout[conv]
        out = want.detach().to("cpu", torch.float32).clone()
        if leaf != "bias" or affine:
            # old input channel c → its place in the wider input (the lead's new channels sit right after its old ones)
            cols = torch.arange(src.shape[0] if affine else src.shape[1])
            cols = torch.where(cols < lead_old, cols, cols + (lead_new - lead_old))
        if affine:  # the modulation of each input channel: [in, style] / [in]
            out[cols] = src
        elif leaf == "bias":  # [out]
            out[:out_old] = src
        else:  # conv weight [out, in, k, k]
            new_cols = torch.ones(out.shape[1], dtype=torch.bool)
            new_cols[cols] = False
            out[:out_old, new_cols] = 0.0  # old channels ignore the new ones: the model starts as the source
            out[:out_old, cols] = src
        state[name] = out
        widened.append(name)
    extra = sorted(set(source) - set(fresh))
    if extra:
        raise ValueError(f"{extra[0]} is in the source but not here")
    return state, Growth(before, after, tuple(widened))
