"""Export a training run's EMA generator as a self-describing inference weights file."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import OutputError
from .state import load_checkpoint


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def save_inference_weights(
    model: torch.nn.Module, mcfg, path: str | Path, step: int | None = None, train_config=None, dtype: str = "fp32"
) -> Path:
    """Write ``model`` (a VRetouchEr) with its config in the safetensors metadata, atomically.

    ``dtype`` fp16 halves the file (loaders cast back to the model's fp32 parameters).
    """
    from ..checkpoint import save_model

    if dtype not in DTYPES:
        raise OutputError(f"unknown weights dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise OutputError(f"{path}: inference weights must be a .safetensors file")
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, str] = {"source": "vretouch train (EMA generator)"}
    if step is not None:
        extra["train_step"] = str(int(step))
    if train_config is not None:
        tc = train_config.to_dict() if hasattr(train_config, "to_dict") else dict(train_config)
        extra["train_config"] = json.dumps({k: tc[k] for k in ("data_mode", "preset", "size", "steps", "batch_size", "lr", "seed") if k in tc})
    if dtype != "fp32":
        extra["dtype"] = dtype
        model = copy.deepcopy(model).to(DTYPES[dtype])
    return save_model(path, model, metadata=extra)  # atomic (temp file + rename)


def export_run(run_or_checkpoint: str | Path, out: str | Path, use_ema: bool = True, dtype: str = "fp32") -> dict[str, Any]:
    """Write the EMA (or raw, ``use_ema=False``) generator of a run's latest checkpoint to ``out``."""
    from ..model.config import ModelConfig
    from ..model.network import VRetouchEr
    from .config import TrainConfig

    state = load_checkpoint(run_or_checkpoint)
    mcfg = ModelConfig.from_dict(state["model_config"])
    with torch.random.fork_rng(devices=[]):
        model = VRetouchEr(mcfg)
    model.load_state_dict(state["G_ema" if use_ema else "G"])
    model.eval()
    tcfg = TrainConfig.from_dict(state["train_config"])
    path = save_inference_weights(model, mcfg, out, step=int(state["step"]), train_config=tcfg, dtype=dtype)
    return {"path": path, "step": int(state["step"]), "preset": tcfg.preset, "size": mcfg.size, "delta": mcfg.delta}
