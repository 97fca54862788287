"""Console helpers shared by the commands: output that survives a pipe, and plurals."""

from __future__ import annotations

import os

# Wide enough that no table or line is cut when the output is a file or a pipe.
PIPE_WIDTH = 1000


def make_console(*, stderr: bool = True, quiet: bool = False):
    """A rich Console that wraps to the terminal, but never truncates or wraps in a pipe or file.

    Rich assumes 80 columns when the output is not a terminal: tables lose columns and long
    lines break mid-sentence. Unless ``COLUMNS`` says otherwise, a non-terminal console here is
    very wide and does not soft-wrap, so each message stays one line.
    """
    from rich.console import Console

    console = Console(stderr=stderr, quiet=quiet, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
        console.soft_wrap = True
    return console


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 frame``, ``2 frames``, ``0 frames`` (``words`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def print_note(console, text: str) -> None:
    """One ``note:`` line: something the user should know that is not an error or a warning."""
    from rich.markup import escape

    console.print(f"[cyan]note:[/cyan] {escape(text)}")
