"""``vretouch run INPUT -o OUTPUT``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    input: Path = typer.Argument(..., help="A video, an image or a folder of frames."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the retouched result (same kind as INPUT)."),
    weights: Optional[str] = options.Weights,
    device: str = options.Device,
    window: Optional[int] = options.Window,
    strength: float = typer.Option(1.0, "--strength", help="How much of the correction to apply, 0–1."),
    faces: str = typer.Option("all", "--faces", help="all | largest"),
    codec: str = typer.Option("libx264", "--codec", help="libx264 | libx265 | libvpx-vp9 | ffv1 (lossless)"),
    crf: int = typer.Option(18, "--crf", help="Constant rate factor (quality) for libx264/libx265/libvpx-vp9."),
    preset: str = typer.Option("medium", "--preset", help="Encoder speed preset (libx264/libx265)."),
    start: Optional[float] = typer.Option(None, "--start", help="Start at this time (seconds): preview a part."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Process only this many seconds."),
    compare: bool = typer.Option(False, "--compare", help="Write a side-by-side before/after video."),
    overwrite: bool = options.Overwrite,
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16 (GPU only; CPU always fp32)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Retouch every face in INPUT and write OUTPUT; audio and everything else stay as they were."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..pipeline import retouch_video, validate_options

    validate_options(window=window, strength=strength, faces=faces, codec=codec, crf=crf)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]retouching"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    task = progress.add_task("run", total=None, fps=0.0)
    import time

    t0 = time.perf_counter()
    started = False

    def on_frame(done: int, total: int | None) -> None:
        # The bar appears with the first frame, so that an input rejected up front prints one line only.
        nonlocal started
        if not started:
            progress.start()
            started = True
        elapsed = time.perf_counter() - t0
        progress.update(task, completed=done, total=total, fps=done / elapsed if elapsed > 0 else 0.0)

    try:
        report = retouch_video(
            input, output, weights=weights, device=device, window=window, strength=strength, faces=faces,
            codec=codec, crf=crf, preset=preset, start=start, duration=duration, compare=compare,
            overwrite=overwrite, precision=precision, progress=on_frame,
        )
    finally:
        if started:
            progress.stop()
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if quiet:
        return
    _print_summary(console, report)


def _print_summary(console, report) -> None:
    from rich.table import Table

    table = Table(title=f"{report.frames} frames, {report.tracks} face track(s), {report.fps:.2f} fps overall", show_edge=False)
    table.add_column("stage")
    table.add_column("total s", justify="right")
    table.add_column("ms / frame", justify="right")
    per_frame = report.ms_per_frame()
    for stage, seconds in report.stage_seconds.items():
        table.add_row(stage, f"{seconds:.2f}", f"{per_frame[stage]:.1f}")
    console.print(table)
    console.print(f"wrote {report.output}")
