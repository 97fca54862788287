"""Detector decoding math, scale-back to full resolution, and the model's sha256 check."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from vretouch_cli.errors import WeightsError
from vretouch_cli.face import detect as det_mod
from vretouch_cli.face.detect import (
    MODEL_SHA256,
    Detection,
    FaceDetector,
    decode_outputs,
    generate_anchors,
    verify_sha256,
)


def _n_anchors(w, h):
    return sum(math.ceil(w / s) * math.ceil(h / s) * 2 for s in (8, 16, 32))


def test_anchor_layout():
    w, h = 100, 60
    a = generate_anchors(w, h)
    assert a.shape == (_n_anchors(w, h), 4)
    # stride 8: cell (0,0) with both sizes, then cell (1,0).
    np.testing.assert_allclose(a[0], [4, 4, 16, 16])
    np.testing.assert_allclose(a[1], [4, 4, 32, 32])
    np.testing.assert_allclose(a[2], [12, 4, 16, 16])
    nx8 = math.ceil(w / 8)
    np.testing.assert_allclose(a[2 * nx8], [4, 12, 16, 16])  # second row
    start16 = math.ceil(w / 8) * math.ceil(h / 8) * 2
    np.testing.assert_allclose(a[start16], [8, 8, 64, 64])
    np.testing.assert_allclose(a[start16 + 1], [8, 8, 128, 128])
    start32 = start16 + math.ceil(w / 16) * math.ceil(h / 16) * 2
    np.testing.assert_allclose(a[start32 + 1], [16, 16, 512, 512])


def _raw(w, h, faces):
    """Raw model outputs with the given {anchor_index: (score, loc[4], landmarks[10])}."""
    n = _n_anchors(w, h)
    loc = np.zeros((n, 4), np.float32)
    conf = np.zeros((n, 2), np.float32)
    conf[:, 0] = 1.0
    lms = np.zeros((n, 10), np.float32)
    for i, (score, lo, lm) in faces.items():
        conf[i] = [1 - score, score]
        loc[i] = lo
        lms[i] = lm
    return loc, conf, lms


def test_decode_float_box_and_landmarks():
    w, h = 64, 48
    a = generate_anchors(w, h)
    i = 5
    lo = np.array([0.3, -0.7, 0.25, -0.4], np.float32)
    lm = np.linspace(-1.3, 1.7, 10).astype(np.float32)
    boxes, scores, pts = decode_outputs(*_raw(w, h, {i: (0.95, lo, lm)}), w, h, 0.8, 0.4)
    assert boxes.shape == (1, 4) and pts.shape == (1, 5, 2)
    cx, cy, aw, ah = a[i]
    bcx, bcy = cx + lo[0] * 0.1 * aw, cy + lo[1] * 0.1 * ah
    bw, bh = aw * np.exp(lo[2] * 0.2), ah * np.exp(lo[3] * 0.2)
    np.testing.assert_allclose(boxes[0], [bcx - bw / 2, bcy - bh / 2, bcx + bw / 2, bcy + bh / 2], rtol=1e-6)
    expect = np.array([cx, cy]) + lm.reshape(5, 2) * 0.1 * np.array([aw, ah])
    np.testing.assert_allclose(pts[0], expect, rtol=1e-6)
    # Float precision is kept (the wheel's post-processing would round these to ints).
    assert np.any(np.abs(pts[0] - np.round(pts[0])) > 0.01)
    assert scores[0] == pytest.approx(0.95)


def test_decode_threshold_nms_and_order():
    w, h = 64, 64
    zero_lo, zero_lm = np.zeros(4), np.zeros(10)
    # Anchors 0 and 2 are 16-px boxes one stride-8 cell apart: IoU = 1/3. Anchor 40 scores 0.5.
    raw = _raw(w, h, {0: (0.9, zero_lo, zero_lm), 2: (0.97, zero_lo, zero_lm), 40: (0.5, zero_lo, zero_lm)})
    boxes, scores, _ = decode_outputs(*raw, w, h, 0.8, 0.4)
    np.testing.assert_allclose(scores, [0.97, 0.9], rtol=1e-6)  # sorted, 0.5 dropped
    boxes, scores, _ = decode_outputs(*raw, w, h, 0.8, 0.3)  # IoU 1/3 > 0.3 → suppressed
    np.testing.assert_allclose(scores, [0.97], rtol=1e-6)
    boxes, scores, pts = decode_outputs(*_raw(w, h, {}), w, h, 0.8, 0.4)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and pts.shape == (0, 5, 2)


def test_decode_rejects_wrong_prior_count():
    loc, conf, lms = _raw(64, 64, {})
    with pytest.raises(ValueError):
        decode_outputs(loc, conf, lms, 64, 72, 0.8, 0.4)


class _StubSession:
    """Stands in for onnxruntime: one face placed in the downscaled input's coordinates."""

    def __init__(self, expect_hw, anchor_index, lm, order=None):
        self.expect_hw = expect_hw
        self.anchor_index = anchor_index
        self.lm = lm
        self.seen = None

    def run(self, _names, feeds):
        x = feeds["input"]
        self.seen = x
        assert x.dtype == np.float32 and x.shape[:2] == (1, 3)
        h, w = x.shape[2:]
        assert (h, w) == self.expect_hw
        loc, conf, lms = _raw(w, h, {self.anchor_index: (0.99, np.zeros(4), self.lm)})
        return [loc[None], conf[None], lms[None]]


def _anchor_near(w, h, cx, cy, size):
    a = generate_anchors(w, h)
    d = np.abs(a[:, 0] - cx) + np.abs(a[:, 1] - cy) + np.abs(a[:, 2] - size) * 10
    return int(np.argmin(d))


def _upright_lm():
    # offsets (in units of 0.1 × anchor size) of: left eye, right eye, nose, mouth L, mouth R
    return np.array([-3, -2, 3, -2, 0, 1, -2.5, 3.5, 2.5, 3.5], np.float32)


def test_scale_back_to_full_resolution():
    det = FaceDetector(max_side=640, min_face=24)
    sw, sh = 640, 360
    idx = _anchor_near(sw, sh, 300, 180, 64)
    stub = _StubSession((sh, sw), idx, _upright_lm())
    det._session = stub
    image = np.full((720, 1280, 3), 128, np.uint8)
    faces = det.detect(image)
    assert len(faces) == 1 and isinstance(faces[0], Detection)
    boxes, _, pts = decode_outputs(*[o[0] for o in stub.run(None, {"input": stub.seen})], sw, sh)
    # 2× downscale, pixel centres at integers: x_full = (x_small + 0.5) * 2 - 0.5
    np.testing.assert_allclose(faces[0].landmarks, (pts[0] + 0.5) * 2 - 0.5, atol=1e-3)
    np.testing.assert_allclose(faces[0].box, (boxes[0] + 0.5) * 2 - 0.5, atol=1e-3)
    assert faces[0].landmarks.dtype == np.float32 and faces[0].box.dtype == np.float32
    # Input normalisation: BGR minus mean.
    np.testing.assert_allclose(stub.seen[0, :, 0, 0], 128 - det_mod.MEAN_BGR)


def test_no_downscale_below_max_side_and_uint16():
    det = FaceDetector(max_side=640)
    idx = _anchor_near(320, 200, 160, 100, 64)
    stub = _StubSession((200, 320), idx, _upright_lm())
    det._session = stub
    img16 = np.full((200, 320, 3), 200 * 257, np.uint16)
    faces = det.detect(img16)
    assert len(faces) == 1
    np.testing.assert_allclose(stub.seen[0, :, 5, 5], 200 - det_mod.MEAN_BGR)
    boxes, _, pts = decode_outputs(*[o[0] for o in stub.run(None, {"input": stub.seen})], 320, 200)
    np.testing.assert_allclose(faces[0].landmarks, pts[0], atol=1e-3)


def test_min_face_filter_is_at_full_resolution():
    sw, sh = 640, 360
    idx = _anchor_near(sw, sh, 300, 180, 16)  # a 16-px box in the small image = 32 px full res
    for min_face, expected in ((24, 1), (40, 0)):
        det = FaceDetector(min_face=min_face)
        det._session = _StubSession((sh, sw), idx, _upright_lm())
        assert len(det.detect(np.zeros((720, 1280, 3), np.uint8))) == expected


def test_landmark_order_is_canonical():
    sw, sh = 320, 240
    idx = _anchor_near(sw, sh, 160, 120, 64)
    mirrored = _upright_lm().reshape(5, 2)[[1, 0, 2, 4, 3]].ravel()
    det = FaceDetector()
    det._session = _StubSession((sh, sw), idx, mirrored)
    lm = det.detect(np.zeros((sh, sw, 3), np.uint8))[0].landmarks
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left before right, as seen
    assert lm[2, 1] > lm[0, 1]


def test_rejects_bad_images():
    det = FaceDetector()
    with pytest.raises(ValueError):
        det.prepare(np.zeros((10, 10), np.uint8))
    with pytest.raises(TypeError):
        det.prepare(np.zeros((10, 10, 3), np.float32))


def test_sha256_check():
    verify_sha256(b"abc", hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(WeightsError):
        verify_sha256(b"abc", MODEL_SHA256)


def test_model_bytes_match_pinned_hash():
    data = det_mod.load_model_bytes()
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256


def test_tampered_model_raises(monkeypatch):
    import retinaface.weights

    monkeypatch.setattr(retinaface.weights, "WEIGHTS", retinaface.weights.WEIGHTS[:-1] + b"\0")
    with pytest.raises(WeightsError):
        det_mod.load_model_bytes()
    with pytest.raises(WeightsError):
        FaceDetector().detect(np.zeros((64, 64, 3), np.uint8))


def test_real_model_finds_nothing_on_flat_or_tiny_images():
    det = FaceDetector()
    assert det.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    assert det.detect(np.full((7, 5, 3), 128, np.uint8)) == []
