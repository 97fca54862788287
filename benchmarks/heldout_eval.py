"""Held-out quality of a weights file (issue 10's acceptance numbers), on people never trained on.

Three sets of the same held-out people (:mod:`vretouch_cli.evaluate.heldout`): the training
appearance model's acne (``acne``), the independently written appearance model (``alt``), and no
blemish at all (``clean``: the cleaned targets as input). Each photo becomes a smooth-motion
sequence; the model runs over it as in the video pipeline (SlidingRetoucher, per-frame parts
cached) with its default δ and with δ = 1, its correction is pasted with the pipeline's weight
(retouch region × the crop's skin weight), and every frame is scored against the clean target in
the face region (``face_region_mask``):

- PSNR gain over the raw input (face region; frames without any blemish are left out of PSNR);
- Soft-IoU of the composition map against the ground-truth map, at the evaluator's M_gt scale
  (0.1) and at the training recipe's (``--train-gt-scale``, 0.03: a spot 8 levels deep is 1);
  and against the exact change before the camera at both scales (``soft_iou_face_exact``,
  ``soft_iou_face_exact_at_train_scale``): after the camera, JPEG spreads each spot's difference
  over whole 8×8 blocks, which caps the first two for any map: ``soft_iou_face_ceiling`` (and
  ``…_at_train_scale``) is what a map equal to the exact change scores against M_gt;
- warp error and flicker of the outputs (DIS flow on the clean reference);
- ``clean``: the share of face-region pixels the model changes by more than 5 levels, and the
  share on the features (eyes, brows, nostrils, lips) after paste-back weighting;
- the gain per skin-tone group (ITA° of the clean skin).

    python benchmarks/heldout_eval.py --weights weights/vretouch-tiny.safetensors --data .devdata/faces512
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _report import emit  # noqa: E402  (benchmarks/_report.py, beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=str(REPO / ".devdata" / "faces512"), help="a --prepare-faces folder of clean faces")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--limit", type=int, default=0, help="at most this many held-out photos per set (0 = all)")
    parser.add_argument("--sets", default="acne,alt,clean")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--train-gt-scale", type=float, default=0.03,
                        help="also report Soft-IoU against M_gt at this scale (the CPU recipe's --gt-scale)")
    args = parser.parse_args()

    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.evaluate.heldout import ITA_GROUPS, heldout_items, ita_group, paste_weighted, run_clip
    from vretouch_cli.evaluate.scoring import ClipScorer, nanmean
    from vretouch_cli.face.paste import face_region_mask, retouch_region_mask
    from vretouch_cli.evaluate.metrics import GT_MAP_SCALE, gt_imperfection_map
    from vretouch_cli.face.regions import feature_mask, skin_weight
    from vretouch_cli.train.data import to_model_range
    from vretouch_cli.train.motion import random_motion, warp_frames
    from vretouch_cli.weights import resolve_weights

    model = load_model(resolve_weights(args.weights), device="cpu")
    cfg = model.config
    S = cfg.size
    region = face_region_mask(S)
    paste_w = retouch_region_mask(S)
    features = feature_mask(S) > 0.5
    face = region > 0.5
    methods = ("raw", "single_frame", "vretouch")
    report: dict = {"weights": str(args.weights), "size": S, "delta": cfg.delta, "frames_per_sequence": args.frames}
    started = time.perf_counter()
    with torch.inference_mode():
        for kind in args.sets.split(","):
            items = heldout_items(args.data, S, kind, seed=args.seed, limit=args.limit)
            scores, itas, changed, changed_feat, iou_train = [], [], [], [], []
            iou_exact = {GT_MAP_SCALE: [0.0, 0.0], args.train_gt_scale: [0.0, 0.0]}
            iou_ceiling = {GT_MAP_SCALE: [0.0, 0.0], args.train_gt_scale: [0.0, 0.0]}
            for i, it in enumerate(items):
                rng = np.random.default_rng([args.seed, i, 99])
                affines = random_motion(args.frames, S, rng)
                raw8 = warp_frames(it.raw, affines, S)
                tgt8 = warp_frames(it.target, affines, S)
                exact = warp_frames(it.change, affines, S)[..., 0] if it.change is not None else None
                raw = to_model_range(torch.from_numpy(np.ascontiguousarray(raw8.transpose(0, 3, 1, 2))))
                out_d, maps_d, _ = run_clip(model, raw, cfg.delta)
                out_1, maps_1, _ = run_clip(model, raw, 1)
                # The pipeline pastes the correction weighted by the retouch region and the crop's
                # skin weight: score exactly that.
                weights = [paste_w * skin_weight(raw8[t]) for t in range(args.frames)]
                out_d = [paste_weighted(raw8[t], out_d[t], weights[t]) for t in range(args.frames)]
                out_1 = [paste_weighted(raw8[t], out_1[t], weights[t]) for t in range(args.frames)]
                scorer = ClipScorer(f"{kind}_{i}", methods)
                for t in range(args.frames):
                    scorer.push(
                        raw8[t], tgt8[t],
                        {"raw": raw8[t], "single_frame": out_1[t], "vretouch": out_d[t]},
                        {"raw": None, "single_frame": maps_1[t] * weights[t], "vretouch": maps_d[t] * weights[t]},
                        region,
                    )
                    gt_t = gt_imperfection_map(raw8[t], tgt8[t], args.train_gt_scale)
                    if gt_t.max() > 0:
                        iou_train.append((float(np.minimum(maps_d[t] * weights[t], gt_t)[face].sum()), float(np.maximum(maps_d[t] * weights[t], gt_t)[face].sum())))
                    if exact is not None:
                        # the ceiling: a map that is exactly the blemish's own change, scored like the model's
                        for scale, acc in iou_ceiling.items():
                            g = (gt_imperfection_map(raw8[t], tgt8[t], scale) if scale != args.train_gt_scale else gt_t)[face]
                            p = np.clip(exact[t] / scale, 0.0, 1.0)[face]
                            acc[0] += float(np.minimum(p, g).sum())
                            acc[1] += float(np.maximum(p, g).sum())
                    if exact is not None and exact[t].max() > 0:
                        for scale, acc in iou_exact.items():
                            g = np.clip(exact[t] / scale, 0.0, 1.0)[face]
                            p = (maps_d[t] * weights[t])[face]
                            acc[0] += float(np.minimum(p, g).sum())
                            acc[1] += float(np.maximum(p, g).sum())
                    diff = np.abs(out_d[t].astype(int) - raw8[t].astype(int)).max(axis=2)
                    changed.append(float((diff[face] > 5).mean()))
                    changed_feat.append(float((diff[features] > 5).mean()))
                scores.append(scorer.finish())
                itas.append(it.ita)
                s = scores[-1].summary
                print(f"{kind} {i + 1}/{len(items)} {it.name} ITA {it.ita:.0f}: face PSNR raw {s['raw']['psnr_face']:.2f} "
                      f"→ δ={cfg.delta} {s['vretouch']['psnr_face']:.2f} dB", flush=True)

            finite = [[math.isfinite(v) for v in s.per_frame["raw"]["psnr_face"]] for s in scores]

            def frame_vals(method: str, key: str, subset=None) -> list[float]:
                out = []
                for j, (s, ok) in enumerate(zip(scores, finite)):
                    if subset is not None and j not in subset:
                        continue
                    out += [v for v, k in zip(s.per_frame[method][key], ok) if k or not key.startswith("psnr")]
                return out

            res: dict = {"sequences": len(scores), "people": len({it.identity for it in items})}
            for method in methods:
                res[method] = {
                    key: nanmean(frame_vals(method, key))
                    for key in ("psnr_face", "psnr", "soft_iou", "soft_iou_face", "warp_error", "flicker")
                }
            for method in ("single_frame", "vretouch"):
                res[method]["psnr_face_gain"] = res[method]["psnr_face"] - res["raw"]["psnr_face"]
            if iou_train:
                res["vretouch"]["soft_iou_face_at_train_scale"] = sum(a for a, _ in iou_train) / max(sum(b for _, b in iou_train), 1e-9)
                res["train_gt_scale"] = args.train_gt_scale
            if iou_exact[GT_MAP_SCALE][1] > 0:
                res["vretouch"]["soft_iou_face_exact"] = iou_exact[GT_MAP_SCALE][0] / iou_exact[GT_MAP_SCALE][1]
                res["vretouch"]["soft_iou_face_exact_at_train_scale"] = iou_exact[args.train_gt_scale][0] / iou_exact[args.train_gt_scale][1]
            if iou_ceiling[GT_MAP_SCALE][1] > 0:
                res["soft_iou_face_ceiling"] = iou_ceiling[GT_MAP_SCALE][0] / iou_ceiling[GT_MAP_SCALE][1]
                res["soft_iou_face_ceiling_at_train_scale"] = iou_ceiling[args.train_gt_scale][0] / iou_ceiling[args.train_gt_scale][1]
            res["changed_gt5_face"] = float(np.mean(changed)) if changed else float("nan")
            res["changed_gt5_features"] = float(np.mean(changed_feat)) if changed_feat else float("nan")
            groups = {}
            for name, _, _ in ITA_GROUPS:
                idx = {j for j, a in enumerate(itas) if ita_group(a) == name}
                if not idx:
                    continue
                gain = nanmean(frame_vals("vretouch", "psnr_face", idx)) - nanmean(frame_vals("raw", "psnr_face", idx))
                groups[name] = {"photos": len(idx), "psnr_face_gain": gain}
            res["ita_groups"] = groups
            report[kind] = res
    report["seconds"] = time.perf_counter() - started
    emit(report, args.json)


if __name__ == "__main__":
    main()
