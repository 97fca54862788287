"""Encoder E (MODEL.md §1.1): six conv blocks at strides 1, 2, 4, 8, 8, 8, shared by all frames."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import LRELU_SLOPE, ConvAct, conv2d


class EncoderBlock(nn.Module):
    """``convs`` 3×3 convs with LeakyReLU(0.2); the first is anti-aliased stride 2 when ``down``.
    Blocks that keep shape (the last two at S/8) are residual."""

    def __init__(self, cin: int, cout: int, *, down: bool, convs: int):
        super().__init__()
        self.first = ConvAct(cin, cout, down=down)
        self.rest = nn.ModuleList(conv2d(cout, cout) for _ in range(convs - 1))
        self.residual = not down and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        """x [B, cin, H, W] → [B, cout, H', W']."""
        y = self.first(x)
        for conv in self.rest:
            y = F.leaky_relu(conv(y), LRELU_SLOPE)
        return x + y if self.residual else y


class Encoder(nn.Module):
    """E: image → six feature maps ``[C/8 @ S, C/4 @ S/2, C/2 @ S/4, C @ S/8, C @ S/8, C @ S/8]``.

    The last one is the frame feature f_i used by N, MMA and the decoder; all six of the target
    are the decoder's skips.
    """

    STRIDES = (1, 2, 4, 8, 8, 8)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        widths = cfg.encoder_channels
        blocks = []
        cin, prev_stride = 3, 1
        for width, stride in zip(widths, self.STRIDES):
            blocks.append(EncoderBlock(cin, width, down=stride > prev_stride, convs=cfg.enc_convs))
            cin, prev_stride = width, stride
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x [B, 3, S, S] in [-1, 1] → list of six features (see class doc); f = out[-1] [B, C, S/8, S/8]."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats
