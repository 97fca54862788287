"""Self-describing safetensors checkpoints: round trip, metadata, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vretouch_cli.checkpoint import load_model, read_config, read_metadata, save_model
from vretouch_cli.errors import WeightsError
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr

CFG = ModelConfig.preset("tiny").replace(size=32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = VRetouchEr(CFG).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(path, model, metadata={"step": 12, "note": "unit test"})
    return model, path


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == CFG
    clip = torch.rand(1, 4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = model(clip, 1), loaded(clip, 1)
    assert torch.equal(a.out, b.out) and torch.equal(a.mask, b.mask) and torch.equal(a.flows, b.flows)


def test_metadata_and_config(saved, tmp_path):
    _, path = saved
    meta = read_metadata(path)
    assert meta["format"] == "vretouch/1"
    assert json.loads(meta["vretouch_config"]) == CFG.to_dict()
    assert meta["step"] == "12" and meta["note"] == "unit test"
    assert read_config(path) == CFG
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temp file is gone


def test_tensors_that_do_not_match_the_config(saved, tmp_path):
    _, path = saved
    tensors = load_file(str(path))
    meta = read_metadata(path)
    bad = tmp_path / "bad.safetensors"
    meta_bad = dict(meta, vretouch_config=json.dumps(CFG.replace(channels=128).to_dict()))
    save_file(tensors, str(bad), metadata=meta_bad)
    with pytest.raises(WeightsError) as exc:
        load_model(bad)
    assert "does not match its own model config" in _one_line(exc)

    missing = dict(tensors)
    missing.pop(next(iter(missing)))
    save_file(missing, str(bad), metadata=meta)
    with pytest.raises(WeightsError) as exc:
        load_model(bad)
    assert "missing" in _one_line(exc)


def test_missing_corrupt_and_foreign_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(WeightsError) as exc:
        load_model(tmp_path / "nope.safetensors")
    assert "not found" in _one_line(exc)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError) as exc:
        load_model(truncated)
    _one_line(exc)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError) as exc:
        load_model(garbage)
    _one_line(exc)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(WeightsError) as exc:
        read_config(foreign)
    assert "not a vretouch checkpoint" in _one_line(exc)

    bad_cfg = tmp_path / "badcfg.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad_cfg), metadata={"format": "vretouch/1", "vretouch_config": '{"delta": 99}'})
    with pytest.raises(WeightsError) as exc:
        load_model(bad_cfg)
    assert "invalid model config" in _one_line(exc)


def test_non_finite_weights_are_refused(saved, tmp_path):
    _, path = saved
    tensors = load_file(str(path))
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(tensors, str(bad), metadata=read_metadata(path))
    with pytest.raises(WeightsError) as exc:
        load_model(bad)
    assert "non-finite" in _one_line(exc)
