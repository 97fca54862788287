"""One rule for every output of every command, checked before any work starts.

- The folder an output goes into must exist and be writable (it is never created for a file);
  an output that *is* a folder (``masks -o DIR``, ``--plots DIR``, a batch's ``-o DIR``, a run
  folder) is created when missing, inside an existing folder.
- An output that exists is replaced only with ``--overwrite``.
- Files are written with the mode any other program would give them (0666 less the umask).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError


def _writable(folder: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".vretouch-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{what}: folder {folder} is not writable ({exc.strerror or exc})") from exc


def check_output_file(path: str | Path, flag: str, overwrite: bool = False) -> Path:
    """Check that the file ``path`` (given with ``flag``) can be written; returns it."""
    path = Path(path).expanduser()
    what = f"{flag} {path}"
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{what}: is a folder; give a file name")
    if not parent.is_dir():
        raise OutputError(f"{what}: folder {parent} does not exist")
    if path.exists() and not overwrite:
        raise OutputError(f"{what}: already exists (use --overwrite to replace it)")
    _writable(parent, what)
    return path


def check_output_folder(path: str | Path, flag: str, overwrite: bool = False) -> Path:
    """Check that the folder ``path`` can take new files: it exists (writable, and empty unless
    ``overwrite``) or can be created inside an existing folder."""
    path = Path(path).expanduser()
    what = f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what}: exists and is not a folder")
    if path.is_dir():
        if not overwrite and any(not p.name.startswith(".") for p in path.iterdir()):
            raise OutputError(f"{what}: folder is not empty (use --overwrite to write into it)")
        _writable(path, what)
        return path
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{what}: folder {parent} does not exist")
    _writable(parent, what)
    return path


def umask_mode(path: str | Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the usual mode, 0666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
