"""The evaluation report: one object, written as JSON and CSV and shown as a table by the CLI.

JSON (``EvalReport.to_dict``)::

    {"dataset": "mrfv" | "ffhqr", "root": ..., "settings": {...}, "methods": {name: label},
     "unavailable": {metric: reason},
     "overall": {method: {metric: value}},
     "clips": [{"name", "frames", "info": {...}, "summary": {method: {metric: value}},
                "per_frame": {method: {metric: [values]}}}]}

Values are numbers; NaN (a metric undefined on that frame, e.g. no face) is written as
``null``, an infinite PSNR (identical images) as the string ``"inf"``, and a metric that needs
weights that are not available as the string ``"unavailable"``.

CSV (``write_csv``): one row per clip and method, plus ``ALL`` rows with the overall means;
columns ``clip, method, frames`` and then every metric.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from .scoring import METHOD_LABELS, UNAVAILABLE, ClipScore, overall

# Summary metrics, in the order of the CSV columns and the terminal table.
SUMMARY_METRICS = (
    "psnr",
    "ssim",
    "psnr_face",
    "ssim_face",
    "lpips_alex",
    "lpips_vgg",
    "soft_iou",
    "soft_iou_face",
    "warp_error",
    "warp_error_ref",
    "warp_error_gap",
    "flicker",
    "warp_error_face",
    "warp_error_ref_face",
    "warp_error_gap_face",
    "flicker_face",
    "vfid",
)


def jsonable(value):
    """NaN → None, ±inf → 'inf'/'-inf', containers recursively; everything else unchanged."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def format_value(value, metric: str = "") -> str:
    """A metric value for humans: 'unavailable', '–' for undefined, 'inf', or 4 significant digits."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if metric.startswith("psnr"):
        return f"{value:.2f}"
    return f"{value:.4f}"


@dataclass
class EvalReport:
    """The result of ``vretouch eval``."""

    dataset: str
    root: str
    methods: tuple[str, ...]
    clips: list[ClipScore]
    settings: dict[str, object] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    method_labels: dict[str, str] = field(default_factory=lambda: dict(METHOD_LABELS))

    @property
    def overall(self) -> dict[str, dict[str, float | str]]:
        return overall(self.clips, self.methods)

    def to_dict(self, per_frame: bool = True) -> dict:
        clips = []
        for c in self.clips:
            entry = {"name": c.name, "frames": c.frames, "info": c.info, "summary": c.summary}
            if per_frame:
                entry["per_frame"] = c.per_frame
            clips.append(entry)
        return jsonable(
            {
                "dataset": self.dataset,
                "root": self.root,
                "settings": self.settings,
                "methods": {m: self.method_labels.get(m, m) for m in self.methods},
                "unavailable": self.unavailable,
                "overall": self.overall,
                "clips": clips,
            }
        )

    def rows(self, metrics: tuple[str, ...] = SUMMARY_METRICS) -> list[dict[str, object]]:
        """Summary rows (clip, method, frames, metrics…), the overall ``ALL`` rows last."""
        rows: list[dict[str, object]] = []
        for c in self.clips:
            for m in self.methods:
                if m in c.summary:
                    rows.append({"clip": c.name, "method": m, "frames": c.frames, **{k: c.summary[m].get(k, UNAVAILABLE) for k in metrics}})
        total = sum(c.frames for c in self.clips)
        for m, vals in self.overall.items():
            rows.append({"clip": "ALL", "method": m, "frames": total, **{k: vals.get(k, UNAVAILABLE) for k in metrics}})
        return rows


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_json(report: EvalReport, path: str | Path) -> None:
    """Write the full report (with per-frame values) as strict JSON."""
    data = report.to_dict()
    _atomic_write(Path(path), lambda fh: json.dump(data, fh, indent=1, allow_nan=False))


def write_csv(report: EvalReport, path: str | Path) -> None:
    """Write one row per clip and method (and the ``ALL`` rows) with every summary metric."""
    rows = report.rows()

    def write(fh):
        w = csv.DictWriter(fh, fieldnames=["clip", "method", "frames", *SUMMARY_METRICS])
        w.writeheader()
        for row in rows:
            w.writerow({k: (v if k in ("clip", "method", "frames") else _csv_value(v)) for k, v in row.items()})

    _atomic_write(Path(path), write)


def _csv_value(v) -> str:
    v = jsonable(v)
    if v is None:
        return ""
    return v if isinstance(v, str) else repr(float(v))
