"""What a weights file removes and keeps (issue 11), on held-out people with moles, freckles and acne.

Every held-out photo (the training identity split) gets moles, freckles and acne together and is
scored as a smooth-motion sequence through the model, as the video pipeline runs it
(:mod:`vretouch_cli.evaluate.classeval`):

- per-class Soft-IoU of the class maps (acne, redness, marks, mole, freckle; weights with class
  heads only) against each class's footprint, and against its own change at the evaluator's M_gt
  scale (0.1) and at the training recipe's --gt-scale (0.03);
- the default selection (acne, redness, marks): PSNR gain inside the acne region against the
  default target, and the share of mole and freckle pixels left within 2 levels of the input;
- ``all`` selected: PSNR gain inside the moles' (and the freckles') region.

Weights without class heads are run once (they cannot take a selection): the same numbers show
what a merged model does to moles and freckles. ``benchmarks/heldout_eval.py`` is unchanged and
still scores any weights on acne-only, independent and clean sets.

    python benchmarks/class_eval.py --weights RUN/weights_ema.safetensors --data .devdata/faces512 --limit 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _report import emit  # noqa: E402  (benchmarks/_report.py, beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=str(REPO / ".devdata" / "faces512"), help="a --prepare-faces folder of clean faces")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--limit", type=int, default=0, help="at most this many held-out photos (0 = all)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--train-gt-scale", type=float, default=0.03, help="also report Soft-IoU against each class's change at this scale")
    args = parser.parse_args()

    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.evaluate.classeval import class_heldout_items, evaluate_classes
    from vretouch_cli.weights import resolve_weights

    model = load_model(resolve_weights(args.weights), device="cpu").eval()
    started = time.perf_counter()
    items = class_heldout_items(args.data, model.config.size, seed=args.seed, limit=args.limit)
    report = evaluate_classes(
        model, items, frames=args.frames, seed=args.seed, train_gt_scale=args.train_gt_scale,
        on_item=lambda i, it: print(f"{i + 1}/{len(items)} {it.name}", flush=True),
    )
    report = {"weights": str(args.weights), "size": model.config.size, **report, "seconds": time.perf_counter() - started}
    emit(report, args.json)


if __name__ == "__main__":
    main()
