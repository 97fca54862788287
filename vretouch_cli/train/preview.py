"""``vretouch train --preview-data``: a contact sheet of training samples, to judge the data by eye.

One row per sample: the raw (input) target frame, the clean / retouched target, the ground-truth
imperfection map M_gt, the synthetic spots' footprint, the flow into the target frame (colour
wheel), and close-ups of the left cheek of raw and target. For synthetic data it also
measures the mean ΔL*/Δa*/Δb* of the spots against the clean skin (MODEL.md §4 asks for about
−4 / +2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .blemish import rgb_to_lab
from .config import TrainConfig
from .data import ClipDataset, StepSampler, discover, to_model_range
from .losses import gt_imperfection_map
from .motion import flows_from_affines
from .report import contact_sheet, flow_to_rgb, to_uint8, zoom

HEADERS = ("raw", "target", "M_gt", "spots", "flow", "raw (cheek zoom)", "target (cheek zoom)")
CHEEK = (0.22, 0.48, 0.50, 0.76)  # left cheek of an FFHQ-aligned crop, relative coordinates


def preview_data(cfg: TrainConfig, out: str | Path, count: int = 8, measure: int | None = None) -> dict[str, Any]:
    """Write the contact sheet of ``count`` training clips to ``out`` (PNG); return the numbers.

    ``measure`` clips (default: max(count, 24)) are used for the ΔL*/Δa* statistics.
    """
    from .loop import model_config_for

    out = Path(out)
    if out.suffix.lower() != ".png":
        out = out / "preview.png"
    mcfg = model_config_for(cfg)
    S, T = mcfg.size, mcfg.delta + 1
    ti = T // 2
    split = discover(cfg.data, cfg.data_mode, cfg.val_fraction, S, cache_root=out.parent / "face_cache")
    ds = ClipDataset(split.train, S, T)
    n_measure = max(count, 24) if measure is None else max(measure, count)
    keys = StepSampler(len(ds), n_measure, cfg.seed).keys_for_step(0)
    rows = []
    sum_d = np.zeros(3)
    pixels = 0
    changed = []
    for i, key in enumerate(keys):
        item = ds[key]
        raw, tgt = to_model_range(item["raw"][ti]), to_model_range(item["target"][ti])
        alpha = item["alpha"][ti, 0].numpy().astype(np.float32) / 255.0
        r01 = ((raw.numpy().transpose(1, 2, 0) + 1) / 2).astype(np.float32)
        t01 = ((tgt.numpy().transpose(1, 2, 0) + 1) / 2).astype(np.float32)
        inside = alpha > 0.25
        if inside.any():
            d = rgb_to_lab(r01)[inside] - rgb_to_lab(t01)[inside]
            sum_d += d.sum(axis=0)
            pixels += int(inside.sum())
        changed.append(float((np.abs(r01 - t01).max(axis=2) > 10.0 / 255.0).mean()))
        if i < count:
            m_gt = gt_imperfection_map(raw, tgt, cfg.gt_map_scale)
            flow = flows_from_affines(item["affines"].numpy(), S)[ti - 1] if T > 1 else np.zeros((2, S, S), np.float32)
            raw8, tgt8 = to_uint8(raw.numpy()), to_uint8(tgt.numpy())
            rows.append(
                [raw8, tgt8, to_uint8(m_gt.numpy()), to_uint8(alpha), flow_to_rgb(flow, max_mag=max(2.0, S / 64)),
                 zoom(raw8, CHEEK), zoom(tgt8, CHEEK)]
            )
    contact_sheet(rows, HEADERS, out, tile=S)
    res: dict[str, Any] = {"path": out, "mode": split.mode, "samples": count, "measured": len(keys), "size": S, "frames": T}
    if pixels:
        res.update(dL=float(sum_d[0] / pixels), da=float(sum_d[1] / pixels), db=float(sum_d[2] / pixels), spot_pixels=pixels)
    res["changed_gt10"] = float(np.mean(changed))
    res["changed_gt10_max"] = float(np.max(changed))
    return res
