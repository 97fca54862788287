"""What a training run writes for people: a JSONL log, a loss/metric plot, contact sheets.

Images are written with OpenCV; the plot uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np


class JsonlLog:
    """Append-only JSON-lines log (one object per line, flushed every write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a crash
                continue
        return out

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run rewrites them)."""
        keep = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp.{os.getpid()}")
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in keep), encoding="utf-8")
        os.replace(tmp, self.path)


def plot_log(records: list[dict[str, Any]], path: str | Path) -> None:
    """PNG with the training losses (left) and the validation metrics (right) against the step."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))

    def curves(ax, rows, field, names, title, log=False):
        drawn = 0
        for k in names:
            pts = [(r["step"], r[field][k]) for r in rows if k in r.get(field, {}) and r[field][k] is not None]
            pts = [(x, y) for x, y in pts if math.isfinite(y)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=k, lw=1, marker="o" if field == "metrics" else None, ms=3)
                drawn += 1
        if log and drawn:
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if drawn:
            ax.legend(fontsize=7)

    loss_keys = sorted({k for r in train for k in r.get("losses", {}) if not k.startswith("grad_norm")})
    curves(axes[0], train, "losses", loss_keys, "training losses (G terms unweighted; d = D hinge)", log=True)
    curves(axes[1], val, "metrics", ("psnr", "psnr_raw"), "validation PSNR (dB): output vs raw input")
    curves(axes[2], val, "metrics", ("psnr_gain",), "validation PSNR gain over the input (dB)")
    curves(axes[3], val, "metrics", ("ssim", "soft_iou"), "validation SSIM / Soft-IoU of the maps")
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[3, H, W] or [H, W, 3] in [-1, 1] → H×W×3 uint8 RGB; [1, H, W] / [H, W] maps in [0, 1] → grey."""
    a = np.asarray(img, np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2 or a.shape[2] == 1:
        a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
        return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.round((a + 1.0) * 127.5), 0, 255).astype(np.uint8)


def flow_to_rgb(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """[2, H, W] flow → H×W×3 uint8 (hue = direction, saturation = magnitude, as in Middlebury)."""
    fx, fy = np.asarray(flow[0], np.float32), np.asarray(flow[1], np.float32)
    mag, ang = cv2.cartToPolar(fx, fy)
    m = float(max_mag) if max_mag else max(float(mag.max()), 1e-6)
    hsv = np.zeros(fx.shape + (3,), np.uint8)
    hsv[..., 0] = (ang * (90.0 / math.pi)).astype(np.uint8)
    hsv[..., 1] = np.clip(mag / m * 255.0, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    scale = max(0.3, img.shape[0] / 512.0)
    th = max(1, int(round(scale * 1.5)))
    cv2.putText(out, text, (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (0, 0, 0), th + 2, cv2.LINE_AA)
    cv2.putText(out, text, (4, int(14 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (255, 255, 255), th, cv2.LINE_AA)
    return out


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], headers: Sequence[str], path: str | Path, tile: int | None = None) -> Path:
    """Write a grid of uint8 RGB tiles (one row per sample) as a PNG; the first row is labelled."""
    if not rows:
        raise ValueError("no rows for the contact sheet")
    tile = tile or rows[0][0].shape[0]
    lines = []
    for r, row in enumerate(rows):
        cells = []
        for c, img in enumerate(row):
            t = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA if img.shape[0] > tile else cv2.INTER_NEAREST)
            if r == 0 and c < len(headers):
                t = _label(t, headers[c])
            cells.append(np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        lines.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(lines, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.png")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return path


def zoom(img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Crop a relative box (x0, y0, x1, y1 in [0, 1]) of an H×W×3 uint8 image (for cheek close-ups)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    return img[y0:y1, x0:x1]
