"""Imperfection flow S (MODEL.md §1.3): a SpyNet-style coarse-to-fine pyramid with backward warping."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import downsample_area, warp

LEVEL_WIDTHS = (8, 32, 64, 32, 16, 2)


class FlowLevel(nn.Module):
    """One pyramid level: five 7×7 convs 8→32→64→32→16→2 (ReLU between) giving a residual flow."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(LEVEL_WIDTHS[:-1], LEVEL_WIDTHS[1:])):
            conv = nn.Conv2d(cin, cout, 7, padding=3)
            last = i == len(LEVEL_WIDTHS) - 2
            nn.init.kaiming_normal_(conv.weight, nonlinearity="linear" if last else "relu")
            nn.init.zeros_(conv.bias)
            if last:  # start near zero flow, but not exactly zero (earlier layers must get gradients)
                with torch.no_grad():
                    conv.weight.mul_(0.01)
            layers.append(conv)
            if not last:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, 8, h, w] = (current RGB, warped previous RGB, flow) → residual flow [B, 2, h, w]."""
        return self.net(x)


class FlowEstimator(nn.Module):
    """S: flow O_{i→j} between consecutive frames at S/flow_scale.

    Convention (ARCHITECTURE.md): the flow lives on the current frame's grid and
    ``cur(p) ≈ prev(p + flow(p))`` (backward warp), in pixels of the flow's own grid.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scale = cfg.flow_scale
        self.levels = nn.ModuleList(FlowLevel() for _ in range(cfg.flow_levels))

    def _pyramid(self, x: Tensor) -> list[Tensor]:
        pyr = [downsample_area(x, self.scale)]
        for _ in range(len(self.levels) - 1):
            h, w = pyr[-1].shape[-2:]
            pyr.append(F.adaptive_avg_pool2d(pyr[-1], (max(1, h // 2), max(1, w // 2))))
        return pyr

    def forward(self, prev: Tensor, cur: Tensor) -> Tensor:
        """prev, cur [B, 3, S, S] in [-1, 1] → flow [B, 2, S/flow_scale, S/flow_scale] (pixels of that grid)."""
        p_pyr, c_pyr = self._pyramid(prev), self._pyramid(cur)
        flow = None
        for level in reversed(range(len(self.levels))):
            p, c = p_pyr[level], c_pyr[level]
            h, w = c.shape[-2:]
            if flow is None:
                flow = c.new_zeros(c.shape[0], 2, h, w)
            elif flow.shape[-2:] != (h, w):
                fh, fw = flow.shape[-2:]
                flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
                flow = flow * torch.tensor([w / fw, h / fh], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
            warped = warp(p, flow)
            flow = flow + self.levels[level](torch.cat([c, warped, flow.to(c.dtype)], dim=1)).to(flow.dtype)
        return flow
