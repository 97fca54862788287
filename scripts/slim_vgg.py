"""Slim a VGG-16 safetensors to the convs the perceptual loss uses, in fp16 (for carrying to a GPU box).

    python scripts/slim_vgg.py ../shared/weights/vgg16_lpips.safetensors .devdata/vgg16_relu4_3_fp16.safetensors

Keeps conv1_1 … conv4_3 (the default taps relu1_2 … relu4_3): 7.6 M of 14.7 M parameters, 15 MB
in fp16 instead of 59 MB. The loss loads the file like any VGG-16 (it casts to fp32).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(src: str, dst: str, convs: int = 10) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(src)
    idx = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and state[k].dim() == 4})
    keep = {}
    for new, old in enumerate(idx[:convs]):
        keep[f"features.{new}.weight"] = state[f"features.{old}.weight"].to(torch.float16).contiguous()
        keep[f"features.{new}.bias"] = state[f"features.{old}.bias"].to(torch.float16).contiguous()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_file(keep, dst, metadata={"source": f"{Path(src).name}, first {convs} convs, fp16", "layout": "features.i = i-th conv (OIHW)"})
    print(f"wrote {dst}: {len(keep) // 2} convs, {Path(dst).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
