"""The command line: the one place that imports typer and rich.

Each command lives in its own module of this package and registers itself with
``register(app)``; heavy imports (torch, av, the model) stay inside command bodies
so that ``vretouch --help`` is instant. :func:`main` is the one place that turns
failures into exit codes (listed in the README):

- a :class:`~vretouch_cli.errors.VRetouchError` → one line on stderr and its ``exit_code``;
- a usage mistake (unknown option or command, missing or malformed value) → one line
  with a suggestion and exit 2; a bare ``vretouch`` prints the help and exits 0;
- SIGINT / SIGTERM → ``vretouch: interrupted`` and exit 130 / 143 (128 + the signal);
- anything else is a bug: "internal error" and exit 70.

``--debug`` (anywhere on the line) or ``VRETOUCH_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import difflib
import importlib
import os
import signal
import sys
import threading

import typer

from ..errors import Interrupted, VRetouchError

EXIT_INTERNAL = 70

app = typer.Typer(
    name="vretouch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Modules of this package that each define ``register(app)``.
_COMMAND_MODULES = ("run", "info", "train", "evaluate", "masks")

DEBUG_HELP = "Show the traceback of an error (also VRETOUCH_DEBUG=1); may follow any command."


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"vretouch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_show_version, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    """Retouch faces in videos: remove acne, spots and marks, stable from frame to frame.

    Exit codes: 0 done, 1 some inputs of a batch failed, 2 bad input or usage, 3 output, 4 device, 5 weights, 6 no face, 70 internal error, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
    """
    # ``--debug`` is taken out of the arguments by :func:`main` before parsing (so that it works
    # after any command); declaring it here only puts it into the help.


def _classic_help() -> None:
    """Help text as people know it: ``INPUT`` (not ``{input}``) in the usage line, no ``<bool>`` on flags.

    Typer draws both itself; the two small overrides below only change what the help shows.
    """
    core = getattr(typer, "core", None)
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is not None and hasattr(option, "display_type_rich") and not getattr(option, "_vretouch", False):
        shown = option.display_type_rich

        def display_type_rich(self, ctx):
            return None if getattr(self, "is_flag", False) else shown(self, ctx)

        option.display_type_rich = display_type_rich
        option._vretouch = True
    if argument is not None and hasattr(argument, "_usage_display_name"):

        def usage_name(self) -> str:
            name = (self.metavar or self.name or "").upper()
            if self.nargs != 1 and not name.endswith("..."):
                name += "..."
            return name if self.required else f"[{name}]"

        argument._usage_display_name = usage_name


_classic_help()


def _register_commands(target: typer.Typer, modules: tuple[str, ...]) -> None:
    for name in modules:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(target)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("VRETOUCH_DEBUG", "") not in ("", "0")


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


def _install_signal_handlers() -> dict:
    """SIGINT and SIGTERM raise :class:`Interrupted` (cleanup runs, then exit 128 + signal).

    Installed even when SIGINT was ignored at start (a background job of a script): the
    issue this answers is that an interrupt must never look like success.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, _raise_interrupted)
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _click_exceptions():
    """The click exception module typer uses (typer ≥ 0.16 vendors its own copy of click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions
    return exceptions


def _usage_line(exc) -> str:
    """One line for a usage mistake: what is wrong, a suggestion where one exists, where the help is."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "vretouch"
    possibilities = list(getattr(exc, "possibilities", None) or ())
    if possibilities:  # an unknown option: click's message lists every close one; name the closest
        message = exc.message.rstrip(".")
        name = getattr(exc, "option_name", "")
        best = difflib.get_close_matches(name, possibilities, n=1, cutoff=0.0) or sorted(possibilities)[:1]
        message += f"; did you mean {best[0]}?"
    else:
        message = exc.format_message().strip()
        if ctx is not None and message.startswith("No such command") and "mean" not in message:
            name = message.split("'")[1] if "'" in message else ""
            try:
                commands = ctx.command.list_commands(ctx)
            except Exception:  # noqa: BLE001 - a suggestion is a nicety
                commands = []
            close = difflib.get_close_matches(name, commands, n=1, cutoff=0.5)
            if close:
                message = f"{message.rstrip('.')}; did you mean {close[0]}?"
    message = " ".join(message.split())  # one line, whatever click wrapped
    return f"{path}: error: {message} (see '{path} --help')"


def main(argv: list[str] | None = None, *, modules: tuple[str, ...] = _COMMAND_MODULES, prog_name: str = "vretouch") -> None:
    """Entry point of the ``vretouch`` console script.

    ``modules`` and ``prog_name`` let another entry point (``python -m vretouch_cli.train``)
    register fewer commands and keep the same error handling.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    if modules == _COMMAND_MODULES:
        target = app
    else:
        target = typer.Typer(add_completion=False, pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})
    _register_commands(target, modules)
    ce = _click_exceptions()
    abort = getattr(ce, "Abort", None) or typer.Abort  # typer ≥ 0.29 keeps Abort in typer.exceptions
    previous = _install_signal_handlers()
    try:
        code = target(args=argv, prog_name=prog_name, standalone_mode=False)
    except VRetouchError as exc:
        if debug:
            raise
        typer.echo(f"vretouch: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        if debug:
            raise
        typer.echo("vretouch: interrupted", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo("vretouch: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except ce.NoArgsIsHelpError as exc:  # a bare ``vretouch`` (or a group without its command)
        typer.echo(exc.ctx.get_help())
        sys.exit(0)
    except ce.UsageError as exc:
        typer.echo(_usage_line(exc), err=True)
        sys.exit(2)
    except ce.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except abort:
        typer.echo("vretouch: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug
        if debug:
            raise
        typer.echo(f"vretouch: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
    finally:
        _restore_signal_handlers(previous)
    # Without standalone mode typer returns the code of a ``typer.Exit`` (and 130 for a
    # KeyboardInterrupt it caught itself) instead of exiting.
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        if code == 130:
            typer.echo("vretouch: interrupted", err=True)
        sys.exit(code)
