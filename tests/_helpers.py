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


def write_prepared(root: Path, n: int = 4, size: int = 128) -> Path:
    """A ``--prepare-faces`` folder of ``n`` flat skin-coloured faces at the template's landmarks
    (one identity each), as the training-data tests use."""
    import json

    from vretouch_cli.face.align import template
    from vretouch_cli.train.prepare import FORMAT

    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        rng = np.random.default_rng(i)
        img = np.empty((size, size, 3), np.float32)
        img[:] = (0.78, 0.6, 0.5)
        img += rng.normal(0, 0.015, (size, size, 1)).astype(np.float32)
        name = f"p{i:03d}_03.jpg"
        cv2.imwrite(str(root / name), cv2.cvtColor((np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        lm = template(size).astype(np.float32)
        items.append({"file": name, "identity": f"p{i:03d}", "source": name, "score": 1.0, "landmarks": lm.tolist()})
    manifest = {"format": FORMAT, "size": size, "template": "ffhq-5pt", "source_fingerprint": "x", "items": items, "skipped": []}
    (root / "prepared.json").write_text(json.dumps(manifest))
    return root
