"""``vretouch eval``: score the model against ground-truth retouching (MRFV clips or FFHQR pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options
from .console import make_console

# Above this many clips the terminal table shows only the overall rows (the files have all).
_MAX_TABLE_CLIPS = 12



def register(app: typer.Typer) -> None:
    app.command("eval", epilog=options.DEBUG_EPILOG)(evaluate)


def evaluate(
    mrfv: Optional[Path] = typer.Option(None, "--mrfv", help="Folder of clips, each with 'raw' and 'retouched' (a video or a folder of frames)."),
    ffhqr: Optional[Path] = typer.Option(None, "--ffhqr", help="FFHQR root: evaluates DIR/test/{source,target}/NAME.png and FFHQR-Seq sequences made from them."),
    weights: Optional[str] = options.Weights,
    device: str = options.Device,
    window: Optional[int] = options.Window,
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report (per-frame values too) as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one row per clip and method as CSV."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for PNG plots of per-frame PSNR and Soft-IoU of each clip."),
    lpips_alex: Optional[Path] = typer.Option(None, "--lpips-alex", help="LPIPS AlexNet weights (default: $VRETOUCH_LPIPS_ALEX, then weights/lpips_alex.safetensors)."),
    lpips_vgg: Optional[Path] = typer.Option(None, "--lpips-vgg", help="LPIPS VGG-16 weights (default: $VRETOUCH_LPIPS_VGG, then weights/vgg16_lpips.safetensors)."),
    lpips_region: str = typer.Option("face", "--lpips-region", help="face (the face box: faster, what retouching changes) | frame"),
    single_frame: bool = typer.Option(True, "--single-frame/--no-single-frame", help="Also score the single-frame baseline (δ = 1)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="FFHQR: only the first N test pairs (sorted by name)."),
    seq_frames: int = typer.Option(8, "--seq-frames", help="FFHQR: frames per FFHQR-Seq sequence (0: images only)."),
    seed: int = typer.Option(0, "--seed", help="FFHQR: seed of the sequences' motion (same seed, same sequences)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    overwrite: bool = options.Overwrite,
) -> None:
    """Measure PSNR, SSIM, LPIPS, Soft-IoU of the imperfection maps and temporal stability.

    Baselines in the same table: the raw input (no edit) and single-frame retouching (δ = 1).
    VFID is reported as unavailable (no Inception/I3D weights are supported yet).
    """

    from ..errors import UsageError

    if (mrfv is None) == (ffhqr is None):
        raise UsageError("give exactly one of --mrfv DIR or --ffhqr DIR")
    if lpips_region not in ("face", "frame"):
        raise UsageError(f"--lpips-region must be face or frame, got {lpips_region!r}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if seq_frames < 0 or seq_frames == 1:
        raise UsageError(f"--seq-frames must be 0 (images only) or at least 2, got {seq_frames}")
    # The outputs are checked now, not after the whole evaluation.
    from ..outputs import check_output_file, check_output_folder

    for path, flag in ((json_out, "--json"), (csv_out, "--csv")):
        if path is not None:
            check_output_file(path, flag, overwrite)
    if plots is not None:
        check_output_folder(plots, "--plots", overwrite)
    for path, flag in ((mrfv, "--mrfv"), (ffhqr, "--ffhqr")):
        if path is not None and not path.is_dir():
            from ..errors import InputError

            raise InputError(f"{flag} {path}: not a folder")

    from ..device import resolve_device
    from ..evaluate.lpips import try_load_lpips

    console = make_console()
    lpips_device = resolve_device(device)  # LPIPS runs beside the model
    lpips, unavailable = {}, {}
    for backbone, path in (("alex", lpips_alex), ("vgg", lpips_vgg)):
        model, reason = try_load_lpips(backbone, path, lpips_device)
        lpips[backbone] = model
        if model is None:
            unavailable[f"lpips_{backbone}"] = reason
            if path is not None:  # the user asked for it: a missing file is an error, not a note
                from ..errors import WeightsError

                raise WeightsError(reason)
    unavailable["vfid"] = "needs Inception/I3D weights, which this version does not load"

    progress, on_frame = _progress(console, quiet)
    with progress:
        if mrfv is not None:
            from ..evaluate.mrfv import evaluate_mrfv

            report = evaluate_mrfv(
                mrfv, weights=weights, device=device, window=window, lpips=lpips,
                lpips_region=lpips_region, single_frame=single_frame, progress=on_frame,
            )
        else:
            from ..evaluate.ffhqr import evaluate_ffhqr

            report = evaluate_ffhqr(
                ffhqr, weights=weights, device=device, window=window, lpips=lpips, limit=limit,
                seq_frames=seq_frames, seed=seed, single_frame=single_frame, progress=on_frame,
            )
    report.unavailable.update(unavailable)
    for backbone, model in lpips.items():
        if model is not None:
            report.settings[f"lpips_{backbone}"] = {"path": str(model.path), "sha256": model.sha256, "pinned": model.pinned}

    from ..evaluate.report import write_csv, write_json

    written = []
    if json_out is not None:
        write_json(report, json_out)
        written.append(json_out)
    if csv_out is not None:
        write_csv(report, csv_out)
        written.append(csv_out)
    if plots is not None:
        from ..evaluate.plots import write_plots

        files = write_plots(report, plots)
        written.append(f"{plots} ({len(files)} plots)")
    if not quiet:
        _print_table(make_console(stderr=False), report)
        for item in written:
            console.print(f"wrote {item}")


def _progress(console, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]evaluating[/bold] {task.fields[clip]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal, transient=True,
    )
    tasks: dict[str, int] = {}

    def on_frame(clip: str, done: int, total: int | None) -> None:
        if clip not in tasks:
            tasks[clip] = progress.add_task("eval", total=total, clip=clip)
        progress.update(tasks[clip], completed=done, total=total)

    return progress, on_frame


# Short column titles for the terminal (the JSON/CSV use the metric names).
_TITLES = {
    "psnr": "PSNR", "ssim": "SSIM", "psnr_face": "PSNR face", "ssim_face": "SSIM face",
    "lpips_alex": "LPIPS alex", "lpips_vgg": "LPIPS vgg", "soft_iou": "Soft-IoU", "soft_iou_face": "Soft-IoU face",
    "warp_error": "warp err", "warp_error_ref": "warp err ref", "warp_error_gap": "warp err gap", "flicker": "flicker",
    "warp_error_face": "warp err face", "warp_error_ref_face": "warp err ref face",
    "warp_error_gap_face": "warp err gap face", "flicker_face": "flicker face", "vfid": "VFID",
}
_CLIP_COLUMNS = ("psnr", "ssim", "psnr_face", "lpips_alex", "soft_iou", "flicker_face")


def _print_table(console, report) -> None:
    """Per-clip rows (a few key metrics), then every metric over all clips, methods as columns."""
    from rich.table import Table

    from ..evaluate.report import SUMMARY_METRICS, format_value

    short = {"raw": "raw", "single_frame": "δ=1", "vretouch": f"δ={report.settings.get('window') or '?'}"}
    if len(report.clips) <= _MAX_TABLE_CLIPS:
        table = Table(title="per clip", show_edge=False, title_justify="left")
        table.add_column("clip", overflow="fold", min_width=8)
        table.add_column("method", no_wrap=True)
        for m in _CLIP_COLUMNS:
            table.add_column(_TITLES[m], justify="right", no_wrap=True)
        for row in report.rows(_CLIP_COLUMNS):
            if row["clip"] == "ALL":
                continue
            table.add_row(str(row["clip"]), short.get(row["method"], row["method"]), *(format_value(row[m], m) for m in _CLIP_COLUMNS))
        console.print(table)
    frames = sum(c.frames for c in report.clips)
    overall = report.overall
    table = Table(title=f"{report.dataset}: mean over {len(report.clips)} clip(s), {frames} frames", show_edge=False, title_justify="left")
    table.add_column("metric", no_wrap=True)
    for m in report.methods:
        table.add_column(report.method_labels.get(m, m), justify="right")
    for metric in SUMMARY_METRICS:
        table.add_row(_TITLES.get(metric, metric), *(format_value(overall[m].get(metric), metric) for m in report.methods))
    console.print(table)
    for metric, reason in report.unavailable.items():
        console.print(f"[dim]{metric}: unavailable ({reason})[/dim]")
