"""``python -m vretouch_cli.train [OPTIONS]`` = ``vretouch train [OPTIONS]`` (also under torchrun).

The same command and options, registered alone, so a training box needs only the training
dependencies (no video or face-detection packages) and no other command module.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    import click
    import typer

    from ..cli import train as train_cmd
    from ..errors import VRetouchError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("VRETOUCH_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    train_cmd.register(app)
    try:
        app(args=argv, prog_name="python -m vretouch_cli.train", standalone_mode=False)
    except VRetouchError as exc:
        if debug:
            raise
        typer.echo(f"vretouch: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
