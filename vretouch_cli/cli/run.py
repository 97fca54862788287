"""``vretouch run INPUT -o OUTPUT``: the main job; ``vretouch run A B … -o FOLDER`` for several inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options
from .console import make_console, plural

# Words a user may put after a flag (``--compare true``): they are not inputs.
_BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


def register(app: typer.Typer) -> None:
    app.command("run", epilog=options.DEBUG_EPILOG)(run)


def run(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", show_default=False,
        help="A video, an image or a folder of frames. Several INPUTs (or --batch) make OUTPUT a folder.",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the result (same kind as INPUT); with several INPUTs or --batch, a folder (created if missing)."),
    weights: Optional[str] = options.Weights,
    device: str = options.Device,
    window: Optional[int] = options.Window,
    remove: Optional[str] = options.Remove,
    keep: Optional[str] = options.Keep,
    strength: str = options.Strength,
    faces: str = typer.Option("all", "--faces", help="all | largest"),
    codec: Optional[str] = typer.Option(None, "--codec", help="libx264 | libx265 | libvpx-vp9 | ffv1 (lossless, .mkv). Default: libvpx-vp9 for .webm, else libx264."),
    crf: int = typer.Option(18, "--crf", help="Constant rate factor (quality) for libx264/libx265/libvpx-vp9."),
    preset: str = typer.Option("medium", "--preset", help="Encoder speed preset: ultrafast … medium … veryslow (libx264/libx265; mapped for libvpx-vp9)."),
    start: Optional[float] = typer.Option(None, "--start", help="Start at this time (seconds): preview a part."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Process only this many seconds."),
    compare: bool = typer.Option(False, "--compare", help="Write a side-by-side before/after video."),
    overwrite: bool = options.Overwrite,
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16 (GPU only; CPU always fp32)."),
    batch: bool = typer.Option(False, "--batch", help="OUTPUT is a folder, and an INPUT folder stands for every video file in it (not for a folder of frames)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Retouch every face in INPUT and write OUTPUT; audio and everything else stay as they were.

    Several inputs go into one folder, each under its own name, with the model loaded once:
    vretouch run a.mp4 b.mov -o retouched/  ·  vretouch run --batch shoot/ -o retouched/
    """
    from ..pipeline import validate_options

    validate_options(
        window=window, strength=strength, faces=faces, codec=codec, crf=crf, start=start, duration=duration, preset=preset,
        remove=remove, keep=keep,
    )
    _reject_flag_values(inputs)
    console = make_console(quiet=False)
    settings = dict(
        window=window, strength=strength, faces=faces, codec=codec, crf=crf, preset=preset, start=start,
        duration=duration, overwrite=overwrite, remove=remove, keep=keep,
    )
    if len(inputs) == 1 and not batch:
        _single(console, inputs[0], output, weights, device, precision, compare, quiet, settings)
    else:
        _batch(console, inputs, output, weights, device, precision, compare, quiet, batch, settings)


def _reject_flag_values(inputs: list[Path]) -> None:
    from ..errors import UsageError

    for item in inputs:
        if str(item).lower() in _BOOLEAN_WORDS and not item.exists():
            raise UsageError(f"{item!s} is not an input: flags such as --compare, --overwrite and --batch take no value")


def _progress(console, quiet: bool, label: str):
    """A progress bar on a terminal; nothing in a pipe or a log (the summary says it all)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{escape(label)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=False,
    )


def _retouch(console, quiet: bool, label: str, input: Path, output: Path, **kwargs):
    """One retouch_video call with its progress bar (shown from the first frame, so that an
    input rejected up front prints one line only)."""
    import time

    from ..pipeline import retouch_video

    progress = _progress(console, quiet, label)
    task = progress.add_task("run", total=None, fps=0.0)
    state = {"t0": 0.0, "started": False}

    def on_frame(done: int, total: int | None) -> None:
        if not state["started"]:
            progress.start()
            state["started"], state["t0"] = True, time.perf_counter()
        elapsed = time.perf_counter() - state["t0"]
        progress.update(task, completed=done, total=total, fps=(done - 1) / elapsed if elapsed > 0 else 0.0)

    try:
        return retouch_video(input, output, progress=on_frame, **kwargs)
    finally:
        if state["started"]:
            progress.stop()


def _warn(console, text: str) -> None:
    from rich.markup import escape

    console.print(f"[yellow]warning:[/yellow] {escape(text)}")


def _notes(console, report, shown: set[str]) -> None:
    """Print each note of ``report`` once per command (a batch loads the model once: one note)."""
    from .console import print_note

    for note in report.notes:
        if note not in shown:
            shown.add(note)
            print_note(console, note)


def _single(console, input: Path, output: Path, weights, device, precision, compare, quiet, settings) -> None:
    report = _retouch(
        console, quiet, "retouching", input, output, weights=weights, device=device, precision=precision,
        compare=compare, **settings,
    )
    _notes(console, report, set())
    for warning in report.warnings:
        _warn(console, warning)
    if quiet:
        return
    _print_summary(console, report)


def _print_summary(console, report) -> None:
    from rich.markup import escape
    from rich.table import Table

    title = (
        f"{plural(report.frames, 'frame')}, {plural(report.tracks, 'face track')}: "
        f"{report.processing_fps:.2f} fps over {report.processing_seconds:.1f} s of processing "
        f"(+ {report.startup_seconds:.1f} s start-up)"
    )
    table = Table(title=title, show_edge=False, title_justify="left")
    table.add_column("stage")
    table.add_column("total s", justify="right")
    table.add_column("ms / frame", justify="right")
    per_frame = report.ms_per_frame()
    for stage, seconds in report.stage_seconds.items():
        table.add_row(stage, f"{seconds:.2f}", f"{per_frame[stage]:.1f}")
    console.print(table)
    console.print(f"wrote {escape(str(report.output))}")


def _batch(console, inputs: list[Path], output: Path, weights, device, precision, compare, quiet, folders_of_clips, settings) -> None:
    """Check every input first (no model needed), load the model once, retouch the good inputs one
    after another; a failing input is one line and the others go on. Exit 1 if any failed."""
    import time

    from rich.markup import escape

    from ..errors import OutputError, UsageError, VRetouchError
    from ..pipeline import batch_jobs, check_run, load_pipeline_model

    from ..video.frame import IMAGE_SUFFIXES, VIDEO_CONTAINERS

    if not output.is_dir() and output.suffix.lower() in (*VIDEO_CONTAINERS, *IMAGE_SUFFIXES):
        raise UsageError(f"-o {output}: several inputs (or --batch) need an output folder, not a {output.suffix} file")
    parent = output.parent if str(output.parent) else Path(".")
    if not output.is_dir():
        if output.exists():
            raise OutputError(f"-o {output}: exists and is not a folder")
        if not parent.is_dir():
            raise OutputError(f"-o {output}: output folder {parent} does not exist")
    jobs = batch_jobs(inputs, output, folders_of_clips=folders_of_clips)
    if not output.is_dir():
        try:
            output.mkdir()
        except OSError as exc:
            raise OutputError(f"-o {output}: cannot create the folder ({exc.strerror or exc})") from exc

    rows: list[tuple] = []  # (input, status, frames, tracks, fps, detail)
    notes: set[str] = set()
    good = []
    for src, dst in jobs:  # every check that needs no model, for every input, before loading it
        try:
            check_run(src, dst, **settings)
            good.append((src, dst))
        except VRetouchError as exc:
            console.print(f"vretouch: error: {escape(str(exc))}", style="red")
            rows.append((src, "failed", None, None, None, str(exc)))
    if good:
        t0 = time.perf_counter()
        model, dev = load_pipeline_model(weights, device)
        if not quiet:
            console.print(f"model loaded in {time.perf_counter() - t0:.1f} s; retouching {plural(len(good), 'input')}")
        for i, (src, dst) in enumerate(good, 1):
            try:
                report = _retouch(
                    console, quiet, f"[{i}/{len(good)}] {src.name}", src, dst, device=str(dev), precision=precision,
                    compare=compare, model=model, **settings,
                )
            except VRetouchError as exc:
                console.print(f"vretouch: error: {escape(str(exc))}", style="red")
                rows.append((src, "failed", None, None, None, str(exc)))
                continue
            _notes(console, report, notes)
            for warning in report.warnings:
                _warn(console, warning)
            rows.append((src, "done", report.frames, report.tracks, report.processing_fps, str(dst)))
    order = {src: i for i, (src, _) in enumerate(jobs)}
    rows.sort(key=lambda r: order[r[0]])
    failed = sum(r[1] == "failed" for r in rows)
    if not quiet:
        _print_batch_table(console, rows, failed)
    if failed:
        raise typer.Exit(1)


def _print_batch_table(console, rows, failed: int) -> None:
    from rich.table import Table
    from rich.text import Text

    done = len(rows) - failed
    title = f"{plural(len(rows), 'input')}: {done} done, {failed} failed"
    table = Table(title=title, show_edge=False, title_justify="left")
    for name, justify in (("input", "left"), ("status", "left"), ("frames", "right"), ("face tracks", "right"), ("fps", "right"), ("output / error", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for src, status, frames, tracks, fps, detail in rows:
        table.add_row(
            Text(str(src)), Text(status, style=None if status == "done" else "red"),
            "" if frames is None else str(frames), "" if tracks is None else str(tracks),
            "" if fps is None else f"{fps:.2f}", Text(detail),
        )
    console.print(table)
