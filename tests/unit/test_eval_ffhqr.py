"""``--ffhqr``: layout discovery, windows, and a full run on a tiny synthetic FFHQR folder with a tiny model."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vretouch_cli.errors import InputError
from vretouch_cli.evaluate.data import find_ffhqr_pairs, find_mrfv_clips
from vretouch_cli.evaluate.ffhqr import evaluate_ffhqr, window_indices


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _write_ffhqr(root, n=2, size=80):
    rng = np.random.default_rng(0)
    for sub in ("source", "target"):
        (root / "test" / sub).mkdir(parents=True)
    for i in range(n):
        tgt = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (0, 0), 4)
        tgt = cv2.normalize(tgt, None, 60, 200, cv2.NORM_MINMAX)
        src = tgt.copy()
        for _ in range(4):
            y, x = rng.integers(20, size - 20, 2)
            cv2.circle(src, (int(x), int(y)), 2, (90, 60, 60), -1)
        cv2.imwrite(str(root / "test" / "source" / f"{i:05d}.png"), cv2.cvtColor(src, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "test" / "target" / f"{i:05d}.png"), cv2.cvtColor(tgt, cv2.COLOR_RGB2BGR))
    (root / "test" / "source" / "99999.png").write_bytes(b"")  # no target: ignored


def test_window_indices_centred_and_clamped():
    assert window_indices(0, 8, 3) == ([0, 0, 1, 2], 1)
    assert window_indices(4, 8, 3) == ([3, 4, 5, 6], 1)
    assert window_indices(7, 8, 3) == ([6, 7, 7, 7], 1)
    assert window_indices(5, 8, 1) == ([5, 6], 0)
    assert window_indices(2, 3, 6) == ([0, 0, 1, 2, 2, 2, 2], 3)


def test_layout_errors(tmp_path):
    with pytest.raises(InputError, match="FFHQR layout"):
        find_ffhqr_pairs(tmp_path)
    with pytest.raises(InputError, match="no clip folders"):
        find_mrfv_clips(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "raw.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="no 'retouched'"):
        find_mrfv_clips(tmp_path)
    (tmp_path / "a" / "retouched").mkdir()
    (tmp_path / "notes").mkdir()  # a folder that is not a clip is skipped
    clips = find_mrfv_clips(tmp_path)
    assert [(c.name, c.raw.name, c.retouched.name) for c in clips] == [("a", "raw.mp4", "retouched")]


@pytest.mark.slow
def test_evaluate_ffhqr_tiny(tmp_path):
    import torch

    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    _write_ffhqr(tmp_path)
    assert [p.name for p in find_ffhqr_pairs(tmp_path)] == ["00000", "00001"]
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=64))
    report = evaluate_ffhqr(tmp_path, model=model, device="cpu", seq_frames=3)
    assert [c.name for c in report.clips] == ["ffhqr-test", "ffhqr-seq"]
    images, seqs = report.clips
    assert images.frames == 2 and seqs.frames == 6
    for clip in report.clips:
        for method in ("raw", "single_frame", "vretouch"):
            s = clip.summary[method]
            assert 0 < s["psnr"] < 100 and -1 <= s["ssim"] <= 1 and 0 <= s["soft_iou"] <= 1
            assert s["lpips_vgg"] == "unavailable"
    assert math.isnan(images.summary["vretouch"]["flicker"])  # stills have no temporal metrics
    assert not math.isnan(seqs.summary["vretouch"]["flicker"])
    # Temporal metrics reset at each sequence: the first frame of every sequence has none.
    assert [math.isnan(v) for v in seqs.per_frame["raw"]["warp_error"]] == [True, False, False] * 2
    assert report.settings["window"] == 3
