"""The command line: the one place that imports typer and rich.

Each command lives in its own module of this package and registers itself with
``register(app)``; heavy imports (torch, av, the model) stay inside command bodies
so that ``vretouch --help`` is instant. :func:`main` turns every
:class:`~vretouch_cli.errors.VRetouchError` into one line on stderr and a non-zero
exit; ``--debug`` or ``VRETOUCH_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from ..errors import VRetouchError

app = typer.Typer(
    name="vretouch",
    help="Retouch faces in videos: remove acne, spots and marks, stable from frame to frame.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules of this package that each define ``register(app)``.
_COMMAND_MODULES = ("run", "info", "train", "evaluate", "masks")


def _register_commands(target: typer.Typer, modules: tuple[str, ...]) -> None:
    for name in modules:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(target)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("VRETOUCH_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None, *, modules: tuple[str, ...] = _COMMAND_MODULES, prog_name: str = "vretouch") -> None:
    """Entry point of the ``vretouch`` console script.

    ``modules`` and ``prog_name`` let another entry point (``python -m vretouch_cli.train``)
    register fewer commands and keep the same error handling.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    target = app if modules == _COMMAND_MODULES else typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    _register_commands(target, modules)
    try:
        target(args=argv, prog_name=prog_name, standalone_mode=False)
    except VRetouchError as exc:
        if debug:
            raise
        typer.echo(f"vretouch: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo("vretouch: interrupted; no output was written", err=True)
        sys.exit(130)
    except typer.Exit as exc:  # raised by commands that want a specific exit code
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and unexpected failures
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            typer.echo("vretouch: aborted", err=True)
            sys.exit(130)
        if debug:
            raise
        typer.echo(f"vretouch: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(70)
