"""Where a weights file loses its held-out gain: the map, G, or how the two are composed (issue 10).

Each held-out photo of the chosen sets (the training identity split, cleaned target, seeded
camera; :mod:`vretouch_cli.evaluate.heldout`) goes once through the model as a single frame. The
output X + w·(G − X), with w the pipeline's weight (retouch region × skin × the composition
weight), is scored by face-region PSNR gain over the raw input and by the share of face pixels
changed by more than 5 levels, for:

- **oracles**: the model's map with the true target in place of G ("perfect fill"); the true
  map (M_gt at the training scale) with the perfect fill; the model's map thresholded at 0.05
  with the perfect fill (does the map's support cover the blemishes?); the model's map with the
  target blurred by σ = 1 and 2 px (a fill with the right colour but no skin texture: what a
  better G alone could reach under this map); the true map with the model's own G (what a better
  map alone could reach);
- **inference-time variants** (no retraining): the model run a second time on its own pasted
  output; the output averaged with the model's output on the mirrored crop;
- **compositions of the model's own G and map** (no retraining): the map as trained; the map
  boosted (min(1, k·M)); a power (M^γ); binarised; cores raised to 1 (M ≥ hi) with the haze left
  as it is; a dead zone that removes the haze ((M − t)/(1 − t)); the correction low-passed
  (G's low frequencies, X's high frequencies: frequency separation) — with the Soft-IoU of each
  map against M_gt at 0.1 and at the training scale;
- **G inside the true blemish cores** (M_gt at the training scale > 0.5): PSNR of X, of G, of
  the output, and of the target blurred with σ = 1 and 2 px (the error of a perfect colour fix
  without texture), G's error split into low (σ = 2) and high frequencies, and its mean signed
  error per channel (colour left).

    python benchmarks/gain_limits.py --weights weights/vretouch-tiny.safetensors --limit 30

A single frame per photo, not the 6-frame sequences of ``heldout_eval.py``: the numbers compare
variants with each other, not with issue 10's acceptance table.
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


LOWPASS_SIGMAS = (0.7, 1.5)  # frequency separation: G's correction low-passed, composed with M as trained


def composition_variants() -> dict:
    """name → (map [H, W] → composition weight [H, W]), applied to the model's own map and G."""
    v: dict = {"M (as trained)": lambda m: m}
    for k in (2, 4):
        v[f"min(1, {k}M)"] = (lambda k: lambda m: np.minimum(1.0, k * m))(k)
    v["M^0.5"] = lambda m: np.sqrt(m)
    v["M > 0.1"] = lambda m: (m > 0.1).astype(np.float32)
    for lo, hi in ((0.2, 0.5), (0.4, 0.7)):
        v[f"cores to 1 ({lo}..{hi})"] = (lambda lo, hi: lambda m: np.maximum(m, np.clip((m - lo) / (hi - lo), 0, 1)))(lo, hi)
    for t in (0.05, 0.1):
        v[f"dead zone {t}"] = (lambda t: lambda m: np.clip((m - t) / (1 - t), 0, 1))(t)
    return v


class Pooled:
    """Pooled squared error and >5-level change counts over the face pixels of many images."""

    def __init__(self):
        self.se: dict[str, list[float]] = {}
        self.changed: dict[str, int] = {}
        self.iou: dict[tuple[str, str], list[float]] = {}

    def add(self, name, out, raw, target, face):
        a = self.se.setdefault(name, [0.0, 0.0])
        a[0] += float(((out - target)[face] ** 2).sum())
        a[1] += float(out[face].size)
        self.changed[name] = self.changed.get(name, 0) + int((np.abs(out - raw).max(-1)[face] > 5).sum())

    def add_iou(self, name, scale, m, gt, w):
        b = self.iou.setdefault((name, scale), [0.0, 0.0])
        b[0] += float((np.minimum(m, gt) * w).sum())
        b[1] += float((np.maximum(m, gt) * w).sum())

    def report(self, face_pixels: int) -> dict:
        base = self.se["raw"][0] / self.se["raw"][1]
        rows = {}
        for name, (s, n) in self.se.items():
            if name == "raw":
                continue
            mse = s / n
            row = {"gain_db": 10 * math.log10(base / mse) if base > 0 and mse > 0 else None,
                   "changed_gt5_face_percent": 100.0 * self.changed[name] / face_pixels}
            for (k, scale), (lo, hi) in self.iou.items():
                if k == name:
                    row[f"soft_iou_{scale}"] = lo / max(hi, 1e-9)
            rows[name] = row
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=str(REPO / ".devdata" / "faces512"), help="a --prepare-faces folder of clean faces")
    parser.add_argument("--limit", type=int, default=30, help="at most this many held-out photos per set (0 = all)")
    parser.add_argument("--sets", default="acne,alt,clean")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--train-gt-scale", type=float, default=0.03)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import cv2

    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.evaluate.heldout import heldout_items
    from vretouch_cli.evaluate.metrics import GT_MAP_SCALE, gt_imperfection_map
    from vretouch_cli.face.paste import face_region_mask, retouch_region_mask
    from vretouch_cli.face.regions import skin_weight
    from vretouch_cli.train.data import to_model_range

    t0 = time.perf_counter()
    model = load_model(args.weights, device="cpu").eval()
    size = model.config.size
    face_w = face_region_mask(size)
    face = face_w > 0.5
    region = retouch_region_mask(size)
    variants = composition_variants()
    to8 = lambda x: ((x[0].float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()  # noqa: E731

    report: dict = {"weights": args.weights, "size": size, "limit": args.limit, "sets": {}}
    for kind in args.sets.split(","):
        items = heldout_items(args.data, size, kind, seed=args.seed, limit=args.limit)
        pool, face_pixels = Pooled(), 0
        core = {"raw": 0.0, "G": 0.0, "out": 0.0, "blur1(target)": 0.0, "blur2(target)": 0.0, "G low (σ 2)": 0.0, "G high": 0.0}
        core_n, bias_g, bias_raw = 0, [], []
        with torch.inference_mode():
            for it in items:
                x = to_model_range(torch.from_numpy(np.ascontiguousarray(it.raw.transpose(2, 0, 1))))[None, None]
                o = model(x, 0)
                gen, m = to8(o.generated), o.mask[0, 0].float().numpy()
                raw, tgt = it.raw.astype(np.float32), it.target.astype(np.float32)
                skin = region * skin_weight(it.raw)
                face_pixels += int(face.sum())
                pool.add("raw", raw, raw, tgt, face)
                compose = lambda g, w: np.clip(np.rint(raw + (skin * w)[..., None] * (g - raw)), 0, 255)  # noqa: E731
                gt_train = gt_imperfection_map(it.raw, it.target, args.train_gt_scale)
                gt_eval = gt_imperfection_map(it.raw, it.target, GT_MAP_SCALE)
                if kind != "clean":
                    pool.add("oracle: model map, perfect fill", compose(tgt, m), raw, tgt, face)
                    for s in (1.0, 2.0):
                        pool.add(f"oracle: model map, texture-free fill (target blurred σ {s:g})",
                                 compose(cv2.GaussianBlur(tgt, (0, 0), s), m), raw, tgt, face)
                    pool.add(f"oracle: true map ({args.train_gt_scale}), model's G", compose(gen, gt_train), raw, tgt, face)
                    pool.add(f"oracle: true map ({args.train_gt_scale}), perfect fill", compose(tgt, gt_train), raw, tgt, face)
                    pool.add("oracle: model map > 0.05, perfect fill", compose(tgt, (m > 0.05).astype(np.float32)), raw, tgt, face)
                once = compose(gen, m)
                x2 = to_model_range(torch.from_numpy(np.ascontiguousarray(once.astype(np.uint8).transpose(2, 0, 1))))[None, None]
                o2 = model(x2, 0)  # a second pass over the pasted output
                second = once + (skin * o2.mask[0, 0].float().numpy())[..., None] * (to8(o2.generated) - once)
                pool.add("two passes", np.clip(np.rint(second), 0, 255), raw, tgt, face)
                om = model(torch.flip(x, dims=[-1]), 0)  # the mirrored crop
                out_m = np.ascontiguousarray(to8(om.out)[:, ::-1])
                pool.add("mirror-averaged output", compose(0.5 * (to8(o.out) + out_m), np.ones_like(m)), raw, tgt, face)
                candidates = [(name, gen, f(m)) for name, f in variants.items()]
                candidates += [(f"lowpass {s}", raw + cv2.GaussianBlur(gen - raw, (0, 0), s), m) for s in LOWPASS_SIGMAS]
                for name, g, w in candidates:
                    pool.add(name, compose(g, w), raw, tgt, face)
                    if kind != "clean":
                        pool.add_iou(name, str(GT_MAP_SCALE), w, gt_eval, face_w)
                        pool.add_iou(name, str(args.train_gt_scale), w, gt_train, face_w)
                cores = gt_train > 0.5
                if kind != "clean" and cores.any():
                    err = gen - tgt
                    low = cv2.GaussianBlur(err, (0, 0), 2.0)
                    out = raw + (skin * m)[..., None] * (gen - raw)
                    for name, e in (("raw", raw - tgt), ("G", err), ("out", out - tgt), ("G low (σ 2)", low), ("G high", err - low),
                                    ("blur1(target)", cv2.GaussianBlur(tgt, (0, 0), 1.0) - tgt),
                                    ("blur2(target)", cv2.GaussianBlur(tgt, (0, 0), 2.0) - tgt)):
                        core[name] += float((e[cores] ** 2).sum())
                    core_n += int(cores.sum()) * 3
                    bias_g.append(err[cores].mean(0))
                    bias_raw.append((raw - tgt)[cores].mean(0))
        entry: dict = {"items": len(items), "variants": pool.report(face_pixels)}
        if core_n:
            entry["true_cores"] = {
                "pixels": core_n // 3,
                "psnr_db": {k: 10 * math.log10(255.0**2 / (v / core_n)) for k, v in core.items()},
                "mean_signed_error_rgb": {"G": np.mean(bias_g, 0).round(2).tolist(), "raw": np.mean(bias_raw, 0).round(2).tolist()},
            }
        report["sets"][kind] = entry
    report["seconds"] = time.perf_counter() - t0
    emit(report, args.json)


if __name__ == "__main__":
    main()
