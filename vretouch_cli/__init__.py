"""vretouch: retouch faces in videos (VRetouchEr, CVPR 2024).

Public API (imported lazily so that ``import vretouch_cli`` and ``vretouch --help`` stay fast):

- :func:`retouch_video` runs the whole video pipeline (same job as ``vretouch run``).
- :func:`load_model` loads a self-describing safetensors checkpoint.
- :class:`ModelConfig` holds every architecture number; ``ModelConfig.preset(name)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["retouch_video", "load_model", "ModelConfig", "__version__"]


def __getattr__(name: str):
    if name == "retouch_video":
        from .pipeline import retouch_video

        return retouch_video
    if name == "load_model":
        from .checkpoint import load_model

        return load_model
    if name == "ModelConfig":
        from .model.config import ModelConfig

        return ModelConfig
    raise AttributeError(name)
