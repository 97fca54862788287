"""Self-describing checkpoints: safetensors weights with the model config in the metadata.

Metadata keys: ``format`` = ``vretouch/1``, ``vretouch_config`` = the config as JSON, plus any
caller metadata (strings; other values are stored as JSON). Every failure to read a file, or a
file whose tensors do not match its config, raises :class:`WeightsError` with one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import VRetouchError, WeightsError

FORMAT = "vretouch/1"
CONFIG_KEY = "vretouch_config"


def _metadata_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def save_model(path: str | os.PathLike, model: torch.nn.Module, metadata: dict | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (temp file beside it, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise TypeError("save_model needs a VRetouchEr (a module with a .config ModelConfig)")
    meta = {str(k): _metadata_str(v) for k, v in (metadata or {}).items()}
    meta["format"] = FORMAT
    meta[CONFIG_KEY] = json.dumps(cfg.to_dict(), sort_keys=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        from .outputs import umask_mode

        umask_mode(tmp)  # mkstemp makes 0600; weights are an output like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors metadata of a checkpoint (WeightsError when the file is missing or not safetensors)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({_short(exc)})") from exc


def read_config(path: str | os.PathLike):
    """The :class:`ModelConfig` stored in a checkpoint."""
    from .model.config import ModelConfig

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or CONFIG_KEY not in meta:
        raise WeightsError(f"{path} is not a vretouch checkpoint (no '{CONFIG_KEY}' metadata; format {meta.get('format')!r})")
    try:
        return ModelConfig.from_dict(json.loads(meta[CONFIG_KEY]))
    except (ValueError, TypeError, VRetouchError) as exc:
        raise WeightsError(f"{path} holds an invalid model config: {_short(exc)}") from exc


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Build the model its checkpoint describes, load the weights, move it to ``device``, eval mode."""
    from safetensors import safe_open

    from .model.network import VRetouchEr

    path = Path(path)
    cfg = read_config(path)
    with torch.device("meta"):
        skeleton = VRetouchEr(cfg)
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as fh:
            names = set(fh.keys())
            missing = sorted(set(expected) - names)
            unexpected = sorted(names - set(expected))
            wrong = []
            for name in sorted(names & set(expected)):
                shape = tuple(fh.get_slice(name).get_shape())
                if shape != expected[name]:
                    wrong.append(f"{name} is {list(shape)} in the file but {list(expected[name])} in its config")
            if missing or unexpected or wrong:
                parts = []
                if missing:
                    parts.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
                if unexpected:
                    parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
                if wrong:
                    parts.append(f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})")
                raise WeightsError(f"{path} does not match its own model config: {'; '.join(parts)}")
            state = {name: fh.get_tensor(name) for name in names}
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path} is corrupt or truncated ({_short(exc)})") from exc
    for name, tensor in state.items():
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise WeightsError(f"{path} holds a non-finite or non-float tensor ({name})")
    model = VRetouchEr(cfg)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
