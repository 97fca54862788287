"""The `tiny` preset can learn: it overfits one synthetic blemish sequence on CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

SIZE = 64


def blemish_sequence(size: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(raw [1, T, 3, S, S], clean [1, T, 3, S, S], ground-truth flow [1, T-1, 2, S, S]).

    Smooth skin-toned texture with six soft, darker-and-redder spots, moving 1 px per frame
    diagonally (so frame_{k+1}(p) = frame_k(p + (1, 1)) exactly).
    """
    g = torch.Generator().manual_seed(seed)
    big = size + frames
    yy, xx = torch.meshgrid(torch.arange(big).float(), torch.arange(big).float(), indexing="ij")
    tone = torch.tensor([0.55, 0.15, -0.05]).view(3, 1, 1)
    low = F.interpolate(torch.randn(1, 3, 4, 4, generator=g), size=(big, big), mode="bicubic", align_corners=False)[0] * 0.08
    clean = (tone + low + torch.randn(1, big, big, generator=g) * 0.03).clamp(-1, 1)
    spots = torch.zeros(big, big)
    for _ in range(6):
        cy, cx = torch.randint(8, big - 8, (2,), generator=g).tolist()
        r = 1.5 + 2.0 * torch.rand(1, generator=g).item()
        spots = torch.maximum(spots, torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    raw = (clean + torch.tensor([-0.10, -0.45, -0.40]).view(3, 1, 1) * spots).clamp(-1, 1)
    crop = lambda img: torch.stack([img[:, t : t + size, t : t + size] for t in range(frames)])[None]  # noqa: E731
    return crop(raw), crop(clean), torch.ones(1, frames - 1, 2, size, size)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(((a - b) / 2).pow(2).mean()))


@pytest.mark.slow
def test_tiny_overfits_a_blemish_sequence():
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny").replace(size=SIZE)
    model = VRetouchEr(cfg)
    raw, clean, flow_gt = blemish_sequence(SIZE, cfg.delta + 1)
    ti = cfg.delta // 2
    target = clean[:, ti]
    m_gt = ((raw - clean).abs().mean(dim=2, keepdim=True) / 0.1).clamp(0, 1)
    baseline = psnr(raw[:, ti], target)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for step in range(300):
        o = model(raw, ti)
        if psnr(o.out.detach(), target) - baseline >= 7.0:
            break  # the model of this step already meets the bar (with margin)
        loss = (
            10 * (o.out - target).abs().mean()
            + 10 * (o.generated - target).abs().mean()
            + (o.masks - m_gt).abs().mean()
            + (o.masks_raw - m_gt).abs().mean()
            + 0.1 * (o.flows - flow_gt).abs().mean()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        gain = psnr(model(raw, ti).out, target) - baseline
    assert gain >= 6.0, f"PSNR gain {gain:.2f} dB after {step + 1} steps"
