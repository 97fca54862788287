"""What every benchmark does with its result: print it as JSON and, if asked, write it to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, path: Path | None) -> None:
    """Print ``report`` (indented JSON) and write it to ``path`` when given (parents created)."""
    text = json.dumps(report, indent=1)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
