"""PNG plots of per-frame PSNR and Soft-IoU, one pair of files per clip (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import OutputError
from .report import EvalReport

PLOTTED = {"psnr": "PSNR (dB)", "soft_iou": "Soft-IoU"}


def safe_name(name: str) -> str:
    """A clip name usable as a file name (slashes and odd characters become '_')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"


def write_plots(report: EvalReport, folder: str | Path) -> list[Path]:
    """Write ``<clip>.psnr.png`` and ``<clip>.soft_iou.png`` for every clip into ``folder``.

    One line per method, frame index on x; undefined (NaN) and infinite values are gaps.
    Returns the paths written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--plots: cannot create {folder}: {exc.strerror or exc}") from exc
    written: list[Path] = []
    for clip in report.clips:
        for metric, label in PLOTTED.items():
            fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
            try:
                for method in report.methods:
                    values = clip.per_frame.get(method, {}).get(metric)
                    if not values:
                        continue
                    ys = [v if math.isfinite(v) else math.nan for v in values]
                    ax.plot(range(len(ys)), ys, marker="." if len(ys) < 60 else None, label=report.method_labels.get(method, method))
                ax.set_xlabel("frame")
                ax.set_ylabel(label)
                ax.set_title(f"{clip.name}: {label} per frame")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
                fig.tight_layout()
                path = folder / f"{safe_name(clip.name)}.{metric}.png"
                try:
                    fig.savefig(path)
                except OSError as exc:
                    raise OutputError(f"--plots: cannot write {path}: {exc.strerror or exc}") from exc
                written.append(path)
            finally:
                plt.close(fig)
    return written
