"""``vretouch train --init CLASS_LESS.safetensors`` with class heads (issue 11), end to end on CPU,
on a class cache of one person: the validation split is then empty (the cache is still built, and
the run trains without validation)."""

from __future__ import annotations

import importlib.util
import json
from unittest import mock

import pytest
import torch
from _helpers import write_prepared

from vretouch_cli.classes import CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

OPTIONS = {"fill": "normconv", "head_channels": 16, "head_highpass": True}  # the shipped weights' options


def vretouch(*args) -> None:
    from vretouch_cli import cli

    present = tuple(m for m in cli._COMMAND_MODULES if importlib.util.find_spec(f"vretouch_cli.cli.{m}"))
    with mock.patch.object(cli, "_COMMAND_MODULES", present):
        cli.main([str(a) for a in args])


def test_init_class_heads_from_class_less_weights_on_a_one_person_cache(tmp_path):
    from vretouch_cli.checkpoint import load_model, save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr
    from vretouch_cli.train.patches import cache_items, load_cache

    prep = write_prepared(tmp_path / "prep", n=1, size=128)
    cache = tmp_path / "cache"
    vretouch("train", "--build-cache", prep, "-o", cache, "--size", "64", "--cache-variants", "2", "--cache-classes", "--quiet")
    assert cache_items(cache) == 2 and cache_items(cache / "val") == 0
    meta, arrays = load_cache(cache / "val")
    assert meta["blemished_share"] == 0.0 and meta["classes"] == list(CLASSES) and arrays["raw"].shape == (0, 64, 64, 3)

    torch.manual_seed(0)
    plain = save_model(tmp_path / "plain.safetensors", VRetouchEr(ModelConfig.preset("tiny").replace(size=64, **OPTIONS)))
    run = tmp_path / "run"
    options = [x for k, v in OPTIONS.items() for x in ("--model-option", f"{k}={json.dumps(v)}")]
    vretouch(
        "train", "--data", cache, "--init", plain, "--preset", "tiny", "--size", "64", "--window", "1", "--patch", "32",
        "--objective", "balanced", *options, "--model-option", "disc_channels=16", "--model-option", f"classes={json.dumps(list(CLASSES))}",
        "--steps", "1", "--batch-size", "1", "--val-every", "0", "--vgg-weights", "none", "--device", "cpu", "--quiet", "--out", run,
    )
    texts = [r["text"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "message"]
    init = [t for t in texts if t.startswith("initialised G from")]
    assert len(init) == 1 and "mask_head.out replicated into 5 class channels" in init[0], texts
    assert any(t.startswith("no validation") for t in texts), texts
    assert load_model(run / "weights_ema.safetensors").config.classes == CLASSES
