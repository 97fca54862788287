"""``vretouch train`` with class heads (issue 11) on a class cache, end to end on CPU: per-class
terms in the log, per-class Soft-IoU at validation, exact resume; one-line errors for class heads
on data without per-class layers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from _helpers import write_prepared

from vretouch_cli.classes import CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

HEADS = json.dumps(list(CLASSES))


def vretouch(*args) -> None:
    from vretouch_cli import cli

    present = tuple(m for m in cli._COMMAND_MODULES if importlib.util.find_spec(f"vretouch_cli.cli.{m}"))
    with mock.patch.object(cli, "_COMMAND_MODULES", present):
        cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> tuple[Path, Path]:
    """(class cache, plain cache) of five tiny faces at 64 px, made through the CLI."""
    tmp = tmp_path_factory.mktemp("classtrain")
    prep = write_prepared(tmp / "prep", n=5, size=128)
    vretouch("train", "--build-cache", prep, "-o", tmp / "classes", "--size", "64", "--cache-variants", "2", "--cache-classes", "--quiet")
    vretouch("train", "--build-cache", prep, "-o", tmp / "plain", "--size", "64", "--cache-variants", "1", "--quiet")
    return tmp / "classes", tmp / "plain"


def common(data: Path) -> list:
    return [
        "--data", data, "--preset", "tiny", "--size", "64", "--window", "1", "--patch", "32", "--objective", "balanced",
        "--model-option", "disc_channels=16", "--model-option", f"classes={HEADS}", "--batch-size", "2",
        "--val-items", "2", "--val-every", "0", "--log-every", "1", "--vgg-weights", "none", "--device", "cpu", "--quiet",
    ]


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_class_heads_train_log_per_class_terms_and_resume_exactly(tmp_path, caches):
    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.train.patches import has_classes
    from vretouch_cli.train.state import load_checkpoint

    cache, _ = caches
    assert has_classes(cache) and has_classes(cache / "val")
    a, c = tmp_path / "A", tmp_path / "C"
    vretouch("train", *common(cache), "--steps", "2", "--ckpt-every", "2", "--out", a)
    rows = [r for r in read_log(a) if r["kind"] == "train"]
    for name in CLASSES:
        for term in ("bce", "dice"):
            assert all(np.isfinite(r["losses"][f"{term}_{name}"]) for r in rows), (term, name)
    last = rows[-1]["losses"]
    assert last["bce"] == pytest.approx(np.mean([last[f"bce_{n}"] for n in CLASSES]), rel=1e-5)
    assert {"spot", "clean", "gen", "keep", "total_g"} <= set(last)
    assert all(np.isfinite(r["losses"]["keep"]) and r["losses"]["keep"] >= 0 for r in rows)
    val = [r for r in read_log(a) if r["kind"] == "val"][-1]["metrics"]
    assert all(np.isfinite(val[f"soft_iou_{n}"]) for n in CLASSES) and np.isfinite(val["psnr_gain"])
    assert load_model(a / "weights_ema.safetensors").config.classes == CLASSES

    vretouch("train", "--out", a, "--resume", "--steps", "4", "--device", "cpu", "--quiet")
    vretouch("train", *common(cache), "--steps", "4", "--ckpt-every", "2", "--out", c)
    ra, rc = load_checkpoint(a), load_checkpoint(c)
    assert ra["step"] == rc["step"] == 4
    for key in ("G", "G_ema", "D"):
        worst = max(float((ra[key][k].float() - rc[key][k].float()).abs().max()) for k in rc[key])
        assert worst <= 1e-6, (key, worst)
    for pid, s in rc["opt_G"]["state"].items():
        assert torch.allclose(ra["opt_G"]["state"][pid]["exp_avg"], s["exp_avg"], atol=1e-6, rtol=0)


def test_class_heads_without_class_data_is_one_line(tmp_path, caches, capsys):
    _, plain = caches
    for args, needles in (
        (["train", *common(plain), "--steps", "1", "--out", tmp_path / "p"], ("class heads", "--cache-classes")),
        (["train", "--cache-classes", "--out", tmp_path / "q", "--data", plain], ("--cache-classes", "--build-cache")),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            vretouch(*args)
        err = capsys.readouterr().err.strip()
        assert info.value.code != 0 and len(err.splitlines()) == 1 and all(n in err for n in needles), err
    assert not (tmp_path / "p" / "checkpoints").exists()
