"""Parameters and GMAC per output frame of every preset land within 15 % of MODEL.md §2."""

from __future__ import annotations

import json

import pytest

from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.summary import summarize

# MODEL.md §2: parameters, GMAC per output frame (before caching)
TABLE = {"paper": (150e6, 2400.0), "base": (32e6, 480.0), "small": (7e6, 16.0), "tiny": (3e6, 4.0)}
TOLERANCE = 0.15


@pytest.mark.parametrize("preset", list(TABLE))
def test_summary_matches_the_table(preset):
    params, gmac = TABLE[preset]
    s = summarize(ModelConfig.preset(preset))
    assert abs(s.params["total"] / params - 1) <= TOLERANCE, s.params
    assert abs(s.gmac_per_output_frame / gmac - 1) <= TOLERANCE, s
    groups = ("E", "N+I", "S", "FIR", "MMA", "G")
    assert sum(s.params[g] for g in groups) == s.params["total"]
    assert s.params["D"] > 0
    assert s.gmac_per_output_frame_cached < s.gmac_per_output_frame


def test_cached_cost_does_not_grow_with_delta():
    cfg = ModelConfig.preset("tiny")
    a, b = summarize(cfg, delta=1), summarize(cfg, delta=8)
    assert b.gmac_per_frame == pytest.approx(a.gmac_per_frame)
    # only the attention over more key frames grows; no extra encoder passes
    assert b.gmac_per_output_frame_cached - a.gmac_per_output_frame_cached < a.gmac_per_frame


@pytest.mark.parametrize("preset", list(TABLE))
def test_info_command_json(preset, capsys):
    from vretouch_cli.cli import main

    main(["info", "--preset", preset, "--json"])
    data = json.loads(capsys.readouterr().out)
    params, gmac = TABLE[preset]
    assert abs(data["params"]["total"] / params - 1) <= TOLERANCE
    assert abs(data["gmac"]["per_output_frame"] / gmac - 1) <= TOLERANCE
    assert set(data["params"]) >= {"E", "N+I", "S", "FIR", "MMA", "G", "D", "total"}
    assert data["config"]["channels"] == ModelConfig.preset(preset).channels


def test_info_command_table_and_weights(tmp_path, capsys):
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.cli import main
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(path, VRetouchEr(ModelConfig.preset("tiny").replace(size=64)))
    main(["info", "--weights", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["size"] == 64 and data["source"] == str(path)
    main(["info", "--preset", "tiny"])
    text = capsys.readouterr().out
    assert "GMAC" in text and "MMA" in text


def test_info_command_errors(capsys):
    from vretouch_cli.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["info", "--preset", "huge"])
    assert exc.value.code == 2
    assert "unknown model preset" in capsys.readouterr().err
