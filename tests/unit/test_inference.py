"""SlidingRetoucher: same numbers as the model, per-frame parts once per frame, bounded memory."""

from __future__ import annotations

import pytest
import torch

from vretouch_cli.errors import UsageError
from vretouch_cli.inference import Result, SlidingRetoucher
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

S = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VRetouchEr(ModelConfig.preset("tiny").replace(size=S)).eval()


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, S, S, generator=gen) * 2 - 1


def _run(retoucher: SlidingRetoucher, tracks: dict, order=None) -> list[Result]:
    """Push tracks {id: frames [n, 3, S, S]} frame by frame (tracks may start/end at different times)."""
    length = max(len(f) for f in tracks.values())
    out: list[Result] = []
    for i in range(length):
        items = [((i, tid), tid, frames[i]) for tid, frames in tracks.items() if i < len(frames)]
        out += retoucher.push(items)
        for tid, frames in tracks.items():
            if len(frames) == i + 1:
                out += retoucher.end_track(tid)
    return out + retoucher.flush()


@pytest.mark.parametrize("delta", [1, 3, 6])
def test_window_output_equals_the_model(model, delta):
    """A track exactly one window long: its centre frame equals model(clip, δ//2)."""
    clip = _frames(delta + 1, seed=delta)
    results = _run(SlidingRetoucher(model, delta=delta), {"a": clip})
    assert [r.key for r in results] == [(i, "a") for i in range(delta + 1)]
    with torch.no_grad():
        ref = model(clip[None], delta // 2)
    centre = results[delta // 2]
    assert centre.out.dtype == torch.float32 and centre.out.shape == (3, S, S) and centre.mask.shape == (1, S, S)
    assert torch.allclose(centre.out, ref.out[0], atol=1e-5)
    assert torch.allclose(centre.mask, ref.mask[0], atol=1e-5)


def test_padded_windows_replicate_the_track_ends(model):
    """At the track start, the window is the first frame repeated before the following ones."""
    clip = _frames(5, seed=3)
    results = _run(SlidingRetoucher(model, delta=2), {"a": clip})
    # frame 0's window: [f0, f0, f1]; its per-frame parts are those of the stream, which for the
    # first frames equal the model's (FIR starts at the track start in both)
    with torch.no_grad():
        state = model.frame_step(clip[:1])
        s1 = model.frame_step(clip[1:2], clip[:1], state.mask)
        kv = [(torch.stack([k0, k0, k1], 1), torch.stack([v0, v0, v1], 1)) for (k0, v0), (k1, v1) in zip(state.kv, s1.kv)]
        out, _ = model.synthesize(clip[:1], state.skips, state.mask, state.mask_pix, kv)
    assert torch.allclose(results[0].out, out[0], atol=1e-5)


@pytest.mark.parametrize("delta", [1, 6])
def test_per_frame_parts_run_once_per_frame(model, delta):
    calls = {"E": 0, "N": 0, "S": 0, "G": 0}
    hooks = [
        model.encoder.register_forward_hook(lambda *a: calls.__setitem__("E", calls["E"] + 1)),
        model.localizer.register_forward_hook(lambda *a: calls.__setitem__("N", calls["N"] + 1)),
        model.flow.register_forward_hook(lambda *a: calls.__setitem__("S", calls["S"] + 1)),
        model.decoder.register_forward_hook(lambda *a: calls.__setitem__("G", calls["G"] + 1)),
    ]
    try:
        retoucher = SlidingRetoucher(model, delta=delta, max_batch=1)
        results = _run(retoucher, {7: _frames(60)})
    finally:
        for h in hooks:
            h.remove()
    assert len(results) == 60 and [r.key[0] for r in results] == list(range(60))
    assert calls["E"] == 60 and calls["N"] == 60
    assert calls["S"] == 59  # the first frame has no predecessor
    assert calls["G"] == 60


def test_many_tracks_batched_equal_one_by_one(model):
    tracks = {"a": _frames(7, 1), "b": _frames(4, 2), "c": _frames(9, 3)}
    together = _run(SlidingRetoucher(model, delta=3, max_batch=2), tracks)
    for tid, frames in tracks.items():
        alone = _run(SlidingRetoucher(model, delta=3, max_batch=1), {tid: frames})
        mine = [r for r in together if r.track_id == tid]
        assert [r.key for r in mine] == [(i, tid) for i in range(len(frames))]  # push order
        for x, y in zip(mine, alone):
            assert torch.allclose(x.out, y.out, atol=1e-5) and torch.allclose(x.mask, y.mask, atol=1e-5)


def test_memory_stays_bounded(model):
    delta = 4
    retoucher = SlidingRetoucher(model, delta=delta)
    frames = _frames(20)
    for i in range(20):
        retoucher.push([((i, 0), 0, frames[i]), ((i, 1), 1, frames[19 - i])])
        assert retoucher.buffered_frames <= 2 * (delta + 1)
        for track in retoucher._tracks.values():
            kept = [f for f in track.frames.values() if f.skips is not None]
            assert len(kept) <= retoucher.after + 1  # full-resolution skips only until emitted
    assert len(retoucher.flush()) == 2 * retoucher.after
    assert retoucher.buffered_frames == 0


def test_short_tracks_and_errors(model):
    retoucher = SlidingRetoucher(model, delta=6)
    assert retoucher.push([]) == []
    assert retoucher.push([("k", 1, _frames(1)[0])]) == []
    (res,) = retoucher.end_track(1)
    assert res.key == "k" and res.track_id == 1 and torch.isfinite(res.out).all()
    assert retoucher.end_track(1) == []
    with pytest.raises(UsageError):
        retoucher.push([("a", 1, _frames(1)[0]), ("b", 1, _frames(1)[0])])
    with pytest.raises(UsageError):
        SlidingRetoucher(model, delta=9)
    with pytest.raises(UsageError):
        retoucher.push([("a", 2, torch.zeros(1, 3, S, S))])


def test_reduced_precision_runs(model):
    frames = _frames(4)
    ref = _run(SlidingRetoucher(model, delta=2), {0: frames})
    low = _run(SlidingRetoucher(model, delta=2, dtype=torch.bfloat16), {0: frames})
    for a, b in zip(ref, low):
        assert b.out.dtype == torch.float32 and b.mask.dtype == torch.float32
        assert (a.out - b.out).abs().mean() < 0.05
