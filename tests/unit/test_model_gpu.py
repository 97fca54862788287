"""CUDA checks (skipped without a GPU): same numbers as the CPU, bf16 autocast, sliding inference."""

from __future__ import annotations

import pytest
import torch

from vretouch_cli.inference import SlidingRetoucher
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_cuda_matches_cpu_and_runs_bf16(attention):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny").replace(size=128, attention=attention)  # 2×2 windows: shifted path too
    cpu = VRetouchEr(cfg).eval()
    gpu = VRetouchEr(cfg).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(dev)
    clip = torch.rand(2, 4, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        a = cpu(clip, 1)
        b = gpu(clip.to(dev), 1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            c = gpu(clip.to(dev), 1)
    assert torch.allclose(a.out, b.out.cpu(), atol=1e-3)
    assert torch.isfinite(c.out).all() and (a.out - c.out.float().cpu()).abs().mean() < 0.02

    retoucher = SlidingRetoucher(gpu, delta=3, device=dev, dtype=torch.bfloat16, max_batch=2)
    results = []
    for i in range(6):
        results += retoucher.push([((i, k), k, clip[k % 2, i % 4]) for k in range(3)])
    results += retoucher.flush()
    assert len(results) == 18
    assert all(r.out.device.type == "cpu" and r.out.dtype == torch.float32 and torch.isfinite(r.out).all() for r in results)

    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        o = gpu(clip.to(dev), 1)
        loss = o.out.abs().mean() + o.masks.mean() + o.flows.abs().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)
