"""The face stage on the real clips in ../shared/data/videos (skipped when absent).

Run with ``-s`` to see the measured numbers (detection rates, jitter, ms per detection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from vretouch_cli.face.detect import FaceDetector
from vretouch_cli.face.track import TRACKING_DETECTION_THRESHOLD, FaceTracker, is_shot_cut, thumbnail

pytestmark = [pytest.mark.slow, pytest.mark.shared]

# Weak detections (a face turning away) are kept so they can extend existing tracks; the
# tracker only starts tracks from detections scoring >= new_track_score (0.8).
LOW_SCORE = TRACKING_DETECTION_THRESHOLD
STRONG = 0.8


@dataclass
class ClipRun:
    detections: list = field(default_factory=list)
    thumbs: list = field(default_factory=list)
    detect_s: float = 0.0
    shape: tuple = ()


def _decode(path, max_frames=None):
    import av  # tests may use PyAV directly; the package keeps it inside vretouch_cli.video

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if max_frames is not None and i >= max_frames:
                return
            yield frame.to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(score_threshold=LOW_SCORE)


@pytest.fixture(scope="module")
def clips(shared_videos, detector):
    cache: dict[tuple[str, int | None], ClipRun] = {}

    def get(name: str, max_frames: int | None = None) -> ClipRun:
        key = (name, max_frames)
        if key not in cache:
            path = shared_videos / name
            if not path.is_file():
                pytest.skip(f"{name} is absent from ../shared/data/videos")
            run = ClipRun()
            for image in _decode(path, max_frames):
                t0 = time.perf_counter()
                run.detections.append(detector.detect(image))
                run.detect_s += time.perf_counter() - t0
                run.thumbs.append(thumbnail(image))
                run.shape = image.shape
            cache[key] = run
        return cache[key]

    return get


def _track(detections, cuts=(), **kw):
    tracker = FaceTracker(**kw)
    frames = []
    for i, dets in enumerate(detections):
        frames += tracker.push(i, dets, cut=i in cuts)
    return frames + tracker.flush()


def _series(frames):
    """track id -> (frame indices, smoothed landmarks [T,5,2], raw landmarks, boxes)."""
    out: dict[int, list] = {}
    for ff in frames:
        for f in ff.faces:
            out.setdefault(f.track_id, []).append((ff.frame_index, f.landmarks, f.raw_landmarks, f.box))
    return {
        k: (np.array([v[0] for v in s]), np.stack([v[1] for v in s]), np.stack([v[2] for v in s]), np.stack([v[3] for v in s]))
        for k, s in out.items()
    }


def eye_jitter(idx, lms, per_eye=False):
    """median |second difference of the eye centre| / eye distance over consecutive frames.

    The eye centre is the midpoint of the two eyes, or with ``per_eye`` each eye on its own.
    """
    ed = np.linalg.norm(lms[:, 1] - lms[:, 0], axis=1)[1:-1, None]
    ec = lms[:, :2] if per_eye else lms[:, :2].mean(1, keepdims=True)
    d2 = np.linalg.norm(ec[2:] - 2 * ec[1:-1] + ec[:-2], axis=2) / ed
    consecutive = (idx[2:] - idx[:-2]) == 2
    return float(np.median(d2[consecutive]))


@pytest.mark.parametrize(
    "name", ["talking_512_noaudio.mp4", "woman_720p_headturn.mp4", "woman_talking_360p_pexels.mp4"]
)
def test_face_found_in_almost_every_frame(clips, name):
    run = clips(name)
    n = len(run.detections)
    strong = sum(any(d.score >= STRONG for d in dets) for dets in run.detections) / n
    ms = run.detect_s / n * 1000
    print(f"\n{name}: {n} frames {run.shape[1]}x{run.shape[0]}, face (score>={STRONG}) in {strong:.1%}, {ms:.1f} ms/detect")
    assert strong >= 0.99
    frames = _track(run.detections)
    tracked = sum(bool(ff.faces) for ff in frames) / n
    print(f"  tracked face in {tracked:.1%} of frames, {len(_series(frames))} track(s)")
    assert tracked >= 0.99
    # Landmarks are in full-resolution float pixel coordinates (not rounded, not downscaled).
    lm = next(d for dets in run.detections for d in dets).landmarks
    assert lm.dtype == np.float32 and np.any(lm != np.round(lm))
    assert lm[:, 0].max() < run.shape[1] and lm[:, 1].max() < run.shape[0]


def test_smoothing_removes_jitter_on_talking_clip(clips):
    run = clips("woman_talking_360p_pexels.mp4")
    frames = _track(run.detections)
    series = _series(frames)
    tid = max(series, key=lambda k: len(series[k][0]))
    idx, smooth, raw, _ = series[tid]
    assert len(idx) >= 0.99 * len(run.detections)
    for per_eye in (False, True):
        j_raw, j_smooth = eye_jitter(idx, raw, per_eye), eye_jitter(idx, smooth, per_eye)
        what = "each eye" if per_eye else "eye midpoint"
        print(f"\njitter of {what} (median |d2| / eye distance): raw {j_raw:.4f}, smoothed {j_smooth:.4f}")
        assert j_smooth <= 0.01
        assert j_smooth <= 0.5 * j_raw
    # Zero-lag: the smoothed landmarks follow the head (no systematic offset from the raw ones).
    ed = np.linalg.norm(raw[:, 1] - raw[:, 0], axis=1).mean()
    offset = np.abs((smooth - raw).mean(axis=(0, 1))) / ed
    assert offset.max() < 0.005


def test_four_people_keep_their_track_ids(clips):
    run = clips("four_people_720p60.mp4", max_frames=240)  # the first 4 s, every frame
    n = len(run.detections)
    frames = _track(run.detections)
    assert [ff.frame_index for ff in frames] == list(range(n))
    series = _series(frames)
    long_tracks = {k: v for k, v in series.items() if len(v[0]) >= 0.95 * n}
    counts = np.bincount([len(ff.faces) for ff in frames])
    print(f"\nfour_people: {n} frames, faces per frame {dict(enumerate(counts.tolist()))}, "
          f"tracks {{id: frames}} = { {k: len(v[0]) for k, v in series.items()} }, "
          f"interpolated {sum(f.interpolated for ff in frames for f in ff.faces)}")
    assert len(long_tracks) >= 4
    # Each person is one continuous track: no jump between consecutive frames, and the tracks
    # stay apart (an id switch between two people would show as a jump).
    for idx, lms, _, boxes in long_tracks.values():
        assert np.all(np.diff(idx) == 1)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        width = boxes[:, 2] - boxes[:, 0]
        step = np.linalg.norm(np.diff(centre, axis=0), axis=1) / width[1:]
        assert step.max() < 0.25
    # The four people detected confidently on the first frame are the long tracks' starts.
    first = [d for d in run.detections[0] if d.score >= STRONG]
    starts = [v[3][0] for v in long_tracks.values() if v[0][0] == 0]
    for d in first:
        assert min(np.abs(s - d.box).max() for s in starts) < 0.15 * (d.box[2] - d.box[0])


def test_shot_cuts(clips):
    # No false cuts inside the three single-shot clips...
    names = ["talking_512_noaudio.mp4", "woman_720p_headturn.mp4", "woman_talking_360p_pexels.mp4"]
    for name in names:
        th = clips(name).thumbs
        assert not any(is_shot_cut(a, b) for a, b in zip(th[:-1], th[1:])), name
    # ...a cut where two clips are joined...
    for a, b in zip(names, names[1:] + names[:1]):
        assert is_shot_cut(clips(a).thumbs[-1], clips(b).thumbs[0])
    # ...and the real cuts of face_appears_hevc_vfr.mov (talking head → black → animation).
    run = clips("face_appears_hevc_vfr.mov")
    cuts = {i for i in range(1, len(run.thumbs)) if is_shot_cut(run.thumbs[i - 1], run.thumbs[i])}
    print(f"\nface_appears_hevc_vfr.mov: cuts at {sorted(cuts)}")
    assert cuts == {72, 73}
    frames = _track(run.detections, cuts=cuts)
    assert frames[72].cut and frames[72].faces == [] and frames[72].ended


def test_detection_speed_report(clips):
    """Not a benchmark (the CPU is shared); prints ms per detection and checks a loose bound."""
    small = clips("woman_talking_360p_pexels.mp4")
    large = clips("woman_720p_headturn.mp4")
    ms_small = small.detect_s / len(small.detections) * 1000
    ms_large = large.detect_s / len(large.detections) * 1000
    print(f"\nms per detect: 640x360 {ms_small:.1f}, 1280x720 (downscaled to 640) {ms_large:.1f}")
    assert ms_large < 4 * ms_small + 20  # downscaling keeps 720p close to 360p cost
