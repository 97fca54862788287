"""Regenerate tests/golden/tiny_golden.safetensors (run only when the model's numbers change on purpose).

    .venv/bin/python tests/golden/make_golden.py

The seeded `tiny` preset (weights do not depend on the crop size) runs at S = 64 on a seeded clip
of 4 frames; its outputs are stored and compared with allclose by tests/unit/test_model.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent / "tiny_golden.safetensors"
SIZE = 64
FRAMES = 4
TARGET = 1


def golden_inputs() -> tuple[torch.nn.Module, torch.Tensor]:
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=SIZE)).eval()
    gen = torch.Generator().manual_seed(1234)
    clip = torch.rand(1, FRAMES, 3, SIZE, SIZE, generator=gen) * 2 - 1
    return model, clip


def golden_outputs(model, clip) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(clip, TARGET)
    return {
        "out": out.out.contiguous(),
        "generated": out.generated.contiguous(),
        "mask": out.mask.contiguous(),
        "masks_raw": out.masks_raw[:, :, :, ::4, ::4].contiguous(),
        "flows": out.flows[:, :, :, ::4, ::4].contiguous(),
    }


if __name__ == "__main__":
    from safetensors.torch import save_file

    model, clip = golden_inputs()
    save_file(golden_outputs(model, clip), str(GOLDEN), metadata={"torch": torch.__version__})
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
