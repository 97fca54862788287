"""Every architecture number of VRetouchEr in one frozen dataclass, with the presets of MODEL.md §2.

The config travels inside each checkpoint (safetensors metadata, see ``checkpoint.py``), so a
weights file describes itself. ``ModelConfig.preset(name)`` gives a preset; ``cfg.replace(**kw)``
derives a variant (e.g. a smaller face size for fast tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..classes import CLASSES
from ..errors import UsageError

PRESET_NAMES = ("tiny", "small", "base", "paper")
MAX_DELTA = 8
ATTENTION_KINDS = ("softmax", "linear")
FILL_KINDS = ("none", "normconv")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one VRetouchEr model (generator); the discriminator's numbers are here too.

    Feature maps of the encoder are ``[C/8, C/4, C/2, C, C, C]`` channels at strides
    ``1, 2, 4, 8, 8, 8``; the localisation map M, the flow, FIR and MMA work at S/8.
    """

    # -- table of MODEL.md §2 ---------------------------------------------------------------
    channels: int = 64  # C: encoder width at S/8
    size: int = 256  # S: aligned face crop size (pixels)
    delta: int = 3  # δ: default number of reference frames (window of δ+1 frames)
    mma_blocks: int = 2  # K transformer blocks
    heads: int = 4
    window: int = 8  # attention window (tokens at S/8), clipped to the feature size
    # -- layout knobs (tuned per preset so the cost lands on the table) ----------------------
    mask_channels: int = 4  # C_m: channels of the imperfection map M (must divide C)
    mask_floor: float = 0.01  # ε of the full-res map (1 + 2ε)·σ − ε clipped to [0, 1]: exact 0 and 1 reachable
    mlp_ratio: float = 2.0  # hidden width of the MMA feed-forward, relative to C
    ffn_kernel: int = 1  # kernel of the feed-forward's first layer (1 = plain MLP, 3 = conv FFN)
    attention: str = "softmax"  # "softmax" (joint over all frames) or "linear" (additive per frame)
    enc_convs: int = 2  # 3×3 convs per encoder block
    loc_channels: tuple[int, ...] = (8, 16, 32, 64)  # N: widths of its 4 conv blocks on the image
    head_channels: int = 16  # I: width of the full-resolution mask head
    dec_channels: tuple[int, ...] = (64, 32, 16, 8)  # G: widths at S/8, S/4, S/2, S
    dec_convs: int = 2  # modulated 3×3 convs per decoder block
    style_dim: int = 64  # width of G's style code (AdaIN-style modulation)
    mapping_layers: int = 2  # MLP layers from pooled clean-skin features to the style code
    flow_levels: int = 6  # SpyNet pyramid levels
    flow_scale: int = 8  # finest flow level at S/flow_scale (8 or 4)
    pac_kernel: int = 3  # kernel of FIR's pixel-adaptive convolutions
    # G's output: "none" = G draws the whole face (tanh RGB); "normconv" = G adds a bounded
    # residual to a classical fill of the masked pixels from the unmasked skin around them
    # (multi-scale normalised convolution). The fill is a head start that makes G's job
    # "add texture" instead of "paint skin from scratch" (MODEL.md §5: the fill-in was the
    # bottleneck of CPU training). Weights files without the field load as "none".
    fill: str = "none"
    # I also sees the image's local contrast at full resolution (the image minus two Gaussian
    # blurs of it): a blemish is a small local deviation in colour and lightness, and the head
    # otherwise has to learn that comparison from a few 3×3 convs.
    head_highpass: bool = False
    # Class heads (issue 11): I predicts one map per class (names from ``vretouch_cli.classes``,
    # e.g. acne, redness, marks, mole, freckle) and the network takes a per-sample selection of
    # the classes to remove. Empty: one merged map, the network of every weights file before
    # class heads (same tensors; the field is left out of the saved config).
    classes: tuple[str, ...] = ()
    # Class heads only: the kept classes' map vetoes removal, M_pix = max_c(select_c · m_c) ·
    # (1 − K_pix), so a pixel the network sees as a kept mole or freckle is not composed from G
    # even where a removed class's map also fires on it (the class heads' common error: the acne
    # head also answers on moles). Trained with it, the heads learn the product. Weights files
    # without the field load as False (the plain max); it is left out of a saved config when False.
    keep_veto: bool = False
    # -- discriminator (training only) -------------------------------------------------------
    disc_channels: int = 64
    disc_scales: int = 3
    disc_layers: int = 3

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise UsageError(f"invalid model config: {msg}")

        if isinstance(self.classes, str) or not isinstance(self.classes, (tuple, list)):
            bad(f"classes={self.classes!r} must be a list of class names")
        object.__setattr__(self, "classes", tuple(self.classes))  # frozen: a list would not hash
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            bad(f"classes: unknown class {unknown[0]!r}; valid classes: {', '.join(CLASSES)}")
        if len(set(self.classes)) != len(self.classes):
            bad(f"classes={list(self.classes)} names a class twice")
        if self.keep_veto and not self.classes:
            bad("keep_veto needs class heads (classes=...)")

        c = self.channels
        if c < 8 or c % 8:
            bad(f"channels={c} must be a positive multiple of 8")
        if self.size < 8 or self.size % 8:
            bad(f"size={self.size} must be a positive multiple of 8")
        if not 1 <= self.delta <= MAX_DELTA:
            bad(f"delta={self.delta} must be between 1 and {MAX_DELTA}")
        if self.mma_blocks < 1:
            bad(f"mma_blocks={self.mma_blocks} must be at least 1")
        if self.heads < 1 or c % self.heads:
            bad(f"heads={self.heads} must divide channels={c}")
        if self.window < 1:
            bad(f"window={self.window} must be at least 1")
        tokens = self.size // 8
        w = min(self.window, tokens)
        if tokens % w:
            bad(f"window={self.window} must divide the S/8 feature size {tokens}")
        if self.mask_channels < 1 or c % self.mask_channels:
            bad(f"mask_channels={self.mask_channels} must divide channels={c}")
        if self.attention not in ATTENTION_KINDS:
            bad(f"attention={self.attention!r} must be one of {', '.join(ATTENTION_KINDS)}")
        if self.fill not in FILL_KINDS:
            bad(f"fill={self.fill!r} must be one of {', '.join(FILL_KINDS)}")
        if self.ffn_kernel not in (1, 3, 5):
            bad(f"ffn_kernel={self.ffn_kernel} must be 1, 3 or 5")
        if self.pac_kernel % 2 == 0:
            bad(f"pac_kernel={self.pac_kernel} must be odd")
        if self.flow_scale not in (4, 8):
            bad(f"flow_scale={self.flow_scale} must be 4 or 8")
        if self.flow_levels < 1:
            bad(f"flow_levels={self.flow_levels} must be at least 1")
        if len(self.loc_channels) != 4 or min(self.loc_channels) < 1:
            bad(f"loc_channels={self.loc_channels} must be 4 positive widths")
        if len(self.dec_channels) != 4 or min(self.dec_channels) < 1:
            bad(f"dec_channels={self.dec_channels} must be 4 positive widths (S/8, S/4, S/2, S)")
        if self.enc_convs < 1 or self.dec_convs < 1 or self.mapping_layers < 1:
            bad("enc_convs, dec_convs and mapping_layers must be at least 1")
        if not 0.0 <= self.mask_floor < 0.5:
            bad(f"mask_floor={self.mask_floor} must be in [0, 0.5)")
        if self.mlp_ratio <= 0 or self.head_channels < 1 or self.style_dim < 1:
            bad("mlp_ratio, head_channels and style_dim must be positive")
        if self.disc_channels < 1 or self.disc_scales < 1 or self.disc_layers < 1:
            bad("disc_channels, disc_scales and disc_layers must be positive")

    # -- derived -------------------------------------------------------------------------------
    @property
    def encoder_channels(self) -> tuple[int, ...]:
        """Widths of the six encoder blocks: [C/8, C/4, C/2, C, C, C]."""
        c = self.channels
        return (c // 8, c // 4, c // 2, c, c, c)

    @property
    def frames(self) -> int:
        """Frames in a window by default: the target and δ references."""
        return self.delta + 1

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "ModelConfig":
        """One of ``tiny | small | base | paper`` (MODEL.md §2)."""
        key = str(name).strip().lower()
        if key not in _PRESETS:
            raise UsageError(f"unknown model preset {name!r}: choose one of {', '.join(PRESET_NAMES)}")
        return cls(**_PRESETS[key])

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise UsageError(f"unknown model config field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists). ``classes`` and ``keep_veto`` are left out when
        empty / False, so a config without them is saved exactly as before the fields existed."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("classes", "keep_veto") and not value:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; missing fields take their defaults, unknown ones are an error."""
        if not isinstance(data, dict):
            raise UsageError(f"a model config must be a mapping, not {type(data).__name__}")
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UsageError(f"unknown model config field(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls, key, None)
            if key == "classes":
                if not isinstance(value, (list, tuple)):
                    raise UsageError("model config field classes must be a list of class names")
                value = tuple(str(v) for v in value)
            elif isinstance(default, tuple):
                if not isinstance(value, (list, tuple)):
                    raise UsageError(f"model config field {key} must be a list")
                value = tuple(int(v) for v in value)
            elif isinstance(default, bool):
                value = bool(value)
            elif isinstance(default, int):
                if isinstance(value, float) and not value.is_integer():
                    raise UsageError(f"model config field {key} must be an integer")
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            elif isinstance(default, str):
                value = str(value)
            kwargs[key] = value
        return cls(**kwargs)


# Layouts tuned so that parameters and GMAC per output frame (before caching: all δ+1 frames'
# per-frame parts plus one window) land on the table of MODEL.md §2 (checked by the tests).
_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        channels=64, size=256, delta=3, mma_blocks=2, heads=4, window=8,
        mask_channels=4, mlp_ratio=2.0, ffn_kernel=1, enc_convs=1,
        loc_channels=(4, 8, 16, 32), head_channels=8,
        dec_channels=(96, 32, 16, 8), dec_convs=2, style_dim=256, mapping_layers=8,
        flow_scale=8,
    ),
    "small": dict(
        channels=128, size=256, delta=4, mma_blocks=2, heads=4, window=8,
        mask_channels=8, mlp_ratio=2.0, ffn_kernel=1, enc_convs=1,
        loc_channels=(16, 32, 64, 128), head_channels=16,
        dec_channels=(256, 64, 32, 16), dec_convs=2, style_dim=128, mapping_layers=2,
        flow_scale=8,
    ),
    "base": dict(
        channels=256, size=512, delta=6, mma_blocks=4, heads=8, window=16,
        mask_channels=8, mlp_ratio=2.0, ffn_kernel=1, enc_convs=2,
        loc_channels=(16, 32, 64, 128), head_channels=32,
        dec_channels=(512, 256, 128, 64), dec_convs=2, style_dim=512, mapping_layers=8,
        flow_scale=4,
    ),
    "paper": dict(
        channels=512, size=512, delta=6, mma_blocks=5, heads=8, window=16,
        mask_channels=8, mlp_ratio=2.0, ffn_kernel=3, enc_convs=3,
        loc_channels=(64, 128, 256, 512), head_channels=64,
        dec_channels=(1024, 512, 256, 128), dec_convs=2, style_dim=512, mapping_layers=8,
        flow_scale=8,
    ),
}
