"""Training checkpoints that survive being killed mid-write, and RNG state capture.

Layout of a run folder::

    RUN/checkpoints/step_00001000.pt   full training state (torch.save, loadable with weights_only)
    RUN/checkpoints/latest             one line: the file name of the newest complete checkpoint

A checkpoint is written to a temporary file beside its final name, flushed and fsynced, then
renamed over it (``os.replace`` is atomic on POSIX and Windows); only after that is ``latest``
rewritten the same way. A crash at any point leaves ``latest`` naming a complete file. Loading
falls back to the newest readable ``step_*.pt`` if ``latest`` is somehow unusable.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError

CKPT_DIR = "checkpoints"
LATEST = "latest"
FORMAT = "vretouch-train/1"
_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_dir(run: str | Path) -> Path:
    return Path(run) / CKPT_DIR


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; rename durability is the OS's business there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _torch_save(obj: Any, fh) -> None:  # indirection so tests can break a write half-way
    torch.save(obj, fh)


def save_checkpoint(run: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as ``step_{step}.pt``, then point ``latest`` at it; prune to ``keep`` files."""
    folder = checkpoint_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    state = {"format": FORMAT, "step": int(step), **state}
    _write_atomic(path, lambda fh: _torch_save(state, fh))
    _write_atomic(folder / LATEST, lambda fh: fh.write(f"{path.name}\n".encode()))
    if keep > 0:
        old = sorted((p for p in folder.iterdir() if _STEP_FILE.match(p.name)), key=lambda p: p.name)
        for p in old[:-keep]:
            if p.name != path.name:
                try:
                    p.unlink()
                except OSError:
                    pass
    for stale in folder.glob(".*.tmp.*"):  # left by a killed writer
        if not stale.name.endswith(f".tmp.{os.getpid()}"):
            try:
                stale.unlink()
            except OSError:
                pass
    return path


def _load(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path} is not a vretouch training checkpoint")
    return state


def latest_checkpoint(run: str | Path) -> Path | None:
    """The path ``latest`` names (None when the run has no checkpoint yet)."""
    folder = checkpoint_dir(run)
    try:
        name = (folder / LATEST).read_text().strip()
    except OSError:
        name = ""
    if name and _STEP_FILE.match(name) and (folder / name).is_file():
        return folder / name
    files = sorted((p for p in folder.glob("step_*.pt") if _STEP_FILE.match(p.name)), reverse=True) if folder.is_dir() else []
    return files[0] if files else None


def load_checkpoint(run_or_file: str | Path) -> dict[str, Any]:
    """Load a training checkpoint: a file, or a run folder (its ``latest``, else the newest readable one)."""
    p = Path(run_or_file)
    if p.is_file():
        return _load(p)
    folder = checkpoint_dir(p)
    first = latest_checkpoint(p)
    if first is None:
        raise InputError(f"no checkpoint in {folder}")
    try:
        return _load(first)
    except Exception as exc:  # should not happen (atomic writes); fall back rather than lose the run
        candidates = sorted((q for q in folder.glob("step_*.pt") if q != first), reverse=True)
        for q in candidates:
            try:
                state = _load(q)
            except Exception:
                continue
            warnings.warn(f"checkpoint {first.name} is unreadable ({exc}); resuming from {q.name}")
            return state
        raise InputError(f"no readable checkpoint in {folder} ({first.name}: {exc})") from exc


# ------------------------------------------------------------------ RNG states


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states (weights_only-loadable)."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
