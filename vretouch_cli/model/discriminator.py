"""Discriminator D (training only): multi-scale PatchGAN with spectral norm, for the hinge loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .config import ModelConfig
from .layers import LRELU_SLOPE


class _PatchNet(nn.Module):
    def __init__(self, channels: int, layers: int, spectral: bool = True):
        super().__init__()
        sn = spectral_norm if spectral else (lambda m: m)
        mods: list[nn.Module] = []
        cin, cout = 3, channels
        for i in range(layers):
            mods += [sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(LRELU_SLOPE)]
            cin, cout = cout, min(cout * 2, channels * 8)
        # 3×3 heads keep the patch grid size, so small crops still give logits at every scale
        mods += [sn(nn.Conv2d(cin, cout, 3, stride=1, padding=1)), nn.LeakyReLU(LRELU_SLOPE)]
        mods.append(sn(nn.Conv2d(cout, 1, 3, stride=1, padding=1)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, 3, H, W] in [-1, 1] → patch logits [B, 1, H/2^layers, W/2^layers] (unbounded)."""
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Multi-scale PatchGAN: one patch net per scale (full, ½, ¼, …), spectral-normalised convs.

    ``PatchDiscriminator(cfg)`` takes its numbers from the model config; keywords override them.
    ``spectral=False`` leaves the convs plain (same parameter count; used for fast summaries).
    """

    def __init__(self, cfg: ModelConfig | None = None, *, channels: int | None = None, scales: int | None = None, layers: int | None = None, spectral: bool = True):
        super().__init__()
        cfg = cfg or ModelConfig()
        channels = channels or cfg.disc_channels
        scales = scales or cfg.disc_scales
        layers = layers or cfg.disc_layers
        self.nets = nn.ModuleList(_PatchNet(channels, layers, spectral) for _ in range(scales))

    def forward(self, img: Tensor) -> list[Tensor]:
        """img [B, 3, S, S] in [-1, 1] → list of patch logits per scale, [B, 1, h_s, w_s] each."""
        out = []
        x = img
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(net(x))
        return out
