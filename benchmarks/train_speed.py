"""Training speed: steps/s of the full adversarial step (G + D + EMA) per preset, and data throughput.

    python benchmarks/train_speed.py                       # small and base, ~30 s each, auto device
    python benchmarks/train_speed.py --presets small --size 512 --batch 8 --seconds 20
    python benchmarks/train_speed.py --data .devdata/faces512 --workers 8   # + DataLoader clips/s
    # the CPU recipe of weights/README.md (δ = 1, 128-px patches, balanced objective, cached data):
    python benchmarks/train_speed.py --presets tiny --window 1 --patch 128 --batch 4 --objective balanced \
        --model-option fill=normconv --model-option head_channels=16 --data .devdata/cache256 --workers 0

The model step runs on a fixed random batch already on the device (so it measures the model, not
the loader); ``--data`` measures the loader alone (synthetic blemishes + motion + flow), to see
whether the workers keep up. bf16 autocast on CUDA, fp32 on CPU, exactly as ``vretouch train``.
Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402


def bench_model(
    preset: str, size: int | None, batch: int, seconds: float, device: torch.device, vgg: str | None, compile_: bool = False,
    window: int | None = None, patch: int = 0, objective: str = "paper", overrides: tuple = (), adversarial: float | None = None,
) -> dict:
    from vretouch_cli.device import autocast_dtype
    from vretouch_cli.train.config import TrainConfig
    from vretouch_cli.train.losses import build_perceptual
    from vretouch_cli.train.loop import Models, model_config_for

    from vretouch_cli.train.config import LossWeights

    lw = LossWeights() if adversarial is None else LossWeights(adversarial=adversarial)
    cfg = TrainConfig(preset=preset, size=size, delta=window, batch_size=batch, vgg_weights=vgg or "none", objective=objective, model_overrides=overrides, losses=lw)
    mcfg = model_config_for(cfg)
    dtype = autocast_dtype(device, "auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)
    perceptual, _ = build_perceptual(vgg or "none", tuple(cfg.vgg_layers)) if vgg else (None, "")
    models = Models(mcfg, cfg, device, dtype, perceptual)
    models.train()
    S, T = (patch or mcfg.size), mcfg.delta + 1
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (batch, T, 3, S, S), generator=g, dtype=torch.uint8)
    raw = (target.int() + torch.randint(-8, 9, target.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    affines = torch.zeros(batch, T, 2, 3, dtype=torch.float64)
    affines[..., 0, 0] = affines[..., 1, 1] = 1.0
    affines[..., 0, 2] = torch.arange(T, dtype=torch.float64) * 1.5  # 1.5 px per frame to the right
    batch_t = {"raw": raw.pin_memory() if device.type == "cuda" else raw, "target": target, "affines": affines}
    # uint8 clips are sent to the device inside each step, as in training (the loader's pinned batches)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for i in range(3):  # warm-up (cudnn autotuning, allocator)
        models.step(batch_t, i, cfg.lr)
    sync()
    warm = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while True:
        models.step(batch_t, 3 + n, cfg.lr)
        n += 1
        if n % 5 == 0:
            sync()
            if time.perf_counter() - t0 >= seconds:
                break
    sync()
    dt = time.perf_counter() - t0
    res = {
        "kind": "model_step",
        "preset": preset,
        "size": S,
        "frames": T,
        "batch": batch,
        "objective": objective,
        "device": str(device),
        "precision": str(dtype).replace("torch.", "") if dtype else "fp32",
        "perceptual": bool(perceptual),
        "params_G_M": round(sum(p.numel() for p in models.G.parameters()) / 1e6, 2),
        "params_D_M": round(sum(p.numel() for p in models.D.parameters()) / 1e6, 2),
        "steps": n,
        "seconds": round(dt, 2),
        "warmup_s": round(warm, 2),
        "steps_per_s": round(n / dt, 3),
        "clips_per_s": round(n * batch / dt, 2),
        "items_per_s": round(n * batch / dt, 2),
    }
    if device.type == "cuda":
        res["peak_mem_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del models, batch_t
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


def bench_data(data: str, size: int, frames: int, batch: int, workers: int, seconds: float, patch: int = 0) -> dict:
    from vretouch_cli.train.data import ClipDataset, StepSampler, discover, worker_context, worker_init
    from vretouch_cli.train.patches import PatchDataset, PatchParams, is_cache

    if is_cache(data):
        ds = PatchDataset(data, frames, PatchParams(patch=patch))
        mode = "patches"
    else:
        split = discover(data, size=size)
        ds = ClipDataset(split.train, size, frames)
        mode = split.mode
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, sampler=StepSampler(len(ds), batch, 0), num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
        worker_init_fn=worker_init if workers else None,
        multiprocessing_context=worker_context() if workers else None,
    )
    it = iter(loader)
    next(it)  # workers up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += 1
    dt = time.perf_counter() - t0
    return {"kind": "data", "mode": mode, "size": patch or size, "frames": frames, "batch": batch, "workers": workers,
            "batches_per_s": round(n / dt, 2), "clips_per_s": round(n * batch / dt, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="small,base")
    ap.add_argument("--size", type=int, default=None, help="override S for every preset")
    ap.add_argument("--batch", type=int, default=None, help="clips per step (default: 8 on CUDA, 1 on CPU)")
    ap.add_argument("--seconds", type=float, default=25.0, help="timed seconds per preset (after warm-up)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--vgg", default=None, help="VGG safetensors: include the perceptual loss")
    ap.add_argument("--data", default=None, help="also time the DataLoader on this data folder")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--window", type=int, default=None, help="δ (frames per clip T = δ + 1); default the preset's")
    ap.add_argument("--patch", type=int, default=0, help="train on P×P crops (the CPU recipe: 128)")
    ap.add_argument("--objective", default="paper", help="paper | balanced")
    ap.add_argument("--adversarial", type=float, default=None, help="weight of the GAN term (0: no D step, as the CPU recipe)")
    ap.add_argument("--model-option", action="append", default=[], help="KEY=VALUE of ModelConfig (repeatable)")
    args = ap.parse_args()
    overrides = []
    for item in args.model_option:
        k, _, v = item.partition("=")
        overrides.append((k, int(v) if v.lstrip("-").isdigit() else v))

    from vretouch_cli.device import resolve_device

    device = resolve_device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 1)
    rows = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        try:
            r = bench_model(preset, args.size, batch, args.seconds, device, args.vgg, window=args.window, patch=args.patch,
                            objective=args.objective, overrides=tuple(overrides), adversarial=args.adversarial)
        except torch.cuda.OutOfMemoryError as exc:  # type: ignore[attr-defined]
            r = {"kind": "model_step", "preset": preset, "error": f"out of memory: {exc}"[:200]}
            torch.cuda.empty_cache()
        print(json.dumps(r), flush=True)
        rows.append(r)
    if args.data:
        from vretouch_cli.train.loop import TrainConfig, model_config_for

        first = model_config_for(TrainConfig(preset=rows[0].get("preset", "small"), size=args.size, delta=args.window))
        r = bench_data(args.data, first.size, first.delta + 1, batch, args.workers, min(args.seconds, 15.0), args.patch)
        print(json.dumps(r), flush=True)
        rows.append(r)
    print("\npreset  S    T  batch  steps/s  clips/s  peak GiB  (device, precision)")
    for r in rows:
        if r["kind"] == "model_step" and "error" not in r:
            print(f"{r['preset']:<7} {r['size']:<4} {r['frames']:<2} {r['batch']:<6} {r['steps_per_s']:<8} {r['clips_per_s']:<8} "
                  f"{r.get('peak_mem_GiB', '-'):<9} ({r['device']}, {r['precision']}{', +VGG' if r['perceptual'] else ''})")
        elif r["kind"] == "data":
            print(f"data loader: {r['clips_per_s']} clips/s with {r['workers']} workers ({r['mode']}, S={r['size']}, T={r['frames']})")
        else:
            print(f"{r['preset']}: {r['error']}")


if __name__ == "__main__":
    main()
