"""FusedRetoucher: the corrections fused along a track, aligned by optical flow (vretouch_cli/fusion.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vretouch_cli.fusion import FusedRetoucher, fused_retoucher
from vretouch_cli.inference import Result, SlidingRetoucher
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

S = 64


class _Scripted:
    """A retoucher whose result for each pushed crop is given by ``script(key, crop)`` →
    (generated [3, S, S], mask [1, S, S]); results come ``lag`` pushes late, as a window would."""

    def __init__(self, script, lag: int = 1):
        self.script, self.lag = script, lag
        self.waiting: dict = {}

    def _result(self, key, track_id, crop):
        generated, mask = self.script(key, crop)
        out = crop + mask * (generated - crop)
        return Result(key, track_id, out, mask, None, generated)

    def push(self, items):
        ready = []
        for key, tid, crop in items:
            queue = self.waiting.setdefault(tid, [])
            queue.append((key, tid, crop))
            while len(queue) > self.lag:
                ready.append(self._result(*queue.pop(0)))
        return ready

    def end_track(self, tid):
        return [self._result(*item) for item in self.waiting.pop(tid, [])]

    def flush(self):
        return [r for tid in list(self.waiting) for r in self.end_track(tid)]

    @property
    def buffered_frames(self):
        return sum(len(q) for q in self.waiting.values())


def _texture(seed: int = 0, size: int = S + 16) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    img = (img - img.min()) / (img.max() - img.min())
    return img * 1.6 - 0.8


def _crop(texture: np.ndarray, dx: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(texture[8 : 8 + S, 8 + dx : 8 + dx + S].transpose(2, 0, 1)))


def _run(r, tracks: dict) -> list[Result]:
    length = max(len(f) for f in tracks.values())
    out: list[Result] = []
    for i in range(length):
        out += r.push([((i, tid), tid, frames[i]) for tid, frames in tracks.items() if i < len(frames)])
        for tid, frames in tracks.items():
            if len(frames) == i + 1:
                out += r.end_track(tid)
    return out + r.flush()


def test_a_still_clip_keeps_the_models_output():
    """Identical frames: the flow is zero and every neighbour agrees, so fusing changes nothing."""
    tex = _texture()
    crop = _crop(tex, 0)
    spot = torch.zeros(1, S, S)
    spot[:, 20:30, 25:35] = 0.8

    def script(key, crop):
        return crop * 0.5, spot

    frames = [crop.clone() for _ in range(5)]
    fused = _run(FusedRetoucher(_Scripted(script), radius=1), {"a": frames})
    plain = _run(_Scripted(script), {"a": frames})
    assert [r.key for r in fused] == [(i, "a") for i in range(5)]
    for f, p in zip(fused, plain):
        assert torch.allclose(f.out, p.out, atol=1e-5)


def test_untouched_pixels_stay_exactly_the_input():
    tex = _texture(1)
    frames = [_crop(tex, dx) for dx in (0, 1, 2, 3)]

    def script(key, crop):
        mask = torch.zeros(1, S, S)
        mask[:, 10:20, 40:50] = 1.0
        return torch.zeros_like(crop), mask

    for r in _run(FusedRetoucher(_Scripted(script), radius=1), {"a": frames}):
        crop = frames[r.key[0]]
        far = torch.zeros(S, S, dtype=torch.bool)
        far[35:, :30] = True  # far from every frame's spot, however the flow aligns it
        assert torch.equal(r.out[:, far], crop[:, far])


def test_a_correction_that_jitters_between_frames_is_steadied_and_follows_the_motion():
    """A spot moving 1 px per frame, corrected with an amount that alternates between frames:
    the fused correction varies less along the motion and stays on the spot."""
    tex = _texture(2)
    frames = [_crop(tex, dx) for dx in range(8)]

    def script(key, crop):
        i = key[0]
        mask = torch.zeros(1, S, S)
        x0 = 30 - i  # the texture moves left by 1 px per frame; so does the spot
        mask[:, 24:34, x0 : x0 + 10] = 0.9 if i % 2 else 0.3
        return torch.full_like(crop, 0.1), mask

    plain = _run(_Scripted(script), {"a": frames})
    fused = _run(FusedRetoucher(_Scripted(script), radius=1), {"a": frames})

    def jitter(results):
        corr = [(r.out - frames[r.key[0]]) for r in results]
        # compare frame t with frame t−1 moved along the motion (1 px left), inside the spot
        return float(np.mean([(corr[t][:, 26:32, 30 - t + 2 : 30 - t + 8] - corr[t - 1][:, 26:32, 31 - t + 2 : 31 - t + 8]).abs().mean() for t in range(2, 7)]))

    assert jitter(fused) < 0.5 * jitter(plain)
    for r in fused[1:-1]:
        i = r.key[0]
        corr = (r.out - frames[i]).abs().sum(0)
        inside = corr[24:34, 30 - i : 40 - i].sum()
        assert inside > 0.98 * corr.sum()  # on the spot, not smeared beside it (0.94 without the flow)


def test_delta_one_is_the_plain_retoucher_and_tracks_come_out_whole():
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=32)).eval()
    assert isinstance(fused_retoucher(model, delta=1), SlidingRetoucher)
    fused = fused_retoucher(model, delta=3, max_batch=2)
    assert isinstance(fused, FusedRetoucher) and fused.radius == 1
    gen = torch.Generator().manual_seed(1)
    tracks = {t: torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1 for t, n in (("a", 7), ("b", 1), ("c", 4))}
    results = _run(fused, tracks)
    assert fused.buffered_frames == 0
    for tid, frames in tracks.items():
        mine = [r for r in results if r.track_id == tid]
        assert [r.key for r in mine] == [(i, tid) for i in range(len(frames))]
        assert all(r.out.shape == (3, 32, 32) and torch.isfinite(r.out).all() and r.generated is not None for r in mine)


def test_memory_stays_bounded():
    tex = _texture(3)
    r = FusedRetoucher(_Scripted(lambda key, crop: (crop, torch.zeros(1, S, S)), lag=2), radius=1)
    for i in range(30):
        r.push([((i, 0), 0, _crop(tex, i % 4)), ((i, 1), 1, _crop(tex, 3 - i % 4))])
        assert r.buffered_frames <= 2 * (2 + 3 + 1)
    assert len(r.flush()) == 2 * 3
    assert r.buffered_frames == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        FusedRetoucher(_Scripted(None), radius=-1)
    with pytest.raises(ValueError):
        FusedRetoucher(_Scripted(None), mix=1.5)


def test_the_fusion_is_timed_as_its_own_stage(monkeypatch):
    """The pipeline times the model's calls as "model" and the fusion inside them as "fuse";
    a nested stage is not counted twice (a scripted clock: no timing in tests)."""
    import vretouch_cli.pipeline as pipeline
    from vretouch_cli.pipeline import StageTimer

    clock = [100.0]
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: clock[0])
    timer = StageTimer()
    with timer("model"):
        clock[0] += 2.0
        with timer("fuse"):
            clock[0] += 5.0
        clock[0] += 3.0
    assert timer.seconds["fuse"] == 5.0
    assert timer.seconds["model"] == 5.0  # the 5 s inside "fuse" are not in "model"

    monkeypatch.undo()
    timer = StageTimer()
    tex = _texture(4)
    r = FusedRetoucher(_Scripted(lambda key, crop: (crop, torch.zeros(1, S, S))), radius=1, timer=timer)
    _run(r, {"a": [_crop(tex, i) for i in range(4)]})
    assert timer.seconds["fuse"] > 0


def test_a_neighbour_that_does_not_match_is_left_out():
    """A cut inside a track (another face, another shot): the aligned neighbour differs from the
    frame, so its correction is not borrowed; the output is the frame's own."""
    a, b = _texture(5), _texture(6)
    frames = [_crop(a, 0), _crop(a, 1), _crop(b, 0), _crop(b, 1)]

    def script(key, crop):
        mask = torch.zeros(1, S, S)
        if key[0] < 2:
            mask[:, 20:40, 20:40] = 1.0  # the first shot is corrected, the second is not
        return torch.full_like(crop, 0.5), mask

    fused = _run(FusedRetoucher(_Scripted(script), radius=1), {"a": frames})
    for r in fused[2:]:
        assert torch.equal(r.out, frames[r.key[0]])


def test_rejected_items_are_not_kept():
    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=32)).eval()
    fused = fused_retoucher(model, delta=3)
    with pytest.raises(Exception):
        fused.push([("a", 1, torch.zeros(1, 3, 32, 32))])  # not a [3, S, S] crop
    assert fused.buffered_frames == 0
