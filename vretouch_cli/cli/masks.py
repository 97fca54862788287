"""``vretouch masks INPUT -o DIR``: export the imperfection maps (PNG per frame and face, mask and overlay videos)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options
from .console import make_console, plural


def register(app: typer.Typer) -> None:
    app.command("masks", epilog=options.DEBUG_EPILOG)(masks)


def masks(
    input: Path = typer.Argument(..., metavar="INPUT", show_default=False, help="A video, an image or a folder of frames."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for maps/, mask.mp4 and overlay.mp4 (created if missing; its parent must exist)."),
    weights: Optional[str] = options.Weights,
    device: str = options.Device,
    window: Optional[int] = options.Window,
    remove: Optional[str] = options.Remove,
    keep: Optional[str] = options.Keep,
    strength: str = options.Strength,
    faces: str = typer.Option("all", "--faces", help="all | largest"),
    start: Optional[float] = typer.Option(None, "--start", help="Start at this time (seconds)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Process only this many seconds."),
    crf: int = typer.Option(18, "--crf", help="Quality of the mask and overlay videos (libx264 CRF)."),
    overwrite: bool = options.Overwrite,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Show what will be changed: the imperfection map of every face on every frame.

    Writes DIR/maps/frame_NNNNNN_face_TTT.png (frame coordinates), DIR/mask.mp4 and
    DIR/overlay.mp4 (heat map on the frame), with the input's frame count and timing. Weights
    with class heads add DIR/maps/<class>/… (one map per class) and DIR/overlay_classes.mp4
    (one colour per class, with a legend).
    """
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..masks import export_masks
    from ..pipeline import validate_options
    from .console import print_note

    validate_options(
        window=window, strength=strength, faces=faces, codec="libx264", crf=crf, start=start, duration=duration,
        remove=remove, keep=keep,
    )
    console = make_console()
    progress = Progress(
        TextColumn("[bold]masks"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    with progress:
        task = progress.add_task("masks", total=None)
        report = export_masks(
            input, output, weights=weights, device=device, window=window, faces=faces, start=start,
            duration=duration, crf=crf, overwrite=overwrite, remove=remove, keep=keep, strength=strength,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    for note in report.notes:
        print_note(console, note)
    if report.face_frames == 0:
        console.print(f"[yellow]warning:[/yellow] no face found in {escape(str(input))}; the mask video is black and maps/ is empty")
    if not quiet:
        console.print(
            f"{plural(report.frames, 'frame')}, {report.face_frames} with faces, {plural(len(report.tracks), 'face track')}: "
            f"wrote {plural(report.maps, 'map')} to {escape(str(report.folder / 'maps'))}"
            + (f" (and one per class in {', '.join(c + '/' for c in report.classes)})" if report.classes else "")
            + f" and {', '.join(p.name for p in report.videos)}"
        )
