"""Decoder G (MODEL.md §1.6): mirror of E with the target's mask-gated skips and modulated convs."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import LRELU_SLOPE, ModulatedConv2d, conv2d, upsample2


class StyleMapper(nn.Module):
    """Style code for the modulated convs: the target's S/8 feature averaged over its clean skin
    (weights 1 − mean M̂), then an MLP. Carries skin tone and texture statistics to G."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dims = [cfg.channels] + [cfg.style_dim] * cfg.mapping_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, feat: Tensor, mask: Tensor) -> Tensor:
        """feat f_t [B, C, h, w]; mask M̂_t [B, C_m, h, w] in [0, 1] → style [B, style_dim]."""
        keep = 1.0 - mask.mean(dim=1, keepdim=True).to(feat.dtype)
        pooled = (feat * keep).sum(dim=(2, 3)) / keep.sum(dim=(2, 3)).clamp_min(1e-3)
        x = pooled
        for layer in self.layers:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
        return x


class DecoderBlock(nn.Module):
    """``convs`` modulated 3×3 convs + LeakyReLU(0.2) on concat(x, skip ⊙ (1 − m), m[, k]).

    With class heads (``keep=True``) the block also reads k, the map of the classes that are not
    selected: where the input must be kept as it is, next to or under what is removed.
    """

    def __init__(self, cin: int, skip: int, cout: int, convs: int, style_dim: int, keep: bool = False):
        super().__init__()
        self.convs = nn.ModuleList(
            ModulatedConv2d(cin + skip + 1 + int(keep) if i == 0 else cout, cout, style_dim) for i in range(convs)
        )

    def forward(self, x: Tensor, skip: Tensor, m: Tensor, style: Tensor, k: Tensor | None = None) -> Tensor:
        """x [B, cin, H, W]; skip [B, skip, H, W]; m [B, 1, H, W] in [0, 1]; style [B, D]; k [B, 1, H, W]
        in [0, 1] (blocks built with ``keep`` only) → [B, cout, H, W]."""
        parts = [x, skip.to(x.dtype) * (1.0 - m.to(x.dtype)), m.to(x.dtype)]
        if k is not None:
            parts.append(k.to(x.dtype))
        x = torch.cat(parts, dim=1)
        for conv in self.convs:
            x = F.leaky_relu(conv(x, style), LRELU_SLOPE)
        return x


class Decoder(nn.Module):
    """G: f̂_t (C @ S/8) → RGB [B, 3, S, S] in [-1, 1].

    Three blocks at S/8 (skips E6, E5, E4), then ×2 upsampling to S/4, S/2, S (skips E3, E2, E1).
    Every skip is gated by the full-resolution map max-pooled to its scale, so blemish detail
    cannot leak back through the skips.

    With class heads (``cfg.classes``) G is conditioned on the selection, so that it can learn to
    keep what is not selected rather than rely on the composition's cut: the selection vector
    adds a learned bias to the style code (FiLM-like: it reaches every modulated conv; zero at
    initialisation), and every block also reads the map of the classes that are kept.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        enc = cfg.encoder_channels
        d = cfg.dec_channels
        sd = cfg.style_dim
        keep = bool(cfg.classes)
        self.style = StyleMapper(cfg)
        self.low = nn.ModuleList(
            [DecoderBlock(cfg.channels if i == 0 else d[0], enc[5 - i], d[0], cfg.dec_convs, sd, keep) for i in range(3)]
        )
        self.up = nn.ModuleList(
            [
                DecoderBlock(d[0], enc[2], d[1], cfg.dec_convs, sd, keep),
                DecoderBlock(d[1], enc[1], d[2], cfg.dec_convs, sd, keep),
                DecoderBlock(d[2], enc[0], d[3], cfg.dec_convs, sd, keep),
            ]
        )
        self.to_rgb = conv2d(d[3], 3, gain_slope=None)
        self.residual = cfg.fill != "none"
        if self.residual:  # start as the classical fill: a small residual on top of it
            with torch.no_grad():
                self.to_rgb.weight.mul_(0.1)
        # Only with class heads (a class-less config keeps its exact modules and parameters).
        self.select_style = nn.Linear(len(cfg.classes), sd) if cfg.classes else None
        if self.select_style is not None:
            with torch.no_grad():
                self.select_style.weight.zero_()
                self.select_style.bias.zero_()

    def forward(
        self, feat: Tensor, skips: Sequence[Tensor], mask_pix: Tensor, mask: Tensor, base: Tensor | None = None,
        select: Tensor | None = None, keep_pix: Tensor | None = None,
    ) -> Tensor:
        """feat f̂_t [B, C, S/8, S/8]; skips: the target's six encoder features; mask_pix [B, 1, S, S]
        in [0, 1] (gates the skips); mask M̂_t [B, C_m, S/8, S/8] (style pooling); base [B, 3, S, S]
        the classical fill (configs with ``fill != "none"``); with class heads only: select
        [B, K] in [0, 1] (the selection) and keep_pix [B, 1, S, S] in [0, 1] (map of the kept
        classes) → [B, 3, S, S] in [-1, 1]."""
        style = self.style(skips[-1], mask)
        if self.select_style is not None:
            if select is None or keep_pix is None:
                raise ValueError("a decoder with class heads needs select and keep_pix")
            style = style + self.select_style(select.to(style.dtype))
        elif keep_pix is not None:
            raise ValueError("keep_pix is for decoders with class heads")
        m8 = F.max_pool2d(mask_pix, 8)
        k8 = F.max_pool2d(keep_pix, 8) if keep_pix is not None else None
        x = feat
        for i, block in enumerate(self.low):
            x = block(x, skips[5 - i], m8, style, k8)
        for i, block in enumerate(self.up):
            scale = 4 >> i  # 4, 2, 1
            m = F.max_pool2d(mask_pix, scale) if scale > 1 else mask_pix
            k = None if keep_pix is None else (F.max_pool2d(keep_pix, scale) if scale > 1 else keep_pix)
            x = block(upsample2(x), skips[2 - i], m, style, k)
        if self.residual:
            if base is None:
                raise ValueError("this decoder adds a residual to a fill: pass base")
            return (base.to(x.dtype) + 0.5 * torch.tanh(self.to_rgb(x))).clamp(-1.0, 1.0)
        return torch.tanh(self.to_rgb(x))
