"""FIR, flow-based imperfection refinement (MODEL.md §1.4, paper Eqs. 2–3), one step of a stream."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .layers import PixelAdaptiveConv2d, conv2d, resize_flow, warp


class FIR(nn.Module):
    """One refinement step of the stream over a track:

    M̃_j = W(O_{i→j}, M̂_i);  (α, β) = align(M̃_j, M_j);  M_a = θ_a(α·M̃_j + β; guide M_j);
    M̂_j = σ(θ_r(M_j; guide M_a)).

    θ are pixel-adaptive convolutions. α, β are per-pixel align factors predicted from the warped
    and the current map (initialised to α = 1, β = 0). A frame without a predecessor (track start)
    uses its own map as M̃_j.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cm = cfg.mask_channels
        self.cm = cm
        self.align = conv2d(2 * cm, 2 * cm, gain_slope=None)
        with torch.no_grad():
            self.align.weight.mul_(0.1)
        self.theta_a = PixelAdaptiveConv2d(cm, cm, cfg.pac_kernel, identity_init=1.0)
        # σ(4·m − 2.5): a small map stays small at initialisation
        self.theta_r = PixelAdaptiveConv2d(cm, cm, cfg.pac_kernel, identity_init=4.0, bias_init=-2.5)

    def forward(self, mask: Tensor, prev_refined: Tensor | None = None, flow: Tensor | None = None, has_prev: Tensor | None = None) -> Tensor:
        """mask M_j [B, C_m, h, w] in [0, 1]; prev_refined M̂_i [B, C_m, h, w] (None: track start);
        flow [B, 2, h', w'] (pixels of its grid, resampled to h×w here); has_prev [B] bool selects
        per sample whether a predecessor exists → M̂_j [B, C_m, h, w] in [0, 1]."""
        if prev_refined is None:
            warped = mask
        else:
            warped = warp(prev_refined, resize_flow(flow, mask.shape[-2:])) if flow is not None else prev_refined
            if has_prev is not None:
                warped = torch.where(has_prev.view(-1, 1, 1, 1), warped, mask)
        ab = self.align(torch.cat([warped, mask], dim=1))
        alpha, beta = 1.0 + ab[:, : self.cm], ab[:, self.cm :]
        aligned = self.theta_a(alpha * warped + beta, mask)
        return torch.sigmoid(self.theta_r(mask, aligned))
