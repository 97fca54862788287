"""--remove / --keep / per-class --strength through the CLI and the pipeline (issue 11).

The weights here have no class heads (like every weights file shipped so far): the selection is
checked early, default options give exactly the frames they always gave, and a selection such
weights cannot honour runs merged with one note.
"""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import cli
from vretouch_cli.pipeline import open_stream

CLIP_SECONDS = 0.25  # a few frames of the shipped demo clip: a real, detectable face


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "missing.mp4", "-o", "o.mp4", "--remove", "acne,pimple"], "unknown class 'pimple'"),
        (["run", "missing.mp4", "-o", "o.mp4", "--keep", "wart"], "valid classes: acne, redness, marks, mole, freckle"),
        (["run", "missing.mp4", "-o", "o.mp4", "--remove", "mole", "--keep", "mole"], "both name mole"),
        (["run", "missing.mp4", "-o", "o.mp4", "--strength", "acne=2"], "--strength acne must be between 0 and 1"),
        (["run", "missing.mp4", "-o", "o.mp4", "--strength", "mole=0.5"], "mole is not removed"),
        (["run", "missing.mp4", "-o", "o.mp4", "--strength", "2"], "--strength must be between 0 and 1"),
        (["masks", "missing.mp4", "-o", "out", "--remove", "zits"], "unknown class 'zits'"),
        (["masks", "missing.mp4", "-o", "out", "--keep", "acne,redness,marks"], "nothing left to remove"),
    ],
)
def test_bad_selection_is_one_line_exit_2_before_the_input_is_opened(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(_lines(err)) == 1, err
    assert needle in err and "missing.mp4" not in err  # the options first: the input was never looked at
    assert list(tmp_path.iterdir()) == []


def _frames(clip, weights, **kwargs) -> list[np.ndarray]:
    stream = open_stream(clip, weights=weights, device="cpu", duration=CLIP_SECONDS, **kwargs)
    try:
        frames = [r.retouched for r in stream]
    finally:
        stream.source.close()
    return frames, stream


def test_weights_without_class_heads_merge_the_selection(demo_clip, micro_weights):
    base, stream = _frames(demo_clip, micro_weights)
    assert stream.notes == [] and stream.select is None and stream.strength == 1.0
    assert len(base) >= 3
    untouched, _ = _frames(demo_clip, micro_weights, strength=0.0)
    assert any(not np.array_equal(a, b) for a, b in zip(base, untouched))  # the model does change something

    # The default spelled out: the same frames, bit for bit, and no note.
    same, stream = _frames(demo_clip, micro_weights, remove="acne,redness,marks", strength="acne=1,redness=1,marks=1")
    assert stream.notes == [] and all(np.array_equal(a, b) for a, b in zip(base, same))

    # What these weights cannot do: run merged (the same frames) with one note.
    for kwargs in (dict(keep="mole,freckle"), dict(remove="all"), dict(remove="acne"), dict(strength="acne=1,redness=0.5")):
        merged, stream = _frames(demo_clip, micro_weights, **kwargs)
        assert len(stream.notes) == 1 and "no class heads" in stream.notes[0], kwargs
        assert all(np.array_equal(a, b) for a, b in zip(base, merged)), kwargs

    # One strength for all classes is today's --strength, whichever way it is written.
    half, stream = _frames(demo_clip, micro_weights, strength=0.5)
    spelled, stream2 = _frames(demo_clip, micro_weights, strength="acne=0.5,redness=0.5,marks=0.5")
    assert stream.strength == stream2.strength == 0.5 and stream.notes == stream2.notes == []
    assert all(np.array_equal(a, b) for a, b in zip(half, spelled))


def test_cli_prints_one_note_for_a_selection_the_weights_cannot_make(demo_clip, micro_weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    args = ["run", demo_clip, "-o", out, "--weights", micro_weights, "--device", "cpu", "--duration", CLIP_SECONDS, "-q"]
    assert cli(args) == 0
    assert "note:" not in capsys.readouterr().err
    assert cli([*args, "--overwrite", "--keep", "mole,freckle", "--strength", "acne=1,redness=0.5"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in _lines(err) if line.startswith("note:")]
    assert len(notes) == 1 and "no class heads" in notes[0] and "as a whole" in notes[0], err
    assert "error" not in err
