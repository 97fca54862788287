"""The contract around the pipeline that people and scripts rely on (issue 12): usage mistakes
exit 2 with one line, checks that need no model run before it loads, one overwrite rule,
Ctrl-C / SIGTERM end every command with exit 130 / 143 and nothing partial, several inputs
in one call with the model loaded once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import cli, write_ffhqr

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def test_a_bug_is_one_line_with_exit_70_not_a_traceback(monkeypatch, capsys):
    """Whatever the installed typer keeps its Abort in (typer 0.29 moved it out of its click copy),
    an unexpected exception ends as one ``internal error`` line, and --debug shows the traceback."""
    import vretouch_cli.model.summary as summary
    from vretouch_cli.cli import EXIT_INTERNAL

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(summary, "summarize", broken)
    code = cli(["info", "--preset", "tiny"])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL, err
    assert lines(err) == ["vretouch: internal error: RuntimeError: boom (run with --debug for the traceback)"]
    with pytest.raises(RuntimeError, match="boom"):
        cli(["info", "--preset", "tiny", "--debug"])


# ----------------------------------------------------------------------------- usage mistakes


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "clip.mp4", "-o", "o.mp4", "--strenght", "0.5"], "did you mean --strength"),
        (["rnu", "clip.mp4"], "run"),
        (["run"], "INPUT"),
        (["run", "clip.mp4", "-o", "o.mp4", "--strength", "abc"], "--strength"),
        (["run", "{demo}", "-o", "o.mp4", "--compare", "true"], "take no value"),
        (["masks", "clip.mp4"], "--output"),
        (["info", "--presset", "tiny"], "did you mean --preset"),
        (["eval", "--mrfv"], "--mrfv"),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(args, needle, demo_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli([demo_clip if a == "{demo}" else a for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(lines(err)) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    assert needle in err, err


def test_bare_vretouch_prints_help_and_exits_0(capsys):
    assert cli([]) == 0
    out = capsys.readouterr()
    assert "Usage: vretouch" in out.out and "--debug" in out.out and "Exit codes" in out.out
    assert "error" not in out.err


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_flags(flag, capsys):
    assert cli(["run", flag]) == 0
    text = capsys.readouterr().out
    assert "vretouch run [OPTIONS] INPUT..." in text and "{input}" not in text and "<bool>" not in text
    assert "--debug" in text


def test_version(capsys):
    from vretouch_cli import __version__

    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vretouch {__version__}"


# ----------------------------------------------------------------------------- checks before the model


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything loads a model: the error must come before."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr("vretouch_cli.checkpoint.load_model", forbidden)


@pytest.mark.parametrize(
    "case, needle, code",
    [
        ("empty", "empty", 2),
        ("text", "not a readable", 2),
        ("duration0", "--duration", 2),
        ("start-1", "--start", 2),
        ("avi", "unsupported output type", 3),
        ("webm-x264", ".webm cannot hold libx264", 2),
        ("mp4-ffv1", ".mp4 cannot hold ffv1", 2),
        ("preset", "did you mean fast", 2),
        ("exists", "--overwrite", 3),
        ("image-out", "image output holds one frame", 3),
    ],
)
def test_run_checks_before_loading_the_model(case, needle, code, tmp_path, demo_clip, micro_weights, no_model, capsys):
    src, out, extra = demo_clip, tmp_path / "out.mp4", []
    if case == "empty":
        src = tmp_path / "empty.mp4"
        src.write_bytes(b"")
    elif case == "text":
        src = tmp_path / "notes.mp4"
        src.write_text("not a video\n" * 10)
    elif case == "duration0":
        extra = ["--duration", "0"]
    elif case == "start-1":
        extra = ["--start", "-1"]
    elif case == "avi":
        out = tmp_path / "z.avi"
    elif case == "webm-x264":
        out, extra = tmp_path / "z.webm", ["--codec", "libx264"]
    elif case == "mp4-ffv1":
        extra = ["--codec", "ffv1"]
    elif case == "preset":
        extra = ["--preset", "fsat"]
    elif case == "exists":
        out.write_bytes(b"keep")
    elif case == "image-out":
        out = tmp_path / "out.png"
    result = cli(["run", src, "-o", out, "--weights", micro_weights, *extra])
    err = capsys.readouterr().err
    assert result == code, err
    assert len(lines(err)) == 1 and needle in err, err
    assert case == "exists" or not out.exists()


def test_masks_checks_before_loading_the_model(tmp_path, demo_clip, micro_weights, no_model, capsys):
    done = tmp_path / "done"
    (done / "maps").mkdir(parents=True)
    assert cli(["masks", demo_clip, "-o", done, "--weights", micro_weights]) == 3
    assert "already holds mask output" in capsys.readouterr().err
    assert cli(["masks", demo_clip, "-o", tmp_path / "x.png", "--weights", micro_weights]) == 3
    assert "give a folder name" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    assert cli(["masks", demo_clip, "-o", tmp_path / "m", "--duration", "0", "--weights", micro_weights]) == 2


def _read_only_target(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores permission bits: a read-only mount instead
        return Path("/proc") / name
    return folder / name


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_eval_outputs_are_checked_first(tmp_path, micro_weights, no_model, capsys, monkeypatch):
    import vretouch_cli.evaluate.mrfv as mrfv_mod

    monkeypatch.setattr(mrfv_mod, "evaluate_mrfv", lambda *a, **k: pytest.fail("evaluated before checking --json"))
    data = tmp_path / "mrfv"
    data.mkdir()
    try:
        target = _read_only_target(tmp_path, "r.json")
        code = cli(["eval", "--mrfv", data, "--json", target, "--weights", micro_weights])
        err = capsys.readouterr().err
        assert code == 3 and "not writable" in err and "internal error" not in err, err
    finally:
        (tmp_path / "ro").chmod(0o700)
    existing = tmp_path / "r.csv"
    existing.write_text("keep")
    assert cli(["eval", "--mrfv", data, "--csv", existing, "--weights", micro_weights]) == 3
    assert "--overwrite" in capsys.readouterr().err and existing.read_text() == "keep"


def test_train_outputs_follow_the_overwrite_rule(tmp_path, capsys):
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"keep")
    assert cli(["train", "--export", tmp_path / "run", "-o", target]) == 3
    assert "--overwrite" in capsys.readouterr().err and target.read_bytes() == b"keep"
    data = write_ffhqr(tmp_path / "data", n_train=2, n_test=1, size=32)
    assert cli(["train", "--data", data, "--preview-data", "-o", tmp_path / "missing" / "p.png"]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_written_weights_have_the_usual_mode(tmp_path):
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    path = save_model(tmp_path / "w.safetensors", VRetouchEr(ModelConfig.preset("tiny").replace(size=64)))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# ----------------------------------------------------------------------------- output for people


def test_console_survives_a_pipe():
    from vretouch_cli.cli.console import PIPE_WIDTH, make_console, plural

    console = make_console()  # stderr is captured by pytest: not a terminal
    if "COLUMNS" not in os.environ:
        assert console.width == PIPE_WIDTH and console.soft_wrap
    assert (plural(1, "frame"), plural(2, "frame"), plural(0, "map")) == ("1 frame", "2 frames", "0 maps")


def test_image_summary_is_singular_and_separates_startup(tmp_path, demo_clip, micro_weights, capsys):
    import cv2

    from vretouch_cli.video.testclips import decode_frames

    face = tmp_path / "face.png"
    cv2.imwrite(str(face), cv2.cvtColor(decode_frames(demo_clip)[0], cv2.COLOR_RGB2BGR))
    assert cli(["run", face, "-o", tmp_path / "out.png", "--weights", micro_weights, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "1 frame, 1 face track:" in err and "s start-up" in err and "frames" not in err.split("\n")[0], err


# ----------------------------------------------------------------------------- interrupts


def _start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vretouch_cli", *map(str, args)], cwd=cwd, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"ended before it was interrupted: {proc.returncode} {proc.communicate()}")
        if ready():
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("never started processing")


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_exits_130_and_leaves_nothing(sig, code, tmp_path, demo_clip, micro_weights):
    out = tmp_path / "out.mp4"
    proc = _start(["run", demo_clip, "-o", out, "--weights", micro_weights, "--device", "cpu"], tmp_path)
    _wait_for(proc, lambda: any(".vretouch-tmp" in p.name for p in tmp_path.iterdir()))  # the sink is open
    time.sleep(1.0)
    rc, err = _stop(proc, sig)
    assert rc == code, err
    assert lines(err) == ["vretouch: interrupted"], err
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if "vretouch" in p.name]


@pytest.mark.slow
def test_interrupted_masks_leave_nothing_partial(tmp_path, demo_clip, micro_weights):
    out = tmp_path / "masks"
    proc = _start(["masks", demo_clip, "-o", out, "--weights", micro_weights, "--device", "cpu"], tmp_path)
    _wait_for(proc, lambda: out.is_dir() and any(out.glob(".maps.*/maps/*.png")))  # maps are being written
    rc, err = _stop(proc, signal.SIGINT)
    assert rc == 130, err
    assert lines(err) == ["vretouch: interrupted"], err
    assert not out.exists()  # the folder was ours: nothing half written, nothing to block a rerun


@pytest.mark.slow
def test_interrupted_training_checkpoints_and_resumes(tmp_path):
    data = write_ffhqr(tmp_path / "data", n_train=3, n_test=1, size=48)
    run = tmp_path / "run"
    proc = _start(
        ["train", "--data", data, "--out", run, "--preset", "tiny", "--size", "32", "--window", "1",
         "--model-option", "disc_channels=16", "--batch-size", "1", "--val-items", "1", "--val-every", "0",
         "--log-every", "1", "--ckpt-every", "0", "--vgg-weights", "none", "--device", "cpu", "--steps", "100000"],
        tmp_path,
    )

    def training() -> bool:
        log = run / "log.jsonl"
        return log.exists() and '"kind": "train"' in log.read_text()

    _wait_for(proc, training)
    rc, err = _stop(proc, signal.SIGINT)
    assert rc == 130, err
    said = [line for line in lines(err) if "interrupted" in line]
    assert len(said) == 1 and "--resume" in said[0] and "Traceback" not in err, err
    from vretouch_cli.train.state import latest_checkpoint, load_checkpoint

    assert latest_checkpoint(run) is not None
    step = int(load_checkpoint(run)["step"])
    assert step >= 1
    assert cli(["train", "--out", run, "--resume", "--steps", step + 2, "--device", "cpu", "--quiet"]) == 0
    assert int(load_checkpoint(run)["step"]) == step + 2


# ----------------------------------------------------------------------------- several inputs


def test_batch_loads_the_model_once(tmp_path, demo_clip, micro_weights, monkeypatch, capsys):
    import vretouch_cli.checkpoint as checkpoint

    calls = []
    real = checkpoint.load_model

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "load_model", counting)
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (clips / name).write_bytes(demo_clip.read_bytes())
    (clips / "broken.mov").write_text("not a video")
    (clips / "still.png").write_bytes(b"")  # not a clip: --batch takes videos only
    out = tmp_path / "out"
    code = cli(["run", "--batch", clips, "-o", out, "--weights", micro_weights, "--device", "cpu", "--duration", "0.3"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(calls) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]
    assert len([line for line in lines(err) if "error:" in line]) == 1 and "broken.mov" in err
    assert "3 inputs: 2 done, 1 failed" in err


@pytest.mark.slow
def test_batch_of_the_shared_clips_matches_single_runs(tmp_path, shared_videos, micro_weights, monkeypatch, capsys):
    import vretouch_cli.checkpoint as checkpoint
    from vretouch_cli.pipeline import retouch_video
    from vretouch_cli.video.testclips import probe

    clips = sorted(p for p in shared_videos.iterdir() if p.suffix.lower() in (".mp4", ".mov"))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(clips[0].read_bytes()[: 20_000])
    calls = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    out = tmp_path / "batch"
    args = ["--weights", micro_weights, "--device", "cpu", "--duration", "0.4", "--preset", "ultrafast"]
    code = cli(["run", *clips, corrupt, "-o", out, *args])
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(calls) == 1, "the model must be loaded once for the whole batch"
    errors = [line for line in lines(err) if "error:" in line]
    assert len(errors) == 1 and "corrupt.mp4" in errors[0], err
    assert f"{len(clips) + 1} inputs: {len(clips)} done, 1 failed" in err

    model = real(micro_weights)
    for clip in clips:
        single = tmp_path / "single" / clip.name
        single.parent.mkdir(exist_ok=True)
        retouch_video(clip, single, model=model, device="cpu", duration=0.4, preset="ultrafast")
        a, b = probe(out / clip.name), probe(single)
        va = [s for s in a["streams"] if s["type"] == "video"][0]
        vb = [s for s in b["streams"] if s["type"] == "video"][0]
        ta = [p * va["time_base"] for p in va["pts"]]
        tb = [p * vb["time_base"] for p in vb["pts"]]
        assert len(ta) == len(tb) > 0, clip.name
        assert ta == tb, clip.name
        assert [s["type"] for s in a["streams"]] == [s["type"] for s in b["streams"]], clip.name
