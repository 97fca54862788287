"""Clip scoring, report files and plots, on fake pipeline results (no model, no video I/O)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from vretouch_cli.errors import InputError
from vretouch_cli.evaluate import metrics as M
from vretouch_cli.evaluate.mrfv import face_region, score_clip
from vretouch_cli.evaluate.plots import write_plots
from vretouch_cli.evaluate.report import SUMMARY_METRICS, EvalReport, write_csv, write_json
from vretouch_cli.evaluate.scoring import FRAME_METRICS

H = W = 96
S = 64


@dataclass
class FakeFrame:
    index: int
    image: np.ndarray


@dataclass
class FakeFace:
    track_id: int
    affine: np.ndarray
    mask_crop: np.ndarray
    mask_frame: np.ndarray


@dataclass
class FakeResult:
    frame: FakeFrame
    retouched: np.ndarray
    faces: list


def _clip(n=5, spots=True):
    """Reference frames (smooth texture moving right), raw = reference + dark spots, and results."""
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur((rng.random((H, W + 20, 3)) * 255).astype(np.uint8), (0, 0), 3)
    base = cv2.normalize(base, None, 40, 220, cv2.NORM_MINMAX)
    affine = np.array([[S / 64, 0, -16], [0, S / 64, -16]], np.float64)  # frame [16, 80) → crop
    refs, results, singles = [], [], []
    for t in range(n):
        ref = np.ascontiguousarray(base[:, t : t + W])
        raw = ref.copy()
        gt_spot = np.zeros((H, W), np.float32)
        if spots:
            raw[40:44, 40:44] = np.clip(raw[40:44, 40:44].astype(int) - 30, 0, 255)
            gt_spot[40:44, 40:44] = 1
        out = ref.copy()  # a perfect retouch
        single = ref.copy()
        single[40:44, 40:44] = raw[40:44, 40:44] if t % 2 else ref[40:44, 40:44]  # flickers
        face = FakeFace(0, affine, np.zeros((S, S), np.float32), gt_spot)
        refs.append(ref)
        results.append(FakeResult(FakeFrame(t, raw), out, [face]))
        singles.append(FakeResult(FakeFrame(t, raw), single, [FakeFace(0, affine, np.zeros((S, S), np.float32), gt_spot * (t % 2 == 0))]))
    return refs, results, singles


def test_score_clip_metrics_and_baselines():
    refs, results, singles = _clip()
    score = score_clip("c", results, refs, singles)
    assert score.frames == 5
    assert set(score.summary) == {"raw", "single_frame", "vretouch"}
    for method in score.summary:
        for k in FRAME_METRICS:
            assert len(score.per_frame[method][k]) == 5
    # Raw baseline PSNR = direct computation over the clip's frames (from the mean MSE).
    mses = [M.mse(r.frame.image, ref) for r, ref in zip(results, refs)]
    assert score.summary["raw"]["psnr"] == pytest.approx(10 * math.log10(255**2 / np.mean(mses)), abs=1e-9)
    assert score.per_frame["raw"]["psnr"][0] == pytest.approx(M.psnr(results[0].frame.image, refs[0]), abs=1e-9)
    assert score.summary["vretouch"]["psnr"] == math.inf
    assert score.summary["vretouch"]["soft_iou"] == pytest.approx(1.0)
    assert score.summary["raw"]["soft_iou"] == pytest.approx(0.0)
    assert 0 < score.summary["single_frame"]["soft_iou"] < 1
    # Temporal: the perfect output is as stable as the reference, the flickering one is not.
    assert math.isnan(score.per_frame["vretouch"]["flicker"][0])
    assert score.summary["vretouch"]["flicker_face"] == pytest.approx(0.0, abs=1e-6)
    assert score.summary["single_frame"]["flicker_face"] > score.summary["vretouch"]["flicker_face"] + 0.1
    assert score.summary["vretouch"]["lpips_alex"] == "unavailable"
    assert score.summary["vretouch"]["vfid"] == "unavailable"
    assert score.info["face_frames"] == 5


def test_face_region_is_feathered_ellipse_inside_the_box():
    _, results, _ = _clip(1)
    region = face_region(results[0].faces, (H, W, 3))
    assert region.shape == (H, W) and region.max() == pytest.approx(1.0)
    assert region[:16].max() == 0 and region[:, :16].max() == 0  # outside the crop box
    assert 0 < region[region > 0].min() < 0.5  # feathered edge
    assert face_region([], (H, W, 3)) is None


def test_score_clip_frame_count_and_size_mismatch():
    refs, results, _ = _clip(3)
    with pytest.raises(InputError, match="same frame count"):
        score_clip("c", results, refs[:2])
    with pytest.raises(InputError, match="same frame count"):
        score_clip("c", results[:2], refs)
    with pytest.raises(InputError, match="retouched"):
        score_clip("c", results, [r[:50] for r in refs])


def test_no_face_frames_give_undefined_face_metrics():
    refs, results, _ = _clip(3, spots=False)
    for r in results:
        r.faces = []
    score = score_clip("c", results, refs)
    assert math.isnan(score.summary["raw"]["psnr_face"]) and score.summary["raw"]["psnr"] == math.inf
    assert score.summary["raw"]["soft_iou"] == 1.0  # nothing to retouch, nothing predicted


def test_report_json_csv_plots(tmp_path):
    refs, results, singles = _clip()
    report = EvalReport("mrfv", str(tmp_path), ("raw", "single_frame", "vretouch"), [score_clip("clip/a", results, refs, singles)])
    report.unavailable["vfid"] = "no weights"
    write_json(report, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["clips"][0]["summary"]["vretouch"]["psnr"] == "inf"
    assert data["clips"][0]["per_frame"]["raw"]["flicker"][0] is None
    assert set(SUMMARY_METRICS) <= set(data["overall"]["raw"])
    write_csv(report, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["method"] for r in rows] == ["raw", "single_frame", "vretouch"] * 2
    assert rows[-1]["clip"] == "ALL" and rows[0]["lpips_vgg"] == "unavailable"
    files = write_plots(report, tmp_path / "plots")
    assert sorted(p.name for p in files) == ["clip_a.psnr.png", "clip_a.soft_iou.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in files)
