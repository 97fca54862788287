"""Model throughput per preset: whole-window forward and sliding inference, in output frames/s.

    python benchmarks/model_speed.py                      # CUDA, every preset, bf16, batch 8
    python benchmarks/model_speed.py --device cpu         # CPU: tiny only, fp32, batch 2

For each preset (random weights, its default δ): (1) ``model(clip, δ//2)`` on a batch of windows
of δ+1 frames (what training and the table's "before caching" GMAC measure), (2)
``SlidingRetoucher`` over ``batch`` concurrent tracks (per-frame parts once per frame: the
production path). Warm-up, then timed iterations until ``--seconds`` per measurement; CUDA work
is synchronised before the clock is read. One JSON line per measurement, as soon as it is done.
Bounded: about ``presets × 2 × (--seconds + warm-up)``, ≈60 s on an H200 with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vretouch_cli.inference import SlidingRetoucher  # noqa: E402
from vretouch_cli.model.config import PRESET_NAMES, ModelConfig  # noqa: E402
from vretouch_cli.model.network import VRetouchEr  # noqa: E402
from vretouch_cli.model.summary import summarize  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, seconds: float, warmup: int, max_iters: int = 1000) -> tuple[float, int]:
    """Mean seconds per call of ``fn`` after ``warmup`` calls; runs for about ``seconds``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    iters, start = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or iters >= max_iters:
            return elapsed / iters, iters


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def bench_preset(name: str, device: torch.device, dtype: torch.dtype | None, batch: int, seconds: float, size: int | None) -> list[dict]:
    cfg = ModelConfig.preset(name)
    if size:
        cfg = cfg.replace(size=size)
    summary = summarize(cfg)
    delta, s, t = cfg.delta, cfg.size, cfg.delta + 1
    torch.manual_seed(0)
    with torch.device(device):
        model = VRetouchEr(cfg).eval()
    common = {"preset": name, "device": str(device), "dtype": str(dtype or torch.float32).replace("torch.", ""), "batch": batch, "delta": delta, "size": s}
    rows = []

    # (1) whole-window forward: `batch` output frames per call
    clip = torch.rand(batch, t, 3, s, s, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward():
        with torch.inference_mode(), _autocast(device, dtype):
            model(clip, delta // 2, return_raw=False)

    sec, iters = _timed(forward, device, seconds, warmup=2)
    row = dict(common, mode="forward", frames_per_s=round(batch / sec, 2), ms_per_call=round(sec * 1e3, 2), iters=iters,
               gmac_per_frame=round(summary.gmac_per_output_frame, 1), tflops=round(2 * summary.gmac_per_output_frame * batch / sec / 1e3, 2))
    if device.type == "cuda":
        row["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(row), flush=True)
    rows.append(row)
    del clip

    # (2) sliding inference over `batch` tracks: one pushed video frame = `batch` crops
    crops = [torch.rand(3, s, s) * 2 - 1 for _ in range(batch)]
    retoucher = SlidingRetoucher(model, delta=delta, device=device, dtype=dtype, max_batch=batch)
    counter = {"frame": 0, "out": 0}

    def push():
        i = counter["frame"]
        counter["out"] += len(retoucher.push([((i, k), k, crops[k]) for k in range(batch)]))
        counter["frame"] += 1

    for _ in range(delta + 2):  # fill the windows so every push emits a result per track
        push()
    counter["out"] = 0
    sec, iters = _timed(push, device, seconds, warmup=1)
    row = dict(common, mode="sliding", frames_per_s=round(batch / sec, 2), ms_per_push=round(sec * 1e3, 2), iters=iters,
               gmac_per_frame_cached=round(summary.gmac_per_output_frame_cached, 1), tflops=round(2 * summary.gmac_per_output_frame_cached * batch / sec / 1e3, 2))
    print(json.dumps(row), flush=True)
    rows.append(row)
    retoucher.flush()
    del model, retoucher
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", default=None, help="comma-separated (default: all on CUDA, tiny on CPU)")
    parser.add_argument("--batch", type=int, default=None, help="windows / tracks per call (default: 8 on CUDA, 2 on CPU)")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per measurement (default: 4 on CUDA, 2 on CPU)")
    parser.add_argument("--size", type=int, default=None, help="override the preset's crop size S (e.g. 64 for a quick CPU check)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    presets = args.presets.split(",") if args.presets else (list(PRESET_NAMES) if cuda else ["tiny"])
    batch = args.batch or (8 if cuda else 2)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[args.dtype or ("bf16" if cuda else "fp32")]
    seconds = args.seconds or (4.0 if cuda else 2.0)
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if cuda else "cpu", "threads": torch.get_num_threads()}
    print(json.dumps({"benchmark": "model_speed", **info}), flush=True)
    start = time.perf_counter()
    for name in presets:
        try:
            bench_preset(name.strip(), device, dtype, batch, seconds, args.size)
        except torch.OutOfMemoryError as exc:  # report and go on with the other presets
            print(json.dumps({"preset": name, "error": f"out of memory: {str(exc).splitlines()[0]}"}), flush=True)
            if cuda:
                torch.cuda.empty_cache()
    print(json.dumps({"total_s": round(time.perf_counter() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
