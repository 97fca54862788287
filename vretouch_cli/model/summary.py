"""Parameters and MACs of a config, without allocating weights (everything runs on the meta device).

MACs are counted with ``torch.utils.flop_counter`` (convolutions, matmuls and attention; a MAC is
two FLOPs), so the numbers follow the code rather than a hand-written formula.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig

# Parameter groups as printed by ``vretouch info``.
GROUPS = (("E", ("encoder",)), ("N+I", ("localizer", "mask_head")), ("S", ("flow",)), ("FIR", ("fir",)), ("MMA", ("mma",)), ("G", ("decoder",)))


@dataclass(frozen=True)
class ModelSummary:
    """Cost of one config. ``gmac_per_output_frame`` is the table's figure (before caching: all
    δ+1 frames' per-frame parts plus one window); ``gmac_per_output_frame_cached`` is what sliding
    inference spends (one frame's per-frame parts plus one window)."""

    params: dict[str, int]  # per group (E, N+I, S, FIR, MMA, G), plus "total" (generator) and "D"
    frames: int  # δ + 1
    gmac_per_frame: float  # per-frame parts of one frame
    gmac_window: float  # MMA + G + composition for one output frame
    gmac_per_output_frame: float
    gmac_per_output_frame_cached: float

    def to_dict(self) -> dict:
        return {
            "params": dict(self.params),
            "frames": self.frames,
            "gmac": {
                "per_frame": self.gmac_per_frame,
                "window": self.gmac_window,
                "per_output_frame": self.gmac_per_output_frame,
                "per_output_frame_cached": self.gmac_per_output_frame_cached,
            },
        }


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_parameters(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per group (E, N+I, S, FIR, MMA, G), ``total`` (the generator) and ``D``."""
    from .discriminator import PatchDiscriminator
    from .network import VRetouchEr

    with torch.device("meta"):
        model = VRetouchEr(cfg)
        disc = PatchDiscriminator(cfg, spectral=False)
    out = {name: sum(_numel(getattr(model, m)) for m in mods) for name, mods in GROUPS}
    out["total"] = _numel(model)
    out["D"] = _numel(disc)
    return out


def _macs(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() // 2


def count_macs(cfg: ModelConfig, delta: int | None = None) -> tuple[float, float]:
    """GMAC of (per-frame parts of one frame, window part of one output frame) at size S with
    δ = ``delta`` (default: the config's)."""
    from .network import VRetouchEr

    delta = cfg.delta if delta is None else int(delta)
    s = cfg.size
    with torch.device("meta"):
        model = VRetouchEr(cfg).eval()
        image = torch.zeros(1, 3, s, s)
        prev_mask = torch.zeros(1, cfg.mask_channels, s // 8, s // 8)
        state = {}

        def per_frame() -> None:
            state["f"] = model.frame_step(image, image, prev_mask)

        per = _macs(per_frame)
        f = state["f"]
        t = delta + 1
        kv = [(k.unsqueeze(1).expand(-1, t, -1, -1, -1), v.unsqueeze(1).expand(-1, t, -1, -1, -1)) for k, v in f.kv]
        window = _macs(lambda: model.synthesize(f.image, f.skips, f.mask, f.mask_pix, kv, keep_pix=f.keep_pix))
    return per / 1e9, window / 1e9


def summarize(cfg: ModelConfig, delta: int | None = None) -> ModelSummary:
    """Parameters and GMAC per output frame of a config (see :class:`ModelSummary`)."""
    return _summarize(cfg, cfg.delta if delta is None else int(delta))


@functools.lru_cache(maxsize=32)
def _summarize(cfg: ModelConfig, delta: int) -> ModelSummary:
    params = count_parameters(cfg)
    per, window = count_macs(cfg, delta)
    t = delta + 1
    return ModelSummary(params, t, per, window, t * per + window, per + window)
