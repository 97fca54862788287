"""``vretouch train``: train (or resume) a model; also ``--prepare-faces``, ``--preview-data``, ``--export``.

    vretouch train --data DIR --preset small --out RUN [--steps N] [--max-minutes M]
    vretouch train --out RUN --resume [--steps N]
    torchrun --nproc_per_node 2 -m vretouch_cli train --data DIR --out RUN ...
    vretouch train --prepare-faces PHOTOS -o PREP --size 512
    vretouch train --build-cache PREP -o CACHE [--cache-classes]   (--cache-classes: for class heads)
    vretouch train --preview-data --data DIR -o preview.png
    vretouch train --export RUN -o weights.safetensors
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import OutputError, UsageError
from . import options


def register(app: typer.Typer) -> None:
    app.command("train", epilog=options.DEBUG_EPILOG)(train)


def train(
    data: Optional[Path] = typer.Option(None, "--data", help="FFHQR folder (train/{source,target}), a folder of clean face photos, or a --prepare-faces folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (training), or the output of --export / --prepare-faces / --preview-data."),
    preset: Optional[str] = options.Preset,
    size: Optional[int] = typer.Option(None, "--size", help="Face crop size S (overrides the preset's; for --prepare-faces the crop size, default 512)."),
    window: Optional[int] = options.Window,
    steps: Optional[int] = typer.Option(None, "--steps", help="Train up to this step (default 1000; with --resume: the new end)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Clips per step per process (default 2)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate for G and D (default 2e-4)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of weights, data order and augmentation (default 0)."),
    device: str = options.Device,
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 on CUDA) | bf16 | fp16 | fp32. CPU always fp32."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default 0; ~8 on a 16-core GPU box)."),
    data_mode: Optional[str] = typer.Option(None, "--data-mode", help="auto | ffhqr | synthetic | patches (a --build-cache folder)."),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of people held out for validation when the data has no test split (default 0.2)."),
    val_items: Optional[int] = typer.Option(None, "--val-items", help="Validation clips (default 16)."),
    val_every: Optional[int] = typer.Option(None, "--val-every", help="Validate every N steps (default 500; 0 = only at the end)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", help="Write a log line every N steps (default 10)."),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every", help="Checkpoint every N steps (default 1000; 0 = only at the end)."),
    ckpt_minutes: Optional[float] = typer.Option(None, "--ckpt-minutes", help="Also checkpoint every M minutes (default off)."),
    keep: Optional[int] = typer.Option(None, "--keep", help="Checkpoints to keep (default 3)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop cleanly after M minutes: checkpoint, validate, export."),
    model_option: Optional[list[str]] = typer.Option(None, "--model-option", help="Change another ModelConfig field, KEY=VALUE (repeatable), e.g. disc_channels=32."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    vgg_weights: Optional[str] = typer.Option(None, "--vgg-weights", help="VGG-16/19 safetensors for the perceptual loss (or $VRETOUCH_VGG_WEIGHTS; 'none' turns it off)."),
    w_l1: Optional[float] = typer.Option(None, "--w-l1", help="ζ, weight of the L1 term (default 10)."),
    w_perceptual: Optional[float] = typer.Option(None, "--w-perceptual", help="Weight of the VGG term (default 1)."),
    w_adv: Optional[float] = typer.Option(None, "--w-adv", help="Weight of the hinge GAN term (default 0.05)."),
    w_flow: Optional[float] = typer.Option(None, "--w-flow", help="Weight of L_flow (default 0.1)."),
    w_imp: Optional[float] = typer.Option(None, "--w-imp", help="Weight of L_imp (default 1)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="paper (MODEL.md §3) | balanced (for sparse blemish maps; the CPU recipe)."),
    w_bce: Optional[float] = typer.Option(None, "--w-bce", help="balanced: weight of the map's weighted BCE (default 1)."),
    w_dice: Optional[float] = typer.Option(None, "--w-dice", help="balanced: weight of the map's soft Dice (default 1)."),
    w_spot: Optional[float] = typer.Option(None, "--w-spot", help="balanced: L1 inside the blemish region, per its area (default 10)."),
    w_spot_l2: Optional[float] = typer.Option(None, "--w-spot-l2", help="balanced: squared error inside the blemish region, per its area (default 0 = off; PSNR-shaped)."),
    w_clean: Optional[float] = typer.Option(None, "--w-clean", help="balanced: L1 outside it, the identity term (default 10)."),
    w_gen: Optional[float] = typer.Option(None, "--w-gen", help="balanced: L1 of G's fill-in inside the blemishes (default 5)."),
    w_keep: Optional[float] = typer.Option(None, "--w-keep", help="class heads: L1 on the pixels of the classes a sample keeps, per their area (default 10)."),
    w_temporal: Optional[float] = typer.Option(None, "--w-temporal", help="δ > 1: flicker of the correction between consecutive frames (default 0 = off; a second forward pass per step)."),
    lr_final: Optional[float] = typer.Option(None, "--lr-final", help="Cosine-decay the LR to this fraction of --lr at --steps (default 1 = constant)."),
    pos_weight_cap: Optional[float] = typer.Option(None, "--pos-weight-cap", help="balanced: cap of the BCE's positive weight (default 20)."),
    ring_weight: Optional[float] = typer.Option(None, "--ring-weight", help="balanced: weight of the clean ring around blemishes (default 4)."),
    init: Optional[str] = typer.Option(None, "--init", help="Start G from this weights file (same architecture; δ and S may differ; class heads may start from class-less weights)."),
    patch: Optional[int] = typer.Option(None, "--patch", help="Crop size for --data-mode patches (default 128; 0 = whole faces)."),
    gt_scale: Optional[float] = typer.Option(None, "--gt-scale", help="M_gt = |raw − target| / this (in [0, 1] units), clipped to 1 (default 0.1, the evaluator's)."),
    map_target: Optional[str] = typer.Option(
        None, "--map-target",
        help="What the map learns: camera (|raw − target| after the camera, the default) or exact (the change before the camera; needs a cache built since session 4).",
    ),
    build_cache: Optional[Path] = typer.Option(None, "--build-cache", help="Make the cached training pairs of this --prepare-faces folder into -o and exit."),
    cache_variants: int = typer.Option(10, "--cache-variants", help="Blemished variants per training face for --build-cache."),
    cache_dark_tone: float = typer.Option(
        0.0, "--cache-dark-tone",
        help="--build-cache: share of faces whose blemishes take the darker, browner look they have on dark skin (0–1; light skin unchanged; default 0).",
    ),
    cache_classes: bool = typer.Option(
        False, "--cache-classes",
        help="--build-cache: also moles and freckles, with every class's layer stored, so a model with class heads (--model-option classes=…) trains on any selection.",
    ),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="Max gradient norm (default 1; 0 = off)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="EMA decay of G (default 0.999)."),
    export_to: Optional[Path] = typer.Option(None, "--export-to", help="Where training writes the final EMA weights (default RUN/weights_ema.safetensors)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the EMA weights of this run folder (or checkpoint file) to -o and exit."),
    export_dtype: str = typer.Option("fp32", "--export-dtype", help="Tensor dtype of --export weights: fp32 | fp16 (half the size)."),
    prepare_faces: Optional[Path] = typer.Option(None, "--prepare-faces", help="Detect and align every photo in this folder into -o (JPEG crops + prepared.json) and exit."),
    preview_data: bool = typer.Option(False, "--preview-data", help="Write a contact sheet of training samples to -o (PNG) and exit."),
    preview_count: int = typer.Option(8, "--preview-count", help="Samples on the --preview-data sheet."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    overwrite: bool = options.Overwrite,
) -> None:
    """Train VRetouchEr (adversarial, resumable, DDP under torchrun), or prepare, preview or export."""
    from .console import make_console

    console = make_console(quiet=quiet or os.environ.get("RANK", "0") != "0")
    modes = [m for m, on in (("--export", export is not None), ("--prepare-faces", prepare_faces is not None), ("--preview-data", preview_data)) if on]
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)} cannot be combined")

    if export is not None:
        _export(export, out, export_dtype, console, overwrite)
        return
    if prepare_faces is not None:
        _prepare(prepare_faces, out, size or 512, console)
        return
    if (cache_classes or cache_dark_tone) and build_cache is None:
        raise UsageError("--cache-classes and --cache-dark-tone go with --build-cache PREP -o CACHE")
    if build_cache is not None:
        _build_cache(build_cache, out, size or 256, cache_variants, console, cache_classes, cache_dark_tone)
        return

    from ..train.config import LossWeights, TrainConfig

    given = {
        "data": str(data) if data is not None else None,
        "preset": preset, "size": size, "delta": window, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "precision": precision, "num_workers": workers, "data_mode": data_mode, "val_fraction": val_fraction,
        "val_items": val_items, "val_every": val_every, "log_every": log_every, "ckpt_every": ckpt_every,
        "ckpt_minutes": ckpt_minutes, "keep_checkpoints": keep, "max_minutes": max_minutes, "vgg_weights": vgg_weights,
        "grad_clip": grad_clip, "ema_decay": ema_decay, "lr_final": lr_final, "export_path": str(export_to) if export_to else None,
    }
    if model_option:
        given["model_overrides"] = _parse_model_options(model_option)
    given = {k: v for k, v in given.items() if v is not None}
    given["device"] = device
    lw = {
        k: v
        for k, v in (
            ("l1", w_l1), ("perceptual", w_perceptual), ("adversarial", w_adv), ("flow", w_flow), ("imperfection", w_imp),
            ("bce", w_bce), ("dice", w_dice), ("spot", w_spot), ("spot_l2", w_spot_l2), ("clean", w_clean), ("gen", w_gen),
            ("temporal", w_temporal), ("pos_weight_cap", pos_weight_cap), ("ring_weight", ring_weight), ("keep", w_keep),
        )
        if v is not None
    }
    if gt_scale is not None and not gt_scale > 0:
        raise UsageError(f"--gt-scale must be > 0, got {gt_scale}")
    for k, v in (("objective", objective), ("init", init), ("patch", patch), ("gt_map_scale", gt_scale), ("map_target", map_target)):
        if v is not None:
            given[k] = v
    for k, v in list(lw.items()) + [(k, given[k]) for k in ("steps", "batch_size", "lr") if k in given]:
        if v < 0:
            raise UsageError(f"--{k.replace('_', '-')} must be ≥ 0, got {v}")
    if preset is not None:
        from ..model.config import PRESET_NAMES

        if preset not in PRESET_NAMES:
            raise UsageError(f"--preset {preset!r}: choose one of {', '.join(PRESET_NAMES)}")

    if preview_data:
        if data is None or out is None:
            raise UsageError("--preview-data needs --data DIR and -o PREVIEW.png")
        cfg = TrainConfig(**{k: v for k, v in given.items() if k != "out"}, losses=LossWeights(**lw))
        _preview(cfg, out, preview_count, console, overwrite)
        return

    if out is None:
        raise UsageError("give the run folder with --out RUN")
    if not resume and data is None:
        raise UsageError("give the training data with --data DIR (or --resume an existing run)")
    if resume and lw:
        raise UsageError("loss weights cannot change on --resume (they are stored in the run)")
    cfg = TrainConfig(out=str(out), **{k: v for k, v in given.items() if not (resume and k == "data")}, losses=LossWeights(**lw)) if not resume else TrainConfig(out=str(out))
    _train(cfg, resume, given, console)


# ------------------------------------------------------------------------------------------


def _parse_model_options(items: list[str]) -> tuple[tuple[str, object], ...]:
    import json

    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model-option {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out.append((key.strip(), tuple(value) if isinstance(value, list) else value))
    return tuple(out)


def _export(src: Path, out: Optional[Path], dtype: str, console, overwrite: bool = False) -> None:
    from ..outputs import check_output_file
    from ..train.export import export_run

    if out is None:
        raise UsageError("--export RUN needs -o WEIGHTS.safetensors")
    if out.suffix != ".safetensors":
        raise OutputError(f"-o {out}: inference weights must end in .safetensors")
    check_output_file(out, "-o", overwrite)
    res = export_run(src, out, dtype=dtype)
    console.print(f"wrote {res['path']} (EMA weights of step {res['step']}, preset {res['preset']}, S={res['size']}, δ={res['delta']}, {dtype})")


def _prepare(src: Path, out: Optional[Path], size: int, console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..train.prepare import prepare_faces

    if out is None:
        raise UsageError("--prepare-faces SRC needs -o PREPARED_DIR")
    if size < 64 or size % 8:
        raise UsageError(f"--size must be a multiple of 8 and ≥ 64, got {size}")
    with Progress(TextColumn("[bold]aligning faces"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("prep", total=None)

        def tick(i: int, n: int, name: str) -> None:
            progress.update(task, completed=i, total=n)

        manifest = prepare_faces(src, out, size=size, on_progress=tick)
    mb = sum(f.stat().st_size for f in Path(out).glob("*.jpg")) / 1e6
    console.print(
        f"wrote {len(manifest['items'])} aligned {size}×{size} crops ({mb:.1f} MB) and prepared.json to {out}"
        + (f"; {len(manifest['skipped'])} photo(s) without a face skipped" if manifest["skipped"] else "")
    )


def _preview(cfg, out: Path, count: int, console, overwrite: bool = False) -> None:
    from ..outputs import check_output_file
    from ..train.preview import preview_data

    if count < 1:
        raise UsageError("--preview-count must be ≥ 1")
    check_output_file(out, "-o", overwrite)
    res = preview_data(cfg, out, count=count)
    console.print(f"wrote {res['path']} ({res['samples']} {res['mode']} samples, S={res['size']}, {res['frames']} frames)")
    if "dL" in res:
        console.print(
            f"synthetic spots vs clean skin over {res['measured']} samples ({res['spot_pixels']} spot pixels): "
            f"mean ΔL* = {res['dL']:+.2f}, Δa* = {res['da']:+.2f}, Δb* = {res['db']:+.2f}; "
            f"pixels changed by > 10 levels: {100 * res['changed_gt10']:.2f} % on average, {100 * res['changed_gt10_max']:.2f} % at most"
        )


class _stop_on_signal:
    """While training: the first SIGINT/SIGTERM asks the loop to stop after the current step
    (it checkpoints, as at the --max-minutes budget); a second one stops at once."""

    def __init__(self, console) -> None:
        self.console = console
        self.signum = 0
        self.previous: dict = {}

    def _handle(self, signum, frame) -> None:
        from ..errors import Interrupted
        from ..train.loop import STOP

        if self.signum:
            raise Interrupted(signum)
        self.signum = signum
        STOP.set()
        if self.console.is_terminal:  # a person is watching: say that it was heard
            self.console.print("stopping after this step (a checkpoint is written); interrupt again to stop at once")

    def __enter__(self):
        import signal
        import threading

        from ..train.loop import STOP

        STOP.clear()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        from ..train.loop import STOP

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        STOP.clear()


def _train(cfg, resume: bool, given: dict, console) -> None:
    import time
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..train.loop import Callbacks, train as run_training

    progress = Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[loss]}"),
        TextColumn("{task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console.quiet or not console.is_terminal,
    )
    plain = not console.quiet and not console.is_terminal  # logs, CI, remote boxes: one line per log record

    class Bar(Callbacks):
        task = None

        def on_start(self, start_step, total_steps, info):
            console.print(
                f"preset {info['preset']} S={info['size']} T={info['frames']} ({info['params_G'] / 1e6:.2f} M params), "
                f"{info['device']} ×{info['world']}, {info['precision']}, batch {info['batch_per_rank']}/process, "
                f"{info['train_items']} train / {info['val_items']} validation items"
            )
            self.task = progress.add_task("train", total=total_steps, completed=start_step, speed="", loss="", val="")

        def on_step(self, step, record):
            if plain and record:
                ls = record["losses"]
                # the terms this run's objective has, in a fixed order (paper: l1, imp; balanced: spot …)
                shown = ", ".join(f"{k} {ls[k]:.4f}" for k in ("l1", "imp", "spot", "spot_l2", "clean", "gen", "keep", "bce", "dice", "temporal", "flow") if k in ls)
                d = f", D {ls['d']:.3f}" if "d" in ls else ""
                console.print(f"step {step}: {record['steps_per_s']:.2f} it/s, G {ls.get('total_g', float('nan')):.4f} ({shown}){d}", soft_wrap=True)
            fields = {}
            if record:
                fields["speed"] = f"{record['steps_per_s']:.2f} it/s"
                fields["loss"] = f"G {record['losses'].get('total_g', float('nan')):.4f}"
            progress.update(self.task, completed=step, **fields)

        def on_validate(self, step, metrics):
            if plain:
                console.print(f"validation at step {step}: ΔPSNR {metrics['psnr_gain']:+.3f} dB, SSIM {metrics['ssim']:.4f}, Soft-IoU {metrics['soft_iou']:.3f}", soft_wrap=True)
            progress.update(self.task, val=f"val ΔPSNR {metrics['psnr_gain']:+.2f} dB, IoU {metrics['soft_iou']:.3f}")

        def on_message(self, text):
            console.print(text)

    t0 = time.monotonic()
    with progress, _stop_on_signal(console) as stop, warnings.catch_warnings():
        # The perceptual-loss warning reaches the user once, as a message of the run (which -q hides).
        warnings.filterwarnings("ignore", message="no VGG weights found")
        result = run_training(cfg, resume=resume, overrides=given, callbacks=Bar())
    if stop.signum:
        typer.echo(
            f"vretouch: interrupted at step {result.step}; checkpoint {result.checkpoint}; "
            f"resume with: vretouch train --out {cfg.out} --resume",
            err=True,
        )
        raise SystemExit(128 + stop.signum)  # the line above is the one message
    m = result.metrics
    console.print(
        f"{'stopped at the time budget' if result.stopped_by_time else 'done'}: step {result.step} in {time.monotonic() - t0:.0f} s; "
        f"checkpoint {result.checkpoint}; EMA weights {result.export}"
    )
    if m:
        console.print(
            f"validation ({m.get('n', 0)} held-out clips, EMA): PSNR {m['psnr']:.2f} dB (raw input {m['psnr_raw']:.2f}, gain {m['psnr_gain']:+.2f} dB), "
            f"SSIM {m['ssim']:.4f}, Soft-IoU {m['soft_iou']:.3f}" + (f", flow EPE {m['flow_epe']:.2f} px" if "flow_epe" in m else "")
        )


def _build_cache(prepared: Path, out: Optional[Path], size: int, variants: int, console, classes: bool = False, dark_tone: float = 0.0) -> None:
    from ..train.acne import AcneParams
    from ..train.patches import build_cache, is_cache
    from ..train.prepare import is_prepared

    if out is None:
        raise UsageError("--build-cache needs -o CACHE_FOLDER")
    if not 0.0 <= dark_tone <= 1.0:
        raise UsageError(f"--cache-dark-tone must be in [0, 1], got {dark_tone}")
    if not is_prepared(prepared):
        raise UsageError(f"--build-cache {prepared}: not a --prepare-faces folder (no prepared.json)")
    if is_cache(out):
        raise OutputError(f"{out} already holds a training cache; choose another -o")
    if variants < 1:
        raise UsageError(f"--cache-variants must be ≥ 1, got {variants}")
    params = AcneParams(dark_tone=dark_tone)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("training pairs", total=None)
        meta = build_cache(prepared, out, size=size, variants=variants, classes=classes, acne_params=params, on_progress=lambda i, n: progress.update(task, completed=i, total=n))
        task = progress.add_task("validation pairs", total=None)
        val = build_cache(prepared, out / "val", size=size, variants=3, split="val", classes=classes, acne_params=params, on_progress=lambda i, n: progress.update(task, completed=i, total=n))
    kind = " (with per-class layers: any selection)" if classes else ""
    console.print(f"wrote {meta['items']} training and {val['items']} validation pairs at {size}×{size}{kind} to {out}")
