"""``vretouch info``: parameters and GMAC per output frame of a preset or a weights file."""

from __future__ import annotations

from typing import Optional

import typer

from . import options


def _describe(name: str, source: str, cfg) -> dict:
    from ..model.summary import summarize

    summary = summarize(cfg)
    return {"name": name, "source": source, "config": cfg.to_dict(), **summary.to_dict()}


def _resolve(weights: str):
    try:
        from ..weights import resolve_weights
    except ImportError:  # weights resolution not available: a plain path
        from pathlib import Path

        return Path(weights)
    return resolve_weights(weights)


def _table(desc: dict):
    from rich.table import Table

    cfg = desc["config"]
    title = (
        f"{desc['name']} ({desc['source']}): C={cfg['channels']} S={cfg['size']} δ={cfg['delta']} "
        f"MMA blocks={cfg['mma_blocks']} heads={cfg['heads']} window={cfg['window']}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    params = desc["params"]
    for key in ("E", "N+I", "S", "FIR", "MMA", "G"):
        table.add_row(key, f"{params[key]:,}")
    table.add_row("[bold]total (generator)[/bold]", f"[bold]{params['total']:,}[/bold]")
    table.add_row("D (training only)", f"{params['D']:,}")
    gmac = desc["gmac"]
    cost = Table(title="GMAC", title_justify="left")
    cost.add_column("work")
    cost.add_column("GMAC", justify="right")
    cost.add_row("per-frame parts (E, N, I, S, FIR, K/V), one frame", f"{gmac['per_frame']:,.2f}")
    cost.add_row("window part (MMA, G, composition), one output frame", f"{gmac['window']:,.2f}")
    cost.add_row(f"[bold]per output frame, before caching ({desc['frames']} frames)[/bold]", f"[bold]{gmac['per_output_frame']:,.1f}[/bold]")
    cost.add_row("per output frame, sliding inference (cached)", f"{gmac['per_output_frame_cached']:,.1f}")
    return table, cost


def register(app: typer.Typer) -> None:
    @app.command("info", epilog=options.DEBUG_EPILOG)
    def info(
        preset: Optional[str] = options.Preset,
        weights: Optional[str] = options.Weights,
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Parameters (per module) and GMAC per output frame of a model preset or a weights file.

        Without --preset or --weights, every preset is listed.
        """
        import json

        from ..errors import UsageError
        from ..model.config import PRESET_NAMES, ModelConfig

        if preset and weights:
            raise UsageError("give --preset or --weights, not both")
        if weights:
            from ..checkpoint import read_config

            path = _resolve(weights)
            descs = [_describe(path.stem, str(path), read_config(path))]
        elif preset:
            cfg = ModelConfig.preset(preset)
            descs = [_describe(preset.strip().lower(), "preset", cfg)]
        else:
            descs = [_describe(name, "preset", ModelConfig.preset(name)) for name in PRESET_NAMES]
        if as_json:
            typer.echo(json.dumps(descs[0] if len(descs) == 1 else descs, indent=2))
            return
        from rich.markup import escape

        from .console import make_console

        console = make_console(stderr=False)
        console.print(escape(_default_line()))
        for desc in descs:
            for table in _table(desc):
                console.print(table)


def _default_line() -> str:
    """Which default weights file ``vretouch run`` uses without --weights, and where it was found."""
    import os

    from ..weights import DEFAULT_FILENAME, DEFAULT_HUB_REPO, ENV_VAR, default_weights

    if os.environ.get(ENV_VAR):
        return f"default weights: {os.environ[ENV_VAR]} (from ${ENV_VAR})"
    found = default_weights()
    if found is None:
        return f"default weights: {DEFAULT_FILENAME} is not installed; it would come from the Hugging Face hub ({DEFAULT_HUB_REPO})"
    path, where = found
    return f"default weights: {path.name} ({where}: {path})"
