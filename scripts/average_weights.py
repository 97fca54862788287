"""Uniform (or weighted) average of weights files of one architecture: a "model soup".

    python scripts/average_weights.py OUT.safetensors A.safetensors B.safetensors [C ...] [--fp16]

Every file must hold the same architecture (same config and tensor names); floating-point
tensors are averaged in fp32, others are taken from the first file. ``A.safetensors:2`` gives a
file weight 2. Session 9's default weights are the average of three fine-tunes that all start
from one weight file (weights/README.md, "Session 9").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("inputs", nargs="+", help="weights files, each optionally PATH:WEIGHT")
    parser.add_argument("--fp16", action="store_true", help="store the average in fp16 (as the shipped weights)")
    args = parser.parse_args()

    from vretouch_cli.checkpoint import load_model, save_model

    if len(args.inputs) < 2:
        parser.error("give at least two weights files")
    specs = []
    for item in args.inputs:
        path, _, w = item.partition(":")
        specs.append((path, float(w) if w else 1.0))
    models = [(load_model(p, device="cpu"), w) for p, w in specs]
    base = models[0][0]
    for (m, _), (p, _) in zip(models[1:], specs[1:]):
        if m.config.to_dict() != base.config.to_dict():
            parser.error(f"{p}: a different architecture from {specs[0][0]}")
    total = sum(w for _, w in specs)
    states = [m.state_dict() for m, _ in models]
    avg = {}
    for k, v in states[0].items():
        avg[k] = sum(s[k].float() * w for s, (_, w) in zip(states, specs)) / total if v.is_floating_point() else v.clone()
    base.load_state_dict(avg)
    if args.fp16:
        base = base.half()
    save_model(args.out, base, metadata={"source": "average of " + " ".join(args.inputs), "dtype": "fp16" if args.fp16 else "fp32"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
