"""``python -m vretouch_cli.train [OPTIONS]`` = ``vretouch train [OPTIONS]`` (also under torchrun).

The same command and options, registered alone, so a training box needs only the training
dependencies (no video or face-detection packages) and no other command module.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from ..cli import main as cli_main

    # A single-command app: ``python -m vretouch_cli.train --data …`` with no command name.
    cli_main(sys.argv[1:] if argv is None else argv, modules=("train",), prog_name="python -m vretouch_cli.train")


if __name__ == "__main__":
    main()
