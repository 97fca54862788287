"""Held-out quality of a weights file on synthetic blemishes (issue 6's acceptance numbers).

People never seen in training (the training split's validation identities, ~20 % by person
number) get seeded synthetic blemishes and a 16-frame smooth-motion sequence each. The model
runs over each sequence as in the video pipeline (SlidingRetoucher, per-frame parts cached)
with its default δ and with δ = 1, and every frame is scored against the clean target:

- PSNR gain over the raw input (frames: mean of per-frame PSNR; sequences: clip PSNR),
- Soft-IoU of the composition map against the ground-truth map,
- the flow-warped frame difference (DIS flow on the clean reference) of each output.

    python benchmarks/heldout_eval.py --weights weights/vretouch-tiny.safetensors --data .devdata/faces512
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_sequence(model, raw: torch.Tensor, delta: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """raw [T, 3, S, S] in [-1, 1] → (outputs as uint8 H×W×3, maps as float H×W)."""
    from vretouch_cli.inference import SlidingRetoucher

    runner = SlidingRetoucher(model, delta=delta)
    results = []
    for t in range(raw.shape[0]):
        results += runner.push([(t, 0, raw[t])])
    results += runner.flush()
    results.sort(key=lambda r: r.key)
    outs = [((r.out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy() for r in results]
    maps = [r.mask[0].numpy() for r in results]
    return outs, maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=str(REPO / ".devdata" / "faces512"), help="clean faces (prepared folder or photos)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="at most this many held-out faces (0 = all)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.evaluate.scoring import ClipScorer, nanmean
    from vretouch_cli.face.paste import face_region_mask
    from vretouch_cli.train.data import ClipDataset, discover, to_model_range
    from vretouch_cli.weights import resolve_weights

    model = load_model(resolve_weights(args.weights), device="cpu")
    cfg = model.config
    split = discover(args.data, mode="synthetic", val_fraction=0.2, size=cfg.size)
    stills = split.val[: args.limit] if args.limit else split.val
    data = ClipDataset(stills, size=cfg.size, frames=args.frames)
    region = face_region_mask(cfg.size)
    methods = ("raw", "single_frame", "vretouch")
    scores = []
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(len(data)):
            item = data[(i, args.seed + i)]
            raw8 = item["raw"].permute(0, 2, 3, 1).numpy()
            target8 = item["target"].permute(0, 2, 3, 1).numpy()
            raw = to_model_range(item["raw"])
            out_d, maps_d = run_sequence(model, raw, cfg.delta)
            out_1, maps_1 = run_sequence(model, raw, 1)
            scorer = ClipScorer(f"heldout_{i}", methods)
            for t in range(raw8.shape[0]):
                scorer.push(
                    raw8[t], target8[t],
                    {"raw": raw8[t], "single_frame": out_1[t], "vretouch": out_d[t]},
                    {"raw": None, "single_frame": maps_1[t], "vretouch": maps_d[t]},
                    region,
                )
            scores.append(scorer.finish())
            print(f"{i + 1}/{len(data)} {stills[i].target.name}: PSNR raw {scores[-1].summary['raw']['psnr']:.2f} "
                  f"→ δ={cfg.delta} {scores[-1].summary['vretouch']['psnr']:.2f} dB", flush=True)

    # PSNR is undefined on frames without any blemish (raw == target): those frames (and
    # sequences) are left out of the PSNR figures, for every method alike, and counted.
    finite = [[math.isfinite(v) for v in s.per_frame["raw"]["psnr"]] for s in scores]
    seq_ok = [math.isfinite(s.summary["raw"]["psnr"]) for s in scores]

    def frame_mean(method: str, key: str) -> float:
        if key.startswith("psnr"):
            vals = [v for s, ok in zip(scores, finite) for v, k in zip(s.per_frame[method][key], ok) if k]
        else:
            vals = [v for s in scores for v in s.per_frame[method][key]]
        return nanmean(vals)

    def clip_mean(method: str, key: str) -> float:
        return nanmean([s.summary[method][key] for s, ok in zip(scores, seq_ok) if ok])

    report = {
        "weights": str(args.weights), "preset_size": cfg.size, "delta": cfg.delta,
        "people": len({s.identity for s in stills}), "sequences": len(scores), "frames_per_sequence": args.frames,
        "seconds": time.perf_counter() - started,
        "frames_without_blemish": sum(not k for f in finite for k in f),
        "sequences_without_blemish": sum(not ok for ok in seq_ok),
    }
    for method in methods:
        report[method] = {
            "psnr_frames": frame_mean(method, "psnr"),
            "psnr_sequences": clip_mean(method, "psnr"),
            "psnr_face_frames": frame_mean(method, "psnr_face"),
            "ssim": frame_mean(method, "ssim"),
            "soft_iou": frame_mean(method, "soft_iou"),
            "warp_error": frame_mean(method, "warp_error"),
            "warp_error_gap": frame_mean(method, "warp_error_gap"),
            "flicker": frame_mean(method, "flicker"),
        }
    for method in ("single_frame", "vretouch"):
        report[method]["psnr_gain_frames"] = report[method]["psnr_frames"] - report["raw"]["psnr_frames"]
        report[method]["psnr_gain_sequences"] = report[method]["psnr_sequences"] - report["raw"]["psnr_sequences"]
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
