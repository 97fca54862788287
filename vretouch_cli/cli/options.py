"""Option definitions shared by several commands, so that a flag means the same thing everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

Weights = typer.Option(
    None,
    "--weights",
    help="Weights: a .safetensors path, a Hugging Face repo id 'owner/name[:file]', or empty for the shipped default.",
)
Device = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps")
Window = typer.Option(None, "--window", help="δ, the number of reference frames per output frame (1–8; default: the model's).")
Preset = typer.Option(None, "--preset", help="Model preset: tiny | small | base | paper.")
Remove = typer.Option(
    None, "--remove", show_default=False,
    help="What to remove: classes of acne, redness, marks, mole, freckle (comma list), or all. Default: acne,redness,marks.",
)
Keep = typer.Option(None, "--keep", show_default=False, help="Classes to leave as they are, taken out of --remove (e.g. mole,freckle).")
Strength = typer.Option(
    "1", "--strength",
    help="How much of the correction to apply, 0–1: one number for every class, or per class (acne=1,redness=0.5).",
)
Overwrite = typer.Option(False, "--overwrite", help="Replace outputs that exist (every command: nothing is replaced without it).")

OptionalPath = Optional[Path]

DEBUG_EPILOG = "Add --debug to show the traceback of an error (or set VRETOUCH_DEBUG=1). Exit codes: see vretouch --help."
