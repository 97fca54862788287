"""Tracker on synthetic detection streams; shot-cut detection on synthetic thumbnails."""

from __future__ import annotations

import numpy as np
import pytest

from vretouch_cli.face.align import template
from vretouch_cli.face.detect import Detection
from vretouch_cli.face.track import FaceTracker, FrameFaces, is_shot_cut, thumbnail


def det(cx, cy, size=80.0, score=0.99, noise=None):
    """A face of box width ``size`` centred at (cx, cy), template landmarks (+ optional noise)."""
    lm = (template(512) - 256.0) * (size / 300.0) + [cx, cy]
    if noise is not None:
        lm = lm + noise
    box = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])
    return Detection(box=box.astype(np.float32), score=score, landmarks=lm.astype(np.float32))


def run(stream, cuts=(), **kw) -> list[FrameFaces]:
    tr = FaceTracker(**kw)
    out = []
    for i, dets in enumerate(stream):
        out += tr.push(i, dets, cut=i in cuts)
    return out + tr.flush()


def ids_by_frame(frames):
    return [[f.track_id for f in ff.faces] for ff in frames]


def eye_jitter(series):
    """median |second difference of the eye centre| / eye distance, for a [T, 5, 2] series."""
    ec = series[:, :2].mean(1)
    ed = np.linalg.norm(series[:, 1] - series[:, 0], axis=1)
    return float(np.median(np.linalg.norm(ec[2:] - 2 * ec[1:-1] + ec[:-2], axis=1) / ed[1:-1]))


def test_push_returns_final_frames_with_lag_and_flush_emits_rest():
    tr = FaceTracker(lag=4)
    got = []
    for i in range(10):
        out = tr.push(i, [det(100 + i, 100)])
        assert [f.frame_index for f in out] == ([i - 4] if i >= 4 else [])
        got += out
    got += tr.flush()
    assert [f.frame_index for f in got] == list(range(10))
    assert all(len(f.faces) == 1 and f.faces[0].track_id == 0 for f in got)
    assert tr.flush() == []


def test_frames_without_faces_are_emitted_and_indices_must_increase():
    out = run([[], [], [det(50, 50)], [det(51, 50)], []], lag=2)
    assert [f.frame_index for f in out] == [0, 1, 2, 3, 4]
    assert ids_by_frame(out) == [[], [], [0], [0], []]
    tr = FaceTracker()
    tr.push(5, [])
    with pytest.raises(ValueError):
        tr.push(5, [])


def test_two_faces_crossing_keep_their_ids():
    n = 40
    stream = []
    for t in range(n):
        a = det(100 + 10 * t, 200 + 3, size=80)
        b = det(500 - 10 * t, 200 - 3, size=80)
        stream.append([b, a] if t % 2 else [a, b])  # detector order does not matter
    out = run(stream)
    assert len(out) == n
    assert all(len(ff.faces) == 2 for ff in out)
    first = {f.track_id: f.box[0] for f in out[0].faces}
    id_a = min(first, key=first.get)  # starts on the left
    for t, ff in enumerate(out):
        xa = next(f for f in ff.faces if f.track_id == id_a).box[0] + 40
        assert xa == pytest.approx(100 + 10 * t, abs=1.0)
    assert {f.track_id for ff in out for f in ff.faces} == {0, 1}


def test_three_frame_miss_is_filled_by_interpolation():
    stream = [[det(100 + 5 * t, 150 + 2 * t)] for t in range(20)]
    for t in (8, 9, 10):
        stream[t] = []
    out = run(stream, lag=4, smoothing=0)
    assert all(ids_by_frame(out)[t] == [0] for t in range(20))
    for t in range(20):
        f = out[t].faces[0]
        assert f.interpolated == (t in (8, 9, 10))
        np.testing.assert_allclose(f.landmarks, det(100 + 5 * t, 150 + 2 * t).landmarks, atol=1e-3)
        assert 0 < f.score <= 1


def test_miss_longer_than_lookahead_ends_the_track():
    stream = [[det(100, 100)] for _ in range(20)]
    for t in range(6, 13):  # 7 frames > lag 4
        stream[t] = []
    out = run(stream, lag=4)
    ids = ids_by_frame(out)
    assert ids[:6] == [[0]] * 6 and ids[6:13] == [[]] * 7 and ids[13:] == [[1]] * 7
    assert out[6].ended == (0,)
    assert all(ff.ended == () for t, ff in enumerate(out) if t != 6)


def test_gap_longer_than_max_gap_is_not_filled():
    stream = [[det(100, 100)] for _ in range(20)]
    for t in range(6, 9):
        stream[t] = []
    out = run(stream, lag=4, max_gap=2)
    assert ids_by_frame(out)[9:] == [[1]] * 11


def test_shot_cut_resets_ids():
    stream = [[det(200, 120)] for _ in range(16)]
    out = run(stream, cuts={8}, lag=3)
    ids = ids_by_frame(out)
    assert ids[:8] == [[0]] * 8 and ids[8:] == [[1]] * 8
    assert out[8].cut and out[8].ended == (0,)
    # No smoothing or interpolation across the cut: frame 7 and 8 keep their own landmarks.
    np.testing.assert_allclose(out[7].faces[0].landmarks, det(200, 120).landmarks, atol=1e-3)


def test_cut_does_not_blend_positions_across_shots():
    stream = [[det(100, 100)] for _ in range(8)] + [[det(104, 100)] for _ in range(8)]
    out = run(stream, cuts={8})
    np.testing.assert_allclose(out[7].faces[0].landmarks, det(100, 100).landmarks, atol=1e-3)
    np.testing.assert_allclose(out[8].faces[0].landmarks, det(104, 100).landmarks, atol=1e-3)


def test_one_frame_false_positive_gets_no_track():
    stream = [[det(100, 100)] for _ in range(12)]
    stream[5] = stream[5] + [det(400, 300, size=60)]
    out = run(stream)
    assert ids_by_frame(out) == [[0]] * 12


def test_duplicate_box_on_a_tracked_face_starts_no_track():
    stream = [[det(100, 100)] for _ in range(3)] + [[det(100, 100), det(104, 102, size=76)] for _ in range(6)]
    out = run(stream)
    assert ids_by_frame(out) == [[0]] * 9


def test_weak_detections_extend_tracks_but_never_start_them():
    stream = [[det(100 + t, 100, score=0.99)] for t in range(20)]
    for t in range(8, 14):  # the face turns away: the detector is unsure
        stream[t] = [det(100 + t, 100, score=0.4)]
    for t in range(3, 9):  # a weak poster face on six consecutive frames
        stream[t] = stream[t] + [det(400, 300, size=60, score=0.5)]
    out = run(stream, new_track_score=0.8)
    assert ids_by_frame(out) == [[0]] * 20
    assert out[10].faces[0].score == pytest.approx(0.4)


def test_two_detections_confirm_a_track_and_ids_are_consecutive():
    stream = [[det(100, 100)], [det(100, 100), det(300, 100)], [det(100, 100), det(300, 100)]]
    out = run(stream, lag=2)
    assert ids_by_frame(out) == [[0], [0, 1], [0, 1]]  # the new face is emitted from its 1st frame


def test_smoothing_reduces_jitter_without_lag():
    rng = np.random.default_rng(1)
    n = 120
    truth = [(100 + 3.0 * t, 200 + 20 * np.sin(t / 15.0)) for t in range(n)]
    ref = np.stack([det(x, y, size=120).landmarks for x, y in truth])
    eye_dist = np.linalg.norm(ref[0, 1] - ref[0, 0])
    stream = [[det(x, y, size=120, noise=rng.normal(0, 0.03 * eye_dist, (5, 2)))] for x, y in truth]
    out = run(stream, lag=4, smoothing=2.0)
    sm = np.stack([ff.faces[0].landmarks for ff in out])
    raw = np.stack([ff.faces[0].raw_landmarks for ff in out])
    assert eye_jitter(sm) <= 0.5 * eye_jitter(raw)
    assert eye_jitter(sm) < 0.01
    err_raw = np.abs(raw - ref)[4:-4].mean()
    err_sm = np.abs(sm - ref)[4:-4].mean()
    assert err_sm < 0.5 * err_raw
    # No lag: the smoothed x is not behind the true x (moving 3 px per frame) on average; a causal
    # filter of similar strength would trail by several pixels.
    bias = (sm - ref)[4:-4, :, 0].mean()
    assert abs(bias) < 0.5


def test_constant_velocity_is_reproduced_exactly_even_at_track_ends():
    stream = [[det(50 + 7.0 * t, 80 - 2.0 * t)] for t in range(12)]
    out = run(stream, lag=4, smoothing=3.0)
    for t, ff in enumerate(out):
        np.testing.assert_allclose(ff.faces[0].landmarks, det(50 + 7.0 * t, 80 - 2.0 * t).landmarks, atol=1e-3)
        np.testing.assert_allclose(ff.faces[0].box, det(50 + 7.0 * t, 80 - 2.0 * t).box, atol=1e-3)


def test_bad_parameters_raise():
    with pytest.raises(ValueError):
        FaceTracker(lag=-1)
    with pytest.raises(ValueError):
        FaceTracker(min_hits=0)


def _scene(seed, h=180, w=320):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    img = base + 60 * np.sin(xx[..., None] / (8 + seed) + rng.uniform(0, 6, 3)) * np.cos(yy[..., None] / 13)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_shot_cut_detection_on_synthetic_frames():
    a = np.zeros((180, 320, 3), np.uint8)
    a[:] = (40, 90, 200)  # blue sky
    a[100:] = (60, 140, 50)  # green field
    b = np.full((180, 320, 3), (230, 200, 170), np.uint8)  # warm indoor wall
    b[40:150, 120:200] = (120, 70, 50)
    assert is_shot_cut(thumbnail(a), thumbnail(b))
    # Same shot: small motion, noise, mild exposure change.
    rng = np.random.default_rng(0)
    moved = np.roll(a, 6, axis=1)
    noisy = np.clip(a.astype(int) + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    brighter = np.clip(a.astype(int) + 12, 0, 255).astype(np.uint8)
    for other in (a, moved, noisy, brighter):
        assert not is_shot_cut(thumbnail(a), thumbnail(other))
    s1, s2 = _scene(1), _scene(7)
    assert not is_shot_cut(thumbnail(s1), thumbnail(np.roll(s1, 4, axis=0)))
    t16 = thumbnail(a.astype(np.uint16) * 257)
    np.testing.assert_array_equal(t16, thumbnail(a))
    assert t16.shape == (36, 64, 3) and t16.dtype == np.uint8
    assert is_shot_cut(thumbnail(b), thumbnail(np.zeros_like(b)))  # cut to black
