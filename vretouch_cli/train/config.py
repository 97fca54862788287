"""The training run's settings: one frozen dataclass, stored inside every training checkpoint.

Architecture numbers live in :class:`~vretouch_cli.model.config.ModelConfig`; this holds only what
the trainer needs (data, loss weights, optimisation, schedule). ``--resume`` restores it from the
checkpoint and lets a user change only the run-control fields (:data:`RUN_CONTROL_FIELDS`), so a
resumed run computes exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DATA_MODES = ("auto", "ffhqr", "synthetic", "patches")
OBJECTIVES = ("paper", "balanced")

# Fields a resumed run may change without changing the result of the steps it computes.
MAP_TARGETS = ("camera", "exact")
RUN_CONTROL_FIELDS = (
    "steps",
    "max_minutes",
    "num_workers",
    "device",
    "ckpt_every",
    "ckpt_minutes",
    "keep_checkpoints",
    "val_every",
    "log_every",
    "vgg_weights",
    "export_path",
)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's loss terms (MODEL.md §3). A zero weight skips the term's compute."""

    l1: float = 10.0  # ζ in L_con
    perceptual: float = 1.0
    adversarial: float = 0.05
    flow: float = 0.1
    imperfection: float = 1.0
    # -- the balanced objective (``objective="balanced"``; see losses.py and docs/TRAINING.md) ----
    bce: float = 1.0  # weighted BCE on the mask head's logits
    dice: float = 1.0  # soft Dice of the map
    spot: float = 10.0  # L1 inside the (grown) blemish region, normalised by its area
    clean: float = 10.0  # L1 outside it: the identity term ("change nothing here")
    gen: float = 5.0  # L1 of G's own output inside the blemishes (teaches the fill-in whatever the map)
    # Squared error inside the same grown blemish region, per its area, in the model's [-1, 1]
    # units (default 0 = off). The held-out score is PSNR, a mean of squares, and most of its error
    # sits in a few blemish cores the output leaves half done; L1 weighs those as little as any
    # other pixel, a square weighs them by their size (docs/TRAINING.md, "--w-spot-l2").
    spot_l2: float = 0.0
    # Class heads only: L1 on the pixels of the classes the sample keeps (moles, freckles, … where
    # their own change at --gt-scale > 0.05), normalised by that area. Without it a kept mole is a
    # few pixels of the clean term's whole-crop average, and the heads of the removed classes
    # learnt to take moles along (65 % of mole pixels kept after 6000 steps, session 4).
    keep: float = 10.0
    pos_weight_cap: float = 20.0  # cap of the BCE's positive weight (negatives / positives)
    ring_weight: float = 4.0  # weight of the clean ring around each blemish (hard negatives)
    # Multi-frame clips only: the target's error against the clean frame should move with the
    # face, |(ŷ_t − y_t) − W(ŷ_{t−1} − y_{t−1})| (W: the exact flow), over the blemish region and
    # wherever either map is on — flicker of the correction, the quantity the temporal metrics
    # measure. Costs a second forward pass of the clip per step (see losses.temporal_loss).
    temporal: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``vretouch train`` needs besides the model architecture."""

    data: str = ""
    out: str = "runs/train"
    data_mode: str = "auto"
    preset: str = "small"
    size: int | None = None  # override the preset's S
    delta: int | None = None  # override the preset's δ (frames per clip T = δ + 1)
    model_overrides: tuple[tuple[str, Any], ...] = ()  # other ModelConfig fields, e.g. (("disc_channels", 16),)
    steps: int = 1000
    batch_size: int = 2  # per rank
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    lr_warmup: int = 0  # linear warm-up steps (independent of `steps`, so extending a run is exact)
    lr_final: float = 1.0  # cosine decay of the LR from `lr` (after warm-up) to lr·lr_final at `steps`; 1 = constant
    grad_clip: float = 1.0  # max global grad norm for G and D; 0 disables
    ema_decay: float = 0.999
    precision: str = "auto"  # bf16 autocast on CUDA; CPU is always fp32
    seed: int = 0
    losses: LossWeights = field(default_factory=LossWeights)
    objective: str = "paper"  # "paper": MODEL.md §3 as written; "balanced": for sparse targets (CPU recipe)
    init: str | None = None  # start G (and its EMA) from this weights file instead of random
    patch: int = 128  # crop size of "patches" data (0 = whole faces)
    gt_map_scale: float | None = None  # M_gt scale; None = the evaluator's GT_MAP_SCALE
    # What the merged map is trained on: "camera" = |raw − target| after the camera (its JPEG turns
    # each spot's difference into 8×8 blocks of 1–3 levels); "exact" = the pair's change before
    # the camera (a cache's ``change`` array, cached since session 4)
    map_target: str = "camera"
    vgg_weights: str | None = None  # path / hub ref / None (env VRETOUCH_VGG_WEIGHTS, hub cache)
    vgg_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    val_fraction: float = 0.2  # share of identities held out when the data has no test split
    val_items: int = 16
    val_every: int = 500
    log_every: int = 10
    ckpt_every: int = 1000
    ckpt_minutes: float = 0.0  # also checkpoint every this many minutes (0 = off)
    keep_checkpoints: int = 3
    max_minutes: float = 0.0  # stop cleanly (checkpoint, validate, export) after this long; 0 = off
    num_workers: int = 0
    device: str = "auto"
    export_path: str | None = None  # where to write EMA inference weights at the end (default RUN/weights_ema.safetensors)

    def __post_init__(self) -> None:
        if self.data_mode not in DATA_MODES:
            raise UsageError(f"--data-mode {self.data_mode!r}: choose one of {', '.join(DATA_MODES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"--objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if self.map_target not in MAP_TARGETS:
            raise UsageError(f"--map-target {self.map_target!r}: choose one of {', '.join(MAP_TARGETS)}")
        if self.patch < 0 or self.patch % 8:
            raise UsageError(f"--patch must be 0 or a positive multiple of 8, got {self.patch}")
        if self.steps < 0:
            raise UsageError(f"--steps must be ≥ 0, got {self.steps}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        if self.size is not None and (self.size < 32 or self.size % 8):
            raise UsageError(f"--size must be a multiple of 8 and ≥ 32, got {self.size}")
        if self.delta is not None and not 1 <= self.delta <= 8:
            raise UsageError(f"--window (δ) must be in 1–8, got {self.delta}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UsageError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.lr_final <= 1.0:
            raise UsageError(f"--lr-final must be in [0, 1] (a fraction of --lr), got {self.lr_final}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.num_workers < 0:
            raise UsageError(f"--workers must be ≥ 0, got {self.num_workers}")
        for name in ("val_every", "log_every", "ckpt_every"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be ≥ 0")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["vgg_layers"] = list(self.vgg_layers)
        d["model_overrides"] = [[k, v] for k, v in self.model_overrides]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "losses" in kw and isinstance(kw["losses"], dict):
            kw["losses"] = LossWeights(**kw["losses"])
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        if "vgg_layers" in kw:
            kw["vgg_layers"] = tuple(kw["vgg_layers"])
        if "model_overrides" in kw:
            kw["model_overrides"] = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in kw["model_overrides"])
        return cls(**kw)
