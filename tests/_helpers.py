"""Helpers shared by several test modules (``tests/`` is on sys.path through its conftest)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_ffhqr(root: Path, n_train: int = 4, n_test: int = 2, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            base = cv2.GaussianBlur(rng.uniform(60, 200, (size, size, 3)).astype(np.float32), (0, 0), 4)
            raw = base.copy()
            for _ in range(4):
                x, y = rng.integers(6, size - 6, 2)
                cv2.circle(raw, (int(x), int(y)), 2, (40, 30, 120), -1)
            for kind, img in (("source", raw), ("target", base)):
                d = root / split / kind
                d.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(d / f"{i:05d}.png"), np.clip(img, 0, 255).astype(np.uint8))
    return root


def cli(args) -> int:
    """Run the ``vretouch`` CLI in-process; return its exit code."""
    from vretouch_cli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
