"""Imperfection localisation N and the full-resolution mask head I (MODEL.md §1.2)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .layers import ConvAct, conv2d, gaussian_blur, upsample2

# Initial biases: the maps start small (σ(-2) ≈ 0.12, σ(-3) ≈ 0.05) but not saturated, so
# gradients flow from the first step.
MAP_BIAS = -2.0
HEAD_BIAS = -3.0


class Localizer(nn.Module):
    """N: M_i = N(X_i, f_i), a C_m-channel soft map in [0, 1] at S/8.

    Four conv blocks on the image (strides 1, 2, 4, 8, anti-aliased), fused with the frame's own
    encoder feature f_i by two 3×3 convs.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.loc_channels
        self.image_blocks = nn.ModuleList(
            [ConvAct(3, w[0]), ConvAct(w[0], w[1], down=True), ConvAct(w[1], w[2], down=True), ConvAct(w[2], w[3], down=True)]
        )
        self.fuse = ConvAct(w[3] + cfg.channels, w[3])
        self.out = conv2d(w[3], cfg.mask_channels, gain_slope=None)
        with torch.no_grad():
            self.out.weight.mul_(0.5)
            self.out.bias.fill_(MAP_BIAS)

    def forward(self, image: Tensor, feat: Tensor) -> Tensor:
        """image [B, 3, S, S] in [-1, 1], feat f [B, C, S/8, S/8] → M [B, C_m, S/8, S/8] in [0, 1]."""
        x = image
        for block in self.image_blocks:
            x = block(x)
        x = self.fuse(torch.cat([x, feat], dim=1))
        return torch.sigmoid(self.out(x))


class MaskHead(nn.Module):
    """I: maps M (C_m @ S/8) to full-resolution maps in [0, 1]: one merged map, or with class
    heads (``cfg.classes``) one map per class, K = len(classes) channels in that order.

    Upsamples ×2 three times, each time fused with the frame's encoder features at that scale
    (C/2 @ S/4, C/4 @ S/2, C/8 @ S) so the map follows the blemishes' real edges. The class heads
    share everything but the last 3×3 conv (K output channels instead of 1).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h = cfg.head_channels
        enc = cfg.encoder_channels
        self.inp = ConvAct(cfg.mask_channels, h, kernel=1)
        self.highpass = tuple(s * cfg.size / 256.0 for s in (1.5, 4.0)) if cfg.head_highpass else ()
        extra = 3 * len(self.highpass)
        self.ups = nn.ModuleList([ConvAct(h + enc[2], h), ConvAct(h + enc[1], h), ConvAct(h + enc[0] + extra, h)])
        self.out = conv2d(h, len(cfg.classes) or 1, gain_slope=None)
        with torch.no_grad():
            self.out.weight.mul_(0.5)
            self.out.bias.fill_(HEAD_BIAS)
        self.floor = float(cfg.mask_floor)

    def logits(self, mask: Tensor, skips: Sequence[Tensor], image: Tensor | None = None) -> Tensor:
        """mask [B, C_m, S/8, S/8], skips = encoder features (list of six), image [B, 3, S, S] (needed
        with ``head_highpass``) → logits [B, K, S, S] (K = 1, or one per class)."""
        x = self.inp(mask)
        full = skips[0]
        if self.highpass:
            if image is None:
                raise ValueError("this mask head reads the image's local contrast: pass image")
            img = image.to(full.dtype)
            full = torch.cat([full] + [(img - gaussian_blur(img, s)) * 4.0 for s in self.highpass], dim=1)
        for conv, skip in zip(self.ups, (skips[2], skips[1], full)):
            x = upsample2(x)
            x = conv(torch.cat([x, skip.to(x.dtype)], dim=1))
        return self.out(x)

    def to_map(self, logits: Tensor) -> Tensor:
        """Logits → the map in [0, 1] (see :meth:`forward`)."""
        p = torch.sigmoid(logits)
        if self.floor <= 0:
            return p
        stretched = (1.0 + 2.0 * self.floor) * p - self.floor
        return stretched + (stretched.clamp(0.0, 1.0) - stretched).detach()

    def forward(self, mask: Tensor, skips: Sequence[Tensor], image: Tensor | None = None) -> Tensor:
        """mask [B, C_m, S/8, S/8] in [0, 1], skips (encoder features of the same frames) → [B, K, S, S] in [0, 1]
        (K = 1, or one map per class of ``cfg.classes``).

        The sigmoid is stretched by ``mask_floor`` ε and clipped, (1 + 2ε)·σ − ε, so the map reaches
        exact 0 (the pixel is left bit-exact) and exact 1 at finite logits. The clip is
        straight-through: gradients are those of the unclipped map, so a pixel that fell below 0
        can still be pulled back up during training.
        """
        return self.to_map(self.logits(mask, skips, image))
